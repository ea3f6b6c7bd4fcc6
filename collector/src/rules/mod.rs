//! Rules: what turns stored data into alerts.
//!
//! Parts: [`uptime`] (a check's state from its agents' results: thresholds, quorum, flapping),
//! [`heartbeat`] (a push monitor's state from its pings), [`threshold`] (metric rules), [`logs`] (log rules) and
//! [`engine`] (evaluates results as they are stored and records alert transitions).

pub mod engine;
pub mod heartbeat;
pub mod logs;
pub mod threshold;
pub mod uptime;

pub use engine::Engine;

/// How often rules are re-evaluated for what time alone changes.
pub const TICK_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

#[cfg(test)]
mod tests;
