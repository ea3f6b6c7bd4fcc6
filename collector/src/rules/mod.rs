//! Rules: what turns stored data into alerts.
//!
//! Parts: [`uptime`] (a check's state from its agents' results: thresholds, quorum, flapping).

pub mod uptime;

#[cfg(test)]
mod tests;
