//! Sends spooled records to the collector in batches, retrying with exponential backoff and
//! jitter, and releases them from the spool only once the collector has stored them. Producers
//! never wait for it: they only write to the [`Spool`]. A batch the collector does not read for
//! its protocol version stays first in the spool until an answer shows a version both speak
//! ([`crate::versions`]): a version skew delays delivery, never loses it.

use std::sync::Arc;
use std::time::Duration;

use lookout_config::ShippingConfig;
use lookout_protocol::Batch;
use lookout_runtime::backoff::{Backoff, Jitter};
use tokio_util::sync::CancellationToken;

use crate::client::{CollectorClient, SendError};
use crate::fallback::Deliveries;
use crate::self_metrics::{AgentMetrics, Shipped};
use crate::spool::{PendingBatch, Spool};

/// The first retry's wait, doubled per failure up to `[shipping] max_backoff`.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// How long a graceful stop keeps trying to deliver what the spool holds.
const FINAL_FLUSH: Duration = Duration::from_secs(3);

/// Ships batches until `shutdown`, then makes one bounded attempt to deliver the rest; tells
/// `deliveries` how each batch went (`[fallback]` follows it).
pub async fn run(
    agent: String,
    spool: Arc<Spool>,
    client: Arc<CollectorClient>,
    cfg: ShippingConfig,
    metrics: Arc<AgentMetrics>,
    deliveries: Arc<Deliveries>,
    shutdown: CancellationToken,
) {
    // Full jitter: `max_backoff` is documented as the longest wait, and agents cut off together
    // come back spread over the whole window.
    let mut backoff = Backoff::new(FIRST_BACKOFF, cfg.max_backoff, Jitter::Full).retries();
    let mut answers = client.versions().subscribe();
    'ship: loop {
        // Wait until a record is due: each waits at most its deadline (the flush interval; none
        // for a change of a check's state; longer for a steady result), so records travel in
        // batches, yet none waits longer than it may. A record written meanwhile may bring the
        // deadline forward.
        loop {
            let due = spool.due();
            if due.is_some_and(|at| at <= tokio::time::Instant::now()) {
                break;
            }
            tokio::select! {
                () = shutdown.cancelled() => break 'ship,
                () = spool.pushed() => {}
                () = sleep_until_due(due) => {}
            }
        }
        let Some(pending) = spool.next_batch_async(cfg.max_batch_records).await else {
            continue;
        };
        let sent = send(&agent, &client, &pending, spool.backlog()).await;
        metrics.protocol_version(client.versions().to_send().unwrap_or(0));
        match &sent {
            Ok(()) => deliveries.delivered(),
            Err(e) => deliveries.failed(&e.to_string()),
        }
        match sent {
            Ok(()) => {
                metrics.batch(Shipped::Sent, pending.records.len());
                spool.ack(&pending.batch_id);
                backoff.reset();
            }
            Err(SendError::Retryable {
                reason,
                retry_after,
            }) => {
                metrics.batch(Shipped::Retry, pending.records.len());
                let wait = retry_after.unwrap_or_else(|| backoff.next_wait());
                tracing::warn!(
                    batch = %pending.batch_id,
                    records = pending.records.len(),
                    queued = spool.backlog(),
                    retry_in_ms = wait.as_millis() as u64,
                    error = %reason,
                    "shipping failed; will retry"
                );
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(wait) => {}
                }
            }
            Err(SendError::Version(reason)) => {
                // Not the batch's fault: it stays first in the spool until the collector (its
                // next answer, at the latest the next assignments fetch) reads a version this
                // agent speaks. Nothing behind it can go either: they are in the same version.
                metrics.batch(Shipped::Version, pending.records.len());
                tracing::error!(
                    batch = %pending.batch_id,
                    records = pending.records.len(),
                    queued = spool.backlog(),
                    error = %reason,
                    "the collector does not read this agent's protocol version; the batch stays in the spool and is sent again after the next assignments fetch"
                );
                // The refusal's own answer counted as one: wait for the next.
                answers.mark_unchanged();
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    changed = answers.changed() => {
                        if changed.is_err() {
                            tokio::time::sleep(backoff.next_wait()).await;
                        }
                    }
                }
            }
            Err(e) => {
                // A final refusal (bad token, malformed batch): retrying the same bytes forever
                // would block everything behind it. Set it aside and say why.
                tracing::error!(
                    batch = %pending.batch_id,
                    records = pending.records.len(),
                    error = %e,
                    "collector refused a batch; it is set aside in the spool's rejected/ folder and not retried"
                );
                metrics.batch(Shipped::Rejected, pending.records.len());
                spool.set_aside(&pending, &e.to_string());
            }
        }
    }
    final_flush(&agent, &spool, &client, cfg.max_batch_records).await;
}

/// Sleeps until `due`; forever when nothing is due.
async fn sleep_until_due(due: Option<tokio::time::Instant>) {
    match due {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn final_flush(agent: &str, spool: &Arc<Spool>, client: &CollectorClient, max: usize) {
    let deadline = tokio::time::Instant::now() + FINAL_FLUSH;
    while let Some(pending) = spool.next_batch_async(max).await {
        match tokio::time::timeout_at(deadline, send(agent, client, &pending, spool.backlog()))
            .await
        {
            Ok(Ok(())) => spool.ack(&pending.batch_id),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, queued = spool.backlog(), "stopping with undelivered records");
                return;
            }
            Err(_) => {
                tracing::warn!(
                    queued = spool.backlog(),
                    "stopping: delivery of the rest timed out"
                );
                return;
            }
        }
    }
}

async fn send(
    agent: &str,
    client: &CollectorClient,
    pending: &PendingBatch,
    backlog: u64,
) -> Result<(), SendError> {
    let version = client
        .versions()
        .to_send()
        .map_err(|e| SendError::Version(e.to_string()))?;
    let batch = Batch {
        version,
        agent: agent.to_string(),
        batch_id: pending.batch_id.clone(),
        records: pending.records.as_ref().clone(),
    };
    client.send(&batch, backlog).await
}
