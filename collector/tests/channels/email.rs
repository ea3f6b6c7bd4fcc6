//! The email channel against a real SMTP server (aiosmtpd).

use lookout_collector::notify::email::EmailChannel;
use lookout_collector::notify::{Channel, NoteKind, SendError};
use lookout_config::ChannelConfig;
use serde_json::{Value, json};

use super::{assert_clean, config, firing, message, note, send};
use crate::support::free_port;
use crate::support::smtp::{Pki, SinkOptions, SmtpSink};

const SMTP_USER: &str = "lookout";
const SMTP_PASSWORD: &str = "pa55-w0rd";

fn email_config(url: String) -> ChannelConfig {
    config(json!({
        "name": "mail",
        "type": "email",
        "url": url,
        "from": "Lookout <lookout@example.com>",
        "to": ["ops@example.com", "On Call <oncall@example.com>"],
        "timeout": "3s",
    }))
}

fn part<'a>(parsed: &'a Value, content_type: &str) -> &'a str {
    parsed["parts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["content_type"] == content_type)
        .unwrap_or_else(|| panic!("no {content_type} part in {parsed}"))["text"]
        .as_str()
        .unwrap()
}

#[tokio::test]
async fn firing_and_resolved_through_a_real_smtp_server() {
    let sink = SmtpSink::start(SinkOptions {
        auth: Some(&format!("{SMTP_USER}:{SMTP_PASSWORD}")),
        ..Default::default()
    });
    let url = format!("smtp://{SMTP_USER}:{SMTP_PASSWORD}@127.0.0.1:{}", sink.port);
    let channel = Channel::build(&email_config(url), reqwest::Client::new()).unwrap();
    assert_eq!(channel.name(), "mail");

    let mut msg = firing();
    msg.alerts[0].summary = "api down: <script>alert(1)</script> & 503".into();
    send(&channel, &msg).await.unwrap();
    let resolved = message(vec![note(NoteKind::Resolved, "api", "api down: 503")]);
    send(&channel, &resolved).await.unwrap();

    let envelope = sink.envelope(1);
    assert_eq!(envelope["login"], SMTP_USER);
    assert_eq!(envelope["mail_from"], "lookout@example.com");
    assert_eq!(
        envelope["rcpt_tos"],
        json!(["ops@example.com", "oncall@example.com"])
    );
    let mail = sink.parsed(1);
    assert_eq!(
        mail["subject"],
        "[FIRING] api down: <script>alert(1)</script> & 503"
    );
    assert_eq!(mail["from"], "Lookout <lookout@example.com>");
    assert_eq!(
        mail["to"],
        json!(["ops@example.com", "On Call <oncall@example.com>"])
    );
    assert_eq!(mail["content_type"], "multipart/alternative");
    let types: Vec<&str> = mail["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["content_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["text/plain", "text/html"]);
    assert!(mail["message_id"].as_str().unwrap().contains('@'));
    let text = part(&mail, "text/plain");
    for line in [
        "FIRING: api",
        "  api down: <script>alert(1)</script> & 503",
        "  labels: check=api, location=eu-west, severity=critical",
        "  fired: 2026-11-26 10:00:00 UTC",
        "  link: https://status.example.com/checks/api",
    ] {
        assert!(text.contains(line), "{line:?} not in {text}");
    }
    let html = part(&mail, "text/html");
    assert!(!html.contains("<script>"), "{html}");
    assert!(
        html.contains("api down: &lt;script&gt;alert(1)&lt;/script&gt; &amp; 503"),
        "{html}"
    );
    assert!(html.contains("<a href=\"https://status.example.com/checks/api\">"));

    let mail = sink.parsed(2);
    assert_eq!(mail["subject"], "[RESOLVED] api down: 503");
    assert!(part(&mail, "text/plain").contains("  lasted: 4m 12s\n"));
    assert!(part(&mail, "text/html").contains("<td>4m 12s</td>"));
    assert_eq!(sink.count(), 2);
}

