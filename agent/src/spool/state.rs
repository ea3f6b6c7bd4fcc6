//! The spool's bookkeeping on disk: which records the collector has stored ([`Acked`]) and the
//! batch in flight, kept in two slot files (`state.0`, `state.1`) that are overwritten in place
//! by turns.
//!
//! Overwriting an open file in place costs one `pwrite` (plus `fdatasync` when asked), where
//! replacing a file by rename costs a create, a rename and two syncs: this runs once per batch
//! sent and once per acknowledgement, so it is most of the agent's steady-state disk work.
//! A write torn by a power failure only damages the slot being written; the other slot still
//! holds the state before it, and reading takes the valid slot with the higher generation.
//!
//! Slot form: `LKS1`, `u32` length of the body, then the body: `u64` generation, `u32` length
//! and bytes of [`Acked::encode`], `u8` 1 when a batch is in flight followed by `u64` first,
//! `u64` last, `u16` id length and the id; then a CRC-32 of the body. Little-endian. Bytes past
//! the end (from a longer earlier state) are ignored.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use super::acked::Acked;

const MAGIC: &[u8; 4] = b"LKS1";

/// The batch in flight: its id and the sequence numbers it spans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlight {
    /// The batch id.
    pub id: String,
    /// First sequence number.
    pub first: u64,
    /// Last sequence number.
    pub last: u64,
}

/// What the slots hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    /// Acknowledged sequence numbers.
    pub acked: Acked,
    /// The batch being sent, if any.
    pub in_flight: Option<InFlight>,
}

/// The two slot files, kept open.
#[derive(Debug)]
pub struct StateFiles {
    slots: [Option<Arc<File>>; 2],
    generation: u64,
}

fn encode(generation: u64, acked: &Acked, in_flight: Option<&InFlight>) -> Vec<u8> {
    let acked = acked.encode();
    let mut body = Vec::with_capacity(64 + acked.len());
    body.extend_from_slice(&generation.to_le_bytes());
    body.extend_from_slice(&(acked.len() as u32).to_le_bytes());
    body.extend_from_slice(&acked);
    match in_flight {
        Some(f) => {
            body.push(1);
            body.extend_from_slice(&f.first.to_le_bytes());
            body.extend_from_slice(&f.last.to_le_bytes());
            let id = &f.id.as_bytes()[..f.id.len().min(u16::MAX as usize)];
            body.extend_from_slice(&(id.len() as u16).to_le_bytes());
            body.extend_from_slice(id);
        }
        None => body.push(0),
    }
    let mut out = Vec::with_capacity(body.len() + 12);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out
}

/// Reads a slot; `None` when it is missing, torn or damaged. Public for the fuzz target
/// (`fuzz/harness`), which feeds it damaged slots.
#[doc(hidden)]
pub fn decode(bytes: &[u8]) -> Option<(u64, State)> {
    if bytes.get(..4)? != MAGIC {
        return None;
    }
    let len = u32::from_le_bytes(bytes.get(4..8)?.try_into().ok()?) as usize;
    let body = bytes.get(8..8 + len)?;
    let crc = bytes.get(8 + len..12 + len)?;
    if crc32fast::hash(body).to_le_bytes() != crc {
        return None;
    }
    let mut r = Reader(body);
    let generation = r.u64()?;
    let acked_len = r.u32()? as usize;
    let acked = Acked::decode(r.take(acked_len)?)?;
    let in_flight = match r.take(1)?[0] {
        0 => None,
        _ => {
            let first = r.u64()?;
            let last = r.u64()?;
            let n = u16::from_le_bytes(r.take(2)?.try_into().ok()?) as usize;
            let id = String::from_utf8(r.take(n)?.to_vec()).ok()?;
            Some(InFlight { id, first, last })
        }
    };
    Some((generation, State { acked, in_flight }))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
}

