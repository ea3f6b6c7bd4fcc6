//! Notifications: which channels an alert goes to ([`route`]: routes, groups, maintenance
//! windows), what is sent ([`message`]), how ([`Channel`]: [`email`] over SMTP, [`slack`]
//! through an incoming webhook, [`webhook`] as a signed JSON POST), and the worker that
//! delivers the outbox ([`worker`]).
//!
//! Rule evaluation queues notes in the store's outbox in the same transaction as the alert
//! transition they announce; the worker sends them. See docs/notifications.md.

pub mod channel;
pub mod email;
pub mod message;
pub mod route;
pub mod slack;
pub mod webhook;
pub mod worker;

use std::sync::Arc;

pub use channel::Channel;
pub use message::{AlertNote, Message, NoteKind, SendError};
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
    let http = reqwest::Client::builder()
        .user_agent(concat!("lookout-collector/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default();
    let mut out = worker::Senders::new();
    for cfg in channels {
        match Channel::build(cfg, http.clone()) {
            Ok(c) => {
                out.insert(cfg.name.clone(), Arc::new(c) as Arc<dyn Sender>);
            }
            Err(e) => tracing::error!(channel = %cfg.name, error = %e, "channel not usable"),
        }
    }
    out
}
