use std::collections::HashMap;

use lookout_protocol::LogRecord;
use proptest::prelude::*;

use super::*;

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
fn a_full_spool_drops_the_oldest_and_counts_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(cfg(dir.path(), 2_000, 500)).unwrap();
    for i in 0..200 {
        spool.push(&rec(i));
    }
    assert!(spool.bytes() <= 2_000 + 500, "bounded: {}", spool.bytes());
    let mut got = Vec::new();
    while let Some(b) = spool.next_batch(50) {
        got.extend(b.records.iter().map(id_of));
        spool.ack(&b.batch_id);
    }
    // What was dropped is exactly what is missing, and it is the oldest.
    assert_eq!(got.len() as u64 + spool.dropped(), 200);
    assert!(spool.dropped() > 0);
    let first = got[0];
    assert_eq!(first, spool.dropped());
    assert_eq!(got, (first..200).collect::<Vec<_>>());
}

#[test]
fn a_corrupt_segment_is_skipped_with_the_rest_delivered() {
    let dir = tempfile::tempdir().unwrap();
    {
        let spool = Spool::open(cfg(dir.path(), 1 << 20, 400)).unwrap();
        for i in 0..40 {
            spool.push(&rec(i));
        }
    }
    let mut segs: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    assert!(segs.len() >= 3, "{segs:?}");
    // Scribble over the middle of the second segment.
    let mut bytes = fs::read(&segs[1]).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid..mid + 30].fill(0xAB);
    fs::write(&segs[1], &bytes).unwrap();
    let spool = Spool::open(cfg(dir.path(), 1 << 20, 400)).unwrap();
    let mut got = Vec::new();
    while let Some(b) = spool.next_batch(100) {
        got.extend(b.records.iter().map(id_of));
        spool.ack(&b.batch_id);
    }
    assert!(
        got.len() >= 37 && got.len() < 40,
        "one or two records lost, the rest kept: {got:?}"
    );
    assert!(got.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(*got.last().unwrap(), 39);
    // New records still go in after the damage.
    spool.push(&rec(40));
    assert_eq!(
        spool
            .next_batch(10)
            .unwrap()
            .records
            .iter()
            .map(id_of)
            .collect::<Vec<_>>(),
        [40]
    );
}

#[test]
fn an_unwritable_spool_drops_counts_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(cfg(dir.path(), 1 << 20, 1 << 20)).unwrap();
    spool.push(&rec(0));
    // The segment file vanishes and its folder becomes a file: writes fail.
    {
        let mut inner = spool.lock();
        inner.writer = None;
    }
    fs::remove_dir_all(dir.path()).unwrap();
    fs::write(dir.path(), b"not a folder").unwrap();
    spool.push(&rec(1));
    spool.push(&rec(2));
    assert_eq!(spool.dropped(), 2);
    fs::remove_file(dir.path()).unwrap();
    fs::create_dir_all(dir.path()).unwrap();
    spool.push(&rec(3));
    assert_eq!(spool.dropped(), 2, "writes again once the folder is back");
}

#[test]
fn the_batch_in_flight_survives_a_full_spool_and_is_not_counted_as_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(cfg(dir.path(), 2_000, 500)).unwrap();
    for i in 0..20 {
        spool.push(&rec(i));
    }
    // The collector is away: this batch is being retried while the spool overflows.
    let flying = spool.next_batch(10).unwrap();
    for i in 20..300 {
        spool.push(&rec(i));
    }
    assert!(spool.dropped() > 0);
    let mut got: Vec<u64> = flying.records.iter().map(id_of).collect();
    assert_eq!(
        spool.next_batch(10).unwrap().batch_id,
        flying.batch_id,
        "still the same batch"
    );
    spool.ack(&flying.batch_id);
    while let Some(b) = spool.next_batch(50) {
        got.extend(b.records.iter().map(id_of));
        spool.ack(&b.batch_id);
    }
    let mut unique = got.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), got.len(), "nothing twice: {got:?}");
    assert_eq!(
        got.len() as u64 + spool.dropped(),
        300,
        "delivered + dropped = produced"
    );
    assert_eq!(&got[..10], &(0..10).collect::<Vec<_>>()[..]);
    assert_eq!(spool.backlog(), 0);
}