impl StateFiles {
    /// Opens (creating) both slots in `dir` and reads the newest valid state. `None` for the
    /// state when neither slot holds one (a new spool, or one from before these files).
    pub fn open(dir: &Path) -> (Self, Option<State>) {
        let mut best: Option<(u64, State)> = None;
        let slots = [0, 1].map(|i| {
            let path = dir.join(format!("state.{i}"));
            if let Ok(bytes) = std::fs::read(&path)
                && let Some((g, s)) = decode(&bytes)
                && best.as_ref().is_none_or(|(bg, _)| g > *bg)
            {
                best = Some((g, s));
            }
            match OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(&path)
            {
                Ok(f) => Some(Arc::new(f)),
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "cannot open the spool's state file; acknowledgements are kept in memory only");
                    None
                }
            }
        });
        let generation = best.as_ref().map_or(0, |(g, _)| *g);
        (Self { slots, generation }, best.map(|(_, s)| s))
    }

    /// The slot written last, to be synced by the caller (without holding the spool's lock).
    pub fn last_written(&self) -> Option<Arc<File>> {
        self.slots[(self.generation % 2) as usize].clone()
    }

    /// Writes the state over the older slot; with `sync`, waits until it is on the disk.
    pub fn write(
        &mut self,
        acked: &Acked,
        in_flight: Option<&InFlight>,
        sync: bool,
    ) -> std::io::Result<()> {
        self.generation += 1;
        let slot = (self.generation % 2) as usize;
        let Some(file) = self.slots[slot].as_ref() else {
            return Err(std::io::Error::other("state file not open"));
        };
        file.write_all_at(&encode(self.generation, acked, in_flight), 0)?;
        if sync {
            file.sync_data()?;
        }
        Ok(())
    }
}

/// The bookkeeping of a spool written before the slot files: `acked` (the [`Acked`] form) and
/// `inflight` (`<id> <first> <last>`, as text). Read once at start, then replaced by the slots.
pub fn read_legacy(dir: &Path) -> State {
    let acked = match std::fs::read(dir.join("acked")) {
        Ok(b) => Acked::decode(&b).unwrap_or_else(|| {
            tracing::warn!(dir = %dir.display(), "the spool's acknowledgement file is damaged: records already delivered may be sent again");
            Acked::default()
        }),
        Err(_) => Acked::default(),
    };
    let in_flight = std::fs::read_to_string(dir.join("inflight"))
        .ok()
        .and_then(|text| {
            let mut parts = text.split_whitespace();
            Some(InFlight {
                id: parts.next()?.to_string(),
                first: parts.next()?.parse().ok()?,
                last: parts.next()?.parse().ok()?,
            })
        });
    State { acked, in_flight }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(acked_to: u64, flight: Option<(&str, u64, u64)>) -> State {
        let mut acked = Acked::default();
        acked.advance_to(acked_to);
        State {
            acked,
            in_flight: flight.map(|(id, first, last)| InFlight {
                id: id.into(),
                first,
                last,
            }),
        }
    }

    fn put(files: &mut StateFiles, s: &State, sync: bool) {
        files.write(&s.acked, s.in_flight.as_ref(), sync).unwrap();
    }

    #[test]
    fn newest_valid_slot_wins_and_a_torn_one_falls_back() {
        let dir = tempfile::tempdir().unwrap();
        let (mut files, found) = StateFiles::open(dir.path());
        assert_eq!(found, None);
        // A longer state first, then a shorter one over the other slot: stale bytes past the
        // end of a slot must not matter.
        put(&mut files, &state(3, Some(("e-4-9-a-long-id", 4, 9))), true);
        put(&mut files, &state(9, None), false);
        put(&mut files, &state(12, Some(("e-10-12", 10, 12))), true);
        drop(files);
        let (_, found) = StateFiles::open(dir.path());
        assert_eq!(found, Some(state(12, Some(("e-10-12", 10, 12)))));

        // Tear the newest slot (generation 3 went to slot 1): the one before it is read.
        let path = dir.path().join("state.1");
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n / 2] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let (mut files, found) = StateFiles::open(dir.path());
        assert_eq!(found, Some(state(9, None)));
        // Writing on goes to the slot after the one that was read, never over it.
        put(&mut files, &state(13, None), false);
        let (_, found) = StateFiles::open(dir.path());
        assert_eq!(found, Some(state(13, None)));
    }

    #[test]
    fn garbage_is_no_state() {
        assert_eq!(decode(b""), None);
        assert_eq!(decode(b"LKS1\xff\xff\xff\xff"), None);
        let mut good = encode(1, &state(5, None).acked, None);
        assert!(decode(&good).is_some());
        good[9] ^= 1;
        assert_eq!(decode(&good), None);
    }
}
