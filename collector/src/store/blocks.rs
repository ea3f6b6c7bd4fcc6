//! Metric samples are stored in blocks (`metric_sample_blocks`, schema v9): the samples of one
//! stored batch of one agent, in order of series and time, packed into one value. A sample is
//! then a few bytes of a row instead of a row and two index entries: the writer's b-tree work
//! per sample was what held ingest near 500,000 samples a second (docs/performance.md).
//!
//! A block reads back whole. The roll-up step reads each new block once; a query for one
//! metric of one agent reads that agent's blocks of the window (`(agent, max_time_ms)`
//! index) and keeps the samples of the metric's series. Retention deletes a block once its
//! newest sample is past the cutoff and rewrites one that straddles the cutoff without its old
//! samples (an agent's backlog, sent after an outage, mixes old and new).
//!
//! Format: a version byte, `1`, then a zstd frame of: the count (u32), the series ids as
//! differences from the previous (i64 each), the times in ms likewise, then the values (f64),
//! all little-endian. Differences of sorted series and of one batch's times are mostly 0 and
//! small numbers, which zstd shrinks to a bit or two a sample.

use super::StoreError;
use super::rollup::RawSample;

const FORMAT: u8 = 1;
/// The most samples a block holds: a batch with more is stored as several blocks
/// ([`super::sql::GroupRows::split`]). It bounds what reading one block takes (2.4 MB), and
/// what this build accepts when it reads one back.
pub const MAX_SAMPLES: usize = 100_000;
/// A block's largest size decompressed.
const MAX_RAW: usize = 4 + 24 * MAX_SAMPLES;
/// zstd's fastest level: the writer thread compresses every block.
const LEVEL: i32 = 1;

/// A block ready to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    /// Its oldest sample's time, Unix ms.
    pub min_time_ms: i64,
    /// Its newest sample's time, Unix ms.
    pub max_time_ms: i64,
    /// How many samples it holds.
    pub samples: i64,
    /// The encoded samples.
    pub data: Vec<u8>,
}

impl Block {
    /// Packs `samples` (at least one, at most [`MAX_SAMPLES`]), which are sorted here by series
    /// and time, stably.
    pub fn pack(samples: &mut [RawSample]) -> Result<Self, StoreError> {
        let n = samples.len();
        if n > MAX_SAMPLES {
            return Err(StoreError::Corrupt(format!(
                "a sample block of {n} samples: at most {MAX_SAMPLES} go in one"
            )));
        }
        samples.sort_by_key(|s| (s.series, s.time_ms));
        let mut raw = Vec::with_capacity(4 + 24 * n);
        raw.extend_from_slice(&(n as u32).to_le_bytes());
        let mut prev = 0i64;
        for s in samples.iter() {
            raw.extend_from_slice(&s.series.wrapping_sub(prev).to_le_bytes());
            prev = s.series;
        }
        let mut prev = 0i64;
        for s in samples.iter() {
            raw.extend_from_slice(&s.time_ms.wrapping_sub(prev).to_le_bytes());
            prev = s.time_ms;
        }
        for s in samples.iter() {
            raw.extend_from_slice(&s.value.to_le_bytes());
        }
        let mut data = vec![FORMAT];
        data.extend(
            zstd::bulk::compress(&raw, LEVEL)
                .map_err(|e| StoreError::Corrupt(format!("compressing a sample block: {e}")))?,
        );
        Ok(Self {
            min_time_ms: samples.iter().map(|s| s.time_ms).min().unwrap_or(0),
            max_time_ms: samples.iter().map(|s| s.time_ms).max().unwrap_or(0),
            samples: n as i64,
            data,
        })
    }
}

