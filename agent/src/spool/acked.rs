//! Which sequence numbers the collector has stored: every number up to a prefix, plus ranges
//! above it (batches of fresh records are sent ahead of an older backlog, so acknowledgements
//! arrive out of order). Ranges merge into the prefix as the gaps close.
//!
//! Stored form (the `acked` file): `u64` prefix, `u32` range count, then each range as `u64`
//! first and `u64` last, then a CRC-32 of all that; little-endian.

use std::collections::BTreeMap;

/// Acknowledged sequence numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acked {
    prefix: u64,
    /// first -> last, disjoint, not adjacent to each other or to the prefix, all above it.
    above: BTreeMap<u64, u64>,
}

impl Acked {
    /// True when `seq` is acknowledged.
    pub fn contains(&self, seq: u64) -> bool {
        seq <= self.prefix
            || self
                .above
                .range(..=seq)
                .next_back()
                .is_some_and(|(_, last)| seq <= *last)
    }

    /// True when every number in `first..=last` is acknowledged.
    pub fn covers(&self, first: u64, last: u64) -> bool {
        if last <= self.prefix {
            return true;
        }
        let from = first.max(self.prefix + 1);
        self.above
            .range(..=from)
            .next_back()
            .is_some_and(|(_, end)| last <= *end)
    }

    /// The highest number acknowledged.
    pub fn max(&self) -> u64 {
        self.above
            .values()
            .next_back()
            .copied()
            .unwrap_or(self.prefix)
    }

    /// Acknowledges `first..=last`.
    pub fn insert(&mut self, first: u64, last: u64) {
        if last <= self.prefix || first > last {
            return;
        }
        let (mut lo, mut hi) = (first.max(self.prefix + 1), last);
        // Absorb every range that overlaps or touches [lo, hi].
        let touching: Vec<(u64, u64)> = self
            .above
            .range(..=hi.saturating_add(1))
            .filter(|(s, e)| e.saturating_add(1) >= lo && **s <= hi.saturating_add(1))
            .map(|(s, e)| (*s, *e))
            .collect();
        for (s, e) in touching {
            self.above.remove(&s);
            lo = lo.min(s);
            hi = hi.max(e);
        }
        self.above.insert(lo, hi);
        self.merge_prefix();
    }

    /// Everything up to `seq` is settled (acknowledged or dropped for good).
    pub fn advance_to(&mut self, seq: u64) {
        if seq <= self.prefix {
            return;
        }
        self.prefix = seq;
        let below: Vec<u64> = self.above.range(..=seq).map(|(s, _)| *s).collect();
        for s in below {
            if let Some(e) = self.above.remove(&s)
                && e > seq
            {
                self.above.insert(seq + 1, e);
            }
        }
        self.merge_prefix();
    }

    fn merge_prefix(&mut self) {
        // A damaged file can hold a range that ends at u64::MAX: nothing is above it.
        while let Some(next) = self.prefix.checked_add(1)
            && let Some(e) = self.above.remove(&next)
        {
            self.prefix = e;
        }
    }

    /// The stored form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.above.len() * 16);
        out.extend_from_slice(&self.prefix.to_le_bytes());
        out.extend_from_slice(&(self.above.len() as u32).to_le_bytes());
        for (s, e) in &self.above {
            out.extend_from_slice(&s.to_le_bytes());
            out.extend_from_slice(&e.to_le_bytes());
        }
        out.extend_from_slice(&crc32fast::hash(&out).to_le_bytes());
        out
    }

    /// Reads the stored form; `None` when it is damaged.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let (body, crc) = bytes.split_at(bytes.len().checked_sub(4)?);
        if crc32fast::hash(body).to_le_bytes() != crc {
            return None;
        }
        let u64_at = |i: usize| {
            body.get(i..i + 8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes)
        };
        let prefix = u64_at(0)?;
        let n = u32::from_le_bytes(body.get(8..12)?.try_into().ok()?) as usize;
        if body.len() != 12 + n * 16 {
            return None;
        }
        let mut a = Acked {
            prefix,
            above: BTreeMap::new(),
        };
        for k in 0..n {
            a.insert(u64_at(12 + k * 16)?, u64_at(20 + k * 16)?);
        }
        Some(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    proptest! {
        #[test]
        fn behaves_like_a_set_of_numbers(ops in proptest::collection::vec((any::<bool>(), 1u64..60, 0u64..8), 0..40)) {
            let mut a = Acked::default();
            let mut model: BTreeSet<u64> = BTreeSet::new();
            for (advance, x, len) in ops {
                if advance {
                    a.advance_to(x);
                    model.extend(1..=x);
                } else {
                    a.insert(x, x + len);
                    model.extend(x..=x + len);
                }
                for s in 1..80 {
                    prop_assert_eq!(a.contains(s), model.contains(&s), "seq {}", s);
                }
                for f in 1..70 {
                    for l in f..f + 10 {
                        prop_assert_eq!(a.covers(f, l), (f..=l).all(|s| model.contains(&s)), "{}..={}", f, l);
                    }
                }
                let prefix = (1..).take_while(|s| model.contains(s)).last().unwrap_or(0);
                prop_assert_eq!(a.prefix, prefix);
                prop_assert_eq!(Acked::decode(&a.encode()), Some(a.clone()));
            }
        }
    }

    #[test]
    fn damaged_bytes_are_refused() {
        let mut a = Acked::default();
        a.insert(5, 9);
        let mut b = a.encode();
        b[3] ^= 1;
        assert_eq!(Acked::decode(&b), None);
        assert_eq!(Acked::decode(&[1, 2]), None);
    }
}
