//! A mergeable latency histogram for rollups: exponential buckets, so any quantile read from it
//! is within [`RELATIVE_ERROR`] of the true value, and two histograms merge by adding counts
//! (per-minute rollups merge into hours, hours into days, agents into a check).
//!
//! Buckets: bucket 0 holds latencies up to [`MIN_MS`]; bucket `i >= 1` holds
//! `(MIN_MS * G^(i-1), MIN_MS * G^i]` with `G = 2^(1/8)`, up to bucket [`MAX_INDEX`]
//! (about 10^7 ms), which also takes anything larger.
//!
//! Stored form (in rollup rows): the non-empty buckets in increasing index order, each as a
//! little-endian `u16` index followed by a little-endian `u32` count; 6 bytes a bucket, empty for
//! an empty histogram. A rollup of one check at a 30 s interval has 2 results a minute, so 12 bytes.

use std::collections::BTreeMap;

/// Latencies up to this many milliseconds share the first bucket.
pub const MIN_MS: f64 = 0.01;
/// Buckets per doubling.
const PER_DOUBLING: f64 = 8.0;
/// The last bucket.
pub const MAX_INDEX: u16 = 240;
/// Largest relative error of a quantile read from a bucket's midpoint: (G - 1) / (G + 1).
pub const RELATIVE_ERROR: f64 = 0.0433;

/// A sparse latency histogram.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram {
    buckets: BTreeMap<u16, u32>,
}

/// Why stored histogram bytes could not be read.
#[derive(Debug, thiserror::Error)]
#[error("corrupt histogram: {0}")]
pub struct HistogramError(pub(crate) String);

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self::default()
    }

    fn index(ms: f64) -> u16 {
        if ms.is_nan() || ms <= MIN_MS {
            return 0;
        }
        let i = ((ms / MIN_MS).log2() * PER_DOUBLING).ceil();
        if i >= f64::from(MAX_INDEX) {
            MAX_INDEX
        } else {
            (i as u16).max(1)
        }
    }

    /// Upper bound of bucket `i`, in milliseconds.
    fn upper(i: u16) -> f64 {
        MIN_MS * (f64::from(i) / PER_DOUBLING).exp2()
    }

    /// Counts one latency.
    pub fn record(&mut self, ms: f64) {
        *self.buckets.entry(Self::index(ms)).or_insert(0) += 1;
    }

    /// Adds another histogram's counts to this one.
    pub fn merge(&mut self, other: &Histogram) {
        for (i, c) in &other.buckets {
            let slot = self.buckets.entry(*i).or_insert(0);
            *slot = slot.saturating_add(*c);
        }
    }

    /// Number of latencies counted.
    pub fn count(&self) -> u64 {
        self.buckets.values().map(|c| u64::from(*c)).sum()
    }

    /// The `q` quantile (0..=1), or `None` when empty. The value is the midpoint of the bucket
    /// that holds the rank, within [`RELATIVE_ERROR`] of the true latency.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (i, c) in &self.buckets {
            seen += u64::from(*c);
            if seen >= rank {
                return Some(if *i == 0 {
                    MIN_MS
                } else {
                    // The midpoint that splits the bucket's relative error evenly.
                    let (lo, hi) = (Self::upper(*i - 1), Self::upper(*i));
                    2.0 * lo * hi / (lo + hi)
                });
            }
        }
        None
    }

    /// The non-empty buckets, as (index, count), in index order.
    pub fn buckets(&self) -> impl Iterator<Item = (u16, u32)> + '_ {
        self.buckets.iter().map(|(i, c)| (*i, *c))
    }

    /// Adds `count` to bucket `index` (indexes past [`MAX_INDEX`] are an error).
    pub fn add_bucket(&mut self, index: u16, count: u32) -> Result<(), HistogramError> {
        if index > MAX_INDEX {
            return Err(HistogramError(format!(
                "bucket {index} is past the last ({MAX_INDEX})"
            )));
        }
        let slot = self.buckets.entry(index).or_insert(0);
        *slot = slot.saturating_add(count);
        Ok(())
    }

    /// The stored form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.buckets.len() * 6);
        for (i, c) in &self.buckets {
            out.extend_from_slice(&i.to_le_bytes());
            out.extend_from_slice(&c.to_le_bytes());
        }
        out
    }

    /// Reads the stored form.
    pub fn decode(bytes: &[u8]) -> Result<Self, HistogramError> {
        if !bytes.len().is_multiple_of(6) {
            return Err(HistogramError(format!(
                "{} bytes is not a whole number of buckets",
                bytes.len()
            )));
        }
        let mut h = Histogram::new();
        for chunk in bytes.chunks_exact(6) {
            let i = u16::from_le_bytes([chunk[0], chunk[1]]);
            let c = u32::from_le_bytes([chunk[2], chunk[3], chunk[4], chunk[5]]);
            h.add_bucket(i, c)?;
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
        let rank = ((q * sorted.len() as f64).ceil() as usize).max(1);
        sorted[rank - 1]
    }

    proptest! {
        #[test]
        fn quantiles_are_within_the_relative_error(
            values in proptest::collection::vec(0.02f64..1_000_000.0, 1..300),
            q in 0.0f64..=1.0,
        ) {
            let mut h = Histogram::new();
            for v in &values { h.record(*v); }
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            let exact = exact_quantile(&sorted, q);
            let got = h.quantile(q).unwrap();
            prop_assert!((got - exact).abs() <= exact * (RELATIVE_ERROR + 1e-6), "q={q} exact={exact} got={got}");
        }

        #[test]
        fn merging_equals_recording_everything_in_one(
            a in proptest::collection::vec(0.0f64..100_000.0, 0..100),
            b in proptest::collection::vec(0.0f64..100_000.0, 0..100),
        ) {
            let (mut ha, mut hb, mut all) = (Histogram::new(), Histogram::new(), Histogram::new());
            for v in &a { ha.record(*v); all.record(*v); }
            for v in &b { hb.record(*v); all.record(*v); }
            let mut ab = ha.clone();
            ab.merge(&hb);
            let mut ba = hb.clone();
            ba.merge(&ha);
            prop_assert_eq!(&ab, &all);
            prop_assert_eq!(&ba, &all);
            prop_assert_eq!(Histogram::decode(&ab.encode()).unwrap(), ab);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Histogram::decode(&bytes);
        }
    }

    #[test]
    fn edges() {
        let mut h = Histogram::new();
        assert_eq!(h.quantile(0.5), None);
        h.record(0.0);
        h.record(f64::NAN);
        h.record(1e12);
        assert_eq!(h.count(), 3);
        assert_eq!(h.quantile(0.0), Some(MIN_MS));
        assert!(h.quantile(1.0).unwrap() > 1e6);
        assert_eq!(h.encode().len(), 12);
        assert!(Histogram::decode(&[1, 2, 3]).is_err());
        assert!(Histogram::decode(&[0xff, 0xff, 1, 0, 0, 0]).is_err());
    }
}