#[tokio::test]
async fn a_firing_mail_links_to_acknowledge_and_an_acknowledged_one_says_who() {
    let sink = SmtpSink::start(SinkOptions::default());
    let url = format!("smtp://127.0.0.1:{}", sink.port);
    let channel = Channel::build(&email_config(url), reqwest::Client::new()).unwrap();
    let link =
        "https://lookout.example/ack/3.1795687200000.1796292000.0123456789abcdef0123456789abcdef";
    let mut msg = firing();
    msg.alerts[0].ack_link = Some(link.into());
    send(&channel, &msg).await.unwrap();
    let mut acked = note(NoteKind::Acknowledged, "api", "api down: 503");
    acked.acked_by = Some("alice <alice@example.com>".into());
    send(&channel, &message(vec![acked])).await.unwrap();

    let mail = sink.parsed(1);
    assert!(
        part(&mail, "text/plain").contains(&format!("  acknowledge: {link}\n")),
        "{mail}"
    );
    assert!(
        part(&mail, "text/html").contains(&format!("<a href=\"{link}\">Acknowledge</a>")),
        "{mail}"
    );
    let mail = sink.parsed(2);
    assert_eq!(mail["subject"], "[ACKNOWLEDGED] api down: 503");
    let text = part(&mail, "text/plain");
    assert!(
        text.contains("  acknowledged by: alice <alice@example.com>\n"),
        "{text}"
    );
    assert!(
        !text.contains("acknowledge:"),
        "no link on an acknowledged note: {text}"
    );
    assert!(
        part(&mail, "text/html")
            .contains("Acknowledged by</td><td>alice &lt;alice@example.com&gt;</td>"),
        "{mail}"
    );
}

#[tokio::test]
async fn wrong_password_is_permanent_and_not_repeated() {
    let sink = SmtpSink::start(SinkOptions {
        auth: Some(&format!("{SMTP_USER}:{SMTP_PASSWORD}")),
        ..Default::default()
    });
    let wrong = "Wr0ng%2Fsecret";
    let url = format!("smtp://{SMTP_USER}:{wrong}@127.0.0.1:{}", sink.port);
    let channel = Channel::build(&email_config(url), reqwest::Client::new()).unwrap();
    let e = send(&channel, &firing()).await.unwrap_err();
    assert!(
        matches!(&e, SendError::Permanent(r) if r.contains("535")),
        "{e:?}"
    );
    assert_clean(&e, &[wrong, "Wr0ng/secret"]);
    assert_eq!(sink.count(), 0);

    // Nothing listens: worth retrying.
    let nobody = free_port();
    let url = format!("smtp://{SMTP_USER}:{wrong}@127.0.0.1:{nobody}");
    let channel = Channel::build(&email_config(url), reqwest::Client::new()).unwrap();
    let e = send(&channel, &firing()).await.unwrap_err();
    assert!(matches!(e, SendError::Retry { .. }), "{e:?}");
    assert_clean(&e, &[wrong, "Wr0ng/secret"]);
}

