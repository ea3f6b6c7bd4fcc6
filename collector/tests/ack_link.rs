//! Acknowledging from the message: the firing note a webhook receiver gets carries a signed
//! `ack_link`; `GET` shows a page and acknowledges nothing; the page's `POST` acknowledges, and
//! the receiver then hears `acknowledged` once. Forged, malformed, expired links and links to
//! an alert that resolved are refused with a sentence; a form from another site too.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::{DateTime, Duration, Utc};
use lookout_collector::notify::{AlertNote, NoteKind};
use lookout_collector::state::AppState;
use lookout_collector::store::alerting::{AlertState, NewNotification, Transition};
use support::http_peer::{Answer, Peer};
use tower::ServiceExt;

const HOST: &str = "127.0.0.1:7700";
const SITE: &str = "http://127.0.0.1:7700";

async fn collector(dir: &std::path::Path, hook: &Peer) -> Arc<AppState> {
    support::collector_state(
        dir,
        &format!(
            "[server]\npublic_url = \"https://lookout.example/\"\n\n\
             [[channels]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{}\"\n",
            hook.url("/hook")
        ),
    )
    .await
}

fn labels() -> BTreeMap<String, String> {
    [
        ("check".to_string(), "api".to_string()),
        ("severity".to_string(), "critical".to_string()),
    ]
    .into()
}

/// A firing alert with its firing note queued to the webhook; its id.
async fn fire(s: &AppState, from: Option<AlertState>, at: DateTime<Utc>) -> i64 {
    let note = AlertNote {
        fingerprint: "uptime/api".into(),
        rule: "uptime".into(),
        labels: labels(),
        kind: NoteKind::Firing,
        summary: "api is down: connection refused <b>".into(),
        fired_at: at,
        ..Default::default()
    };
    let t = Transition {
        fingerprint: note.fingerprint.clone(),
        rule: "uptime".into(),
        labels: labels(),
        from,
        to: AlertState::Firing,
        at,
        summary: note.summary.clone(),
        fired_at: Some(at),
        notified_at: Some(at),
        recorded_at: at,
    };
    let row = NewNotification {
        channel: "hook".into(),
        dedup_key: format!("uptime/api/firing/{}", at.timestamp_millis()),
        group_key: "g".into(),
        payload: serde_json::to_value(&note).unwrap(),
        not_before: at,
        escalation: None,
    };
    s.store
        .record_transition(&t, &[row])
        .await
        .unwrap()
        .unwrap()
}

async fn resolve(s: &AppState, at: DateTime<Utc>) {
    let t = Transition {
        fingerprint: "uptime/api".into(),
        rule: "uptime".into(),
        labels: labels(),
        from: Some(AlertState::Firing),
        to: AlertState::Resolved,
        at,
        summary: "api is up".into(),
        fired_at: None,
        notified_at: None,
        recorded_at: at,
    };
    s.store.record_transition(&t, &[]).await.unwrap().unwrap();
}

/// The notes the webhook has been sent so far.
fn notes(hook: &Peer) -> Vec<serde_json::Value> {
    hook.requests()
        .iter()
        .flat_map(|r| r.json()["alerts"].as_array().unwrap().clone())
        .collect()
}

struct Page {
    status: StatusCode,
    cache: Option<String>,
    text: String,
}

async fn call(s: &Arc<AppState>, method: &str, path: &str, origin: Option<&str>) -> Page {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, HOST);
    if let Some(o) = origin {
        req = req
            .header(header::ORIGIN, o)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    }
    let resp = lookout_collector::router(s.clone())
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let cache = resp
        .headers()
        .get(header::CACHE_CONTROL)
        .map(|v| v.to_str().unwrap().to_string());
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    Page {
        status,
        cache,
        text: String::from_utf8(body.to_vec()).unwrap(),
    }
}

async fn acked_by(s: &AppState) -> Option<String> {
    s.store.alerts(&[AlertState::Firing]).await.unwrap()[0]
        .acked_by
        .clone()
}

