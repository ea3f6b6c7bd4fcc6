//! A group of batches evaluated inside the transaction that stores it, on a database of its
//! own ([`crate::evaluation`]): the transitions the batches decide, with their history and
//! outbox rows, are committed with the batches, in one commit instead of two.
//!
//! A [`GroupPass`] holds the engine's state from before the group's transaction opens until
//! it commits or is abandoned. Every other writer of alerts (ticks, polls, pings) takes the
//! state before the store's write connection too, so this order cannot deadlock on SQLite's
//! one writer. What evaluation reads besides the group's own transaction (silences) comes from
//! the store's read pool.
//!
//! Until the commit, the state holds what the transaction may not keep: the alerts' new states
//! (the book) and the batches in the rules' windows. If the group is abandoned (its commit
//! failed, or it was dropped), the state is read back from the store, as a collector taking
//! the lead reads it ([`Engine::resume`]): nothing claims a transition the store does not hold,
//! and the windows forget the group's batches, so that when the group writer stores each of
//! them again alone and they are evaluated again, no failure is counted twice. The price is
//! that of a restart: what the windows held before the group is forgotten too, and a check
//! counts its consecutive failures anew. Only a group whose commit fails pays it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};
use lookout_protocol::Record;
use tokio::sync::MutexGuard;

use super::engine::Engine;
use super::settings::Settings;
use super::state::State;
use crate::alert::Sink;
use crate::store::StoreError;
use crate::store::alerting::Ledger;

/// The evaluation of one group of batches in its transaction; see the module's doc.
#[derive(Debug)]
pub struct GroupPass<'a> {
    engine: &'a Engine,
    state: MutexGuard<'a, State>,
    settings: Arc<Settings>,
    /// Some batch was evaluated: the state may hold what the transaction does not keep.
    touched: bool,
    /// Notifications were queued in the transaction.
    queued: bool,
    /// Committed, or abandoned and reloaded: nothing left to undo.
    settled: bool,
}

impl Engine {
    /// Starts evaluating a group of batches: takes the engine's state, before the caller opens
    /// the group's transaction.
    pub async fn begin_group(&self) -> GroupPass<'_> {
        GroupPass {
            engine: self,
            state: self.lock().await,
            settings: self.settings(),
            touched: false,
            queued: false,
            settled: false,
        }
    }
}

impl GroupPass<'_> {
    /// Evaluates a new batch of `agent`'s records at `now`, as [`Engine::on_batch`] does, the
    /// transitions it decides written to `ledger`, the group's open transaction.
    pub async fn on_batch(
        &mut self,
        ledger: &mut dyn Ledger,
        agent: &str,
        now: DateTime<Utc>,
        records: &[Record],
    ) -> Result<(), StoreError> {
        self.touched = true;
        let mut sink = Sink::Group {
            ledger,
            queued: false,
        };
        let result = self
            .engine
            .evaluate_batch(
                &mut sink,
                &mut self.state,
                &self.settings,
                agent,
                now,
                records,
            )
            .await;
        if let Sink::Group { queued: true, .. } = sink {
            self.queued = true;
        }
        result
    }

    /// The group's transaction committed: the state holds what the store holds, and the
    /// sender is woken if notifications were queued.
    pub fn committed(mut self) {
        self.settled = true;
        if self.queued {
            self.engine.desk.wake_sender();
        }
    }

    /// The group's transaction did not commit: the state is read back from the store.
    pub async fn abandoned(mut self) {
        if !self.touched {
            self.settled = true;
            return;
        }
        match Engine::read_state(&*self.engine.store, &self.settings).await {
            Ok(fresh) => {
                *self.state = fresh;
                self.settled = true;
                tracing::warn!("a group of batches did not commit; alert state reloaded");
            }
            // Left unsettled: the next lock tries again.
            Err(e) => tracing::error!(error = %e, "cannot reload alert state"),
        }
    }
}

