//! SQLite's bulk writes, ingest and roll-up: each run synchronously on the write connection's
//! own handle (sqlx lends it: `lock_handle`), each statement prepared once per transaction and
//! run once per row. A roll-up step is a transaction of its own; a group of batches is written
//! in the transaction sqlx opened for it, which the alert transitions decided on the batches
//! share before it commits (store/sql/mod.rs, `SqlGroup`).
//!
//! Through sqlx, each of their statements was a hand-off to the connection's thread and back,
//! its values boxed and bound anew: the SQLite thread sat idle half the time while a fleet's
//! agents were refused as busy, and a roll-up step of 5,000 rows held the one connection for
//! 50 ms to over a second, while ingest waited (docs/performance.md). Here the store's writer
//! thread (collector/src/writer.rs) runs them itself. The tables and rules are those of
//! PostgreSQL's (store/postgres/write.rs), the arithmetic is store/rollup.rs's for both, and the
//! store conformance suite runs both.

use std::collections::HashMap;

use lookout_protocol::Record;
use rusqlite::{
    Connection, OptionalExtension, Transaction, TransactionBehavior, named_params, params,
};

use super::alerting::{AlertState, Escalation, NewNotification, Transition};
use super::blocks::{Block, StepSamples};
use super::histogram::Histogram;
use super::rollup::{
    CheckAgg, RawResult, aggregate_samples, check_buckets, decode_minutes, encode_minutes,
    merge_hour,
};
use super::sql::group::{GroupRows, is_newest, newest};
use super::sql::series::{MadeSeries, SeriesCache};
use super::sql::transitions::{
    CANCEL_STEPS, INSERT_ALERT, INSERT_EVENT, INSERT_FOLLOW, INSERT_OUTBOX, UPDATE_ALERT,
    step_columns,
};
use super::sql::values::{labels_json, metric_type, ms, stored_timings, tier_code};
use super::{IngestOutcome, NewBatch, StoreError, Tier};

const INSERT_RESULT: &str = "INSERT INTO check_results
    (series_id, time_ms, ok, latency_ms, error, status_code, timings, cert_expiry_ms)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
const UPSERT_CHECK_LATEST: &str = "INSERT INTO check_latest
    (series_id, time_ms, ok, latency_ms, error, status_code, timings, cert_expiry_ms)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
    ON CONFLICT (series_id) DO UPDATE SET time_ms = excluded.time_ms, ok = excluded.ok,
      latency_ms = excluded.latency_ms, error = excluded.error,
      status_code = excluded.status_code, timings = excluded.timings,
      cert_expiry_ms = excluded.cert_expiry_ms
    WHERE excluded.time_ms >= check_latest.time_ms";
const INSERT_BLOCK: &str = "INSERT INTO metric_sample_blocks
    (agent, min_time_ms, max_time_ms, samples, data) VALUES ($1, $2, $3, $4, $5)";
/// The roll-up cursor's name for metric sample blocks.
const BLOCKS: &str = "metric_sample_blocks";
const UPSERT_METRIC_LATEST: &str = "INSERT INTO metric_latest (series_id, time_ms, value)
    VALUES ($1, $2, $3)
    ON CONFLICT (series_id) DO UPDATE SET time_ms = excluded.time_ms, value = excluded.value
    WHERE excluded.time_ms >= metric_latest.time_ms";
/// How a metric rollup bucket merges into the stored one: sums add up, the smaller min and
/// larger max win, the later `last` wins (its time breaks ties as `MetricAgg::merge` does).
const MERGE_METRIC_ROLLUP: &str = " ON CONFLICT (tier, series_id, bucket_ms) DO UPDATE SET
    count = metric_rollups.count + excluded.count, sum = metric_rollups.sum + excluded.sum,
    min = min(metric_rollups.min, excluded.min), max = max(metric_rollups.max, excluded.max),
    last = CASE WHEN excluded.last_ms >= metric_rollups.last_ms THEN excluded.last ELSE metric_rollups.last END,
    last_ms = max(metric_rollups.last_ms, excluded.last_ms)";

