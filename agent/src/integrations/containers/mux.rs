//! The Docker Engine API's multiplexed stream: a container without a terminal has its stdout
//! and stderr sent on one connection (`/containers/{id}/logs`, `/attach`) as frames, each an
//! 8-byte header and a payload:
//!
//! ```text
//! byte 0     the stream: 0 stdin, 1 stdout, 2 stderr
//! bytes 1-3  zero
//! bytes 4-7  the payload's length, big-endian u32
//! ```
//!
//! [`Demux`] takes the bytes as they come, in chunks cut anywhere, and gives whole frames. A
//! frame longer than [`MAX_FRAME`] or a header that is not one is an error (the stream is then
//! not this format, or is broken): the caller drops the connection. [`Lines`] then cuts a
//! stream's payloads into lines of at most [`MAX_LINE`] bytes.

use bytes::{Buf as _, BytesMut};

/// Longest frame payload taken (the engines cut log messages at 16 KiB).
pub const MAX_FRAME: usize = 1 << 20;
/// Longest line kept; the rest of a longer line is dropped, and the line marked cut.
pub const MAX_LINE: usize = 16 << 10;

/// Which output a frame is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    /// Standard input (only `/attach` sends it).
    Stdin,
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    /// `stdin`, `stdout` or `stderr`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdin => "stdin",
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    fn byte(self) -> u8 {
        match self {
            Stream::Stdin => 0,
            Stream::Stdout => 1,
            Stream::Stderr => 2,
        }
    }
}

/// Why the bytes are not a multiplexed stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MuxError {
    /// A header whose stream byte or padding is not the format's.
    #[error("not a multiplexed stream: a frame header {0:02x?}")]
    Header([u8; 8]),
    /// A frame longer than [`MAX_FRAME`].
    #[error("a frame of {0} bytes, more than {MAX_FRAME}")]
    TooLong(usize),
}

/// Cuts a multiplexed stream into frames.
#[derive(Debug, Default)]
pub struct Demux {
    buf: BytesMut,
}

impl Demux {
    /// Takes the next bytes of the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame, if the bytes so far hold one.
    pub fn next_frame(&mut self) -> Result<Option<(Stream, bytes::Bytes)>, MuxError> {
        if self.buf.len() < 8 {
            return Ok(None);
        }
        let mut header = [0u8; 8];
        header.copy_from_slice(&self.buf[..8]);
        let stream = match header[0] {
            0 => Stream::Stdin,
            1 => Stream::Stdout,
            2 => Stream::Stderr,
            _ => return Err(MuxError::Header(header)),
        };
        if header[1..4] != [0, 0, 0] {
            return Err(MuxError::Header(header));
        }
        let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        if len > MAX_FRAME {
            return Err(MuxError::TooLong(len));
        }
        if self.buf.len() < 8 + len {
            return Ok(None);
        }
        self.buf.advance(8);
        Ok(Some((stream, self.buf.split_to(len).freeze())))
    }

    /// Bytes held that are not yet a whole frame.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

/// One frame as the stream carries it (for tests and tools).
pub fn encode(stream: Stream, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + payload.len());
    out.extend_from_slice(&[stream.byte(), 0, 0, 0]);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Cuts one stream's bytes into lines (without their `\n`), each at most [`MAX_LINE`] bytes.
#[derive(Debug, Default)]
pub struct Lines {
    line: Vec<u8>,
    /// The line being read is longer than [`MAX_LINE`]: its rest is dropped.
    cut: bool,
}

/// A line, and whether it was cut to [`MAX_LINE`].
pub type Line = (Vec<u8>, bool);

impl Lines {
    /// Takes bytes, giving each line they end.
    pub fn push(&mut self, mut bytes: &[u8], out: &mut Vec<Line>) {
        while !bytes.is_empty() {
            let (part, ended) = match memchr::memchr(b'\n', bytes) {
                Some(i) => (&bytes[..i], Some(i + 1)),
                None => (bytes, None),
            };
            let room = MAX_LINE - self.line.len();
            if part.len() > room {
                self.cut = true;
            }
            self.line.extend_from_slice(&part[..part.len().min(room)]);
            match ended {
                Some(next) => {
                    out.push((
                        std::mem::take(&mut self.line),
                        std::mem::take(&mut self.cut),
                    ));
                    bytes = &bytes[next..];
                }
                None => bytes = &[],
            }
        }
    }

