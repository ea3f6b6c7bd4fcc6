//! From bytes to events: lines cut at `\n`, a length limit with a visible marker, multiline
//! joining, text that is not UTF-8 kept as lossy text, and the level read from the line.

use std::time::{Duration, Instant};

use memchr::memchr;
use regex::bytes::Regex;

/// One complete line (or multiline event): its bytes, and the file offsets where it starts
/// and just past its end (past its `\n`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The bytes, without the `\n` (and a `\r` before it), cut to the length limit.
    pub bytes: Vec<u8>,
    /// Bytes cut off by the length limit.
    pub cut: u64,
    /// Offset of its first byte.
    pub start: u64,
    /// Offset just past it.
    pub end: u64,
}

impl Line {
    /// The text to ship: lossy UTF-8, with `…[truncated N bytes]` when it was cut.
    pub fn text(&self) -> String {
        let mut text = String::from_utf8_lossy(&self.bytes).into_owned();
        if self.cut > 0 {
            text.push_str(&format!("…[truncated {} bytes]", self.cut));
        }
        text
    }
}

/// Cuts a byte stream into lines. Feed it what was read, in order; it keeps at most
/// `max` bytes of a line that has not ended yet.
#[derive(Debug)]
pub struct Splitter {
    max: usize,
    /// Where the next byte fed sits in the file.
    at: u64,
    /// The line being read: its start, its first `max` bytes, and how many more it has.
    start: u64,
    head: Vec<u8>,
    cut: u64,
}

impl Splitter {
    /// A splitter for a file whose next byte is at `at`.
    pub fn new(max: usize, at: u64) -> Self {
        Self {
            max,
            at,
            start: at,
            head: Vec::new(),
            cut: 0,
        }
    }

    /// Where the line not yet ended starts: reading resumes here after a restart.
    pub fn resume_at(&self) -> u64 {
        self.start
    }

    /// True when part of a line waits for its end.
    pub fn has_partial(&self) -> bool {
        self.at > self.start
    }

    /// Feeds `bytes`, read from the file at [`Splitter`]'s position, and appends the lines they
    /// complete to `out`.
    pub fn feed(&mut self, mut bytes: &[u8], out: &mut Vec<Line>) {
        while !bytes.is_empty() {
            match memchr(b'\n', bytes) {
                Some(i) => {
                    self.take(&bytes[..i]);
                    self.at += i as u64 + 1;
                    out.push(self.finish());
                    bytes = &bytes[i + 1..];
                }
                None => {
                    self.take(bytes);
                    self.at += bytes.len() as u64;
                    bytes = &[];
                }
            }
        }
    }

    /// Ends the line not yet ended, if any (the file is finished: renamed away and quiet).
    pub fn flush(&mut self) -> Option<Line> {
        self.has_partial().then(|| self.finish())
    }

    fn take(&mut self, part: &[u8]) {
        let room = self.max.saturating_sub(self.head.len());
        let kept = part.len().min(room);
        self.head.extend_from_slice(&part[..kept]);
        self.cut += (part.len() - kept) as u64;
    }

    fn finish(&mut self) -> Line {
        let mut bytes = std::mem::take(&mut self.head);
        if self.cut == 0 && bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        let mut cut = std::mem::take(&mut self.cut);
        if cut > 0 {
            // Cut on a character boundary: the bytes of a character split by the limit go too.
            let keep = utf8_boundary(&bytes);
            cut += (bytes.len() - keep) as u64;
            bytes.truncate(keep);
        }
        let line = Line {
            bytes,
            cut,
            start: self.start,
            end: self.at,
        };
        self.start = self.at;
        line
    }
}

/// The length of the longest prefix of `b` that does not end inside a UTF-8 sequence.
fn utf8_boundary(b: &[u8]) -> usize {
    let mut i = b.len();
    // Back over continuation bytes (at most 3) to the lead byte.
    while i > 0 && b.len() - i < 4 && b[i - 1] & 0xC0 == 0x80 {
        i -= 1;
    }
    if i == 0 {
        return b.len();
    }
    let lead = b[i - 1];
    let width = match lead {
        0x00..=0x7F => 1,
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => 1,
    };
    if (i - 1) + width <= b.len() {
        b.len()
    } else {
        i - 1
    }
}