/// Writes `items` in the transaction open on `tx` (a group's, which its caller commits or
/// rolls back: [`crate::store::Store::open_group`]); returns each batch's outcome, in order,
/// and the series made, for the cache once the transaction is committed.
pub(super) fn write_group(
    tx: &mut Connection,
    cache: &SeriesCache,
    items: &[NewBatch<'_>],
) -> Result<(Vec<IngestOutcome>, Vec<MadeSeries>), StoreError> {
    let tx = &*tx;
    let mut made = Vec::new();
    let mut ids = Vec::with_capacity(items.len());
    for item in items {
        ids.push(series_ids(tx, cache, item, &mut made)?);
    }

    // Which batches are new: a batch already stored (an agent's retry, even within this group)
    // inserts no row.
    let mut outcomes = Vec::with_capacity(items.len());
    let mut stored = Vec::new();
    {
        let mut insert = tx.prepare(
            "INSERT INTO ingested_batches (agent, batch_id, received_ms, records)
             VALUES ($1, $2, $3, $4) ON CONFLICT (agent, batch_id) DO NOTHING",
        )?;
        for (k, item) in items.iter().enumerate() {
            let records = item.batch.records.len();
            let fresh = insert.execute(params![
                item.agent,
                item.batch.batch_id,
                ms(&item.received),
                records as i64
            ])? == 1;
            outcomes.push(IngestOutcome {
                stored: if fresh { records } else { 0 },
                duplicate: !fresh,
            });
            if fresh {
                stored.push(k);
            }
        }
    }

    if !stored.is_empty() {
        store_rows(tx, items, &ids, &stored)?;
    }
    Ok((outcomes, made))
}

/// A transition's writes in the transaction open on `conn` (a group's), in a savepoint: all or
/// nothing, as [`crate::store::alerting::Ledger::record_transition`] says. The statements are
/// store/sql/transitions.rs's, bound by name (`$1` may come twice).
pub(super) fn transition(
    conn: &mut Connection,
    t: &Transition,
    notify: &[NewNotification],
) -> Result<Option<i64>, StoreError> {
    // Rolled back when dropped unreleased: refused, or a statement failed.
    let sp = conn.savepoint()?;
    let labels = labels_json(&t.labels);
    let (at, fired, notified) = (
        ms(&t.at),
        t.fired_at.as_ref().map(ms),
        t.notified_at.as_ref().map(ms),
    );
    let id: Option<i64> = match t.from {
        None => sp
            .query_row(
                INSERT_ALERT,
                named_params! {
                    "$1": t.fingerprint, "$2": t.rule, "$3": labels, "$4": t.to.as_str(),
                    "$5": t.summary, "$6": at, "$7": fired, "$8": notified,
                },
                |r| r.get(0),
            )
            .optional()?,
        Some(from) => sp
            .query_row(
                UPDATE_ALERT,
                named_params! {
                    "$1": t.to.as_str(), "$2": t.summary, "$3": at, "$4": labels,
                    "$5": t.fingerprint, "$6": from.as_str(), "$7": fired, "$8": notified,
                },
                |r| r.get(0),
            )
            .optional()?,
    };
    let Some(id) = id else {
        return Ok(None);
    };
    sp.execute(
        INSERT_EVENT,
        params![
            id,
            at,
            t.from.map(AlertState::as_str),
            t.to.as_str(),
            t.summary
        ],
    )?;
    if t.from == Some(AlertState::Firing) && t.to != AlertState::Firing {
        sp.execute(
            CANCEL_STEPS,
            named_params! { "$1": id, "$2": ms(&t.recorded_at) },
        )?;
    }
    let mut outbox = sp.prepare(INSERT_OUTBOX)?;
    for n in notify {
        let payload = n.payload.to_string();
        let due = ms(&n.not_before);
        if let Some(Escalation::Follow { since }) = n.escalation {
            sp.execute(
                INSERT_FOLLOW,
                named_params! {
                    "$1": n.channel, "$2": n.dedup_key, "$3": n.group_key, "$4": id,
                    "$5": payload, "$6": at, "$7": due, "$8": ms(&since),
                },
            )?;
            continue;
        }
        let (step, earliest, repeat) = step_columns(n.escalation.as_ref());
        outbox.execute(params![
            n.channel,
            n.dedup_key,
            n.group_key,
            id,
            payload,
            at,
            due,
            step,
            earliest,
            repeat
        ])?;
    }
    drop(outbox);
    sp.commit()?;
    Ok(Some(id))
}

/// The series id of each record of `item` (0 for a log line): from the cache, or made in `tx`
/// and added to `made`.
fn series_ids(
    tx: &Connection,
    cache: &SeriesCache,
    item: &NewBatch<'_>,
    made: &mut Vec<MadeSeries>,
) -> Result<Vec<i64>, StoreError> {
    let records = &item.batch.records;
    let mut ids = vec![0i64; records.len()];
    let missing = cache.resolve(item.agent, records, &mut ids);
    if missing.is_empty() {
        return Ok(ids);
    }
    // An agent's first batch brings a hundred series or more, some of them several times.
    let mut checks: HashMap<&str, i64> = HashMap::new();
    let mut metrics: HashMap<(&str, String), i64> = HashMap::new();
    let mut insert_check = tx.prepare(
        "INSERT INTO check_series (check_name, agent, check_type) VALUES ($1, $2, $3)
         ON CONFLICT (check_name, agent) DO NOTHING",
    )?;
    let mut find_check =
        tx.prepare("SELECT id FROM check_series WHERE check_name = $1 AND agent = $2")?;
    let mut insert_metric = tx.prepare(
        "INSERT INTO metric_series (agent, name, labels, metric_type) VALUES ($1, $2, $3, $4)
         ON CONFLICT (agent, name, labels) DO NOTHING",
    )?;
    let mut find_metric =
        tx.prepare("SELECT id FROM metric_series WHERE agent = $1 AND name = $2 AND labels = $3")?;
    for i in missing {
        ids[i] = match &records[i] {
            Record::CheckResult(c) => match checks.get(c.check.as_str()) {
                Some(id) => *id,
                None => {
                    let kind = c.check_type.map(|t| t.to_string());
                    insert_check.execute(params![c.check, item.agent, kind])?;
                    let id: i64 =
                        find_check.query_row(params![c.check, item.agent], |r| r.get(0))?;
                    checks.insert(&c.check, id);
                    made.push(MadeSeries::Check(
                        item.agent.to_string(),
                        c.check.clone(),
                        id,
                    ));
                    id
                }
            },
            Record::Metric(m) => {
                let key = (m.name.as_str(), labels_json(&m.labels));
                match metrics.get(&key) {
                    Some(id) => *id,
                    None => {
                        let kind = metric_type(m.metric_type);
                        insert_metric.execute(params![item.agent, m.name, key.1, kind])?;
                        let id: i64 = find_metric
                            .query_row(params![item.agent, m.name, key.1], |r| r.get(0))?;
                        metrics.insert(key, id);
                        made.push(MadeSeries::Metric(
                            item.agent.to_string(),
                            m.name.clone(),
                            m.labels.clone(),
                            id,
                        ));
                        id
                    }
                }
            }
            Record::Log(_) => 0,
        };
    }
    Ok(ids)
}

/// The rows of the batches `stored` (indexes into `items`), with their records' series `ids`.
fn store_rows(
    tx: &Connection,
    items: &[NewBatch<'_>],
    ids: &[Vec<i64>],
    stored: &[usize],
) -> Result<(), StoreError> {
    let GroupRows {
        results,
        samples,
        sample_blocks,
        logs,
        log_bytes,
        seen,
    } = GroupRows::split(items, ids, stored);
    let mut insert_log = tx.prepare(
        "INSERT INTO logs (agent, time_ms, source, level, text) VALUES ($1, $2, $3, $4, $5)",
    )?;
    for (agent, l) in logs {
        insert_log.execute(params![agent, ms(&l.time), l.source, l.level, l.text])?;
    }

    let mut insert = tx.prepare(INSERT_RESULT)?;
    let mut latest = tx.prepare(UPSERT_CHECK_LATEST)?;
    for (n, (series, c)) in results.iter().enumerate() {
        let row = params![
            series,
            ms(&c.time),
            c.ok,
            c.latency_ms,
            c.error,
            c.status_code,
            stored_timings(&c.timings),
            c.cert_expiry.as_ref().map(ms)
        ];
        insert.execute(row)?;
        if is_newest(&results, n) {
            latest.execute(row)?;
        }
    }

    let mut insert = tx.prepare(INSERT_BLOCK)?;
    for (agent, mut block) in sample_blocks {
        let b = Block::pack(&mut block)?;
        insert.execute(params![
            agent,
            b.min_time_ms,
            b.max_time_ms,
            b.samples,
            b.data
        ])?;
    }
    let mut latest = tx.prepare(UPSERT_METRIC_LATEST)?;
    for (series, m) in newest(&samples) {
        latest.execute(params![series, ms(&m.time), m.value])?;
    }

    let mut volume = tx.prepare(
        "INSERT INTO log_volume (day_ms, bytes) VALUES ($1, $2)
         ON CONFLICT (day_ms) DO UPDATE SET bytes = log_volume.bytes + excluded.bytes",
    )?;
    for (day, bytes) in log_bytes {
        volume.execute(params![day, bytes])?;
    }
    let mut agents = tx.prepare(
        "INSERT INTO agents (name, last_seen_ms) VALUES ($1, $2)
         ON CONFLICT (name) DO UPDATE SET last_seen_ms = CASE
           WHEN agents.last_seen_ms IS NULL OR excluded.last_seen_ms > agents.last_seen_ms
           THEN excluded.last_seen_ms ELSE agents.last_seen_ms END,
           presence = NULL, presence_since_ms = NULL",
    )?;
    for (agent, at) in seen {
        agents.execute(params![agent, at])?;
    }
    Ok(())
}

/// One roll-up step: up to `max_rows` raw check results and as many metric samples past their
/// cursors merged into the rollups, in one transaction; returns the rows rolled up.
pub(super) fn roll_up(conn: &mut Connection, max_rows: u32) -> Result<u64, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let n = roll_up_results(&tx, max_rows)? + roll_up_samples(&tx, max_rows)?;
    tx.commit()?;
    Ok(n)
}

/// The last raw row id rolled up of `table`.
fn cursor(tx: &Transaction<'_>, table: &str) -> Result<i64, StoreError> {
    let id = tx
        .query_row(
            "SELECT last_id FROM rollup_cursors WHERE name = $1",
            [table],
            |r| r.get(0),
        )
        .optional()?;
    Ok(id.unwrap_or(0))
}

fn set_cursor(tx: &Transaction<'_>, table: &str, id: i64) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO rollup_cursors (name, last_id) VALUES ($1, $2)
         ON CONFLICT (name) DO UPDATE SET last_id = excluded.last_id",
        params![table, id],
    )?;
    Ok(())
}