#[test]
fn batches_are_bounded_by_bytes_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path(), 1 << 20, 1 << 16);
    c.batch_bytes = 1_000;
    let spool = Spool::open(c).unwrap();
    for i in 0..50 {
        spool.push(&rec(i));
    }
    let mut got = Vec::new();
    let mut batches = 0;
    while let Some(b) = spool.next_batch(1_000) {
        let size: usize = b
            .records
            .iter()
            .map(|r| serde_json::to_vec(r).unwrap().len())
            .sum();
        assert!(size <= 1_000, "{size} bytes in one batch");
        got.extend(b.records.iter().map(id_of));
        spool.ack(&b.batch_id);
        batches += 1;
    }
    assert_eq!(got, (0..50).collect::<Vec<_>>());
    let total: usize = (0..50)
        .map(|i| serde_json::to_vec(&rec(i)).unwrap().len())
        .sum();
    assert!(
        batches >= total.div_ceil(1_000),
        "{batches} batches for {total} bytes"
    );
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

#[test]
fn fresh_records_overtake_a_backlog() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(cfg(dir.path(), 1 << 20, 1 << 12)).unwrap();
    // An outage's backlog of 100 records, then the collector is back.
    for i in 0..100 {
        spool.push(&rec(i));
    }
    let first = spool.next_batch(10).unwrap();
    spool.ack(&first.batch_id);
    // Results produced now go out within the next two batches, not after the backlog.
    for i in 100..103 {
        spool.push(&rec(i));
    }
    let mut order = Vec::new();
    for _ in 0..2 {
        let b = spool.next_batch(10).unwrap();
        order.extend(b.records.iter().map(id_of));
        spool.ack(&b.batch_id);
    }
    assert!(order.contains(&100) && order.contains(&102), "{order:?}");
    // And the backlog still drains in full, nothing twice.
    let mut all: Vec<u64> = first.records.iter().map(id_of).chain(order).collect();
    while let Some(b) = spool.next_batch(10) {
        all.extend(b.records.iter().map(id_of));
        spool.ack(&b.batch_id);
    }
    all.sort();
    assert_eq!(all, (0..103).collect::<Vec<_>>());
}

#[test]
fn a_spool_from_before_the_state_files_keeps_its_acks_and_batch_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    {
        let spool = Spool::open(cfg(dir.path(), 1 << 20, 1 << 20)).unwrap();
        for i in 1..=6 {
            spool.push(&rec(i));
        }
    }
    // What the earlier version left: 1..=2 acknowledged, 3..=4 in flight as batch "old-3-4".
    let mut acked = acked::Acked::default();
    acked.insert(1, 2);
    for f in ["state.0", "state.1"] {
        fs::remove_file(dir.path().join(f)).unwrap();
    }
    fs::write(dir.path().join("acked"), acked.encode()).unwrap();
    fs::write(dir.path().join("inflight"), "old-3-4 3 4").unwrap();

    let spool = Spool::open(cfg(dir.path(), 1 << 20, 1 << 20)).unwrap();
    let b = spool.next_batch(10).unwrap();
    assert_eq!(b.batch_id, "old-3-4");
    assert_eq!(b.records.iter().map(id_of).collect::<Vec<_>>(), [3, 4]);
    assert!(!dir.path().join("acked").exists() && !dir.path().join("inflight").exists());
    spool.ack(&b.batch_id);
    drop(spool);
    // Reopened from the new files: only 5 and 6 are left.
    let spool = Spool::open(cfg(dir.path(), 1 << 20, 1 << 20)).unwrap();
    let b = spool.next_batch(10).unwrap();
    assert_eq!(b.records.iter().map(id_of).collect::<Vec<_>>(), [5, 6]);
}

