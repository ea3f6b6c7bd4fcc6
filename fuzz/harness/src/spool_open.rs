//! The spool's bookkeeping files as a real spool reads them at start: the legacy `inflight`
//! file (`<id> <first> <last>`, text), the legacy `acked` file and a `state.N` slot. The
//! `spool_acked` target feeds the decoders alone; this one follows what they decode into the
//! spool (the next sequence number, the batch taken back, what is left to send), where a
//! number no real spool writes (`u64::MAX`, a batch that ends before it starts) would do harm.

use lookout_agent::spool::acked::Acked;
use lookout_agent::spool::state::{self, InFlight};
use lookout_agent::spool::{FsyncPolicy, Spool, SpoolConfig};
use lookout_protocol::Record;

use crate::input::Input;
use crate::spool::{slot, with_crc};

/// The first byte chooses `n`, the records a real spool holds (0 to 8: byte % 9), and the file
/// the rest goes to (byte / 9 % 3): 0 the legacy `inflight` file as it is, 1 the legacy `acked`
/// file (with its CRC-32 appended, to get past it), 2 the `state.0` slot (with its magic,
/// length and CRC around it). The spool, its slots removed and that file written, is opened and
/// drained, each batch acknowledged, then one more record is written and drained.
///
/// Checked against what the file says, read here apart from the spool: every record it does not
/// call acknowledged is delivered exactly once and no other; when the batch in flight still
/// has records to send, the first batch is that one, under its id, with those records; a record
/// written after opening takes the number after every number the files name (or, with none
/// left below `u64::MAX`, is dropped and counted); and the spool, opened again, holds nothing.
pub fn spool_open(data: &[u8]) {
    static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    let dir = DIR
        .get_or_init(|| crate::scratch::process_dir("lookout-fuzz-spool-"))
        .join("spool");
    let _ = std::fs::remove_dir_all(&dir);
    let mut input = Input::new(data);
    let choice = input.byte();
    let n = u64::from(choice % 9);
    let file = input.rest();
    let cfg = || SpoolConfig {
        dir: dir.clone(),
        max_bytes: 1 << 20,
        segment_bytes: 1 << 20,
        fsync: FsyncPolicy::Never,
        batch_bytes: 1 << 20,
        flush_interval: std::time::Duration::from_secs(1),
        steady_wait: std::time::Duration::from_secs(10),
    };
    {
        let spool = Spool::open(cfg()).expect("the spool opens");
        for i in 1..=n {
            spool.push(&record(i));
        }
    }
    for old in ["state.0", "state.1"] {
        let _ = std::fs::remove_file(dir.join(old));
    }
    let (acked, flight) = match choice / 9 % 3 {
        0 => {
            std::fs::write(dir.join("inflight"), file).expect("the inflight file is written");
            (Acked::default(), legacy_in_flight(file))
        }
        1 => {
            let bytes = with_crc(file);
            std::fs::write(dir.join("acked"), &bytes).expect("the acked file is written");
            (Acked::decode(&bytes).unwrap_or_default(), None)
        }
        _ => {
            let bytes = slot(file);
            std::fs::write(dir.join("state.0"), &bytes).expect("the slot is written");
            state::decode(&bytes).map_or((Acked::default(), None), |(_, s)| (s.acked, s.in_flight))
        }
    };
    let left: Vec<u64> = (1..=n).filter(|i| !acked.contains(*i)).collect();
    // The next number follows every number used: written, acknowledged or in flight.
    let next = [n, acked.max(), flight.as_ref().map_or(0, |f| f.last)]
        .into_iter()
        .max()
        .unwrap_or(n)
        .saturating_add(1);
    let flight = flight.map(|f| {
        let records: Vec<u64> = left
            .iter()
            .copied()
            .filter(|i| (f.first..=f.last).contains(i))
            .collect();
        (f.id, records)
    });

    let spool = Spool::open(cfg()).expect("the spool opens");
    let mut delivered = Vec::new();
    let mut first = true;
    while let Some(batch) = spool.next_batch(3) {
        let records: Vec<u64> = batch.records.iter().map(number).collect();
        if first
            && let Some((id, of_flight)) = &flight
            && !of_flight.is_empty()
        {
            assert_eq!(
                (&batch.batch_id, &records),
                (id, of_flight),
                "the batch in flight"
            );
        }
        first = false;
        delivered.extend(records);
        spool.ack(&batch.batch_id);
        assert!(delivered.len() <= left.len(), "more delivered than left");
    }
    delivered.sort_unstable();
    assert_eq!(delivered, left, "each record left, once");

    // The numbering goes on from what the file said; when no number is left below u64::MAX
    // (only a damaged file says so), the record is dropped and counted.
    spool.push(&record(n + 1));
    if next < u64::MAX {
        let batch = spool
            .next_batch(3)
            .expect("the record written after opening");
        assert_eq!(
            batch.records.iter().map(number).collect::<Vec<_>>(),
            [n + 1]
        );
        assert!(
            batch.batch_id.ends_with(&format!("-{next}-{next}")),
            "{}",
            batch.batch_id
        );
        spool.ack(&batch.batch_id);
    } else {
        assert_eq!(spool.dropped(), 1);
        assert!(spool.next_batch(3).is_none());
    }
    drop(spool);
    let spool = Spool::open(cfg()).expect("the spool opens again");
    assert_eq!(spool.backlog(), 0);
    assert!(spool.next_batch(3).is_none());
}

/// The legacy `inflight` file's format, `<id> <first> <last>` separated by white space, read
/// apart from the spool's own reader.
fn legacy_in_flight(file: &[u8]) -> Option<InFlight> {
    let text = std::str::from_utf8(file).ok()?;
    let mut parts = text.split_whitespace();
    Some(InFlight {
        id: parts.next()?.to_string(),
        first: parts.next()?.parse().ok()?,
        last: parts.next()?.parse().ok()?,
    })
}

fn record(i: u64) -> Record {
    Record::Log(lookout_protocol::LogRecord {
        time: chrono::DateTime::from_timestamp(1_790_000_000, 0).expect("a time"),
        source: "fuzz".into(),
        level: None,
        text: i.to_string(),
        position: None,
    })
}

fn number(r: &Record) -> u64 {
    match r {
        Record::Log(l) => l.text.parse().expect("a record of this target"),
        other => panic!("a record this target did not write: {other:?}"),
    }
}
