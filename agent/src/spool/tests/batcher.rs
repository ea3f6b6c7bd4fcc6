//! The batcher: batch bounds, the backlog/fresh alternation, windows, deadlines.

use super::*;

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
    spool.lock().log.acked.insert(1001, 1000 + acked);
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
    spool.push_as(&rec(0), Haste::Steady(Duration::from_secs(30)));
    near(due_in(&spool), Duration::from_secs(10));
    spool.push_as(&rec(1), Haste::Steady(Duration::from_secs(4)));
    near(due_in(&spool), Duration::from_secs(4));
    spool.push_as(&rec(2), Haste::Steady(Duration::from_millis(100)));
    near(due_in(&spool), Duration::from_secs(1));
    // A later steady record does not push the deadline back.
    spool.push_as(&rec(3), Haste::Steady(Duration::from_secs(30)));
    near(due_in(&spool), Duration::from_secs(1));
    // A change of state is due at once; the batch takes everything written.
    spool.push_as(&rec(4), Haste::AtOnce);
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
        spool.push_as(&rec(i), Haste::Steady(Duration::from_secs(30)));
    }
    let b = spool.next_batch(3).unwrap();
    spool.ack(&b.batch_id);
    assert_eq!(due_in(&spool), Some(Duration::ZERO), "two records left");
    let b = spool.next_batch(3).unwrap();
    assert_eq!(b.records.iter().map(id_of).collect::<Vec<_>>(), [3, 4]);
    spool.ack(&b.batch_id);
    assert_eq!(spool.due(), None);
    // Records a previous run left unsent are due at once after a restart.
    spool.push_as(&rec(5), Haste::Steady(Duration::from_secs(30)));
    drop(spool);
    let spool = Spool::open(cfg(dir.path(), 1 << 20, 1 << 20)).unwrap();
    assert_eq!(due_in(&spool), Some(Duration::ZERO));
}
