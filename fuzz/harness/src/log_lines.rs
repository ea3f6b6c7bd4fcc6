//! A tailed file's bytes as the agent turns them into log records: cut into lines at a length
//! limit, joined into multiline events, each event's text and level (JSON, logfmt or a level
//! word); and the systemd journal's JSON lines.

use std::time::{Duration, Instant};

use lookout_agent::logs::journald;
use lookout_agent::logs::lines::{Line, Multiline, Splitter, detect_level};
use regex::bytes::Regex;

use crate::input::Input;

/// Input: a byte for the line length limit (1 to 256 bytes, or 32 KiB), a byte saying whether
/// events are multiline (lines starting with a digit or `[` start one), a byte for the size of
/// the reads the file is fed in; then the file. Checks that lines cover the file without gaps
/// or overlaps, keep to the limit and are cut on character boundaries.
pub fn log_lines(data: &[u8]) {
    let mut input = Input::new(data);
    let max = match input.byte() {
        0 => 32 << 10,
        n => usize::from(n),
    };
    let multiline = input.byte() & 1 == 1;
    let chunk = usize::from(input.byte()).max(1);
    let file = input.rest();

    let mut splitter = Splitter::new(max, 0);
    let mut lines = Vec::new();
    for part in file.chunks(chunk) {
        splitter.feed(part, &mut lines);
    }
    lines.extend(splitter.flush());
    let mut at = 0;
    for line in &lines {
        assert_eq!(line.start, at, "lines follow each other");
        assert!(line.end > line.start, "a line has at least its newline");
        assert!(line.bytes.len() <= max, "{} > {max}", line.bytes.len());
        // What is kept is the line's start; a line that was text stays text once cut.
        let whole = &file[line.start as usize..line.end as usize];
        let whole = whole.strip_suffix(b"\n").unwrap_or(whole);
        assert!(whole.starts_with(&line.bytes));
        if std::str::from_utf8(whole).is_ok() {
            assert!(
                std::str::from_utf8(&line.bytes).is_ok(),
                "cut inside a character"
            );
        }
        at = line.end;
    }
    assert_eq!(at, file.len() as u64, "lines cover the file");

    let events = if multiline { join(lines, max) } else { lines };
    for event in &events {
        let text = event.text();
        if let Some(level) = detect_level(&text) {
            assert!(["error", "warn", "info", "debug", "trace"].contains(&level));
        }
    }
    for line in String::from_utf8_lossy(file).lines() {
        if let Some((record, cursor)) = journald::record(line) {
            assert!(!cursor.is_empty() || line.contains("\"__CURSOR\""));
            let _ = detect_level(&record.text);
        }
    }
}

/// Joins lines into events as the tailer does, then flushes the last one.
fn join(lines: Vec<Line>, max: usize) -> Vec<Line> {
    static START: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    let start = START
        .get_or_init(|| Regex::new(r"^(\d|\[)").expect("a valid pattern"))
        .clone();
    let mut joiner = Multiline::new(start, Duration::from_secs(1), max);
    let now = Instant::now();
    let mut events = Vec::new();
    for line in lines {
        joiner.push(line, now, &mut events);
    }
    events.extend(joiner.flush(now, true));
    for event in &events {
        assert!(event.bytes.len() <= max, "{} > {max}", event.bytes.len());
    }
    events
}
