//! The channel senders against peers on loopback: a webhook receiver we control, a strict fake
//! of each other HTTP channel's vendor (none can be reached from here; `support/` has one
//! module per vendor), and a real SMTP server (aiosmtpd, in a child process).

mod support;

#[path = "channels/discord.rs"]
mod discord;
#[path = "channels/email.rs"]
mod email;
#[path = "channels/google_chat.rs"]
mod google_chat;
#[path = "channels/matrix.rs"]
mod matrix;
#[path = "channels/ntfy.rs"]
mod ntfy;
#[path = "channels/opsgenie.rs"]
mod opsgenie;
#[path = "channels/pagerduty.rs"]
mod pagerduty;
#[path = "channels/pushover.rs"]
mod pushover;
#[path = "channels/slack.rs"]
mod slack;
#[path = "channels/slack_compat.rs"]
mod slack_compat;
#[path = "channels/teams.rs"]
mod teams;
#[path = "channels/telegram.rs"]
mod telegram;
#[path = "channels/webhook.rs"]
mod webhook;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use lookout_collector::notify::{AlertNote, Channel, Message, NoteKind, SendError};
use lookout_config::ChannelConfig;
use serde_json::Value;

// Messages and channels, for every channel's tests.

fn fired() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 10, 0, 0).unwrap()
}

fn note(kind: NoteKind, check: &str, summary: &str) -> AlertNote {
    let labels: BTreeMap<String, String> = [
        ("check", check),
        ("location", "eu-west"),
        ("severity", "critical"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    AlertNote {
        fingerprint: format!("uptime/{check}"),
        rule: "uptime".into(),
        labels,
        kind,
        summary: summary.into(),
        fired_at: fired(),
        // 4m 12s later.
        resolved_at: (kind == NoteKind::Resolved).then(|| fired() + chrono::Duration::seconds(252)),
        link: Some(format!("https://status.example.com/checks/{check}")),
        acked_by: None,
        ack_link: None,
        detail: None,
    }
}

fn message(alerts: Vec<AlertNote>) -> Message {
    Message {
        group_key: "route-0/check".into(),
        alerts,
        digest: false,
        ..Default::default()
    }
}

fn firing() -> Message {
    message(vec![note(
        NoteKind::Firing,
        "api",
        "api down: 2 of 3 locations, 503",
    )])
}

/// `firing()` with the probe's error chain and, when given, an acknowledge link.
fn firing_with(detail: &str, ack_link: Option<&str>) -> Message {
    let mut m = firing();
    m.alerts[0].detail = Some(detail.into());
    m.alerts[0].ack_link = ack_link.map(Into::into);
    m
}

/// Sends `fire`, then api acknowledged by alice, then api resolved: the three states each
/// channel's first test reads back from its fake.
async fn send_the_three_states(channel: &Channel, fire: &Message) {
    send(channel, fire).await.unwrap();
    let mut ack = note(NoteKind::Acknowledged, "api", "api down");
    ack.acked_by = Some("alice".into());
    send(channel, &message(vec![ack])).await.unwrap();
    send(
        channel,
        &message(vec![note(NoteKind::Resolved, "api", "api down")]),
    )
    .await
    .unwrap();
}

fn config(v: Value) -> ChannelConfig {
    serde_json::from_value(v).unwrap()
}

fn build(v: Value) -> Channel {
    Channel::build(&config(v), reqwest::Client::new()).unwrap()
}

async fn send(channel: &Channel, msg: &Message) -> Result<(), SendError> {
    tokio::time::timeout(Duration::from_secs(10), channel.send(msg))
        .await
        .expect("a send ends within its timeout")
}

/// The error's text holds none of `secrets`.
fn assert_clean(e: &SendError, secrets: &[&str]) {
    let text = e.to_string();
    for s in secrets {
        assert!(!text.contains(s), "{s:?} leaked in {text:?}");
    }
}

/// `v` with its key at `path` set to `new`, or removed when `new` is null: a fake's test
/// breaks one field of a valid body at a time.
fn with(v: &Value, path: &[&str], new: Value) -> Value {
    let mut out = v.clone();
    let mut at = &mut out;
    for p in &path[..path.len() - 1] {
        at = &mut at[*p];
    }
    let last = path[path.len() - 1];
    if new.is_null() {
        if let Some(o) = at.as_object_mut() {
            o.remove(last);
        }
    } else {
        at[last] = new;
    }
    out
}

/// What every HTTP channel does with a 5xx and with a grouped message that fails half-way:
/// `peer` answers 502 with `echo` in its body (a secret a broken proxy repeats), and the
/// attempt is to be retried with no secret in its text; then the first of two requests is
/// accepted and the second refused with 500, and the whole message is to be retried. Only for
/// a channel that sends one request per alert; three requests reach the peer.
async fn fails_retried(
    peer: &crate::support::http_peer::Peer,
    channel: &Channel,
    echo: &str,
    secrets: &[&str],
) {
    use crate::support::http_peer::Answer;
    peer.then_answer(Answer::new(502, &format!("bad gateway for {echo}")));
    let e = send(channel, &firing()).await.unwrap_err();
    assert!(matches!(e, SendError::Retry { after: None, .. }), "{e:?}");
    assert_clean(&e, secrets);
    peer.then_answer(Answer::new(202, "{}"));
    peer.then_answer(Answer::new(500, "oops"));
    let two = message(vec![
        note(NoteKind::Firing, "api", "api down"),
        note(NoteKind::Resolved, "web", "web down"),
    ]);
    assert!(matches!(
        send(channel, &two).await,
        Err(SendError::Retry { .. })
    ));
}