#[tokio::test]
async fn the_link_in_a_firing_note_asks_then_acknowledges_once() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Peer::start(|_| Answer::new(200, "ok")).await;
    let s = collector(dir.path(), &hook).await;
    let fired = Utc::now() - Duration::minutes(3);
    let id = fire(&s, None, fired).await;
    s.notifier.round(Utc::now()).await.unwrap();
    let [firing] = notes(&hook).try_into().unwrap();
    assert_eq!(firing["kind"], "firing");
    let link = firing["ack_link"].as_str().unwrap();
    let path = link
        .strip_prefix("https://lookout.example")
        .unwrap_or_else(|| panic!("{link}"));
    assert!(
        path.starts_with(&format!("/ack/{id}.{}.", fired.timestamp_millis())),
        "{path}"
    );
    assert!(path.len() <= "/ack/".len() + 128, "{path}");

    // GET shows the alert and a button, twice, and acknowledges nothing.
    for _ in 0..2 {
        let page = call(&s, "GET", path, None).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        assert_eq!(page.cache.as_deref(), Some("no-store"));
        assert!(
            page.text
                .contains("api is down: connection refused &lt;b&gt;"),
            "{}",
            page.text
        );
        assert!(page.text.contains("Firing since"), "{}", page.text);
        assert!(
            page.text.contains(
                "<form method=\"post\"><button type=\"submit\">Acknowledge</button></form>"
            ),
            "{}",
            page.text
        );
    }
    assert_eq!(acked_by(&s).await, None, "a GET acknowledges nothing");
    s.notifier.round(Utc::now()).await.unwrap();
    assert_eq!(notes(&hook).len(), 1, "nothing sent for a GET");

    // The form from another site's page, or with no Origin, is refused.
    for origin in [Some("https://evil.example"), None] {
        let page = call(&s, "POST", path, origin).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{origin:?}");
        assert!(page.text.contains("another site"), "{}", page.text);
    }
    assert_eq!(acked_by(&s).await, None);

    // From this site (by Host, or by public_url behind a proxy): acknowledged once.
    let page = call(&s, "POST", path, Some("https://lookout.example")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(
        page.text
            .contains("Acknowledged by <strong>acknowledge link</strong>."),
        "{}",
        page.text
    );
    assert_eq!(acked_by(&s).await.as_deref(), Some("acknowledge link"));
    let page = call(&s, "POST", path, Some(SITE)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.text
            .contains("Already acknowledged by <strong>acknowledge link</strong>"),
        "{}",
        page.text
    );
    let page = call(&s, "GET", path, None).await;
    assert!(page.text.contains("Already acknowledged"), "{}", page.text);
    assert!(!page.text.contains("<form"), "{}", page.text);

    s.notifier.round(Utc::now()).await.unwrap();
    s.notifier.round(Utc::now()).await.unwrap();
    let sent = notes(&hook);
    assert_eq!(sent.len(), 2, "{sent:#?}");
    assert_eq!(sent[1]["kind"], "acknowledged");
    assert_eq!(sent[1]["acked_by"], "acknowledge link");
    assert!(sent[1].get("ack_link").is_none(), "{}", sent[1]);

    // Resolved: the link is gone, and a later firing is not acknowledged by it.
    resolve(&s, Utc::now()).await;
    let page = call(&s, "GET", path, None).await;
    assert_eq!(page.status, StatusCode::GONE);
    assert!(page.text.contains("no longer firing"), "{}", page.text);
    fire(&s, Some(AlertState::Resolved), Utc::now()).await;
    let page = call(&s, "POST", path, Some(SITE)).await;
    assert_eq!(page.status, StatusCode::GONE);
    assert_eq!(acked_by(&s).await, None);
}

#[tokio::test]
async fn forged_malformed_and_expired_links_are_refused_with_a_sentence() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Peer::start(|_| Answer::new(200, "ok")).await;
    let s = collector(dir.path(), &hook).await;
    let fired = Utc::now() - Duration::minutes(3);
    let id = fire(&s, None, fired).await;
    let key = s.notifier.links().key().clone();
    let good = key.sign(id, fired, Utc::now() + Duration::hours(1));

    let other = lookout_collector::notify::link::LinkKey::from_bytes(&[9; 32]);
    let forged = other.sign(id, fired, Utc::now() + Duration::hours(1));
    let (fields, mac) = good.rsplit_once('.').unwrap();
    let later = fields.replace(
        &format!(".{}", fields.rsplit('.').next().unwrap()),
        ".4102444800",
    );
    let expired = key.sign(id, fired, Utc::now() - Duration::seconds(1));
    for (token, status, says) in [
        (
            forged.as_str(),
            StatusCode::FORBIDDEN,
            "not made by this Lookout",
        ),
        (
            &format!("{later}.{mac}"),
            StatusCode::FORBIDDEN,
            "not made by this Lookout",
        ),
        (
            &format!("{fields}.{}", "0".repeat(32)),
            StatusCode::FORBIDDEN,
            "not made by this Lookout",
        ),
        ("1.2.3", StatusCode::FORBIDDEN, "not an acknowledge link"),
        ("%2e%2e", StatusCode::FORBIDDEN, "not an acknowledge link"),
        (
            &"9".repeat(4000),
            StatusCode::FORBIDDEN,
            "not an acknowledge link",
        ),
        (&expired, StatusCode::GONE, "has expired"),
    ] {
        for (method, origin) in [("GET", None), ("POST", Some(SITE))] {
            let page = call(&s, method, &format!("/ack/{token}"), origin).await;
            assert_eq!(page.status, status, "{method} {token}: {}", page.text);
            assert!(page.text.contains(says), "{method} {token}: {}", page.text);
        }
    }
    assert_eq!(acked_by(&s).await, None);
    let page = call(&s, "GET", &format!("/ack/{good}"), None).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
}
