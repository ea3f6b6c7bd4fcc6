//! One spooled record on disk: a frame.
//!
//! ```text
//! offset  size  field
//! 0       4     magic "LKS1"
//! 4       4     payload length N, little-endian u32 (at most MAX_PAYLOAD)
//! 8       8     sequence number, little-endian u64
//! 16      4     CRC-32 (IEEE) of bytes 4..16 and of the payload, little-endian
//! 20      N     payload: the record as JSON
//! ```
//!
//! A frame is valid when its magic, length and checksum hold. A reader that meets an invalid frame
//! (a torn write at the end of a segment, or damage in the middle) looks for the next magic
//! followed by a valid frame, and counts the bytes it skipped.

/// Marks the start of a frame.
pub const MAGIC: [u8; 4] = *b"LKS1";
/// Bytes before the payload.
pub const HEADER: usize = 20;
/// Largest payload accepted (a record is far smaller; this bounds what a damaged length can
/// make a reader allocate).
pub const MAX_PAYLOAD: usize = 4 << 20;

/// Encodes a frame.
pub fn encode(seq: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&checksum(&out[4..16], payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

fn checksum(header: &[u8], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(header);
    h.update(payload);
    h.finalize()
}

/// A frame found in a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found<'a> {
    /// Offset of the frame in the buffer.
    pub offset: usize,
    /// Its sequence number.
    pub seq: u64,
    /// Its payload.
    pub payload: &'a [u8],
}

impl Found<'_> {
    /// Offset just past the frame.
    pub fn end(&self) -> usize {
        self.offset + HEADER + self.payload.len()
    }
}

/// The valid frame at `offset`, if there is one.
pub fn read_at(buf: &[u8], offset: usize) -> Option<Found<'_>> {
    let head = buf.get(offset..offset + HEADER)?;
    if head[0..4] != MAGIC {
        return None;
    }
    let len = u32::from_le_bytes(head[4..8].try_into().ok()?) as usize;
    if len > MAX_PAYLOAD {
        return None;
    }
    let seq = u64::from_le_bytes(head[8..16].try_into().ok()?);
    let crc = u32::from_le_bytes(head[16..20].try_into().ok()?);
    let payload = buf.get(offset + HEADER..offset + HEADER + len)?;
    (checksum(&head[4..16], payload) == crc).then_some(Found {
        offset,
        seq,
        payload,
    })
}

/// Every valid frame in `buf`, in order, and the number of bytes that belong to no valid frame
/// (damage or a torn tail).
pub fn scan(buf: &[u8]) -> (Vec<Found<'_>>, usize) {
    let mut frames = Vec::new();
    let mut skipped = 0;
    let mut at = 0;
    while at < buf.len() {
        if let Some(f) = read_at(buf, at) {
            at = f.end();
            frames.push(f);
            continue;
        }
        // Resynchronise on the next magic that starts a valid frame.
        let next = (at + 1..buf.len())
            .find(|&i| buf[i..].starts_with(&MAGIC) && read_at(buf, i).is_some())
            .unwrap_or(buf.len());
        skipped += next - at;
        at = next;
    }
    (frames, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn frames_survive_any_damage_elsewhere(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 1..20),
            damage_at in any::<proptest::sample::Index>(),
            garbage in proptest::collection::vec(any::<u8>(), 1..40),
        ) {
            let frames: Vec<Vec<u8>> = payloads.iter().enumerate().map(|(i, p)| encode(i as u64, p)).collect();
            let mut buf: Vec<u8> = frames.concat();
            // Overwrite a stretch inside one frame: that frame is lost, no other.
            let victim = damage_at.index(frames.len());
            let start: usize = frames[..victim].iter().map(Vec::len).sum();
            let len = garbage.len().min(frames[victim].len());
            buf[start..start + len].copy_from_slice(&garbage[..len]);
            let (found, _) = scan(&buf);
            let seqs: Vec<u64> = found.iter().map(|f| f.seq).collect();
            for (i, p) in payloads.iter().enumerate() {
                if i != victim {
                    prop_assert!(found.iter().any(|f| f.seq == i as u64 && f.payload == p.as_slice()), "lost frame {i}: {seqs:?}");
                }
            }
            prop_assert!(seqs.windows(2).all(|w| w[0] < w[1]));
        }

        #[test]
        fn a_torn_tail_loses_only_the_last_frame(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 1..20),
            cut in any::<proptest::sample::Index>(),
        ) {
            let buf: Vec<u8> = payloads.iter().enumerate().map(|(i, p)| encode(i as u64, p)).collect::<Vec<_>>().concat();
            let cut = cut.index(buf.len());
            let (found, skipped) = scan(&buf[..cut]);
            let complete = found.iter().map(|f| f.end()).max().unwrap_or(0);
            prop_assert_eq!(skipped, cut - complete);
            for (i, f) in found.iter().enumerate() {
                prop_assert_eq!(f.seq, i as u64);
                prop_assert_eq!(f.payload, payloads[i].as_slice());
            }
        }
    }
}