fn roll_up_results(tx: &Transaction<'_>, max_rows: u32) -> Result<u64, StoreError> {
    let mut read = tx.prepare(
        "SELECT id, series_id, time_ms, ok, latency_ms FROM check_results
         WHERE id > $1 ORDER BY id LIMIT $2",
    )?;
    let mut rows = read.query(params![cursor(tx, "check_results")?, max_rows])?;
    let mut last_id = None;
    let mut raw = Vec::new();
    while let Some(r) = rows.next()? {
        last_id = Some(r.get::<_, i64>(0)?);
        raw.push(RawResult {
            series: r.get(1)?,
            time_ms: r.get(2)?,
            ok: r.get(3)?,
            latency_ms: r.get(4)?,
        });
    }
    let Some(last_id) = last_id else {
        return Ok(0);
    };
    let buckets = check_buckets(&raw);
    let mut add_day = tx.prepare(
        "INSERT INTO check_days (series_id, day_ms, count, failures, latency_sum)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (series_id, day_ms) DO UPDATE SET count = check_days.count + excluded.count,
           failures = check_days.failures + excluded.failures,
           latency_sum = check_days.latency_sum + excluded.latency_sum",
    )?;
    for ((series, day), add) in buckets.days {
        add_day.execute(params![
            series,
            day,
            add.count as i64,
            add.failures as i64,
            add.latency_sum_ms
        ])?;
    }
    let mut read_hour = tx.prepare(
        "SELECT count, failures, latency_sum, hist, minutes FROM check_rollups
         WHERE series_id = $1 AND hour_ms = $2",
    )?;
    let mut write_hour = tx.prepare(
        "INSERT INTO check_rollups (series_id, hour_ms, count, failures, latency_sum, hist, minutes)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (series_id, hour_ms) DO UPDATE SET count = excluded.count,
           failures = excluded.failures, latency_sum = excluded.latency_sum,
           hist = excluded.hist, minutes = excluded.minutes",
    )?;
    let corrupt = |e: super::histogram::HistogramError| StoreError::Corrupt(e.to_string());
    for ((series, hour), new_minutes) in buckets.hours {
        let stored = read_hour
            .query_row(params![series, hour], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, f64>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                    r.get::<_, Option<Vec<u8>>>(4)?,
                ))
            })
            .optional()?;
        let stored = match stored {
            Some((count, failures, latency_sum_ms, hist, minutes)) => Some((
                CheckAgg {
                    count: count as u64,
                    failures: failures as u64,
                    latency_sum_ms,
                    hist: Histogram::decode(&hist).map_err(corrupt)?,
                },
                match minutes {
                    Some(b) => decode_minutes(&b).map_err(corrupt)?,
                    None => Default::default(),
                },
            )),
            None => None,
        };
        let (total, minutes) = merge_hour(stored, new_minutes);
        write_hour.execute(params![
            series,
            hour,
            total.count as i64,
            total.failures as i64,
            total.latency_sum_ms,
            total.hist.encode(),
            encode_minutes(&minutes)
        ])?;
    }
    set_cursor(tx, "check_results", last_id)?;
    Ok(raw.len() as u64)
}

