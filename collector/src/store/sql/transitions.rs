//! An alert transition's writes: the compare-and-set on the alert, its history entry and its
//! outbox rows, all or nothing. By themselves ([`AlertStore::record_transition`], in
//! store/sql/alerting.rs) they are a transaction of their own; in a group of batches'
//! transaction ([`SqlGroup`], the group's [`Ledger`]) they are a savepoint of it, and commit
//! with the batches that decided them. In a group, SQLite runs them on the connection's handle,
//! in one call (`Backend::group_transition`, store/sqlite_write.rs): a statement through sqlx
//! is a hand-off to its thread and back, and a transition is five of them.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{ColumnIndex, Connection, Decode, Encode, Executor, IntoArguments, Type};

use super::values::{labels_json, ms};
use super::{Backend, RowsAffected, SqlGroup, SqlStore};
use crate::store::StoreError;
use crate::store::alerting::{
    AlertRow, AlertState, Escalation, Ledger, NewNotification, Transition,
};

/// A new alert, in the transition's state (`$1` fingerprint, `$2` rule, `$3` labels, `$4`
/// state, `$5` summary, `$6` since, `$7` fired, `$8` notified); no row when it exists.
pub(crate) const INSERT_ALERT: &str = "INSERT INTO alerts (fingerprint, rule, labels, state, summary, since_ms, fired_ms, notified_ms)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
     ON CONFLICT (fingerprint) DO NOTHING RETURNING id";
/// Compare and set: only from the state the caller saw (`$6`); leaving firing clears an
/// acknowledgement (`$1` state, `$2` summary, `$3` since, `$4` labels, `$5` fingerprint, `$7`
/// fired, `$8` notified). No row when the alert is not in `$6`.
pub(crate) const UPDATE_ALERT: &str =
    "UPDATE alerts SET state = $1, summary = $2, since_ms = $3, labels = $4,
       acked_by = CASE WHEN $1 = 'firing' THEN acked_by ELSE NULL END,
       acked_ms = CASE WHEN $1 = 'firing' THEN acked_ms ELSE NULL END,
       fired_ms = $7, notified_ms = $8
     WHERE fingerprint = $5 AND state = $6 RETURNING id";
/// The transition's history entry.
pub(crate) const INSERT_EVENT: &str =
    "INSERT INTO alert_events (alert_id, time_ms, from_state, to_state, summary)
     VALUES ($1, $2, $3, $4, $5)";
/// One outbox row (`$1` channel, `$2` dedup key, `$3` group key, `$4` alert, `$5` payload,
/// `$6` created, `$7` due, and for an escalation step `$8` step, `$9` earliest, `$10`
/// repeat); none when the channel has this dedup key already.
pub(crate) const INSERT_OUTBOX: &str = "INSERT INTO outbox (channel, dedup_key, group_key, alert_id, payload, state, created_ms, next_attempt_ms, step, earliest_ms, repeat_ms)
     VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $8, $9, $10)
     ON CONFLICT (channel, dedup_key) DO NOTHING";
/// A note that follows escalation steps ([`Escalation::Follow`]): `$1` to `$7` as
/// [`INSERT_OUTBOX`]'s, queued only when a step of channel `$1` for alert `$4`, queued at or
/// after `$8`, was delivered or is held by a sender (steps no sender held were cancelled
/// before, in the same transaction).
pub(crate) const INSERT_FOLLOW: &str = "INSERT INTO outbox (channel, dedup_key, group_key, alert_id, payload, state, created_ms, next_attempt_ms)
     SELECT $1, $2, $3, $4, $5, 'pending', $6, $7
     WHERE EXISTS (SELECT 1 FROM outbox s WHERE s.alert_id = $4 AND s.channel = $1
       AND s.step IS NOT NULL AND s.created_ms >= $8 AND s.state IN ('delivered', 'pending'))
     ON CONFLICT (channel, dedup_key) DO NOTHING";
/// Cancels alert `$1`'s escalation steps that no sender holds at `$2` (never claimed, waiting
/// for a retry, or whose sender's lease ran out): acknowledged or resolved, the policy stops.
pub(crate) const CANCEL_STEPS: &str =
    "UPDATE outbox SET state = 'cancelled', done_ms = $2, lease_owner = NULL, lease_until_ms = NULL
     WHERE alert_id = $1 AND step IS NOT NULL AND state = 'pending'
       AND (lease_until_ms IS NULL OR lease_until_ms < $2)";

/// The columns an escalation step adds to its outbox row: step, earliest, repeat (ms).
pub(crate) fn step_columns(e: Option<&Escalation>) -> (Option<i64>, Option<i64>, Option<i64>) {
    match e {
        Some(Escalation::Step { index, due, repeat }) => (
            Some(i64::from(*index)),
            Some(ms(due)),
            repeat.map(|r| i64::try_from(r.as_millis()).unwrap_or(i64::MAX)),
        ),
        _ => (None, None, None),
    }
}

