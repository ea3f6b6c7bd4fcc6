//! What "healthy" means to the watchdog: four facts, each read for real and each bounded in
//! time, so that an assessment of a hung store ends as "not writable" rather than never.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::cluster::Me;
use crate::evaluation::{Evaluator, TICK_EVERY};
use crate::leadership::Leadership;
use crate::store::Store;

/// The tick loop has stalled when its last good round is older than this many ticks.
const STALLED_TICKS: u32 = 3;

/// One thing wrong, as a sentence for the heartbeat service's log and the collector's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The store refused a write, or did not finish it in time.
    Store(String),
    /// Rule evaluation's tick loop has not completed a round for `for_secs`.
    Evaluation {
        /// Seconds since its last good round.
        for_secs: i64,
        /// The last round's error, if rounds fail rather than hang.
        error: Option<String>,
    },
    /// A pending notification has been due for `for_secs`.
    Outbox {
        /// Seconds it is overdue.
        for_secs: i64,
    },
    /// The outbox could not be read.
    OutboxUnread(String),
    /// No collector of the shared database leads (or whether one does could not be read).
    NoLeader(String),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Store(e) => write!(f, "the store is not writable: {e}"),
            Problem::Evaluation {
                for_secs,
                error: None,
            } => write!(f, "rule evaluation has not run for {for_secs}s"),
            Problem::Evaluation {
                for_secs,
                error: Some(e),
            } => write!(f, "rule evaluation has failed for {for_secs}s: {e}"),
            Problem::Outbox { for_secs } => write!(
                f,
                "the notification queue is not draining: a notification has been due for {for_secs}s"
            ),
            Problem::OutboxUnread(e) => {
                write!(f, "the notification queue cannot be read: {e}")
            }
            Problem::NoLeader(why) => write!(f, "no collector leads: {why}"),
        }
    }
}

/// The parts of a collector the watchdog looks at.
#[derive(Debug, Clone)]
pub struct Health {
    /// The store, written and read.
    pub store: Arc<dyn Store>,
    /// Rule evaluation's tick loop.
    pub evaluator: Arc<Evaluator>,
    /// Whether this collector leads.
    pub leadership: Arc<Leadership>,
    /// This collector's row, the write that proves the store writable.
    pub me: Me,
    /// A pending notification overdue by more than this is a queue that does not drain.
    pub max_notification_delay: Duration,
}

impl Health {
    /// Every problem at `now`, each read bounded by `timeout`; empty when healthy.
    pub async fn assess(&self, now: DateTime<Utc>, timeout: Duration) -> Vec<Problem> {
        let mut problems = Vec::new();
        // A real write, the one the announce loop makes every 2 s: this collector's row.
        match tokio::time::timeout(timeout, self.store.announce(&self.me.row(&self.leadership)))
            .await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => problems.push(Problem::Store(e.to_string())),
            Err(_) => problems.push(Problem::Store(format!(
                "a write did not finish within {timeout:?}"
            ))),
        }
        problems.extend(evaluation(&self.evaluator.last_tick(), now));
        match tokio::time::timeout(timeout, self.store.next_notification_due()).await {
            Ok(Ok(due)) => problems.extend(outbox(due, now, self.max_notification_delay)),
            Ok(Err(e)) => problems.push(Problem::OutboxUnread(e.to_string())),
            Err(_) => problems.push(Problem::OutboxUnread(format!(
                "no answer within {timeout:?}"
            ))),
        }
        // An election takes a moment: a collector that just started (and may be about to
        // win it) is given as long as a leader's row stays listed.
        let settled = now - self.me.started
            > chrono::Duration::from_std(crate::cluster::SEEN_WITHIN).unwrap_or_default();
        if !self.leadership.leads() && settled {
            problems.extend(self.leader_elsewhere(now, timeout).await);
        }
        problems
    }

    /// On a shared database, a follower is healthy only while another collector leads: the
    /// collectors' rows say who did within [`crate::cluster::SEEN_WITHIN`].
    async fn leader_elsewhere(&self, now: DateTime<Utc>, timeout: Duration) -> Option<Problem> {
        let since =
            now - chrono::Duration::from_std(crate::cluster::SEEN_WITHIN).unwrap_or_default();
        match tokio::time::timeout(timeout, self.store.collectors(since)).await {
            Ok(Ok(rows)) if rows.iter().any(|r| r.leader_since.is_some()) => None,
            Ok(Ok(_)) => Some(Problem::NoLeader(format!(
                "none announced itself as leader within {:?}",
                crate::cluster::SEEN_WITHIN
            ))),
            Ok(Err(e)) => Some(Problem::NoLeader(format!(
                "cannot read the collectors: {e}"
            ))),
            Err(_) => Some(Problem::NoLeader(format!(
                "the collectors could not be read within {timeout:?}"
            ))),
        }
    }
}

/// The tick loop's problem, if its last good round is more than [`STALLED_TICKS`] ticks old.
fn evaluation(t: &crate::evaluation::Ticked, now: DateTime<Utc>) -> Option<Problem> {
    let bound = chrono::Duration::from_std(TICK_EVERY * STALLED_TICKS).unwrap_or_default();
    let behind = now - t.at;
    (behind > bound).then(|| Problem::Evaluation {
        for_secs: behind.num_seconds(),
        error: t.error.clone(),
    })
}

/// The outbox's problem, if its earliest pending notification is overdue by more than `max`.
fn outbox(due: Option<DateTime<Utc>>, now: DateTime<Utc>, max: Duration) -> Option<Problem> {
    let overdue = now - due?;
    (overdue > chrono::Duration::from_std(max).unwrap_or_default()).then(|| Problem::Outbox {
        for_secs: overdue.num_seconds(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluation::Ticked;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_800_000_000 + secs, 0).expect("time")
    }

    #[test]
    fn evaluation_stalls_after_three_ticks() {
        let t = Ticked {
            at: at(0),
            error: None,
        };
        assert_eq!(evaluation(&t, at(15)), None);
        assert_eq!(
            evaluation(&t, at(16)),
            Some(Problem::Evaluation {
                for_secs: 16,
                error: None
            })
        );
        let failing = Ticked {
            at: at(0),
            error: Some("database is locked".into()),
        };
        let p = evaluation(&failing, at(30)).expect("stalled");
        assert_eq!(
            p.to_string(),
            "rule evaluation has failed for 30s: database is locked"
        );
    }

    #[test]
    fn the_outbox_is_late_only_beyond_its_bound() {
        let max = Duration::from_secs(120);
        assert_eq!(outbox(None, at(1000), max), None);
        // Due in the future (a retry's backoff, a lease still held): nothing late.
        assert_eq!(outbox(Some(at(1100)), at(1000), max), None);
        assert_eq!(outbox(Some(at(880)), at(1000), max), None);
        assert_eq!(
            outbox(Some(at(879)), at(1000), max),
            Some(Problem::Outbox { for_secs: 121 })
        );
    }
}