#[test]
fn batches_read_a_window_at_a_time_lose_and_repeat_nothing_across_windows() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path(), 64 << 20, 1 << 20);
    c.batch_bytes = 6000;
    let spool = Spool::open(c).unwrap();
    let records: Vec<Record> = (0..6_000).map(rec).collect();
    for chunk in records.chunks(997) {
        spool.push_all(chunk, || {});
    }
    // A batch of 50 reads a window of its bytes, its frames' headers and 64 KiB. Records
    // acknowledged ahead of the rest (as fresh records overtaking a backlog leave them) fill
    // all of the window after record 1000 but 10 frames: the batch takes those 10, and the
    // window's end cuts the next frame in two; reading must go on from that frame's start.
    // (Records 1000 and up have 4-digit texts: frames of one size.) Record i is number i + 1.
    let frame_len = frame::HEADER + serde_json::to_vec(&rec(1000)).unwrap().len();
    let window = 6000 + 50 * frame::HEADER + (64 << 10);
    let acked = (window / frame_len - 10) as u64;
    spool.lock().acked.insert(1001, 1000 + acked);
    let mut got = Vec::new();
    while let Some(b) = spool.next_batch(50) {
        got.extend(b.records.iter().map(id_of));
        spool.ack(&b.batch_id);
    }
    got.sort_unstable();
    let want: Vec<u64> = (0..1000).chain(1000 + acked..6_000).collect();
    assert_eq!(got, want);
}

/// How long from now until the spool's next batch is due; `None` when nothing waits.
fn due_in(spool: &Spool) -> Option<Duration> {
    spool
        .due()
        .map(|at| at.saturating_duration_since(tokio::time::Instant::now()))
}

#[test]
fn each_record_is_due_by_its_own_deadline_and_the_earliest_decides() {
    let dir = tempfile::tempdir().unwrap();
    // flush_interval 1 s, steady_wait 10 s.
    let spool = Spool::open(cfg(dir.path(), 1 << 20, 1 << 20)).unwrap();
    assert_eq!(spool.due(), None, "an empty spool is never due");
    let near = |d: Option<Duration>, want: Duration| {
        let d = d.expect("something is due");
        assert!(
            d <= want && d + Duration::from_millis(500) > want,
            "due in {d:?}, wanted {want:?}"
        );
    };
    // A steady result of a 30 s check waits steady_wait; of a 4 s check, its interval; of a
    // check faster than the flush interval, the flush interval.
    spool.push_steady(&rec(0), Duration::from_secs(30));
    near(due_in(&spool), Duration::from_secs(10));
    spool.push_steady(&rec(1), Duration::from_secs(4));
    near(due_in(&spool), Duration::from_secs(4));
    spool.push_steady(&rec(2), Duration::from_millis(100));
    near(due_in(&spool), Duration::from_secs(1));
    // A later steady record does not push the deadline back.
    spool.push_steady(&rec(3), Duration::from_secs(30));
    near(due_in(&spool), Duration::from_secs(1));
    // A change of state is due at once; the batch takes everything written.
    spool.push_urgent(&rec(4));
    assert_eq!(due_in(&spool), Some(Duration::ZERO));
    let b = spool.next_batch(100).unwrap();
    assert_eq!(
        b.records.iter().map(id_of).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    // While the batch is unacknowledged it is due again at once (a retry)...
    assert_eq!(due_in(&spool), Some(Duration::ZERO));
    spool.ack(&b.batch_id);
    // ...and once it is stored, nothing waits.
    assert_eq!(spool.due(), None);
    // A plain record waits the flush interval.
    spool.push(&rec(5));
    near(due_in(&spool), Duration::from_secs(1));
}

#[test]
fn what_a_full_batch_leaves_behind_is_due_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(cfg(dir.path(), 1 << 20, 1 << 20)).unwrap();
    for i in 0..5 {
        spool.push_steady(&rec(i), Duration::from_secs(30));
    }
    let b = spool.next_batch(3).unwrap();
    spool.ack(&b.batch_id);
    assert_eq!(due_in(&spool), Some(Duration::ZERO), "two records left");
    let b = spool.next_batch(3).unwrap();
    assert_eq!(b.records.iter().map(id_of).collect::<Vec<_>>(), [3, 4]);
    spool.ack(&b.batch_id);
    assert_eq!(spool.due(), None);
    // Records a previous run left unsent are due at once after a restart.
    spool.push_steady(&rec(5), Duration::from_secs(30));
    drop(spool);
    let spool = Spool::open(cfg(dir.path(), 1 << 20, 1 << 20)).unwrap();
    assert_eq!(due_in(&spool), Some(Duration::ZERO));
}