    /// The last line, when the stream ended without its `\n`.
    pub fn finish(&mut self) -> Option<Line> {
        (!self.line.is_empty()).then(|| {
            (
                std::mem::take(&mut self.line),
                std::mem::take(&mut self.cut),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stream() -> impl Strategy<Value = Stream> {
        prop_oneof![
            Just(Stream::Stdin),
            Just(Stream::Stdout),
            Just(Stream::Stderr)
        ]
    }

    proptest! {
        #[test]
        fn any_bytes_give_frames_or_an_error_never_a_panic(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..16)
        ) {
            let mut d = Demux::default();
            'outer: for c in &chunks {
                d.push(c);
                loop {
                    match d.next_frame() {
                        Ok(Some((_, p))) => prop_assert!(p.len() <= MAX_FRAME),
                        Ok(None) => break,
                        Err(_) => break 'outer,
                    }
                }
            }
        }

        #[test]
        fn frames_cut_anywhere_come_back_whole(
            frames in proptest::collection::vec((stream(), proptest::collection::vec(any::<u8>(), 0..300)), 0..12),
            cuts in proptest::collection::vec(1usize..40, 1..50),
        ) {
            let bytes: Vec<u8> = frames.iter().flat_map(|(s, p)| encode(*s, p)).collect();
            let mut d = Demux::default();
            let mut got = Vec::new();
            let mut at = 0;
            let mut cut = cuts.iter().cycle();
            while at < bytes.len() {
                let end = (at + cut.next().unwrap()).min(bytes.len());
                d.push(&bytes[at..end]);
                at = end;
                while let Some((s, p)) = d.next_frame().unwrap() {
                    got.push((s, p.to_vec()));
                }
            }
            prop_assert_eq!(got, frames);
            prop_assert_eq!(d.pending(), 0);
        }

        #[test]
        fn lines_cut_anywhere_come_back_whole(
            lines in proptest::collection::vec("[a-z0-9 ]{0,40}", 0..20),
            cuts in proptest::collection::vec(1usize..30, 1..20),
        ) {
            let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
            let mut l = Lines::default();
            let mut got = Vec::new();
            let mut at = 0;
            let mut cut = cuts.iter().cycle();
            while at < text.len() {
                let end = (at + cut.next().unwrap()).min(text.len());
                l.push(&text.as_bytes()[at..end], &mut got);
                at = end;
            }
            prop_assert!(l.finish().is_none());
            let got: Vec<String> = got.into_iter().map(|(b, cut)| {
                assert!(!cut);
                String::from_utf8(b).unwrap()
            }).collect();
            prop_assert_eq!(got, lines);
        }
    }

    #[test]
    fn a_bad_header_or_a_huge_frame_is_an_error() {
        let mut d = Demux::default();
        d.push(b"2026-12-07T10:00:00Z hello\n");
        assert!(matches!(d.next_frame(), Err(MuxError::Header(_))));
        let mut d = Demux::default();
        d.push(&[1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(d.next_frame(), Err(MuxError::TooLong(u32::MAX as usize)));
    }

    #[test]
    fn a_line_past_the_bound_is_cut_and_the_next_one_kept() {
        let mut l = Lines::default();
        let mut out = Vec::new();
        let long = vec![b'x'; MAX_LINE + 10];
        l.push(&long, &mut out);
        l.push(b"\nnext\nlast", &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].0.len(), out[0].1), (MAX_LINE, true));
        assert_eq!(out[1], (b"next".to_vec(), false));
        assert_eq!(l.finish(), Some((b"last".to_vec(), false)));
    }
}
