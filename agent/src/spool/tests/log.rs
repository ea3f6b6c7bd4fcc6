//! The log: bounds, damage, an unwritable folder, spools written by earlier versions.

use std::fs;

use super::*;

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
        inner.log.writer = None;
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
fn bookkeeping_that_names_numbers_near_u64_max_does_not_overflow() {
    // A damaged (or hostile) legacy spool: 1..=2 acknowledged and everything from 5 up to
    // u64::MAX, a batch in flight from 3 to u64::MAX. No spool numbers that far: reading it must
    // not overflow, the batch in flight is still sent, and a record that can no longer be
    // numbered is dropped and counted, never given a number already used.
    let dir = tempfile::tempdir().unwrap();
    {
        let spool = Spool::open(cfg(dir.path(), 1 << 20, 1 << 20)).unwrap();
        for i in 1..=4 {
            spool.push(&rec(i));
        }
    }
    let mut acked = acked::Acked::default();
    acked.insert(1, 2);
    acked.insert(5, u64::MAX);
    for f in ["state.0", "state.1"] {
        fs::remove_file(dir.path().join(f)).unwrap();
    }
    fs::write(dir.path().join("acked"), acked.encode()).unwrap();
    fs::write(
        dir.path().join("inflight"),
        format!("e-3-max 3 {}", u64::MAX),
    )
    .unwrap();

    let spool = Spool::open(cfg(dir.path(), 1 << 20, 1 << 20)).unwrap();
    let b = spool.next_batch(10).unwrap();
    assert_eq!(b.batch_id, "e-3-max");
    assert_eq!(b.records.iter().map(id_of).collect::<Vec<_>>(), [3, 4]);
    spool.ack(&b.batch_id);
    spool.push(&rec(5));
    assert!(spool.next_batch(10).is_none());
    assert_eq!(spool.dropped(), 1);
    drop(spool);
    let spool = Spool::open(cfg(dir.path(), 1 << 20, 1 << 20)).unwrap();
    assert_eq!(spool.backlog(), 0);

    // Two numbers left below u64::MAX: one record is numbered, the next is dropped.
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("inflight"),
        format!("e-near 1 {}", u64::MAX - 2),
    )
    .unwrap();
    let spool = Spool::open(cfg(dir.path(), 1 << 20, 1 << 20)).unwrap();
    spool.push(&rec(1));
    spool.push(&rec(2));
    assert_eq!(spool.dropped(), 1);
    let b = spool.next_batch(10).unwrap();
    assert_eq!(b.records.iter().map(id_of).collect::<Vec<_>>(), [1]);
    assert!(
        b.batch_id.ends_with(&format!("-{0}-{0}", u64::MAX - 1)),
        "{}",
        b.batch_id
    );
    spool.ack(&b.batch_id);
    drop(spool);
    let spool = Spool::open(cfg(dir.path(), 1 << 20, 1 << 20)).unwrap();
    assert_eq!(spool.backlog(), 0);
    assert!(spool.next_batch(10).is_none());
}

/// A frame as the format says, built by hand (not with [`frame::encode`]), so that a drift of
/// the encoder from what earlier versions wrote fails here.
fn frame_by_hand(seq: u64, record: &Record) -> Vec<u8> {
    let payload = serde_json::to_vec(record).unwrap();
    let mut out = b"LKS1".to_vec();
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&out[4..16]);
    crc.update(&payload);
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

/// A state slot as the format says, built by hand: acknowledged up to `prefix` and the ranges
/// `above`, and the batch in flight.
fn slot_by_hand(
    generation: u64,
    prefix: u64,
    above: &[(u64, u64)],
    flight: (&str, u64, u64),
) -> Vec<u8> {
    let mut acked = prefix.to_le_bytes().to_vec();
    acked.extend_from_slice(&(above.len() as u32).to_le_bytes());
    for (first, last) in above {
        acked.extend_from_slice(&first.to_le_bytes());
        acked.extend_from_slice(&last.to_le_bytes());
    }
    let crc = crc32fast::hash(&acked);
    acked.extend_from_slice(&crc.to_le_bytes());
    let mut body = generation.to_le_bytes().to_vec();
    body.extend_from_slice(&(acked.len() as u32).to_le_bytes());
    body.extend_from_slice(&acked);
    body.push(1);
    body.extend_from_slice(&flight.1.to_le_bytes());
    body.extend_from_slice(&flight.2.to_le_bytes());
    body.extend_from_slice(&(flight.0.len() as u16).to_le_bytes());
    body.extend_from_slice(flight.0.as_bytes());
    let mut out = b"LKS1".to_vec();
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out
}

#[test]
fn a_spool_in_the_documented_layout_is_read_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    // Two segments named by their first number; the second ends in a torn frame.
    let first: Vec<u8> = (1..=5).flat_map(|i| frame_by_hand(i, &rec(i))).collect();
    fs::write(dir.path().join("00000000000000000001.seg"), first).unwrap();
    let mut second: Vec<u8> = (6..=8).flat_map(|i| frame_by_hand(i, &rec(i))).collect();
    let torn = frame_by_hand(9, &rec(9));
    second.extend_from_slice(&torn[..torn.len() - 3]);
    fs::write(dir.path().join("00000000000000000006.seg"), second).unwrap();
    // 1 and 2 stored, and 7 ahead of them; 3..=4 in flight as batch "old-3-4". The older slot
    // holds less, and must lose to the newer generation.
    fs::write(
        dir.path().join("state.0"),
        slot_by_hand(8, 1, &[], ("older-2-2", 2, 2)),
    )
    .unwrap();
    fs::write(
        dir.path().join("state.1"),
        slot_by_hand(9, 2, &[(7, 7)], ("old-3-4", 3, 4)),
    )
    .unwrap();

    let spool = Spool::open(cfg(dir.path(), 1 << 20, 1 << 20)).unwrap();
    assert_eq!(spool.backlog(), 5, "3, 4, 5, 6 and 8 wait");
    let b = spool.next_batch(10).unwrap();
    assert_eq!(b.batch_id, "old-3-4");
    assert_eq!(b.records.iter().map(id_of).collect::<Vec<_>>(), [3, 4]);
    spool.ack(&b.batch_id);
    // The torn record's number is free again (it never went out), and new records follow.
    spool.push(&rec(100));
    let b = spool.next_batch(10).unwrap();
    assert_eq!(
        b.records.iter().map(id_of).collect::<Vec<_>>(),
        [5, 6, 8, 100]
    );
    assert!(b.batch_id.ends_with("-5-9"), "{}", b.batch_id);
    spool.ack(&b.batch_id);
    assert_eq!(spool.backlog(), 0);
    // The torn tail was cut, so the new frame follows the valid ones.
    let bytes = fs::read(dir.path().join("00000000000000000006.seg")).unwrap();
    let (frames, skipped) = frame::scan(&bytes);
    assert_eq!(skipped, 0);
    assert_eq!(
        frames.iter().map(|f| f.seq).collect::<Vec<_>>(),
        [6, 7, 8, 9]
    );
}
