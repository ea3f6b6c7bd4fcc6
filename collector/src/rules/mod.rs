//! Rules: what turns stored data into alerts.
//!
//! Parts: [`uptime`] (a check's state from its agents' results: thresholds, quorum, flapping),
//! [`heartbeat`] (a push monitor's state from its pings), [`threshold`] (metric rules), [`logs`] (log rules) and
//! [`engine`] (evaluates results as they are stored and records alert transitions). When they
//! are evaluated is [`crate::evaluation`]'s business.

pub mod engine;
pub mod heartbeat;
pub mod logs;
pub mod threshold;
pub mod uptime;

pub use engine::Engine;

#[cfg(test)]
mod tests;
