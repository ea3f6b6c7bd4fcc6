//! The spool as a whole: the model test (nothing lost, nothing twice, through sends, lost
//! acknowledgements, restarts and crashes) and what the shipper does with a refused batch. The
//! log's and the batcher's own cases are in [`log`] and [`batcher`].

use std::collections::HashMap;
use std::fs::OpenOptions;

use lookout_protocol::LogRecord;
use proptest::prelude::*;

use super::*;

mod batcher;
mod log;

fn cfg(dir: &Path, max_bytes: u64, segment_bytes: u64) -> SpoolConfig {
    SpoolConfig {
        dir: dir.to_path_buf(),
        max_bytes,
        segment_bytes,
        fsync: FsyncPolicy::Never,
        batch_bytes: 1 << 20,
        flush_interval: Duration::from_secs(1),
        steady_wait: Duration::from_secs(10),
    }
}

fn rec(i: u64) -> Record {
    Record::Log(LogRecord {
        time: chrono::DateTime::from_timestamp(1_790_000_000, 0).unwrap(),
        source: "t".into(),
        level: None,
        text: i.to_string(),
        position: None,
    })
}

fn id_of(r: &Record) -> u64 {
    match r {
        Record::Log(l) => l.text.parse().unwrap(),
        _ => unreachable!("the tests spool logs only"),
    }
}

/// What a collector would have stored: each batch id once.
#[derive(Default)]
struct Collector {
    batches: HashMap<String, Vec<u64>>,
    order: Vec<String>,
}

impl Collector {
    fn store(&mut self, b: &PendingBatch) {
        if !self.batches.contains_key(&b.batch_id) {
            self.order.push(b.batch_id.clone());
            self.batches
                .insert(b.batch_id.clone(), b.records.iter().map(id_of).collect());
        }
    }
    fn records(&self) -> Vec<u64> {
        self.order
            .iter()
            .flat_map(|id| self.batches[id].clone())
            .collect()
    }
}

#[derive(Debug, Clone)]
enum Op {
    Push(u8),
    /// Send a batch of at most n; the collector stores it; the ack arrives (or is lost).
    Send {
        max: u8,
        ack_arrives: bool,
    },
    /// Send fails: nothing stored.
    SendFails(u8),
    /// Stop and start again.
    Restart,
    /// kill -9 in the middle of writing the last record: its frame is torn.
    CrashTearingLast(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u8..20).prop_map(Op::Push),
        3 => (1u8..12, any::<bool>()).prop_map(|(max, ack_arrives)| Op::Send { max, ack_arrives }),
        1 => (1u8..12).prop_map(Op::SendFails),
        1 => Just(Op::Restart),
        1 => any::<u8>().prop_map(Op::CrashTearingLast),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Model: every record pushed is stored by the collector exactly once, in order, except a
    /// record whose write a crash tore; whatever the sends, failures, lost acks and restarts.
    #[test]
    fn nothing_lost_nothing_twice(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let config = cfg(dir.path(), 1 << 30, 600);
        let mut spool = Spool::open(config.clone()).unwrap();
        let mut collector = Collector::default();
        let mut pushed: Vec<u64> = Vec::new();
        let mut torn: Vec<u64> = Vec::new();
        let mut next = 0u64;
        for op in ops {
            match op {
                Op::Push(n) => for _ in 0..n {
                    spool.push(&rec(next));
                    pushed.push(next);
                    next += 1;
                },
                Op::Send { max, ack_arrives } => if let Some(b) = spool.next_batch(max as usize) {
                    collector.store(&b);
                    if ack_arrives { spool.ack(&b.batch_id); }
                },
                Op::SendFails(max) => { spool.next_batch(max as usize); }
                Op::Restart => { drop(spool); spool = Spool::open(config.clone()).unwrap(); }
                Op::CrashTearingLast(k) => {
                    drop(spool);
                    // A crash at an arbitrary byte offset within the newest records: cut k bytes
                    // off the last segment, and count the frames that no longer read whole.
                    // Only records nobody has stored yet can be torn: a stored record was
                    // written long before the crash.
                    let mut segs: Vec<_> = fs::read_dir(dir.path()).unwrap().filter_map(|e| e.ok()).map(|e| e.path())
                        .filter(|p| p.extension().is_some_and(|x| x == "seg")).collect();
                    segs.sort();
                    if let Some(last) = segs.last() {
                        let bytes = fs::read(last).unwrap();
                        let cut = (usize::from(k)).min(bytes.len());
                        let whole = frame::scan(&bytes).0.len();
                        let left = frame::scan(&bytes[..bytes.len() - cut]).0.len();
                        let lost = whole - left;
                        let stored = collector.records();
                        let tail = &pushed[pushed.len().saturating_sub(lost)..];
                        if lost <= pushed.len() && tail.iter().all(|p| !stored.contains(p)) {
                            OpenOptions::new().write(true).open(last).unwrap().set_len((bytes.len() - cut) as u64).unwrap();
                            for _ in 0..lost {
                                torn.push(pushed.pop().unwrap());
                            }
                        }
                    }
                    spool = Spool::open(config.clone()).unwrap();
                }
            }
        }
        // Drain.
        drop(spool);
        let spool = Spool::open(config).unwrap();
        while let Some(b) = spool.next_batch(7) {
            collector.store(&b);
            spool.ack(&b.batch_id);
        }
        // Fresh records may overtake a backlog: compare as sets, and nothing twice.
        let mut stored = collector.records();
        let n = stored.len();
        stored.sort();
        stored.dedup();
        prop_assert_eq!(stored.len(), n, "a record stored twice");
        prop_assert_eq!(stored, pushed.clone(), "torn: {:?}", torn);
        prop_assert_eq!(spool.backlog(), 0);
        prop_assert_eq!(spool.dropped(), 0);
    }
}

#[test]
fn a_refused_batch_is_set_aside_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(cfg(dir.path(), 1 << 20, 1 << 16)).unwrap();
    for i in 0..3 {
        spool.push(&rec(i));
    }
    let b = spool.next_batch(2).unwrap();
    spool.set_aside(&b, "collector refused the request (400): malformed batch");
    let kept: serde_json::Value = serde_json::from_slice(
        &fs::read(
            dir.path()
                .join("rejected")
                .join(format!("{}.json", b.batch_id)),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        kept["error"],
        "collector refused the request (400): malformed batch"
    );
    assert_eq!(kept["records"].as_array().unwrap().len(), 2);
    // What follows is not held up.
    let next = spool.next_batch(10).unwrap();
    assert_eq!(next.records.iter().map(id_of).collect::<Vec<_>>(), [2]);
}