/// Joins continuation lines to the line that starts their event.
#[derive(Debug)]
pub struct Multiline {
    start: Regex,
    timeout: Duration,
    max: usize,
    pending: Option<(Line, Instant)>,
}

impl Multiline {
    /// Events start at lines matching `start`; one waits `timeout` for more lines at most and
    /// is cut at `max` bytes.
    pub fn new(start: Regex, timeout: Duration, max: usize) -> Self {
        Self {
            start,
            timeout,
            max,
            pending: None,
        }
    }

    /// Where the event still open starts, if one is.
    pub fn pending_start(&self) -> Option<u64> {
        self.pending.as_ref().map(|(l, _)| l.start)
    }

    /// Takes one line; appends to `out` the event it ends, if it starts another.
    pub fn push(&mut self, line: Line, now: Instant, out: &mut Vec<Line>) {
        if self.start.is_match(&line.bytes) {
            if let Some((done, _)) = self.pending.take() {
                out.push(done);
            }
            self.pending = Some((line, now));
            return;
        }
        match &mut self.pending {
            Some((event, at)) => {
                let room = self.max.saturating_sub(event.bytes.len() + 1);
                if room > 0 && event.cut == 0 {
                    event.bytes.push(b'\n');
                    let kept = line.bytes.len().min(room);
                    event.bytes.extend_from_slice(&line.bytes[..kept]);
                    event.cut += (line.bytes.len() - kept) as u64 + line.cut;
                } else {
                    event.cut += line.bytes.len() as u64 + 1 + line.cut;
                }
                event.end = line.end;
                *at = now;
            }
            // Continuation lines before any start line (the file began mid-event): each is its
            // own event.
            None => out.push(line),
        }
    }

    /// The open event, if it has waited `timeout` for more lines (or `force`).
    pub fn flush(&mut self, now: Instant, force: bool) -> Option<Line> {
        match &self.pending {
            Some((_, at)) if force || now.duration_since(*at) >= self.timeout => {
                self.pending.take().map(|(l, _)| l)
            }
            _ => None,
        }
    }
}

/// The level a line states, normalised to `error`, `warn`, `info`, `debug` or `trace`: a
/// JSON object's `level`, `severity` or `lvl`; logfmt's `level=`; or the first level word
/// (`ERROR`, `WARN`, `INFO`, ...) near the start of the line.
pub fn detect_level(text: &str) -> Option<&'static str> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{')
        && let Ok(serde_json::Value::Object(map)) =
            serde_json::from_str::<serde_json::Value>(trimmed)
    {
        return ["level", "severity", "lvl", "log.level"]
            .iter()
            .find_map(|k| map.get(*k))
            .and_then(|v| match v {
                serde_json::Value::String(s) => normalise(s),
                // Bunyan and pino write numbers: 10 trace ... 50 error, 60 fatal.
                serde_json::Value::Number(n) => n.as_u64().map(|n| match n {
                    0..=19 => "trace",
                    20..=29 => "debug",
                    30..=39 => "info",
                    40..=49 => "warn",
                    _ => "error",
                }),
                _ => None,
            });
    }
    for key in ["level=", "lvl=", "severity="] {
        if let Some(i) = text.find(key)
            && (i == 0 || text.as_bytes()[i - 1] == b' ')
        {
            let value = text[i + key.len()..]
                .trim_start_matches('"')
                .split(|c: char| c == '"' || c.is_whitespace())
                .next()
                .unwrap_or("");
            if let Some(l) = normalise(value) {
                return Some(l);
            }
        }
    }
    // A level word among the first few words, as most plain formats put it.
    let head = &text[..floor_char_boundary(text, 160)];
    head.split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| w.len() >= 3)
        .take(12)
        .find_map(normalise_word)
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// A level name in any case.
pub(crate) fn normalise(s: &str) -> Option<&'static str> {
    match s.to_ascii_lowercase().as_str() {
        "error" | "err" | "fatal" | "critical" | "crit" | "panic" | "emerg" | "emergency"
        | "alert" | "severe" => Some("error"),
        "warn" | "warning" => Some("warn"),
        "info" | "information" | "informational" | "notice" => Some("info"),
        "debug" | "dbg" => Some("debug"),
        "trace" | "verbose" => Some("trace"),
        _ => None,
    }
}

