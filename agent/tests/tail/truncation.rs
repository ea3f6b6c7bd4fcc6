//! Truncations the size does not show: the file written again up to or past the position
//! read before the tailer looks again (issue #33), by a writer of lines alike at their start
//! (the same first line before and after), by one that does not append, while the agent is
//! down or the file closed idle. Every line once, the new file's from its start.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use lookout_agent::logs::tail::{IDLE_CLOSE, Tailer};

use super::{Setup, append, copy_and_truncate, numbered, run, texts};

/// Lines whose first 256 bytes are all the same (one service's JSON lines with a long fixed
/// head), so that each file's first line, the fingerprint, is the same before and after a
/// truncation.
fn alike(tag: &str, range: std::ops::Range<u32>) -> Vec<String> {
    let head = format!(
        r#"{{"service":"checkout","region":"eu-west","msg":"{}""#,
        "=".repeat(220)
    );
    range
        .map(|i| format!(r#"{head},"n":"{tag}{i:05}"}}"#))
        .collect()
}

/// `got == want`, or a failure that says which lines (by their ends) are missing or extra.
fn same(got: Vec<String>, want: Vec<String>, what: &str) {
    if got == want {
        return;
    }
    let end = |l: &String| l[l.len().saturating_sub(14)..].to_string();
    let missing: Vec<_> = want.iter().filter(|l| !got.contains(l)).map(end).collect();
    let mut extra: Vec<_> = got.iter().filter(|l| !want.contains(l)).map(end).collect();
    let mut seen = std::collections::HashSet::new();
    extra.extend(
        got.iter()
            .filter(|l| !seen.insert(*l))
            .map(|l| format!("twice {}", end(l))),
    );
    panic!(
        "{what}: {} lines, {} wanted; {} missing {:?}; {} extra {:?}; only the order differs: {}",
        got.len(),
        want.len(),
        missing.len(),
        missing.iter().take(3).collect::<Vec<_>>(),
        extra.len(),
        extra.iter().take(3).collect::<Vec<_>>(),
        missing.is_empty() && extra.is_empty() && got.len() == want.len(),
    );
}

/// A tailer of `glob` that has read 40 lines alike at their start from `app.log`.
fn forty_read(glob: &str) -> (Setup, Tailer, Instant) {
    let s = Setup::new();
    let mut t = s.tailer(&[s.source(glob)]);
    let mut clock = Instant::now();
    append(&s.log("app.log"), alike("a", 0..40));
    run(&mut t, &mut clock, 1);
    (s, t, clock)
}

/// Those 40 lines, then `n` of the refill tagged `tag`.
fn forty_then(tag: &str, n: u32) -> Vec<String> {
    let mut want = alike("a", 0..40);
    want.extend(alike(tag, 0..n));
    want
}

#[test]
fn copytruncate_is_seen_past_the_old_position_when_every_line_starts_alike() {
    let (s, mut t, mut clock) = forty_read("app.log");
    copy_and_truncate(&s.log("app.log"), &s.log("app.log.1"));
    append(&s.log("app.log"), alike("b", 0..100));
    run(&mut t, &mut clock, 2);
    same(texts(&s.take()), forty_then("b", 100), "");
}

#[test]
fn a_refill_that_lands_exactly_on_the_old_position_and_then_beyond_is_read_from_its_start() {
    // Lines of one length: 40 new ones end exactly where the 40 old ones did, so the tailer's
    // look in between finds the file neither shorter nor longer.
    for lines in [
        alike as fn(&str, std::ops::Range<u32>) -> Vec<String>,
        numbered,
    ] {
        for glob in ["app.log", "app.log*"] {
            let s = Setup::new();
            let mut t = s.tailer(&[s.source(glob)]);
            let mut clock = Instant::now();
            append(&s.log("app.log"), lines("a", 0..40));
            run(&mut t, &mut clock, 1);
            let position = fs::metadata(s.log("app.log")).unwrap().len();
            copy_and_truncate(&s.log("app.log"), &s.log("app.log.1"));
            append(&s.log("app.log"), lines("b", 0..40));
            assert_eq!(fs::metadata(s.log("app.log")).unwrap().len(), position);
            run(&mut t, &mut clock, 1);
            append(&s.log("app.log"), lines("b", 40..60));
            run(&mut t, &mut clock, 3);
            let mut want = lines("a", 0..40);
            want.extend(lines("b", 0..60));
            same(texts(&s.take()), want, glob);
        }
    }
}

#[test]
fn lines_written_before_the_copy_come_from_the_copy_when_every_line_starts_alike_and_the_copy_is_matched()
 {
    // The copy has the live file's fingerprint both before and after the truncation: it is
    // told from a copy of the live file by holding the bytes read last before the truncation.
    let (s, mut t, mut clock) = forty_read("app.log*");
    append(&s.log("app.log"), alike("a", 40..60));
    copy_and_truncate(&s.log("app.log"), &s.log("app.log.1"));
    append(&s.log("app.log"), alike("b", 0..200));
    run(&mut t, &mut clock, 3);
    let got = texts(&s.take());
    let mut want = alike("a", 0..60);
    want.extend(alike("b", 0..200));
    let mut sorted = got.clone();
    sorted.sort();
    same(sorted, want, "each line once");
    for tag in ["a0", "b0"] {
        let file: Vec<_> = got.iter().filter(|l| l.contains(tag)).cloned().collect();
        let mut ordered = file.clone();
        ordered.sort();
        same(file, ordered, tag);
    }
    // And a copy of the live file made now is a copy: skipped.
    fs::copy(s.log("app.log"), s.log("app.log.2")).unwrap();
    append(&s.log("app.log"), alike("b", 200..210));
    run(&mut t, &mut clock, 3);
    same(texts(&s.take()), alike("b", 200..210), "after a plain copy");
}

#[test]
fn a_writer_that_does_not_append_leaves_a_hole_that_is_skipped_not_shipped() {
    // `app > app.log` writes at its own offset: after a truncation its next write leaves a
    // hole of NULs before it, and every later copytruncate starts the file with a hole too.
    let s = Setup::new();
    let mut t = s.tailer(&[s.source("app.log")]);
    let mut clock = Instant::now();
    let mut writer = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(s.log("app.log"))
        .unwrap();
    let mut want = Vec::new();
    for generation in ["a", "b", "c"] {
        for line in numbered(generation, 0..40) {
            writeln!(writer, "{line}").unwrap();
            want.push(line);
        }
        run(&mut t, &mut clock, 1);
        copy_and_truncate(&s.log("app.log"), &s.log("app.log.1"));
    }
    for line in numbered("d", 0..40) {
        writeln!(writer, "{line}").unwrap();
        want.push(line);
    }
    run(&mut t, &mut clock, 2);
    same(texts(&s.take()), want, "");
}

#[test]
fn a_truncation_while_the_agent_is_down_is_seen_at_its_start_even_with_the_same_first_line() {
    let s = Setup::new();
    let src = s.source("app.log");
    let mut clock = Instant::now();
    {
        let mut t = s.tailer(std::slice::from_ref(&src));
        append(&s.log("app.log"), alike("a", 0..40));
        run(&mut t, &mut clock, 1);
        t.save();
    }
    copy_and_truncate(&s.log("app.log"), &s.log("app.log.1"));
    append(&s.log("app.log"), alike("b", 0..100));
    let mut t = s.tailer(std::slice::from_ref(&src));
    run(&mut t, &mut clock, 2);
    same(texts(&s.take()), forty_then("b", 100), "");
    // And the position saved for the new file is its own: a restart now reads nothing again.
    t.save();
    drop(t);
    let mut t = s.tailer(std::slice::from_ref(&src));
    run(&mut t, &mut clock, 2);
    same(texts(&s.take()), Vec::new(), "after a restart");
}

#[test]
fn a_file_closed_while_idle_and_truncated_then_is_read_from_its_start_when_it_is_opened_again() {
    let (s, mut t, mut clock) = forty_read("app.log");
    clock += IDLE_CLOSE;
    run(&mut t, &mut clock, 1);
    assert_eq!(t.open_files(), Vec::<PathBuf>::new(), "closed while idle");
    copy_and_truncate(&s.log("app.log"), &s.log("app.log.1"));
    append(&s.log("app.log"), alike("b", 0..100));
    run(&mut t, &mut clock, 2);
    same(texts(&s.take()), forty_then("b", 100), "");
}
