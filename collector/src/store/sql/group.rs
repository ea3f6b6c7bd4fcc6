//! A group commit's records split by table, in the order the backends' bulk writes insert
//! them (store/sqlite_write.rs, store/postgres/write.rs).

use crate::store::NewBatch;
use crate::store::blocks::MAX_SAMPLES;
use crate::store::rollup::RawSample;

use super::values::{day_of, ms};

/// The records of a group's new batches, split by table, each with its series id.
pub(crate) struct GroupRows<'a> {
    /// Check results, in order of series and time.
    pub results: Vec<(i64, &'a lookout_protocol::CheckResult)>,
    /// Metric samples, in order of series and time.
    pub samples: Vec<(i64, &'a lookout_protocol::MetricSample)>,
    /// Each stored batch's metric samples with its agent: a block each (store/blocks.rs).
    pub sample_blocks: Vec<(&'a str, Vec<RawSample>)>,
    /// Log lines, with their agent.
    pub logs: Vec<(&'a str, &'a lookout_protocol::LogRecord)>,
    /// Bytes of log text per UTC day.
    pub log_bytes: std::collections::BTreeMap<i64, i64>,
    /// Each agent's latest arrival.
    pub seen: std::collections::BTreeMap<&'a str, i64>,
}

impl<'a> GroupRows<'a> {
    /// Splits the records of `items[k]` for each `k` in `stored`, whose series ids are `ids[k]`.
    pub(crate) fn split(items: &[NewBatch<'a>], ids: &[Vec<i64>], stored: &[usize]) -> Self {
        use lookout_protocol::Record;
        let mut rows = Self {
            results: Vec::new(),
            samples: Vec::new(),
            sample_blocks: Vec::new(),
            logs: Vec::new(),
            log_bytes: Default::default(),
            seen: Default::default(),
        };
        for &k in stored {
            let item = &items[k];
            let last = rows.seen.entry(item.agent).or_insert(i64::MIN);
            *last = (*last).max(ms(&item.received));
            let mut block = Vec::new();
            for (record, series) in item.batch.records.iter().zip(&ids[k]) {
                match record {
                    Record::CheckResult(c) => rows.results.push((*series, c)),
                    Record::Metric(m) => {
                        rows.samples.push((*series, m));
                        block.push(RawSample {
                            series: *series,
                            time_ms: ms(&m.time),
                            value: m.value,
                        });
                    }
                    Record::Log(l) => {
                        *rows.log_bytes.entry(day_of(ms(&l.time))).or_default() +=
                            l.text.len() as i64;
                        rows.logs.push((item.agent, l));
                    }
                }
            }
            // A batch larger than a block (a backlog, or a raised `max_decoded_bytes`) is
            // several.
            while block.len() > MAX_SAMPLES {
                let rest = block.split_off(MAX_SAMPLES);
                rows.sample_blocks
                    .push((item.agent, std::mem::replace(&mut block, rest)));
            }
            if !block.is_empty() {
                rows.sample_blocks.push((item.agent, block));
            }
        }
        // In series order, so that the inserts into the (series, time) indexes walk each index
        // once instead of landing all over it (a fleet's group has one sample of each of
        // thousands of series). Stable: of a series' rows at one time the later to arrive
        // stays last, and the last is what the "latest" tables keep ([`is_newest`]).
        rows.results.sort_by_key(|(series, c)| (*series, c.time));
        rows.samples.sort_by_key(|(series, m)| (*series, m.time));
        rows
    }
}

/// Whether row `n` of rows in order of series and time is its series' newest (its last).
pub(crate) fn is_newest<T>(rows: &[(i64, T)], n: usize) -> bool {
    rows.get(n + 1).is_none_or(|next| next.0 != rows[n].0)
}

/// Each series' newest of rows in order of series and time: one upsert of a "latest" table
/// can touch a row once.
pub(crate) fn newest<T: Copy>(rows: &[(i64, T)]) -> impl Iterator<Item = (i64, T)> + '_ {
    (0..rows.len())
        .filter(|&n| is_newest(rows, n))
        .map(|n| rows[n])
}
