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

/// Re-evaluates `engine` every [`TICK_EVERY`] until `stop`: silent agents, overdue pings,
/// sliding windows, flapping that settles, held notifications and reminders. Each tick's time
/// is the wall clock, the clock ingest stamps agents' arrivals with.
pub async fn run_ticks(
    engine: std::sync::Arc<Engine>,
    metrics: std::sync::Arc<crate::telemetry::Metrics>,
    leadership: std::sync::Arc<crate::cluster::Leadership>,
    stop: tokio_util::sync::CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(TICK_EVERY) => {}
        }
        // Another collector leads: its ticks decide.
        if !leadership.leads() {
            continue;
        }
        metrics.evaluation("tick");
        if let Err(e) = engine.tick(crate::clock::now()).await {
            tracing::warn!(error = %e, "rule evaluation failed; retrying at the next tick");
        }
    }
}

#[cfg(test)]
mod tests;