/// The samples of stored block `id`, in order of series and time.
pub fn unpack(id: i64, data: &[u8]) -> Result<Vec<RawSample>, StoreError> {
    let corrupt = |why: String| {
        StoreError::Corrupt(format!(
            "metric sample block {id} (metric_sample_blocks.id): {why}"
        ))
    };
    let Some((&format, frame)) = data.split_first() else {
        return Err(corrupt("empty".into()));
    };
    if format != FORMAT {
        return Err(corrupt(format!(
            "format {format}, this build reads {FORMAT}"
        )));
    }
    let raw = decompress(frame).map_err(|e| corrupt(e.to_string()))?;
    let (count, rest) = raw
        .split_first_chunk::<4>()
        .ok_or_else(|| corrupt("no count".into()))?;
    let n = u32::from_le_bytes(*count) as usize;
    if rest.len() != 24 * n {
        return Err(corrupt(format!(
            "{} bytes for {n} samples, expected {}",
            rest.len(),
            24 * n
        )));
    }
    let word = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&rest[8 * i..8 * i + 8]);
        b
    };
    let (mut series, mut time_ms) = (0i64, 0i64);
    Ok((0..n)
        .map(|i| {
            series = series.wrapping_add(i64::from_le_bytes(word(i)));
            time_ms = time_ms.wrapping_add(i64::from_le_bytes(word(n + i)));
            RawSample {
                series,
                time_ms,
                value: f64::from_le_bytes(word(2 * n + i)),
            }
        })
        .collect())
}

/// The new samples one roll-up step takes, block by block. A step's cost is its rollup rows,
/// one per series and minute (and hour), not its samples: a flood's block of 5,000 samples of
/// 150 series makes 300, a fleet's block of 150 samples 300 too. So a step is bounded by the
/// per-minute rows it makes (`max_rows`), and by samples only far beyond that, for memory;
/// bounded by samples, the roll-up fell behind a flood of 1,000,000 samples a second.
#[derive(Debug)]
pub struct StepSamples {
    /// The samples taken.
    pub raw: Vec<RawSample>,
    minutes: std::collections::HashSet<(i64, i64)>,
    max_rows: usize,
}

impl StepSamples {
    /// Samples past a step's cursor, up to `max_rows` per-minute rollup rows.
    pub fn new(max_rows: u32) -> Self {
        Self {
            raw: Vec::new(),
            minutes: Default::default(),
            max_rows: max_rows.max(1) as usize,
        }
    }

    /// Whether the step has taken enough; a step takes at least one block, and whole blocks,
    /// so it may pass either bound by up to a block.
    pub fn full(&self) -> bool {
        self.minutes.len() >= self.max_rows || self.raw.len() >= 20 * self.max_rows
    }

    /// Takes the samples of stored block `id`.
    pub fn take(&mut self, id: i64, data: &[u8]) -> Result<(), StoreError> {
        let samples = unpack(id, data)?;
        self.minutes.extend(samples.iter().map(|s| {
            (
                s.series,
                super::rollup::bucket_start(s.time_ms, super::Tier::Minute.width_ms()),
            )
        }));
        self.raw.extend(samples);
        Ok(())
    }
}