fn roll_up_samples(tx: &Transaction<'_>, max_rows: u32) -> Result<u64, StoreError> {
    // Whole blocks past the cursor, until they make `max_rows` rollup rows (at least one).
    let mut read =
        tx.prepare("SELECT id, data FROM metric_sample_blocks WHERE id > $1 ORDER BY id")?;
    let mut rows = read.query([cursor(tx, BLOCKS)?])?;
    let mut last_id = None;
    let mut step = StepSamples::new(max_rows);
    while !step.full() {
        let Some(r) = rows.next()? else { break };
        let id = r.get::<_, i64>(0)?;
        last_id = Some(id);
        step.take(id, r.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?)?;
    }
    let Some(last_id) = last_id else {
        return Ok(0);
    };
    let raw = step.raw;
    let mut merge = tx.prepare(&format!(
        "INSERT INTO metric_rollups (tier, series_id, bucket_ms, count, sum, min, max, last, last_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9){}",
        MERGE_METRIC_ROLLUP
    ))?;
    for tier in [Tier::Minute, Tier::Hour] {
        let code = tier_code(tier);
        for ((series, bucket), agg) in aggregate_samples(&raw, tier) {
            merge.execute(params![
                code,
                series,
                bucket,
                agg.count as i64,
                agg.sum,
                agg.min,
                agg.max,
                agg.last,
                agg.last_ms
            ])?;
        }
    }
    set_cursor(tx, BLOCKS, last_id)?;
    Ok(raw.len() as u64)
}
