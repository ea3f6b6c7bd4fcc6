//! Several collectors on one PostgreSQL database (docs/high-availability.md).
//!
//! Every collector ingests, serves the API and the status page, and sends notifications (the
//! outbox's leased claims keep a message from going out twice). Exactly one, the leader,
//! evaluates rules and owns alert transitions, rolls up and applies retention. The leader is the
//! holder of a session-level PostgreSQL advisory lock on a connection of its own; when it dies
//! its connection closes, the server releases the lock, and the next collector to try (each
//! tries every second) leads. A leader that cannot reach its connection for
//! [`LEADER_CHECK_TIMEOUT`] stops leading at once.
//!
//! Batches reach the leader through the store: each collector queues every stored batch in the
//! batch's own transaction ([`crate::store::cluster`]), and the leader evaluates the queue in
//! order and deletes what it evaluated ([`crate::evaluation`]). Who leads is kept in
//! [`crate::leadership`]; this module wins and loses it, and announces each collector.
//!
//! With SQLite there is one collector; it leads from the start and evaluates in process.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::Connection as _;
use tokio_util::sync::CancellationToken;

use crate::leadership::Leadership;
use crate::store::Store;
use crate::store::cluster::CollectorRow;

/// The advisory lock's key: any fixed number, the same for every collector of one database.
const LEADER_LOCK: i64 = 7_700_200;
/// How often a follower tries to take the lock, and a leader checks its connection.
const CAMPAIGN_EVERY: Duration = Duration::from_secs(1);
/// A leader whose connection does not answer within this stops leading.
pub const LEADER_CHECK_TIMEOUT: Duration = Duration::from_secs(3);
/// How often each collector writes its row for `GET /api/v1/cluster`.
pub const ANNOUNCE_EVERY: Duration = Duration::from_secs(2);
/// Collectors whose row is older than this are not listed.
pub const SEEN_WITHIN: Duration = Duration::from_secs(15);

/// Holds or waits for the leader's lock on its own connection to `url`, until `stop`.
pub async fn campaign(url: String, leadership: Arc<Leadership>, stop: CancellationToken) {
    while !stop.is_cancelled() {
        match lead_once(&url, &leadership, &stop).await {
            Ok(()) => {}
            Err(e) => tracing::warn!(error = %e, "leader election: lost the database; retrying"),
        }
        if leadership.leads() {
            leadership.set(false, crate::clock::now());
            tracing::warn!("this collector no longer leads");
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(CAMPAIGN_EVERY) => {}
        }
    }
}

/// One connection's life: wait for the lock, then hold it while the connection answers. The
/// error says why the connection was given up.
async fn lead_once(
    url: &str,
    leadership: &Leadership,
    stop: &CancellationToken,
) -> Result<(), String> {
    let mut conn = tokio::time::timeout(LEADER_CHECK_TIMEOUT, sqlx::PgConnection::connect(url))
        .await
        .map_err(|_| format!("connecting took more than {LEADER_CHECK_TIMEOUT:?}"))?
        .map_err(|e| format!("connecting: {e}"))?;
    // The server notices a vanished leader (a host gone, not just its process) within about
    // 11 s and releases the lock; by default it would wait hours for TCP to give up.
    sqlx::raw_sql(
        "SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2; SET tcp_keepalives_count = 3",
    )
    .execute(&mut conn)
    .await
    .map_err(|e| format!("setting keepalives: {e}"))?;
    loop {
        let won: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(LEADER_LOCK)
            .fetch_one(&mut conn)
            .await
            .map_err(|e| format!("asking for the leader's lock: {e}"))?;
        if won {
            break;
        }
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            () = tokio::time::sleep(CAMPAIGN_EVERY) => {}
        }
    }
    leadership.set(true, crate::clock::now());
    tracing::info!("this collector leads: it evaluates rules and owns alert state");
    loop {
        tokio::select! {
            () = stop.cancelled() => {
                // Hand over at once rather than when the connection is noticed gone.
                let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                    .bind(LEADER_LOCK)
                    .execute(&mut conn)
                    .await;
                let _ = conn.close().await;
                return Ok(());
            }
            () = tokio::time::sleep(CAMPAIGN_EVERY) => {}
        }
        let alive = tokio::time::timeout(
            LEADER_CHECK_TIMEOUT,
            sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&mut conn),
        )
        .await;
        match alive {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(format!("the leader's connection failed: {e}")),
            Err(_) => {
                return Err(format!(
                    "the leader's connection did not answer within {LEADER_CHECK_TIMEOUT:?}"
                ));
            }
        }
    }
}

/// This collector's identity in `GET /api/v1/cluster`.
#[derive(Debug, Clone)]
pub struct Me {
    /// Host, listen address and a random part: unique to this run.
    pub instance: String,
    /// Where it listens.
    pub address: String,
    /// When it started.
    pub started: DateTime<Utc>,
}

impl Me {
    /// The identity of a collector listening on `port`, reachable at `address`.
    pub fn new(address: String, port: u16) -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "collector".to_string());
        Self {
            instance: format!("{host}:{port}-{:04x}", fastrand::u16(..)),
            address,
            started: crate::clock::now(),
        }
    }
}

impl Me {
    /// This collector's row as of now.
    pub fn row(&self, leadership: &Leadership) -> CollectorRow {
        CollectorRow {
            instance: self.instance.clone(),
            address: self.address.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            started: self.started,
            seen: crate::clock::now(),
            leader_since: leadership.since(),
        }
    }
}

/// Writes this collector's row every [`ANNOUNCE_EVERY`] and when leadership changes.
pub async fn announce(
    store: Arc<dyn Store>,
    me: Me,
    leadership: Arc<Leadership>,
    stop: CancellationToken,
) {
    let mut changes = leadership.watch();
    loop {
        if let Err(e) = store.announce(&me.row(&leadership)).await {
            tracing::warn!(error = %e, "cannot write this collector's row");
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(ANNOUNCE_EVERY) => {}
            r = changes.changed() => if r.is_err() { return },
        }
    }
}