/// Decompresses a block's frame (which records its size) with a context kept per thread: a new
/// context per block cost more than the decompression of a block of 160 samples.
fn decompress(frame: &[u8]) -> std::io::Result<Vec<u8>> {
    thread_local! {
        static CONTEXT: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    let size = match zstd::zstd_safe::get_frame_content_size(frame) {
        Ok(Some(size)) if size <= MAX_RAW as u64 => size as usize,
        Ok(Some(size)) => {
            return Err(std::io::Error::other(format!(
                "{size} bytes decompressed, over the {MAX_RAW} of {MAX_SAMPLES} samples"
            )));
        }
        Ok(None) => return Err(std::io::Error::other("the frame does not record its size")),
        Err(_) => return Err(std::io::Error::other("not a zstd frame")),
    };
    CONTEXT.with(|cell| {
        let mut cell = cell.borrow_mut();
        let context = match &mut *cell {
            Some(c) => c,
            None => cell.insert(zstd::bulk::Decompressor::new()?),
        };
        context.decompress(frame, size)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(s: &RawSample) -> (i64, i64, u64) {
        (s.series, s.time_ms, s.value.to_bits())
    }

    proptest! {
        #[test]
        fn a_block_gives_back_its_samples_in_order(
            rows in proptest::collection::vec((any::<i64>(), any::<i64>(), any::<f64>()), 1..300),
        ) {
            let mut samples: Vec<RawSample> = rows
                .iter()
                .map(|&(series, time_ms, value)| RawSample { series, time_ms, value })
                .collect();
            let block = Block::pack(&mut samples).unwrap();
            let back = unpack(1, &block.data).unwrap();
            prop_assert_eq!(back.iter().map(key).collect::<Vec<_>>(),
                samples.iter().map(key).collect::<Vec<_>>());
            prop_assert!(back.windows(2).all(|w| (w[0].series, w[0].time_ms) <= (w[1].series, w[1].time_ms)));
            prop_assert_eq!(block.samples, rows.len() as i64);
            prop_assert_eq!(block.min_time_ms, rows.iter().map(|r| r.1).min().unwrap());
            prop_assert_eq!(block.max_time_ms, rows.iter().map(|r| r.1).max().unwrap());
        }
    }

    #[test]
    fn a_damaged_block_is_refused_with_the_reason() {
        let mut samples = vec![RawSample {
            series: 7,
            time_ms: 1_000,
            value: 1.5,
        }];
        let block = Block::pack(&mut samples).unwrap();
        let err = unpack(42, &[]).unwrap_err().to_string();
        assert!(err.contains("block 42") && err.contains("empty"), "{err}");
        let mut other = block.data.clone();
        other[0] = 9;
        let err = unpack(1, &other).unwrap_err().to_string();
        assert!(err.contains("format 9"), "{err}");
        let err = unpack(1, &block.data[..block.data.len() - 3])
            .unwrap_err()
            .to_string();
        assert!(err.contains("metric sample block"), "{err}");
        let mut short = vec![FORMAT];
        short.extend(zstd::bulk::compress(&[1, 0, 0, 0, 5], 1).unwrap());
        let err = unpack(1, &short).unwrap_err().to_string();
        assert!(err.contains("1 bytes for 1 samples"), "{err}");
        let mut streamed = vec![FORMAT];
        let mut encoder = zstd::stream::Encoder::new(Vec::new(), 1).unwrap();
        encoder.include_contentsize(false).unwrap();
        std::io::Write::write_all(&mut encoder, &[0u8; 4]).unwrap();
        streamed.extend(encoder.finish().unwrap());
        let err = unpack(1, &streamed).unwrap_err().to_string();
        assert!(err.contains("does not record its size"), "{err}");
        let err = unpack(1, &[FORMAT, 1, 2, 3, 4, 5]).unwrap_err().to_string();
        assert!(err.contains("not a zstd frame"), "{err}");
        let mut huge = vec![FORMAT];
        huge.extend(zstd::bulk::compress(&vec![0u8; MAX_RAW + 1], 1).unwrap());
        let err = unpack(1, &huge).unwrap_err().to_string();
        assert!(err.contains("over the"), "{err}");
        let mut too_many = vec![
            RawSample {
                series: 1,
                time_ms: 0,
                value: 0.0
            };
            MAX_SAMPLES + 1
        ];
        let err = Block::pack(&mut too_many).unwrap_err().to_string();
        assert!(err.contains("at most 100000"), "{err}");
    }

    #[test]
    fn a_step_is_bounded_by_the_rollup_rows_it_makes() {
        let block = |series: std::ops::Range<i64>, per_series: i64| {
            let mut samples: Vec<RawSample> = series
                .flat_map(|s| {
                    (0..per_series).map(move |i| RawSample {
                        series: s,
                        time_ms: i * 100,
                        value: 1.0,
                    })
                })
                .collect();
            Block::pack(&mut samples).unwrap().data
        };
        // 10 series of 100 samples in one minute: 10 rollup rows of a step of 100.
        let mut step = StepSamples::new(100);
        step.take(1, &block(0..10, 100)).unwrap();
        assert!(!step.full(), "1,000 samples, 10 rows");
        step.take(1, &block(10..110, 1)).unwrap();
        assert!(step.full(), "110 rows");
        assert_eq!(step.raw.len(), 1_100);
        // Samples bound it too: 20 times the rows.
        let mut step = StepSamples::new(100);
        step.take(1, &block(0..1, 1_999)).unwrap();
        assert!(!step.full());
        step.take(1, &block(1..2, 1)).unwrap();
        assert!(step.full());
    }

    /// A host's samples of one batch (many series, one time) take a few bytes each.
    #[test]
    fn a_batch_of_host_metrics_packs_small() {
        let mut samples: Vec<RawSample> = (0..150)
            .map(|i| RawSample {
                series: 1_000 + i,
                time_ms: 1_764_000_000_000,
                value: (i % 7) as f64,
            })
            .collect();
        let block = Block::pack(&mut samples).unwrap();
        assert!(block.data.len() < 150 * 4, "{} bytes", block.data.len());
    }
}
