//! Notifications: planning which channels an alert transition goes to (routes, silences,
//! maintenance), and the worker that sends the outbox.

pub mod message;

pub use message::{AlertNote, Message, NoteKind, SendError};
