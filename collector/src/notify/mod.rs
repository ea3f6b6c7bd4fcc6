//! Notifications: which channels an alert goes to ([`route`]: routes, groups, maintenance
//! windows), what is sent ([`message`]), how ([`Channel`]: [`email`] over SMTP; over HTTP,
//! each a payload builder on the shared [`endpoint`]: [`slack`] through an incoming webhook,
//! [`webhook`] as a signed JSON POST, [`pagerduty`] as Events API v2 events, [`opsgenie`] as
//! Alert API v2 requests, [`telegram`] through the Bot API, [`ntfy`] published to a topic,
//! [`pushover`] through its Messages API, [`matrix`] as a room event, [`discord`] as embeds
//! through a webhook, [`teams`] as an Adaptive Card to a Workflows webhook, [`slack_compat`]
//! Mattermost's and Rocket.Chat's Slack-compatible webhooks, [`google_chat`] as a card to a
//! space's webhook; with what they share in [`format`], [`text`] (a message as plain text or
//! HTML, within a vendor's limit) and [`http`]), the worker that
//! delivers the outbox ([`worker`]), and what an acknowledgement tells the channels ([`ack`]).
//!
//! Rule evaluation queues notes in the store's outbox in the same transaction as the alert
//! transition they announce; the worker sends them. See docs/alerting.md, "Notifications".
//!
//! The signed links in firing and reminder notes that acknowledge an alert from the message
//! are [`link`]'s.

pub mod ack;
pub mod channel;
pub mod discord;
pub mod email;
pub mod endpoint;
pub(crate) mod format;
pub mod google_chat;
pub(crate) mod http;
pub mod link;
pub mod matrix;
pub mod message;
pub mod ntfy;
pub mod opsgenie;
pub mod pagerduty;
pub mod pushover;
pub mod route;
pub mod slack;
pub mod slack_compat;
pub mod teams;
pub mod telegram;
pub(crate) mod text;
pub mod webhook;
pub mod worker;

use std::sync::Arc;

pub use channel::Channel;
pub use endpoint::HttpChannel;
pub use message::{AlertNote, Message, NoteKind, RowRef, SendError};
pub use route::Router;
pub use worker::Worker;

/// Something that delivers a message: a channel.
#[async_trait::async_trait]
pub trait Sender: Send + Sync + std::fmt::Debug {
    /// Sends one message.
    async fn send(&self, msg: &Message) -> Result<(), SendError>;
}

#[async_trait::async_trait]
impl Sender for Channel {
    async fn send(&self, msg: &Message) -> Result<(), SendError> {
        Channel::send(self, msg).await
    }
}

/// The senders of the configured channels. A channel that cannot be built is logged and left
/// out; its notifications then fail with a reason that names it.
pub fn senders(channels: &[lookout_config::ChannelConfig]) -> worker::Senders {
    let http = http::client();
    let mut out = worker::Senders::new();
    for cfg in channels {
        match Channel::build(cfg, http.clone()) {
            Ok(c) => {
                let outlet = worker::Outlet {
                    sender: Arc::new(c),
                    max_per_minute: cfg.max_per_minute,
                };
                out.insert(cfg.name.clone(), outlet);
            }
            Err(e) => tracing::error!(channel = %cfg.name, error = %e, "channel not usable"),
        }
    }
    out
}

/// Sends a test message through the configured channel `name` (`lookout-collector notify-test`):
/// what happened, for people, as `Ok` when it was delivered.
pub async fn send_test(
    channels: &[lookout_config::ChannelConfig],
    name: &str,
) -> Result<String, String> {
    let Some(cfg) = channels.iter().find(|c| c.name == name) else {
        let known: Vec<&str> = channels.iter().map(|c| c.name.as_str()).collect();
        return Err(format!("no channel named {name:?} (channels: {known:?})"));
    };
    let channel =
        Channel::build(cfg, http::client()).map_err(|e| format!("channel {name:?}: {e}"))?;
    let now = crate::clock::now();
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "this collector".to_string());
    let note = AlertNote {
        fingerprint: "test/notify-test".into(),
        rule: "test".into(),
        labels: [
            ("channel".to_string(), name.to_string()),
            ("severity".to_string(), "info".to_string()),
        ]
        .into(),
        kind: NoteKind::Firing,
        summary: format!(
            "test notification from lookout-collector on {host}: channel {name} works"
        ),
        fired_at: now,
        resolved_at: None,
        link: None,
        acked_by: None,
        ack_link: None,
        detail: None,
    };
    let msg = Message {
        group_key: "notify-test".into(),
        alerts: vec![note],
        digest: false,
        // Not from the outbox: no rows, and each run is a delivery of its own.
        rows: Vec::new(),
    };
    let started = std::time::Instant::now();
    let mut sent = channel.send(&msg).await;
    if sent.is_ok() && channel.keeps_alerts_open() {
        // An incident tool keeps the test alert open until it is resolved: resolve it.
        let mut resolved = msg.clone();
        for note in &mut resolved.alerts {
            note.kind = NoteKind::Resolved;
            note.resolved_at = Some(crate::clock::now());
        }
        sent = channel.send(&resolved).await;
    }
    match sent {
        Ok(()) => Ok(format!(
            "sent a test message through {name} ({}){} in {} ms",
            cfg.kind.as_str(),
            if channel.keeps_alerts_open() {
                " and resolved it"
            } else {
                ""
            },
            started.elapsed().as_millis()
        )),
        Err(SendError::Retry { reason, after }) => Err(format!(
            "{name} ({}): not delivered, a temporary failure: {reason}{}",
            cfg.kind.as_str(),
            after
                .map(|a| format!(" (the peer asks to wait {} s)", a.as_secs()))
                .unwrap_or_default()
        )),
        Err(SendError::Permanent(reason)) => Err(format!(
            "{name} ({}): not delivered: {reason}",
            cfg.kind.as_str()
        )),
    }
}