/// A level word in free text: upper case (`ERROR`, `WARN`), or a capitalised full name
/// (`Error`, `Warning`); not the word "error" in a sentence.
fn normalise_word(w: &str) -> Option<&'static str> {
    let upper = w.chars().all(|c| c.is_ascii_uppercase());
    let capitalised = w.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && w.chars().skip(1).all(|c| c.is_ascii_lowercase());
    if !(upper || capitalised) {
        return None;
    }
    match w.to_ascii_lowercase().as_str() {
        "err" | "dbg" | "crit" if !upper => None,
        other => normalise(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(max: usize, chunks: &[&[u8]]) -> (Vec<Line>, Splitter) {
        let mut s = Splitter::new(max, 0);
        let mut out = Vec::new();
        for c in chunks {
            s.feed(c, &mut out);
        }
        (out, s)
    }

    #[test]
    fn lines_end_at_newlines_across_reads_with_offsets() {
        let (lines, s) = split(100, &[b"one\ntw", b"o\r\nthr", b"ee"]);
        let texts: Vec<_> = lines.iter().map(Line::text).collect();
        assert_eq!(texts, ["one", "two"]);
        assert_eq!((lines[0].start, lines[0].end), (0, 4));
        assert_eq!((lines[1].start, lines[1].end), (4, 9));
        // "three" has no newline yet: reading resumes at its start.
        assert_eq!(s.resume_at(), 9);
        assert!(s.has_partial());
    }

    #[test]
    fn a_long_line_is_cut_with_a_marker_that_counts_the_bytes() {
        let long = "é".repeat(100); // 200 bytes
        let input = format!("{long}\nnext\n");
        let (lines, _) = split(101, &[input.as_bytes()]);
        // 101 bytes would split the 51st "é": 100 bytes are kept.
        assert_eq!(lines[0].bytes.len(), 100);
        assert_eq!(
            lines[0].text(),
            format!("{}…[truncated 100 bytes]", "é".repeat(50))
        );
        assert_eq!(lines[0].end, 201);
        assert_eq!(lines[1].text(), "next");
    }

    #[test]
    fn invalid_utf8_is_kept_as_lossy_text() {
        let (lines, _) = split(100, &[b"bad \xff\xfe bytes\n"]);
        assert_eq!(lines[0].text(), "bad \u{fffd}\u{fffd} bytes");
    }

    #[test]
    fn multiline_joins_continuations_and_flushes_after_its_timeout() {
        let re = Regex::new(r"^\d{4}-").unwrap();
        let mut m = Multiline::new(re, Duration::from_secs(1), 1000);
        let (lines, _) = split(
            1000,
            &[b"2026-11-26 ERROR boom\n  at a()\n  at b()\n2026-11-26 INFO next\n"],
        );
        let t0 = Instant::now();
        let mut out = Vec::new();
        for l in lines {
            m.push(l, t0, &mut out);
        }
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].text(), "2026-11-26 ERROR boom\n  at a()\n  at b()");
        assert_eq!((out[0].start, out[0].end), (0, 40));
        assert_eq!(m.pending_start(), Some(40));
        assert_eq!(m.flush(t0 + Duration::from_millis(500), false), None);
        let last = m.flush(t0 + Duration::from_secs(1), false).unwrap();
        assert_eq!(last.text(), "2026-11-26 INFO next");
        assert_eq!(m.pending_start(), None);
    }

    #[test]
    fn levels_from_json_logfmt_and_plain_words() {
        let cases = [
            (r#"{"level":"ERROR","msg":"x"}"#, Some("error")),
            (r#"{"severity":"warning"}"#, Some("warn")),
            (r#"{"level":50,"msg":"pino"}"#, Some("error")),
            ("time=1 level=info msg=\"started\"", Some("info")),
            ("ts=1 lvl=debug", Some("debug")),
            ("2026-11-26 12:00:00 ERROR [main] failed", Some("error")),
            ("[WARN] disk almost full", Some("warn")),
            (
                "Nov 26 12:00:00 host app[1]: Warning: low memory",
                Some("warn"),
            ),
            ("I 2026 INFO: ready", Some("info")),
            ("an error in a sentence is not a level", None),
            ("GET /errors 200", None),
            ("", None),
        ];
        for (line, want) in cases {
            assert_eq!(detect_level(line), want, "{line}");
        }
    }
}
