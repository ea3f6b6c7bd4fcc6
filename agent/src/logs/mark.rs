//! What a file holds, to know it again: its fingerprint (its first line), and the last bytes
//! read of it, to tell it from itself truncated and written again.
//!
//! A truncation that is written again up to or past the position read before (copytruncate
//! under a busy writer) leaves the file no shorter than that position, and its first line may
//! be the same as before (lines that start alike). What the file held just before the position
//! then tells: the tailer keeps the last [`TAIL_BYTES`] it read ([`Tail`]) and checks that the
//! file still holds them there, once a round and after each read; a saved position keeps a
//! checksum of them ([`Mark`]), checked when the file is opened again (after a restart or an
//! idle close).

use std::fs::File;
use std::os::unix::fs::FileExt;

use serde::{Deserialize, Serialize};

use super::tail::FINGERPRINT_BYTES;

/// Bytes kept of what was read last.
pub const TAIL_BYTES: usize = 64;

/// The last bytes read of a file, ending at its read position.
#[derive(Debug, Clone)]
pub struct Tail {
    bytes: [u8; TAIL_BYTES],
    len: usize,
}

impl Default for Tail {
    fn default() -> Self {
        Tail {
            bytes: [0; TAIL_BYTES],
            len: 0,
        }
    }
}

impl Tail {
    /// The (up to [`TAIL_BYTES`]) bytes of `file` that end at `end`; empty when they cannot be
    /// read.
    pub fn at(file: &File, end: u64) -> Self {
        let mut t = Tail::default();
        let len = end.min(TAIL_BYTES as u64) as usize;
        if file
            .read_exact_at(&mut t.bytes[..len], end - len as u64)
            .is_ok()
        {
            t.len = len;
        }
        t
    }

    /// The same, after `read` more bytes were read.
    pub fn push(&mut self, read: &[u8]) {
        if read.len() >= TAIL_BYTES {
            self.bytes.copy_from_slice(&read[read.len() - TAIL_BYTES..]);
            self.len = TAIL_BYTES;
            return;
        }
        let keep = self.len.min(TAIL_BYTES - read.len());
        self.bytes.copy_within(self.len - keep..self.len, 0);
        self.bytes[keep..keep + read.len()].copy_from_slice(read);
        self.len = keep + read.len();
    }

    /// Whether `file` still holds these bytes, ending at `end` (true when there are none, and
    /// when they cannot be read for another reason than the file being shorter: a read error
    /// is no truncation, and the read that follows reports it).
    pub fn held(&self, file: &File, end: u64) -> bool {
        let mut now = [0u8; TAIL_BYTES];
        let now = &mut now[..self.len];
        match file.read_exact_at(now, end - self.len as u64) {
            Ok(()) => *now == self.bytes[..self.len],
            Err(e) => e.kind() != std::io::ErrorKind::UnexpectedEof,
        }
    }

    /// The mark of these bytes ending at `end`.
    pub fn mark(&self, end: u64) -> Option<Mark> {
        (self.len > 0).then(|| Mark {
            end,
            len: self.len as u32,
            crc: crc32fast::hash(&self.bytes[..self.len]),
        })
    }
}

/// A checksum of the bytes of a file that end at `end`, saved with its position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    /// Where the bytes end (at or before the position saved with it).
    pub end: u64,
    /// How many bytes (at most [`TAIL_BYTES`]).
    pub len: u32,
    /// Their CRC-32.
    pub crc: u32,
}

impl Mark {
    /// Whether `file` still holds the bytes this mark was taken of.
    pub fn held(&self, file: &File) -> bool {
        let len = (self.len as usize).min(TAIL_BYTES);
        let mut now = [0u8; TAIL_BYTES];
        self.end >= len as u64
            && file
                .read_exact_at(&mut now[..len], self.end - len as u64)
                .is_ok()
            && crc32fast::hash(&now[..len]) == self.crc
    }
}

