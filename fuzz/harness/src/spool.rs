//! The agent's spool files, damaged: segment files of frames ([`frame`]), and the
//! acknowledgement bookkeeping (the legacy `acked` file and the `state.N` slots, [`acked`]).
//! A crash, a full disk or another program can leave any bytes there; the agent reads them at
//! start.

use lookout_agent::spool::acked::Acked;
use lookout_agent::spool::frame;
use lookout_agent::spool::state;
use lookout_protocol::Record;

/// A segment file: every valid frame found, in order, inside the file, not overlapping, the
/// skipped bytes counted exactly; each payload read as a record, as the spool does. Every
/// frame found encodes back to the bytes it was read from.
pub fn frame(data: &[u8]) {
    let (frames, skipped) = frame::scan(data);
    let mut at = 0;
    let mut covered = 0;
    for f in &frames {
        assert!(f.offset >= at, "frames in order, not overlapping");
        assert!(f.end() <= data.len());
        assert_eq!(frame::encode(f.seq, f.payload), &data[f.offset..f.end()]);
        covered += f.end() - f.offset;
        at = f.end();
        let _ = serde_json::from_slice::<Record>(f.payload);
    }
    assert_eq!(
        covered + skipped,
        data.len(),
        "every byte is a frame's or skipped"
    );
}

/// The `acked` file and a state slot. The bytes are read as they are, and again with their
/// CRC-32 appended (or, for the slot, with its magic, length and CRC around them), so the
/// fuzzer reaches past the checksums. What reads must encode to a form that reads back the same.
pub fn acked(data: &[u8]) {
    for bytes in [data.to_vec(), with_crc(data)] {
        if let Some(a) = Acked::decode(&bytes) {
            let _ = (a.max(), a.contains(a.max()), a.covers(1, a.max()));
            assert_eq!(Acked::decode(&a.encode()).as_ref(), Some(&a));
            let mut more = a.clone();
            more.insert(a.max(), a.max().saturating_add(3));
            more.advance_to(a.max());
        }
    }
    for bytes in [data.to_vec(), slot(data)] {
        let _ = state::decode(&bytes);
    }
}

/// `body` with its CRC-32 appended, as the `acked` file ends.
pub(crate) fn with_crc(body: &[u8]) -> Vec<u8> {
    let mut out = body.to_vec();
    out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    out
}

/// A state slot around `body`: magic, length, the body and its CRC-32.
pub(crate) fn slot(body: &[u8]) -> Vec<u8> {
    let mut out = b"LKS1".to_vec();
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&with_crc(body));
    out
}
