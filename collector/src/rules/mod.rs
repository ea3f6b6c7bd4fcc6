//! Rules: what turns stored data into alerts.
//!
//! Parts: [`uptime`] (a check's state from its agents' results: thresholds, quorum, flapping),
//! [`heartbeat`] (a push monitor's state from its pings), [`threshold`] (metric rules),
//! [`logs`] (log rules), and [`engine`], which evaluates what is stored against them and hands
//! each decision to the alert desk ([`crate::alert`]); `settings` (the configuration's part),
//! `state` (what the engine keeps between evaluations), `pings` (push monitors in the
//! engine), `fleet` (agents that stop cleanly or are retired) and `group` (a group of batches
//! evaluated in the transaction that stores it) are the engine's own.
//!
//! The rules decide what an alert should be; they never route, hold or send a notification.
//! When they are evaluated is [`crate::evaluation`]'s business.

pub mod engine;
mod fleet;
mod group;
pub mod heartbeat;
pub mod logs;
mod pings;
mod settings;
mod state;
pub mod threshold;
pub mod uptime;
pub mod words;

pub use engine::Engine;
pub use group::GroupPass;
pub use pings::HeartbeatView;
pub use settings::MIN_AGENT_TIMEOUT;

#[cfg(test)]
mod tests;
