//! Aggregation of raw rows into rollup buckets, and merging of buckets: the arithmetic both
//! backends share. A bucket is keyed by series id and its start (Unix ms, a multiple of the
//! tier's width); merging two aggregates of the same bucket gives the aggregate of all their rows,
//! in any order, so late rows simply merge into an existing bucket.

use std::collections::BTreeMap;

use super::Tier;
use super::histogram::{Histogram, HistogramError};

/// A UTC day in milliseconds: the width of the status page's daily rollups.
pub const DAY_MS: i64 = 86_400_000;

/// Start of the bucket of width `width_ms` that holds `time_ms`.
pub fn bucket_start(time_ms: i64, width_ms: i64) -> i64 {
    time_ms.div_euclid(width_ms) * width_ms
}

/// A raw check result, as the rollup step reads it.
#[derive(Debug, Clone, Copy)]
pub struct RawResult {
    /// Series (check, agent) id.
    pub series: i64,
    /// Probe time, Unix ms.
    pub time_ms: i64,
    /// Success.
    pub ok: bool,
    /// Latency, ms.
    pub latency_ms: f64,
}

/// The aggregate of a check's results in one bucket.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CheckAgg {
    /// Results.
    pub count: u64,
    /// Failed results.
    pub failures: u64,
    /// Sum of latencies, ms.
    pub latency_sum_ms: f64,
    /// Latency distribution.
    pub hist: Histogram,
}

impl CheckAgg {
    /// Adds one result.
    pub fn add(&mut self, ok: bool, latency_ms: f64) {
        self.count += 1;
        self.failures += u64::from(!ok);
        self.latency_sum_ms += latency_ms;
        self.hist.record(latency_ms);
    }

    /// Adds another aggregate of the same bucket.
    pub fn merge(&mut self, other: &CheckAgg) {
        self.count += other.count;
        self.failures += other.failures;
        self.latency_sum_ms += other.latency_sum_ms;
        self.hist.merge(&other.hist);
    }
}

/// The per-minute rollups of one hour, packed into one value (the `minutes` column).
///
/// Format: for each minute with results, in increasing order: `u8` minute of the hour (0..59),
/// `u16` count, `u16` failures, `f32` latency sum (ms), `u8` number of histogram buckets, then
/// per bucket `u8` index and `u16` count; all little-endian. Counts saturate at 65,535 a minute
/// (a series runs at most once a second). A minute with two results takes 16 bytes.
pub fn encode_minutes(minutes: &BTreeMap<u8, CheckAgg>) -> Vec<u8> {
    let sat = |v: u64| u16::try_from(v).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(minutes.len() * 16);
    for (m, a) in minutes {
        out.push(*m);
        out.extend_from_slice(&sat(a.count).to_le_bytes());
        out.extend_from_slice(&sat(a.failures).to_le_bytes());
        out.extend_from_slice(&(a.latency_sum_ms as f32).to_le_bytes());
        let buckets: Vec<(u16, u32)> = a.hist.buckets().collect();
        // At most 241 buckets exist, so the count fits a u8.
        out.push(buckets.len() as u8);
        for (i, c) in buckets {
            out.push(i as u8);
            out.extend_from_slice(&sat(u64::from(c)).to_le_bytes());
        }
    }
    out
}

/// Reads what [`encode_minutes`] wrote.
pub fn decode_minutes(bytes: &[u8]) -> Result<BTreeMap<u8, CheckAgg>, HistogramError> {
    let bad = |what: &str| HistogramError(format!("packed minutes: {what}"));
    let mut out = BTreeMap::new();
    let mut rest = bytes;
    let take = |n: usize, rest: &mut &[u8]| -> Result<Vec<u8>, HistogramError> {
        if rest.len() < n {
            return Err(bad("truncated"));
        }
        let (head, tail) = rest.split_at(n);
        *rest = tail;
        Ok(head.to_vec())
    };
    while !rest.is_empty() {
        let head = take(10, &mut rest)?;
        let minute = head[0];
        if minute > 59 {
            return Err(bad("minute past 59"));
        }
        let mut agg = CheckAgg {
            count: u64::from(u16::from_le_bytes([head[1], head[2]])),
            failures: u64::from(u16::from_le_bytes([head[3], head[4]])),
            latency_sum_ms: f64::from(f32::from_le_bytes([head[5], head[6], head[7], head[8]])),
            hist: Histogram::new(),
        };
        for _ in 0..head[9] {
            let b = take(3, &mut rest)?;
            agg.hist
                .add_bucket(u16::from(b[0]), u32::from(u16::from_le_bytes([b[1], b[2]])))?;
        }
        out.insert(minute, agg);
    }
    Ok(out)
}