impl<DB> SqlStore<DB>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    usize: ColumnIndex<DB::Row>,
    for<'a> &'a str: ColumnIndex<DB::Row> + Type<DB> + Encode<'a, DB> + Decode<'a, DB>,
    for<'a> i64: Type<DB> + Encode<'a, DB> + Decode<'a, DB>,
    for<'a> f64: Type<DB> + Encode<'a, DB> + Decode<'a, DB>,
    for<'a> bool: Type<DB> + Decode<'a, DB>,
    for<'a> String: Type<DB> + Encode<'a, DB> + Decode<'a, DB>,
    for<'a> Vec<u8>: Type<DB> + Encode<'a, DB> + Decode<'a, DB>,
    for<'a> Option<i64>: Encode<'a, DB>,
    for<'a> Option<String>: Encode<'a, DB>,
    for<'a> Option<&'a str>: Encode<'a, DB>,
{
    pub(super) async fn insert_outbox(
        tx: &mut sqlx::Transaction<'_, DB>,
        alert_id: i64,
        at: &DateTime<Utc>,
        notify: &[NewNotification],
    ) -> Result<(), StoreError> {
        for n in notify {
            let (statement, since) = match n.escalation {
                Some(Escalation::Follow { since }) => (INSERT_FOLLOW, Some(ms(&since))),
                _ => (INSERT_OUTBOX, None),
            };
            let q = sqlx::query(statement)
                .bind(&n.channel)
                .bind(&n.dedup_key)
                .bind(&n.group_key)
                .bind(alert_id)
                .bind(n.payload.to_string())
                .bind(ms(at))
                .bind(ms(&n.not_before));
            let q = match since {
                Some(since) => q.bind(since),
                None => {
                    let (step, earliest, repeat) = step_columns(n.escalation.as_ref());
                    q.bind(step).bind(earliest).bind(repeat)
                }
            };
            q.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Cancels alert `alert_id`'s escalation steps no sender holds at `now` ([`CANCEL_STEPS`]).
    pub(super) async fn cancel_steps(
        tx: &mut sqlx::Transaction<'_, DB>,
        alert_id: i64,
        now: &DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        Ok(sqlx::query(CANCEL_STEPS)
            .bind(alert_id)
            .bind(ms(now))
            .execute(&mut **tx)
            .await?
            .rows_affected())
    }

    /// [`AlertStore::record_transition`] on `conn`: in a transaction of its own, or, where a
    /// transaction is open on `conn` (a group's), in a savepoint of it, so that a transition
    /// that fails leaves the group's batches and its other transitions written.
    pub(in crate::store) async fn transition_on(
        conn: &mut DB::Connection,
        t: &Transition,
        notify: &[NewNotification],
    ) -> Result<Option<i64>, StoreError> {
        let mut tx = conn.begin().await?;
        let labels = labels_json(&t.labels);
        let id: Option<i64> = match t.from {
            None => {
                sqlx::query_scalar(INSERT_ALERT)
                    .bind(&t.fingerprint)
                    .bind(&t.rule)
                    .bind(&labels)
                    .bind(t.to.as_str())
                    .bind(&t.summary)
                    .bind(ms(&t.at))
                    .bind(t.fired_at.as_ref().map(ms))
                    .bind(t.notified_at.as_ref().map(ms))
                    .fetch_optional(&mut *tx)
                    .await?
            }
            Some(from) => {
                sqlx::query_scalar(UPDATE_ALERT)
                    .bind(t.to.as_str())
                    .bind(&t.summary)
                    .bind(ms(&t.at))
                    .bind(&labels)
                    .bind(&t.fingerprint)
                    .bind(from.as_str())
                    .bind(t.fired_at.as_ref().map(ms))
                    .bind(t.notified_at.as_ref().map(ms))
                    .fetch_optional(&mut *tx)
                    .await?
            }
        };
        let Some(id) = id else {
            tx.rollback().await?;
            return Ok(None);
        };
        sqlx::query(INSERT_EVENT)
            .bind(id)
            .bind(ms(&t.at))
            .bind(t.from.map(AlertState::as_str))
            .bind(t.to.as_str())
            .bind(&t.summary)
            .execute(&mut *tx)
            .await?;
        if t.from == Some(AlertState::Firing) && t.to != AlertState::Firing {
            Self::cancel_steps(&mut tx, id, &t.recorded_at).await?;
        }
        Self::insert_outbox(&mut tx, id, &t.at, notify).await?;
        tx.commit().await?;
        Ok(Some(id))
    }

    /// The alert `fingerprint` as `conn` sees it.
    async fn alert_on(
        conn: &mut DB::Connection,
        fingerprint: &str,
    ) -> Result<Option<AlertRow>, StoreError> {
        let row = sqlx::query(
            "SELECT id, fingerprint, rule, labels, state, summary, since_ms, acked_by, fired_ms, notified_ms FROM alerts
             WHERE fingerprint = $1",
        )
        .bind(fingerprint)
        .fetch_optional(&mut *conn)
        .await?;
        row.as_ref().map(Self::alert_row).transpose()
    }
}

#[async_trait]
impl<DB> Ledger for SqlGroup<'_, DB>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    usize: ColumnIndex<DB::Row>,
    for<'a> &'a str: ColumnIndex<DB::Row> + Type<DB> + Encode<'a, DB> + Decode<'a, DB>,
    for<'a> i64: Type<DB> + Encode<'a, DB> + Decode<'a, DB>,
    for<'a> f64: Type<DB> + Encode<'a, DB> + Decode<'a, DB>,
    for<'a> bool: Type<DB> + Decode<'a, DB>,
    for<'a> String: Type<DB> + Encode<'a, DB> + Decode<'a, DB>,
    for<'a> Vec<u8>: Type<DB> + Encode<'a, DB> + Decode<'a, DB>,
    for<'a> Option<i64>: Encode<'a, DB>,
    for<'a> Option<String>: Encode<'a, DB>,
    for<'a> Option<&'a str>: Encode<'a, DB>,
{
    async fn record_transition(
        &mut self,
        t: &Transition,
        notify: &[NewNotification],
    ) -> Result<Option<i64>, StoreError> {
        DB::group_transition(&mut self.tx, t, notify).await
    }

    async fn alert(&mut self, fingerprint: &str) -> Result<Option<AlertRow>, StoreError> {
        SqlStore::<DB>::alert_on(&mut self.tx, fingerprint).await
    }
}
