//! Notifications: which channels an alert goes to ([`route`]: routes, groups, maintenance
//! windows), what is sent ([`message`]), and the worker that delivers the outbox ([`worker`]).
//!
//! Rule evaluation queues notes in the store's outbox in the same transaction as the alert
//! transition they announce; the worker sends them. See docs/notifications.md.

pub mod message;
pub mod route;
pub mod worker;

pub use message::{AlertNote, Message, NoteKind, SendError};
pub use route::Router;
pub use worker::Worker;

/// Something that delivers a message: a channel.
#[async_trait::async_trait]
pub trait Sender: Send + Sync + std::fmt::Debug {
    /// Sends one message.
    async fn send(&self, msg: &Message) -> Result<(), SendError>;
}

/// The senders of the configured channels.
pub fn senders(channels: &[lookout_config::ChannelConfig]) -> worker::Senders {
    let _ = channels;
    worker::Senders::new()
}