/// Aggregates results into buckets of `tier`.
pub fn aggregate_results(rows: &[RawResult], tier: Tier) -> BTreeMap<(i64, i64), CheckAgg> {
    let mut out: BTreeMap<(i64, i64), CheckAgg> = BTreeMap::new();
    for r in rows {
        out.entry((r.series, bucket_start(r.time_ms, tier.width_ms())))
            .or_default()
            .add(r.ok, r.latency_ms);
    }
    out
}

/// A roll-up step's check results as the rollup tables take them.
#[derive(Debug, Default)]
pub struct CheckBuckets {
    /// Per (series, hour start): each minute's aggregate, by minute of the hour. One row per
    /// (series, hour) holds the hour and its minutes.
    pub hours: BTreeMap<(i64, i64), BTreeMap<u8, CheckAgg>>,
    /// Per (series, UTC day start): plain totals, added to what is stored (the status page's).
    pub days: BTreeMap<(i64, i64), CheckAgg>,
}

/// Aggregates results into [`CheckBuckets`].
pub fn check_buckets(rows: &[RawResult]) -> CheckBuckets {
    let mut out = CheckBuckets::default();
    for ((series, minute), add) in aggregate_results(rows, Tier::Minute) {
        let hour = bucket_start(minute, Tier::Hour.width_ms());
        out.hours
            .entry((series, hour))
            .or_default()
            .insert(((minute - hour) / 60_000) as u8, add);
    }
    for ((series, hour), minutes) in &out.hours {
        let day = out
            .days
            .entry((*series, bucket_start(*hour, DAY_MS)))
            .or_default();
        for add in minutes.values() {
            day.count += add.count;
            day.failures += add.failures;
            day.latency_sum_ms += add.latency_sum_ms;
        }
    }
    out
}

/// An hour's row with `new` minutes merged into the `stored` total and minutes (none when
/// the row is new, or its minutes were emptied by retention).
pub fn merge_hour(
    stored: Option<(CheckAgg, BTreeMap<u8, CheckAgg>)>,
    new: BTreeMap<u8, CheckAgg>,
) -> (CheckAgg, BTreeMap<u8, CheckAgg>) {
    let (mut total, mut minutes) = stored.unwrap_or_default();
    for (m, add) in new {
        total.merge(&add);
        minutes.entry(m).or_default().merge(&add);
    }
    (total, minutes)
}

/// A raw metric sample, as the rollup step reads it.
#[derive(Debug, Clone, Copy)]
pub struct RawSample {
    /// Series (agent, name, labels) id.
    pub series: i64,
    /// Sample time, Unix ms.
    pub time_ms: i64,
    /// Value.
    pub value: f64,
}

/// The aggregate of a metric series in one bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricAgg {
    /// Samples.
    pub count: u64,
    /// Sum of values.
    pub sum: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Value of the latest sample.
    pub last: f64,
    /// Time of the latest sample, Unix ms.
    pub last_ms: i64,
}

impl MetricAgg {
    /// The aggregate of one sample.
    pub fn one(time_ms: i64, value: f64) -> Self {
        Self {
            count: 1,
            sum: value,
            min: value,
            max: value,
            last: value,
            last_ms: time_ms,
        }
    }

    /// Adds another aggregate of the same bucket.
    pub fn merge(&mut self, o: &MetricAgg) {
        self.count += o.count;
        self.sum += o.sum;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        if o.last_ms >= self.last_ms {
            self.last = o.last;
            self.last_ms = o.last_ms;
        }
    }
}

