//! The SQL implementation of [`AlertStore`]: alerts and their history, the notification
//! outbox, heartbeats and silences. A transition's own writes are store/sql/transitions.rs's.
//!
//! Claiming repeats its conditions in the outer `UPDATE`: under PostgreSQL's read committed, a
//! second claimer blocked on a row re-checks only the outer `WHERE` once the first commits, and
//! would otherwise take a row the first one just leased. On PostgreSQL the candidate rows are
//! also locked with `FOR UPDATE SKIP LOCKED` (the backend's `CLAIM_LOCK`), so a second sender
//! passes over rows being claimed instead of waiting for them.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Row, Type};

use super::transitions::INSERT_OUTBOX;
use super::values::{labels_json, ms, parse_labels, time};
use super::{Backend, RowsAffected, SqlStore};
use crate::store::StoreError;
use crate::store::alerting::{
    AckNote, AlertEvent, AlertRow, AlertState, AlertStore, Delivery, DeliveryState, HeartbeatRow,
    Incident, NewNotification, Notification, Ping, PingKind, Silence, Transition,
};

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
    pub(super) fn alert_row(r: &DB::Row) -> Result<AlertRow, StoreError> {
        Ok(AlertRow {
            id: r.try_get("id")?,
            fingerprint: r.try_get("fingerprint")?,
            rule: r.try_get("rule")?,
            labels: parse_labels(r.try_get("labels")?)?,
            state: AlertState::parse(r.try_get("state")?)?,
            summary: r.try_get("summary")?,
            since: time(r.try_get("since_ms")?)?,
            acked_by: r.try_get("acked_by")?,
            fired_at: r
                .try_get::<Option<i64>, _>("fired_ms")?
                .map(time)
                .transpose()?,
            notified_at: r
                .try_get::<Option<i64>, _>("notified_ms")?
                .map(time)
                .transpose()?,
        })
    }

    fn notification_row(r: &DB::Row) -> Result<Notification, StoreError> {
        let payload: String = r.try_get("payload")?;
        Ok(Notification {
            id: r.try_get("id")?,
            channel: r.try_get("channel")?,
            dedup_key: r.try_get("dedup_key")?,
            group_key: r.try_get("group_key")?,
            created: time(r.try_get("created_ms")?)?,
            payload: serde_json::from_str(&payload)
                .map_err(|e| StoreError::Corrupt(format!("outbox payload: {e}")))?,
            attempts: r.try_get::<i64, _>("attempts")? as u32,
            alert_id: r.try_get("alert_id")?,
        })
    }

    fn silence_row(r: &DB::Row) -> Result<Silence, StoreError> {
        Ok(Silence {
            id: r.try_get("id")?,
            matchers: parse_labels(r.try_get("matchers")?)?,
            starts: time(r.try_get("starts_ms")?)?,
            ends: time(r.try_get("ends_ms")?)?,
            created_by: r.try_get("created_by")?,
            comment: r.try_get("comment")?,
        })
    }

    /// The next repeat of a delivered escalation step `row` (the outbox columns
    /// [`AlertStore::mark_delivered`] returns), in the transaction that marks it delivered:
    /// only for a step with a repeat whose alert still fires unacknowledged in the firing the
    /// step was queued for. Due at the first multiple of the repeat after the step's time
    /// that is later than `at`: a collector that was down for hours sends one repeat, not
    /// every one it missed. Its dedup key is the step's with the repeat's time, so it is
    /// queued once however often this runs.
    async fn queue_repeat(
        tx: &mut sqlx::Transaction<'_, DB>,
        row: &DB::Row,
        at: &DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (Some(every), Some(earliest), Some(alert_id)) = (
            row.try_get::<Option<i64>, _>("repeat_ms")?,
            row.try_get::<Option<i64>, _>("earliest_ms")?,
            row.try_get::<Option<i64>, _>("alert_id")?,
        ) else {
            return Ok(());
        };
        let created: i64 = row.try_get("created_ms")?;
        // Takes the alert's row lock: an acknowledgement or a resolve, which cancel steps
        // after taking it, either came first (no repeat) or sees the repeat and cancels it.
        let firing: Option<i64> = sqlx::query_scalar(
            "UPDATE alerts SET notified_ms = notified_ms
             WHERE id = $1 AND state = 'firing' AND acked_by IS NULL AND fired_ms <= $2
             RETURNING id",
        )
        .bind(alert_id)
        .bind(created)
        .fetch_optional(&mut **tx)
        .await?;
        if firing.is_none() {
            return Ok(());
        }
        let every = every.max(1);
        let slots = (ms(at) - earliest).max(0) / every + 1;
        let next = earliest.saturating_add(slots.saturating_mul(every));
        let key: String = row.try_get("dedup_key")?;
        let base = match key.rsplit_once("/repeat/") {
            Some((base, t)) if t.bytes().all(|b| b.is_ascii_digit()) => base,
            _ => key.as_str(),
        };
        sqlx::query(INSERT_OUTBOX)
            .bind(row.try_get::<String, _>("channel")?)
            .bind(format!("{base}/repeat/{next}"))
            .bind(row.try_get::<String, _>("group_key")?)
            .bind(alert_id)
            .bind(row.try_get::<String, _>("payload")?)
            .bind(ms(at))
            .bind(next)
            .bind(row.try_get::<Option<i64>, _>("step")?)
            .bind(next)
            .bind(every)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

#[async_trait]
impl<DB> AlertStore for SqlStore<DB>
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
        &self,
        t: &Transition,
        notify: &[NewNotification],
    ) -> Result<Option<i64>, StoreError> {
        let mut conn = self.write.acquire().await?;
        Self::transition_on(&mut conn, t, notify).await
    }

    async fn queue_notifications(
        &self,
        fingerprint: &str,
        state: AlertState,
        at: DateTime<Utc>,
        notify: &[NewNotification],
    ) -> Result<bool, StoreError> {
        let mut tx = self.write.begin().await?;
        let id: Option<i64> = sqlx::query_scalar(
            "UPDATE alerts SET notified_ms = $1 WHERE fingerprint = $2 AND state = $3 RETURNING id",
        )
        .bind(ms(&at))
        .bind(fingerprint)
        .bind(state.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(id) = id else {
            tx.rollback().await?;
            return Ok(false);
        };
        Self::insert_outbox(&mut tx, id, &at, notify).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn defer_notifications(
        &self,
        ids: &[i64],
        owner: &str,
        until: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut n = 0;
        for id in ids {
            n += sqlx::query(
                "UPDATE outbox SET next_attempt_ms = $1, lease_owner = NULL, lease_until_ms = NULL
                 WHERE id = $2 AND lease_owner = $3 AND state = 'pending'",
            )
            .bind(ms(&until))
            .bind(id)
            .bind(owner)
            .execute(&self.write)
            .await?
            .rows_affected();
        }
        Ok(n)
    }

    async fn next_notification_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        // A row leased by a sender is due when its lease runs out, not before.
        let due: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(CASE WHEN lease_until_ms IS NOT NULL AND lease_until_ms > next_attempt_ms
                        THEN lease_until_ms ELSE next_attempt_ms END)
             FROM outbox WHERE state = 'pending'",
        )
        .fetch_one(&self.read)
        .await?;
        due.map(time).transpose()
    }

    async fn deliveries(&self, alert_id: i64) -> Result<Vec<Delivery>, StoreError> {
        let rows = sqlx::query(
            "SELECT channel, state, attempts, last_error, created_ms, done_ms FROM outbox WHERE alert_id = $1 ORDER BY id",
        )
        .bind(alert_id)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Delivery {
                    channel: r.try_get("channel")?,
                    state: DeliveryState::parse(r.try_get("state")?)?,
                    attempts: r.try_get::<i64, _>("attempts")? as u32,
                    last_error: r.try_get("last_error")?,
                    queued: time(r.try_get("created_ms")?)?,
                    done: r
                        .try_get::<Option<i64>, _>("done_ms")?
                        .map(time)
                        .transpose()?,
                })
            })
            .collect()
    }

    async fn alerts(&self, states: &[AlertState]) -> Result<Vec<AlertRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, fingerprint, rule, labels, state, summary, since_ms, acked_by, fired_ms, notified_ms FROM alerts
             ORDER BY since_ms DESC, id DESC",
        )
        .fetch_all(&self.read)
        .await?;
        let mut out = Vec::new();
        for r in &rows {
            let a = Self::alert_row(r)?;
            if states.contains(&a.state) {
                out.push(a);
            }
        }
        Ok(out)
    }

    async fn alert_history(&self, alert_id: i64) -> Result<Vec<AlertEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT time_ms, from_state, to_state, summary FROM alert_events WHERE alert_id = $1 ORDER BY id",
        )
        .bind(alert_id)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AlertEvent {
                    time: time(r.try_get("time_ms")?)?,
                    from: r
                        .try_get::<Option<String>, _>("from_state")?
                        .as_deref()
                        .map(AlertState::parse)
                        .transpose()?,
                    to: AlertState::parse(r.try_get("to_state")?)?,
                    summary: r.try_get("summary")?,
                })
            })
            .collect()
    }

    async fn incidents(
        &self,
        rule: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<Incident>, StoreError> {
        // Firings that began since, and resolutions since of firings that began before.
        let rows = sqlx::query(
            "SELECT e.alert_id, e.time_ms, e.to_state, e.summary, a.labels
             FROM alerts a CROSS JOIN alert_events e
             WHERE e.alert_id = a.id AND a.rule = $1 AND e.time_ms >= $2
               AND e.to_state IN ('firing', 'resolved')
             ORDER BY e.alert_id, e.id",
        )
        .bind(rule)
        .bind(ms(&since))
        .fetch_all(&self.read)
        .await?;
        let mut out: Vec<Incident> = Vec::new();
        for r in &rows {
            let alert_id: i64 = r.try_get("alert_id")?;
            let time = time(r.try_get("time_ms")?)?;
            match AlertState::parse(r.try_get("to_state")?)? {
                AlertState::Firing => out.push(Incident {
                    alert_id,
                    labels: parse_labels(r.try_get("labels")?)?,
                    summary: r.try_get("summary")?,
                    started: time,
                    ended: None,
                }),
                _ => {
                    if let Some(open) = out
                        .iter_mut()
                        .rev()
                        .find(|i| i.alert_id == alert_id && i.ended.is_none())
                    {
                        open.ended = Some(time);
                    }
                }
            }
        }
        out.sort_by_key(|i| std::cmp::Reverse(i.started));
        Ok(out)
    }

    async fn ack_alert(
        &self,
        alert_id: i64,
        by: &str,
        at: DateTime<Utc>,
        ack_note: &AckNote<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write.begin().await?;
        let fired: Option<i64> = sqlx::query_scalar(
            "UPDATE alerts SET acked_by = $1, acked_ms = $2 WHERE id = $3 AND state = 'firing'
             RETURNING COALESCE(fired_ms, since_ms)",
        )
        .bind(by)
        .bind(ms(&at))
        .bind(alert_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(fired) = fired else {
            tx.rollback().await?;
            return Ok(false);
        };
        // Acknowledged: the escalation stops, in the same transaction (a sender claiming a
        // step now either holds it already, and sends it once, or finds it cancelled), before
        // the acknowledged notes are chosen, so that a cancelled step gets none.
        let cancelled = Self::cancel_steps(&mut tx, alert_id, &at).await?;
        if cancelled > 0 {
            tracing::info!(
                alert = alert_id,
                steps = cancelled,
                "escalation stopped: acknowledged"
            );
        }
        // What this firing sent, or is sending: not a row given up on (that channel never had
        // the firing), nor one never tried whose time has not come (a step still to come).
        let rows = sqlx::query(
            "SELECT id, channel, dedup_key, group_key, payload, attempts, created_ms, alert_id
             FROM outbox
             WHERE alert_id = $1 AND created_ms >= $2
               AND (state = 'delivered'
                    OR (state = 'pending' AND (attempts > 0 OR next_attempt_ms <= $3)))
             ORDER BY id",
        )
        .bind(alert_id)
        .bind(fired)
        .bind(ms(&at))
        .fetch_all(&mut *tx)
        .await?;
        let sent = rows
            .iter()
            .map(Self::notification_row)
            .collect::<Result<Vec<_>, _>>()?;
        let notes: Vec<NewNotification> = sent.iter().filter_map(ack_note).collect();
        Self::insert_outbox(&mut tx, alert_id, &at, &notes).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn claim_notifications(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Notification>, StoreError> {
        // The statement's text varies only by the backend's constant.
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE outbox SET lease_owner = $1, lease_until_ms = $2
             WHERE state = 'pending' AND (lease_until_ms IS NULL OR lease_until_ms < $3)
               AND id IN (SELECT o.id FROM outbox o
                 WHERE o.state = 'pending' AND (o.lease_until_ms IS NULL OR o.lease_until_ms < $3)
                   AND (o.earliest_ms IS NULL OR o.earliest_ms <= $3)
                   AND (o.next_attempt_ms <= $3 OR (o.attempts = 0 AND EXISTS (
                     SELECT 1 FROM outbox d
                     WHERE d.channel = o.channel AND d.group_key = o.group_key
                       AND d.state = 'pending' AND d.next_attempt_ms <= $3
                       AND (d.lease_until_ms IS NULL OR d.lease_until_ms < $3))))
                 ORDER BY o.id LIMIT $4{})
             RETURNING id, channel, dedup_key, group_key, payload, attempts, created_ms, alert_id",
            DB::CLAIM_LOCK
        )))
        .bind(owner)
        .bind(ms(&lease_until))
        .bind(ms(&now))
        .bind(i64::from(limit))
        .fetch_all(&self.write)
        .await?;
        let mut out = rows
            .iter()
            .map(Self::notification_row)
            .collect::<Result<Vec<_>, StoreError>>()?;
        out.sort_by_key(|n| n.id);
        Ok(out)
    }

    async fn mark_delivered(
        &self,
        id: i64,
        owner: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write.begin().await?;
        let row = sqlx::query(
            "UPDATE outbox SET state = 'delivered', done_ms = $1, attempts = attempts + 1,
               lease_owner = NULL, lease_until_ms = NULL
             WHERE id = $2 AND lease_owner = $3 AND state = 'pending'
             RETURNING channel, dedup_key, group_key, alert_id, payload, created_ms, step,
               earliest_ms, repeat_ms",
        )
        .bind(ms(&at))
        .bind(id)
        .bind(owner)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(false);
        };
        Self::queue_repeat(&mut tx, &row, &at).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn mark_failed(
        &self,
        id: i64,
        owner: &str,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let n = sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $1,
               state = CASE WHEN $2 IS NULL THEN 'failed' ELSE 'pending' END,
               next_attempt_ms = COALESCE($2, next_attempt_ms),
               done_ms = CASE WHEN $2 IS NULL THEN $3 ELSE NULL END,
               lease_owner = NULL, lease_until_ms = NULL
             WHERE id = $4 AND lease_owner = $5 AND state = 'pending'",
        )
        .bind(error)
        .bind(retry_at.as_ref().map(ms))
        .bind(ms(&at))
        .bind(id)
        .bind(owner)
        .execute(&self.write)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    async fn delivery(
        &self,
        id: i64,
    ) -> Result<Option<(DeliveryState, Option<String>)>, StoreError> {
        let row = sqlx::query("SELECT state, last_error FROM outbox WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.read)
            .await?;
        let Some(r) = row else { return Ok(None) };
        let state = DeliveryState::parse(r.try_get("state")?)?;
        Ok(Some((state, r.try_get("last_error")?)))
    }

    async fn record_ping(&self, ping: &Ping) -> Result<(), StoreError> {
        let mut tx = self.write.begin().await?;
        sqlx::query(
            "INSERT INTO heartbeat_pings (name, kind, exit_code, time_ms, remote, body) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&ping.name)
        .bind(ping.kind.as_str())
        .bind(ping.exit_code.map(i64::from))
        .bind(ms(&ping.time))
        .bind(&ping.remote)
        .bind(&ping.body)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO heartbeats (name) VALUES ($1) ON CONFLICT (name) DO NOTHING")
            .bind(&ping.name)
            .execute(&mut *tx)
            .await?;
        let update = match ping.kind {
            PingKind::Success => {
                "UPDATE heartbeats SET last_success_ms = $1, last_exit_code = COALESCE($2, last_exit_code) WHERE name = $3"
            }
            PingKind::Start => {
                "UPDATE heartbeats SET last_start_ms = $1, last_exit_code = COALESCE($2, last_exit_code) WHERE name = $3"
            }
            PingKind::Fail => {
                "UPDATE heartbeats SET last_fail_ms = $1, last_exit_code = COALESCE($2, last_exit_code) WHERE name = $3"
            }
        };
        sqlx::query(update)
            .bind(ms(&ping.time))
            .bind(ping.exit_code.map(i64::from))
            .bind(&ping.name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn heartbeats(&self) -> Result<Vec<HeartbeatRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, last_success_ms, last_start_ms, last_fail_ms, last_exit_code FROM heartbeats ORDER BY name",
        )
        .fetch_all(&self.read)
        .await?;
        let opt = |r: &DB::Row, c: &str| -> Result<Option<DateTime<Utc>>, StoreError> {
            r.try_get::<Option<i64>, _>(c)?.map(time).transpose()
        };
        rows.iter()
            .map(|r| {
                Ok(HeartbeatRow {
                    name: r.try_get("name")?,
                    last_success: opt(r, "last_success_ms")?,
                    last_start: opt(r, "last_start_ms")?,
                    last_fail: opt(r, "last_fail_ms")?,
                    last_exit_code: r
                        .try_get::<Option<i64>, _>("last_exit_code")?
                        .map(|c| c as i32),
                })
            })
            .collect()
    }

    async fn pings(&self, name: &str, limit: u32) -> Result<Vec<Ping>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, kind, exit_code, time_ms, remote, body FROM heartbeat_pings WHERE name = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(name)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Ping {
                    name: r.try_get("name")?,
                    kind: PingKind::parse(r.try_get("kind")?)?,
                    exit_code: r.try_get::<Option<i64>, _>("exit_code")?.map(|c| c as i32),
                    time: time(r.try_get("time_ms")?)?,
                    remote: r.try_get("remote")?,
                    body: r.try_get("body")?,
                })
            })
            .collect()
    }

    async fn shared_key(&self, name: &str, fresh: &[u8]) -> Result<Vec<u8>, StoreError> {
        sqlx::query(
            "INSERT INTO shared_keys (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(fresh.to_vec())
        .execute(&self.write)
        .await?;
        Ok(
            sqlx::query_scalar("SELECT value FROM shared_keys WHERE name = $1")
                .bind(name)
                .fetch_one(&self.write)
                .await?,
        )
    }

    async fn create_silence(&self, s: &Silence) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "INSERT INTO silences (matchers, starts_ms, ends_ms, created_by, comment)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(labels_json(&s.matchers))
        .bind(ms(&s.starts))
        .bind(ms(&s.ends))
        .bind(&s.created_by)
        .bind(&s.comment)
        .fetch_one(&self.write)
        .await?)
    }

    async fn silences(&self, now: DateTime<Utc>) -> Result<Vec<Silence>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, matchers, starts_ms, ends_ms, created_by, comment FROM silences
             WHERE ends_ms > $1 ORDER BY starts_ms, id",
        )
        .bind(ms(&now))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(Self::silence_row).collect()
    }

    async fn expire_silence(&self, id: i64, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let n = sqlx::query("UPDATE silences SET ends_ms = $1 WHERE id = $2 AND ends_ms > $1")
            .bind(ms(&now))
            .bind(id)
            .execute(&self.write)
            .await?
            .rows_affected();
        Ok(n == 1)
    }
}