/// Whether `file` holds `bytes` at `at`.
pub fn holds(file: &File, at: u64, bytes: &[u8]) -> bool {
    let mut now = vec![0u8; bytes.len()];
    file.read_exact_at(&mut now, at).is_ok() && now == bytes
}

/// Where the first byte other than NUL is, from `from` on, reading through `buf`: a writer that
/// does not append (`app > app.log`) writes at its own offset after a truncation, and leaves
/// a hole of NULs before its next line. None when there is none yet. The hole's unallocated
/// part is skipped without reading it (`SEEK_DATA`), so a hole as large as everything the
/// writer ever wrote costs no more than its last block.
pub fn after_hole(file: &File, from: u64, buf: &mut [u8]) -> Option<u64> {
    let mut at = match rustix::fs::seek(file, rustix::fs::SeekFrom::Data(from)) {
        Ok(data) => data.max(from),
        Err(rustix::io::Errno::NXIO) => return None, // only a hole so far
        Err(_) => from,                              // no SEEK_DATA here: read through it
    };
    loop {
        match file.read_at(buf, at) {
            Ok(0) | Err(_) => return None,
            Ok(n) => match buf[..n].iter().position(|b| *b != 0) {
                Some(i) => return Some(at + i as u64),
                None => at += n as u64,
            },
        }
    }
}

/// The fingerprint of an open file: a checksum of its first line, or of its first
/// [`FINGERPRINT_BYTES`] when that line is longer. None until that much is written.
pub fn fingerprint(file: &File) -> Option<String> {
    let mut head = [0u8; FINGERPRINT_BYTES];
    let mut n = 0;
    while n < head.len() {
        match file.read_at(&mut head[n..], n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(_) => return None,
        }
    }
    let end = match memchr::memchr(b'\n', &head[..n]) {
        Some(i) => i + 1,
        None if n == FINGERPRINT_BYTES => n,
        None => return None,
    };
    Some(format!("{:08x}{:03x}", crc32fast::hash(&head[..end]), end))
}

/// Where the last complete line of a file of length `len` ends: reading from the end starts
/// there, not in the middle of a line.
pub fn last_line_end(file: &File, len: u64) -> u64 {
    let from = len.saturating_sub(64 << 10);
    let mut tail = vec![0u8; (len - from) as usize];
    if file.read_exact_at(&mut tail, from).is_err() {
        return len;
    }
    match memchr::memrchr(b'\n', &tail) {
        Some(i) => from + i as u64 + 1,
        None if from == 0 => 0,
        None => len,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_keeps_the_last_bytes_read_whatever_the_sizes_of_the_reads() {
        let all: Vec<u8> = (0..300u32).map(|i| (i % 251) as u8).collect();
        for step in [1, 7, 63, 64, 65, 200] {
            let mut t = Tail::default();
            for chunk in all.chunks(step) {
                t.push(chunk);
            }
            assert_eq!(&t.bytes[..t.len], &all[all.len() - TAIL_BYTES..], "{step}");
        }
        let mut t = Tail::default();
        t.push(&all[..10]);
        assert_eq!(&t.bytes[..t.len], &all[..10]);
    }

    #[test]
    fn the_end_of_a_hole_is_found_whether_it_is_allocated_or_sparse() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("holed.log");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let mut buf = vec![0u8; 4096];
        assert_eq!(after_hole(&file, 0, &mut buf), None, "empty");
        // Sparse: 10 MiB never written, then a line.
        file.write_all_at(b"line\n", 10 << 20).unwrap();
        assert_eq!(after_hole(&file, 0, &mut buf), Some(10 << 20));
        // Written NULs (a copy of such a file is not sparse), then a line.
        file.set_len(0).unwrap();
        file.write_all_at(&vec![0u8; 10_000], 0).unwrap();
        file.write_all_at(b"x", 10_000).unwrap();
        assert_eq!(after_hole(&file, 0, &mut buf), Some(10_000));
        assert_eq!(after_hole(&file, 10_001, &mut buf), None, "nothing after");
    }
}
