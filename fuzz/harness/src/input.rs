//! Reading a fuzzer's bytes as a few choices and the rest: libFuzzer mutates bytes, so a body
//! takes its choices (which parser, which encoding, where to cut) from the front and gives the
//! rest to the code under test.

/// The fuzzer's bytes, read from the front.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    /// Wraps `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self(data)
    }

    /// The next byte, 0 when none is left.
    pub fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }

    /// One of `n` choices (`n` > 0).
    pub fn choose(&mut self, n: usize) -> usize {
        usize::from(self.byte()) % n
    }

    /// A little-endian `u16`.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    /// Up to the next `sep` (taken off too), or everything left.
    pub fn until(&mut self, sep: u8) -> &'a [u8] {
        match self.0.iter().position(|b| *b == sep) {
            Some(i) => {
                let (head, rest) = self.0.split_at(i);
                self.0 = &rest[1..];
                head
            }
            None => self.rest(),
        }
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.0)
    }
}
