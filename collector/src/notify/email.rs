//! The email channel: one mail per message, over SMTP (lettre), as multipart/alternative with a
//! plain-text part and an HTML part that say the same; the HTML is a maud template, which
//! escapes every text it quotes from the alert. The subject is [`Message::title`]. A firing or
//! reminder note shows its "Acknowledge" link (when `[server] public_url` is set), an
//! acknowledged note who acknowledged it.
//!
//! The server, its TLS mode and the login come from lettre's URL form
//! (`smtp://user:pass@host:587?tls=required` for STARTTLS, `smtps://` for implicit TLS, plain
//! `smtp://host:25` for a local relay). Replies 4xx and lost connections are worth retrying;
//! replies 5xx (a refused login, 535) are not. Error text never holds the password.

use std::fmt;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use lookout_config::ChannelConfig;
use maud::{DOCTYPE, Markup, html};

use super::format::{color, facts, human_duration, human_time, label_list, redact, web_link};
use super::message::{AlertNote, Message, SendError};

/// Sends messages as mail through one SMTP server.
pub struct EmailChannel {
    name: String,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    timeout: Duration,
    /// The password, as written in the URL and decoded, to keep out of error text.
    secrets: Vec<String>,
    /// `host` or `host:port`, to say which server failed.
    server: String,
}

impl fmt::Debug for EmailChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailChannel")
            .field("name", &self.name)
            .field("from", &self.from.email.to_string())
            .field("to", &self.to.len())
            .finish_non_exhaustive()
    }
}

impl EmailChannel {
    /// Builds the channel from an `email` entry (`url`, `from`, `to`, `timeout`). The server's
    /// certificate is checked against the platform's trust store. Call it inside the Tokio
    /// runtime that will send: the connection pool's upkeep task runs there.
    pub fn new(cfg: &ChannelConfig) -> Result<Self, String> {
        Self::build(cfg, None)
    }

    /// As [`EmailChannel::new`], also trusting the CA certificate(s) in `ca_pem`: for a relay
    /// whose certificate a private CA signed (and for tests).
    pub fn with_root_certificate(cfg: &ChannelConfig, ca_pem: &[u8]) -> Result<Self, String> {
        Self::build(cfg, Some(ca_pem))
    }

