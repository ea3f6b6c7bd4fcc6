//! Background upkeep of the store: rolls up new raw rows every few seconds and applies
//! retention every minute, both in bounded steps with pauses between them, so neither holds the
//! database for long or competes with ingest.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::store::{Retention, Store};

/// Rows rolled up, or deleted per kind, in one step.
pub const STEP_ROWS: u32 = 5_000;
/// Time between rollup passes: how far the rollups (and the uptime API) lag behind raw data.
pub const ROLLUP_EVERY: Duration = Duration::from_secs(2);
/// Time between retention passes.
pub const RETENTION_EVERY: Duration = Duration::from_secs(60);
/// Pause between two steps of one pass, so ingest gets the database in between.
const BETWEEN_STEPS: Duration = Duration::from_millis(5);

/// Runs until `shutdown`.
pub async fn run(
    store: Arc<dyn Store>,
    retention: Retention,
    leadership: Arc<crate::leadership::Leadership>,
    shutdown: CancellationToken,
) {
    let mut last_retention: Option<Instant> = None;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(ROLLUP_EVERY) => {}
        }
        // One collector of a shared database rolls up and deletes: the leader.
        if !leadership.leads() {
            continue;
        }
        if let Err(e) = roll_up_all(&*store, &shutdown).await {
            tracing::warn!(error = %e, "rollup step failed; retrying at the next pass");
        }
        if last_retention.is_none_or(|t| t.elapsed() >= RETENTION_EVERY) {
            last_retention = Some(Instant::now());
            match retain(&*store, &retention, &shutdown).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(deleted = n, "retention applied"),
                Err(e) => {
                    tracing::warn!(error = %e, "retention step failed; retrying at the next pass")
                }
            }
        }
    }
}

/// Rolls up until caught up (or shutdown); returns the rows rolled up.
pub async fn roll_up_all(
    store: &dyn Store,
    shutdown: &CancellationToken,
) -> Result<u64, crate::store::StoreError> {
    let mut total = 0;
    while !shutdown.is_cancelled() {
        let n = store.roll_up(STEP_ROWS).await?;
        total += n;
        if n == 0 {
            break;
        }
        tokio::time::sleep(BETWEEN_STEPS).await;
    }
    Ok(total)
}

async fn retain(
    store: &dyn Store,
    policy: &Retention,
    shutdown: &CancellationToken,
) -> Result<u64, crate::store::StoreError> {
    let mut total = 0;
    while !shutdown.is_cancelled() {
        let n = store
            .enforce_retention(policy, crate::clock::now(), STEP_ROWS)
            .await?;
        total += n;
        if n == 0 {
            break;
        }
        tokio::time::sleep(BETWEEN_STEPS).await;
    }
    Ok(total)
}