#[tokio::test]
async fn starttls_required_with_a_private_ca() {
    let pki = Pki::new("localhost");
    let (cert, key) = (pki.cert(), pki.key());
    let sink = SmtpSink::start(SinkOptions {
        auth: Some(&format!("{SMTP_USER}:{SMTP_PASSWORD}")),
        tls: Some((&cert, &key)),
        port: None,
        implicit_tls: false,
    });
    let cfg = email_config(format!(
        "smtp://{SMTP_USER}:{SMTP_PASSWORD}@localhost:{}?tls=required",
        sink.port
    ));
    let channel =
        Channel::Email(EmailChannel::with_root_certificate(&cfg, pki.ca_pem.as_bytes()).unwrap());
    send(&channel, &firing()).await.unwrap();
    let envelope = sink.envelope(1);
    assert_eq!(envelope["tls"], true);
    assert_eq!(envelope["login"], SMTP_USER);

    // Without the CA the certificate is not trusted: nothing sent, no password in the error.
    let untrusted = Channel::build(&cfg, reqwest::Client::new()).unwrap();
    let e = send(&untrusted, &firing()).await.unwrap_err();
    assert!(
        matches!(&e, SendError::Retry { reason, .. } if reason.contains("UnknownIssuer")),
        "{e:?}"
    );
    assert_clean(&e, &[SMTP_PASSWORD]);
    assert_eq!(sink.count(), 1);

    // A server without STARTTLS, where it is required: refused before the login.
    let plain = SmtpSink::start(SinkOptions::default());
    let cfg = email_config(format!(
        "smtp://{SMTP_USER}:{SMTP_PASSWORD}@localhost:{}?tls=required",
        plain.port
    ));
    let channel = Channel::build(&cfg, reqwest::Client::new()).unwrap();
    let e = send(&channel, &firing()).await.unwrap_err();
    assert!(
        matches!(&e, SendError::Permanent(r) if r.contains("STARTTLS")),
        "{e:?}"
    );
    assert_eq!(plain.count(), 0);
}

#[tokio::test]
async fn implicit_tls_with_smtps() {
    let pki = Pki::new("localhost");
    let (cert, key) = (pki.cert(), pki.key());
    let sink = SmtpSink::start(SinkOptions {
        auth: Some(&format!("{SMTP_USER}:{SMTP_PASSWORD}")),
        tls: Some((&cert, &key)),
        port: None,
        implicit_tls: true,
    });
    let cfg = email_config(format!(
        "smtps://{SMTP_USER}:{SMTP_PASSWORD}@localhost:{}",
        sink.port
    ));
    let channel =
        Channel::Email(EmailChannel::with_root_certificate(&cfg, pki.ca_pem.as_bytes()).unwrap());
    send(&channel, &firing()).await.unwrap();
    let envelope = sink.envelope(1);
    assert_eq!(envelope["tls"], true, "{envelope}");
    assert_eq!(envelope["login"], SMTP_USER);
    let mail = sink.parsed(1);
    assert!(
        mail["subject"]
            .as_str()
            .unwrap()
            .starts_with("[FIRING] api down"),
        "{mail}"
    );
    // Plain SMTP against a TLS-only port: no delivery, a retryable error without the password.
    let plain = email_config(format!(
        "smtp://{SMTP_USER}:{SMTP_PASSWORD}@localhost:{}",
        sink.port
    ));
    let channel = Channel::build(&plain, reqwest::Client::new()).unwrap();
    let e = send(&channel, &firing()).await.unwrap_err();
    assert_clean(&e, &[SMTP_PASSWORD]);
    assert_eq!(sink.count(), 1);
}

#[tokio::test]
async fn build_errors_do_not_repeat_the_password() {
    let mut cfg = email_config("smtp://u:hunter22@mail.example.com:587?tls=bogus".into());
    let e = Channel::build(&cfg, reqwest::Client::new()).unwrap_err();
    assert!(e.starts_with("url:") && !e.contains("hunter22"), "{e}");
    cfg.url = Some("smtp://u:hunter22@mail.example.com:587".into());
    cfg.to = vec!["not an address".into()];
    let e = Channel::build(&cfg, reqwest::Client::new()).unwrap_err();
    assert!(e.starts_with("to:") && !e.contains("hunter22"), "{e}");
}

#[test]
fn channel_outside_a_runtime_is_an_error_not_a_panic() {
    let cfg = email_config("smtp://u:hunter22@mail.example.com:587".into());
    let e = Channel::build(&cfg, reqwest::Client::new()).unwrap_err();
    assert!(
        e.contains("Tokio runtime") && !e.contains("hunter22"),
        "{e}"
    );
}