    fn build(cfg: &ChannelConfig, ca_pem: Option<&[u8]>) -> Result<Self, String> {
        let raw = cfg.url.as_deref().ok_or("url: required")?;
        let url = url::Url::parse(raw).map_err(|e| format!("url: not a valid URL: {e}"))?;
        let mut secrets = Vec::new();
        if let Some(p) = url.password() {
            secrets.push(p.to_string());
            secrets.push(percent_decode(p));
        }
        secrets.retain(|s| !s.is_empty());
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(raw)
            .map_err(|e| format!("url: {}", redact(&e.to_string(), &secrets)))?;
        if let Some(pem) = ca_pem {
            let host = url.host_str().ok_or("url: no host")?;
            let cert = Certificate::from_pem(pem).map_err(|e| format!("CA certificate: {e}"))?;
            let params = || {
                TlsParameters::builder(host.to_string())
                    .add_root_certificate(cert.clone())
                    .build_rustls()
                    .map_err(|e| format!("TLS settings: {e}"))
            };
            let tls_query = url
                .query_pairs()
                .find(|(k, _)| k == "tls")
                .map(|(_, v)| v.into_owned());
            // The same modes as lettre's URL form, with the extra root.
            builder = match (url.scheme(), tls_query.as_deref()) {
                ("smtps", _) => builder.tls(Tls::Wrapper(params()?)),
                ("smtp", Some("required")) => builder.tls(Tls::Required(params()?)),
                ("smtp", Some("opportunistic")) => builder.tls(Tls::Opportunistic(params()?)),
                _ => builder,
            };
        }
        // lettre's pool starts its idle-connection reaper on the current runtime, and panics
        // without one.
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(
                "an email channel is built inside a Tokio runtime (its connection \
                        pool runs there)"
                    .into(),
            );
        }
        let transport = builder.timeout(Some(cfg.timeout)).build();
        let from: Mailbox = cfg
            .from
            .as_deref()
            .ok_or("from: required")?
            .parse()
            .map_err(|e| format!("from: not an email address: {e}"))?;
        if cfg.to.is_empty() {
            return Err("to: at least one recipient is required".into());
        }
        let to = cfg
            .to
            .iter()
            .map(|t| {
                t.parse::<Mailbox>()
                    .map_err(|e| format!("to: {t:?} is not an email address: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let server = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => String::new(),
        };
        Ok(Self {
            name: cfg.name.clone(),
            transport,
            from,
            to,
            timeout: cfg.timeout,
            secrets,
            server,
        })
    }

    /// The channel's configured name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sends `msg` as one mail to every recipient, within the configured timeout.
    pub async fn send(&self, msg: &Message) -> Result<(), SendError> {
        let mut builder = lettre::Message::builder()
            .from(self.from.clone())
            .subject(one_line(&msg.title()))
            .message_id(None);
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        let mail = builder
            .multipart(MultiPart::alternative_plain_html(
                text_body(msg),
                html_body(msg),
            ))
            .map_err(|e| SendError::Permanent(format!("cannot build the mail: {e}")))?;
        match tokio::time::timeout(self.timeout, self.transport.send(mail)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(self.smtp_error(&e)),
            Err(_) => Err(SendError::Retry {
                reason: format!(
                    "SMTP {}: not sent within {}",
                    self.server,
                    human_duration(self.timeout)
                ),
                after: None,
            }),
        }
    }

    /// 5xx replies and what the client refuses (no common AUTH mechanism, no STARTTLS where it
    /// is required) will fail the same way again; 4xx replies, connection, TLS and network
    /// errors may not.
    fn smtp_error(&self, e: &lettre::transport::smtp::Error) -> SendError {
        let text = format!(
            "SMTP {}: {}",
            self.server,
            redact(&lookout_runtime::error_chain(e), &self.secrets)
        );
        if e.is_permanent() || e.is_client() {
            SendError::Permanent(text)
        } else {
            SendError::Retry {
                reason: text,
                after: None,
            }
        }
    }
}

/// `s` with line breaks and other control characters as spaces: a subject is one line.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// `%XX` sequences decoded, as lettre decodes the URL's password before using it.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The plain-text part.
pub(crate) fn text_body(msg: &Message) -> String {
    let mut out = format!("{}\n", msg.title());
    for note in &msg.alerts {
        out.push('\n');
        out.push_str(&format!("{}: {}\n", note.kind.upper(), note.subject()));
        out.push_str(&format!("  {}\n", note.summary));
        if let Some(detail) = &note.detail {
            out.push_str(&format!("  error: {detail}\n"));
        }
        if !note.labels.is_empty() {
            out.push_str(&format!("  labels: {}\n", label_list(&note.labels)));
        }
        out.push_str(&format!("  fired: {}\n", human_time(note.fired_at)));
        if let Some(by) = &note.acked_by {
            out.push_str(&format!("  acknowledged by: {by}\n"));
        }
        if let Some(resolved) = note.resolved_at {
            out.push_str(&format!("  resolved: {}\n", human_time(resolved)));
        }
        if let Some(lasted) = note.lasted() {
            out.push_str(&format!("  lasted: {}\n", human_duration(lasted)));
        }
        if let Some(link) = web_link(note.link.as_deref()) {
            out.push_str(&format!("  link: {link}\n"));
        }
        if let Some(link) = web_link(note.ack_link.as_deref()) {
            out.push_str(&format!("  acknowledge: {link}\n"));
        }
    }
    out.push_str(&format!("\n-- \nLookout, group {}\n", msg.group_key));
    out
}

/// The HTML part, from a maud template, which escapes every text from the alert. The line
/// breaks are the template's own, so the mail's lines stay short.
pub(crate) fn html_body(msg: &Message) -> String {
    html! {
        (DOCTYPE) "\n"
        html {
            head { meta charset="utf-8"; }
            body style="font-family: sans-serif; font-size: 14px; color: #24292e" {
                "\n"
                h2 style="font-size: 16px" { (msg.title()) } "\n"
                @for note in &msg.alerts { (note_html(note)) }
                p style="color: #6a737d; font-size: 12px" { "Lookout, group " (msg.group_key) } "\n"
            }
        }
        "\n"
    }
    .into_string()
}

fn note_html(note: &AlertNote) -> Markup {
    let c = color(note.kind);
    let rows = facts(note);
    html! {
        div style={ "border-left: 4px solid " (c) "; padding: 4px 12px; margin: 12px 0" } {
            "\n"
            p style="margin: 0" {
                strong style={ "color: " (c) } { (note.kind.upper()) } " " strong { (note.subject()) }
            }
            "\n"
            p style="margin: 4px 0" { (note.summary) } "\n"
            table style="font-size: 13px; color: #586069" {
                "\n"
                @for (k, v) in &rows {
                    tr { td style="padding-right: 12px" { (k) } td { (v) } } "\n"
                }
            }
            "\n"
            @if let Some(link) = web_link(note.link.as_deref()) {
                p style="margin: 4px 0" { a href=(link) { "Open in Lookout" } } "\n"
            }
            @if let Some(link) = web_link(note.ack_link.as_deref()) {
                p style="margin: 4px 0" { a href=(link) { "Acknowledge" } } "\n"
            }
        }
        "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_matches_lettre() {
        assert_eq!(percent_decode("p%40ss%2Fw0rd"), "p@ss/w0rd");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn html_escapes_everything_it_quotes() {
        let t = chrono::DateTime::from_timestamp(1_790_000_000, 0).unwrap();
        let msg = Message {
            group_key: "<g>".into(),
            alerts: vec![AlertNote {
                fingerprint: "f".into(),
                rule: "uptime".into(),
                labels: [("check".to_string(), "<api>".to_string())].into(),
                kind: crate::notify::NoteKind::Firing,
                summary: r#"<script>alert("x" & 'y')</script>"#.into(),
                fired_at: t,
                resolved_at: None,
                link: Some("https://x.example/?a=1&b=\"2\"".into()),
                acked_by: None,
                ack_link: None,
                detail: None,
            }],
            digest: false,
            ..Default::default()
        };
        let html = html_body(&msg);
        assert!(!html.contains("<script>") && !html.contains("<api>") && !html.contains("<g>"));
        assert!(
            html.contains("<p style=\"margin: 4px 0\">&lt;script&gt;alert(&quot;x&quot; &amp; 'y')&lt;/script&gt;</p>"),
            "{html}"
        );
        assert!(html.contains("<td>check=&lt;api&gt;</td>"), "{html}");
        assert!(
            html.contains("<a href=\"https://x.example/?a=1&amp;b=&quot;2&quot;\">"),
            "{html}"
        );
        assert!(html.contains("Lookout, group &lt;g&gt;</p>"), "{html}");
    }
}