/// Aggregates samples into buckets of `tier`.
pub fn aggregate_samples(rows: &[RawSample], tier: Tier) -> BTreeMap<(i64, i64), MetricAgg> {
    let mut out: BTreeMap<(i64, i64), MetricAgg> = BTreeMap::new();
    for r in rows {
        let one = MetricAgg::one(r.time_ms, r.value);
        out.entry((r.series, bucket_start(r.time_ms, tier.width_ms())))
            .and_modify(|a| a.merge(&one))
            .or_insert(one);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn splitting_rows_anyhow_and_merging_gives_the_same_buckets(
            rows in proptest::collection::vec((0i64..3, -10_000_000i64..10_000_000, any::<bool>(), 0.0f64..5000.0), 0..200),
            split in 0usize..200,
        ) {
            let rows: Vec<RawResult> = rows.into_iter()
                .map(|(series, time_ms, ok, latency_ms)| RawResult { series, time_ms, ok, latency_ms })
                .collect();
            let split = split.min(rows.len());
            let whole = aggregate_results(&rows, Tier::Minute);
            let mut parts = aggregate_results(&rows[..split], Tier::Minute);
            for (k, v) in aggregate_results(&rows[split..], Tier::Minute) {
                parts.entry(k).or_default().merge(&v);
            }
            prop_assert_eq!(whole.len(), parts.len());
            for (k, a) in &whole {
                let b = &parts[k];
                prop_assert_eq!(a.count, b.count);
                prop_assert_eq!(a.failures, b.failures);
                prop_assert_eq!(&a.hist, &b.hist);
                prop_assert!((a.latency_sum_ms - b.latency_sum_ms).abs() < 1e-6);
            }
            prop_assert_eq!(whole.values().map(|a| a.count).sum::<u64>(), rows.len() as u64);
        }

        #[test]
        fn metric_buckets_keep_min_max_and_the_latest(
            values in proptest::collection::vec((0i64..120_000, -1e6f64..1e6), 1..100),
        ) {
            let rows: Vec<RawSample> = values.iter().map(|(t, v)| RawSample { series: 1, time_ms: *t, value: *v }).collect();
            for ((_, start), agg) in aggregate_samples(&rows, Tier::Minute) {
                let inside: Vec<&RawSample> = rows.iter().filter(|r| bucket_start(r.time_ms, 60_000) == start).collect();
                prop_assert_eq!(agg.count, inside.len() as u64);
                prop_assert_eq!(agg.min, inside.iter().map(|r| r.value).fold(f64::INFINITY, f64::min));
                prop_assert_eq!(agg.max, inside.iter().map(|r| r.value).fold(f64::NEG_INFINITY, f64::max));
                let latest = inside.iter().map(|r| r.time_ms).max().unwrap();
                prop_assert_eq!(agg.last_ms, latest);
                prop_assert!(inside.iter().any(|r| r.time_ms == latest && r.value == agg.last));
            }
        }
    }

    proptest! {
        #[test]
        fn packed_minutes_round_trip(
            rows in proptest::collection::vec((0i64..3_600_000, any::<bool>(), 0.0f64..100_000.0), 0..300),
        ) {
            let raw: Vec<RawResult> = rows.iter().map(|(t, ok, l)| RawResult { series: 1, time_ms: *t, ok: *ok, latency_ms: *l }).collect();
            let minutes: BTreeMap<u8, CheckAgg> = aggregate_results(&raw, Tier::Minute)
                .into_iter()
                .map(|((_, start), a)| ((start / 60_000) as u8, a))
                .collect();
            let back = decode_minutes(&encode_minutes(&minutes)).unwrap();
            prop_assert_eq!(back.len(), minutes.len());
            for (m, a) in &minutes {
                let b = &back[m];
                prop_assert_eq!((a.count, a.failures), (b.count, b.failures));
                prop_assert_eq!(&a.hist, &b.hist);
                prop_assert!((a.latency_sum_ms - b.latency_sum_ms).abs() <= a.latency_sum_ms * 1e-6 + 1e-3);
            }
        }

        #[test]
        fn packed_minutes_reject_garbage_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_minutes(&bytes);
        }
    }

    #[test]
    fn buckets_start_at_multiples_even_before_1970() {
        assert_eq!(bucket_start(59_999, 60_000), 0);
        assert_eq!(bucket_start(60_000, 60_000), 60_000);
        assert_eq!(bucket_start(-1, 60_000), -60_000);
    }
}