impl Drop for GroupPass<'_> {
    fn drop(&mut self) {
        if self.touched && !self.settled {
            self.engine.stale.store(true, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use chrono::TimeZone;
    use lookout_config::CollectorConfig;
    use lookout_protocol::{Batch, CheckResult, PROTOCOL_VERSION, Timings};
    use tokio::sync::Notify;

    use super::*;
    use crate::alert::uptime_fingerprint;
    use crate::store::alerting::AlertState;
    use crate::store::{NewBatch, Store};

    const CONFIG: &str = r#"
[[agents]]
name = "edge-1"
token = "edge-1-token-0123456789abcdef"

[[checks]]
name = "api"
type = "http"
url = "http://127.0.0.1:1/"
failure_threshold = 2

[[checks]]
name = "db"
type = "http"
url = "http://127.0.0.1:1/"
failure_threshold = 1

[[channels]]
name = "hook"
type = "webhook"
url = "http://127.0.0.1:9/hook"

[[routes]]
channels = ["hook"]
group_wait = "0s"
"#;

    fn at(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_793_491_200 + s, 0).unwrap()
    }

    /// A batch of failures of `checks` at `s` seconds.
    fn failing(id: &str, s: i64, checks: &[&str]) -> Batch {
        let records = checks
            .iter()
            .map(|c| {
                Record::CheckResult(CheckResult {
                    check: c.to_string(),
                    check_type: None,
                    time: at(s),
                    ok: false,
                    latency_ms: 2.0,
                    error: Some("status 503".into()),
                    status_code: Some(503),
                    cert_expiry: None,
                    timings: Timings::default(),
                })
            })
            .collect();
        Batch {
            version: PROTOCOL_VERSION,
            agent: "edge-1".into(),
            batch_id: id.into(),
            records,
        }
    }

    /// Stores `batch` in a group evaluated in its transaction; commits it or drops it
    /// uncommitted (as when the commit fails), and settles the pass accordingly.
    async fn group(engine: &Engine, store: &dyn Store, batch: &Batch, commit: bool) {
        let mut pass = engine.begin_group().await;
        let item = NewBatch {
            agent: "edge-1",
            batch,
            received: at(0),
        };
        let (out, mut group) = store.open_group(&[item]).await.unwrap();
        assert!(!out[0].duplicate);
        pass.on_batch(&mut *group, "edge-1", at(0), &batch.records)
            .await
            .unwrap();
        if commit {
            group.commit().await.unwrap();
            pass.committed();
        } else {
            drop(group);
            pass.abandoned().await;
        }
    }

    /// An engine over a new SQLite store, with the notification it wakes the sender with.
    async fn engine() -> (tempfile::TempDir, Arc<dyn Store>, Engine, Arc<Notify>) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = crate::store::open(&url, &Default::default()).await.unwrap();
        let config = CollectorConfig::parse(Path::new("t.toml"), CONFIG, &|_| None).unwrap();
        let queued = Arc::new(Notify::new());
        let engine = Engine::load(store.clone(), &config, queued.clone())
            .await
            .unwrap();
        (dir, store, engine, queued)
    }

    async fn woken(queued: &Notify) -> bool {
        tokio::time::timeout(Duration::from_millis(50), queued.notified())
            .await
            .is_ok()
    }

    /// A group that does not commit leaves neither its batch nor its transitions stored, the
    /// engine claiming none of them and the sender asleep; its batch stored again is counted
    /// once in the rules' windows (`api` needs two failures in a row: it is pending, not
    /// firing). A group that commits stores both at once and wakes the sender.
    #[tokio::test]
    async fn a_group_stores_its_batches_and_their_transitions_in_one_commit() {
        let (_dir, store, engine, queued) = engine().await;
        let (api, db) = (uptime_fingerprint("api"), uptime_fingerprint("db"));
        let first = failing("1", 0, &["api", "db"]);

        group(&engine, &*store, &first, false).await;
        assert!(store.alerts(&AlertState::ALL).await.unwrap().is_empty());
        assert!(store.next_notification_due().await.unwrap().is_none());
        {
            let state = engine.state.lock().await;
            assert_eq!(state.alert_state(&db), None, "no transition claimed");
            assert_eq!(state.alert_state(&api), None);
        }
        assert!(!woken(&queued).await, "nothing was committed to send");

        group(&engine, &*store, &first, true).await;
        let stored = |fp: String| {
            let store = store.clone();
            async move {
                store
                    .alerts(&AlertState::ALL)
                    .await
                    .unwrap()
                    .into_iter()
                    .find(|a| a.fingerprint == fp)
                    .map(|a| (a.id, a.state))
            }
        };
        let (db_id, db_state) = stored(db.clone()).await.expect("db's alert");
        assert_eq!(db_state, AlertState::Firing);
        assert_eq!(store.deliveries(db_id).await.unwrap().len(), 1);
        assert_eq!(
            stored(api.clone()).await.map(|a| a.1),
            Some(AlertState::Pending),
            "the failure of the group that did not commit is not counted again"
        );
        assert!(woken(&queued).await);
        let again = store.ingest("edge-1", &first, at(1)).await.unwrap();
        assert!(
            again.duplicate,
            "the batch was committed with its transitions"
        );

        group(&engine, &*store, &failing("2", 10, &["api"]), true).await;
        assert_eq!(
            stored(api.clone()).await.map(|a| a.1),
            Some(AlertState::Firing)
        );
        assert_eq!(
            engine.state.lock().await.alert_state(&api),
            Some(AlertState::Firing)
        );
    }

    /// A pass dropped before its group settled (a writer stopped mid-group) leaves the state
    /// to be read back from the store at the next lock.
    #[tokio::test]
    async fn a_pass_dropped_unsettled_has_the_state_reloaded() {
        let (_dir, store, engine, _) = engine().await;
        let batch = failing("1", 0, &["db"]);
        {
            let mut pass = engine.begin_group().await;
            let item = NewBatch {
                agent: "edge-1",
                batch: &batch,
                received: at(0),
            };
            let (_, mut group) = store.open_group(&[item]).await.unwrap();
            pass.on_batch(&mut *group, "edge-1", at(0), &batch.records)
                .await
                .unwrap();
        }
        assert!(engine.stale.load(Ordering::Acquire));
        let state = engine.lock().await;
        assert_eq!(state.alert_state(&uptime_fingerprint("db")), None);
        assert!(!engine.stale.load(Ordering::Acquire));
    }
}
