//! Notifications: planning which channels an alert transition goes to (routes, silences,
//! maintenance), and the worker that sends the outbox.
//!
//! The senders: [`Channel`] is built from a `[[channels]]` entry and sends a [`Message`] by
//! [`email`] (SMTP), [`slack`] (an incoming webhook) or [`webhook`] (a signed JSON POST).

pub mod channel;
pub mod email;
pub mod message;
pub mod slack;
pub mod webhook;

pub use channel::Channel;
pub use message::{AlertNote, Message, NoteKind, SendError};
