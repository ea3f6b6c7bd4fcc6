//! The log tailer against real files: new files, `read_from`, rotation by rename and by
//! copytruncate (with globs that match the rotated copies and globs that do not), truncation,
//! a file replaced while the agent was down, multiline events, and restarts, including one
//! whose saved positions lag behind what reached the spool, and a reload of the agent's
//! configuration that adds and removes sources; truncations the size does not show
//! ([`truncation`]). Every test checks that each line is shipped exactly once, in order.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lookout_agent::logs::tail::{QUIET_CLOSE, SCAN_EVERY, Tailer};
use lookout_agent::spool::{FsyncPolicy, Spool, SpoolConfig};
use lookout_config::logs::{LogSourceConfig, ReadFrom};
use lookout_protocol::{LogRecord, Record};

#[path = "tail/truncation.rs"]
mod truncation;

struct Setup {
    dir: tempfile::TempDir,
    spool: Arc<Spool>,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("log")).unwrap();
        let spool = Self::open_spool(dir.path());
        Setup { dir, spool }
    }

    fn open_spool(dir: &Path) -> Arc<Spool> {
        Arc::new(
            Spool::open(SpoolConfig {
                dir: dir.join("spool"),
                max_bytes: 64 << 20,
                segment_bytes: 64 << 10,
                fsync: FsyncPolicy::Never,
                batch_bytes: 1 << 20,
                flush_interval: std::time::Duration::from_secs(1),
                steady_wait: std::time::Duration::from_secs(10),
            })
            .unwrap(),
        )
    }

    fn log(&self, name: &str) -> PathBuf {
        self.dir.path().join("log").join(name)
    }

    fn source(&self, glob: &str) -> LogSourceConfig {
        LogSourceConfig {
            paths: vec![self.log(glob).display().to_string()],
            exclude: Vec::new(),
            read_from: ReadFrom::Beginning,
            multiline_start: None,
            multiline_timeout: Duration::from_secs(1),
            max_line_bytes: 1024,
        }
    }

    fn tailer(&self, sources: &[LogSourceConfig]) -> Tailer {
        Tailer::new(
            sources,
            &self.dir.path().join("positions"),
            self.spool.clone(),
        )
    }

    /// Everything in the spool not yet taken, taken (and acknowledged, as a collector would).
    fn take(&self) -> Vec<LogRecord> {
        let mut out = Vec::new();
        while let Some(b) = self.spool.next_batch(1000) {
            for r in b.records.iter() {
                if let Record::Log(l) = r {
                    out.push(l.clone());
                }
            }
            self.spool.ack(&b.batch_id);
        }
        out
    }
}

fn append(path: &Path, lines: impl IntoIterator<Item = String>) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
}

/// logrotate's copytruncate: a copy, then the original cut to nothing.
fn copy_and_truncate(path: &Path, copy: &Path) {
    fs::copy(path, copy).unwrap();
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(0)
        .unwrap();
}

fn numbered(tag: &str, range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|i| format!("{tag} line {i:05}")).collect()
}

fn texts(records: &[LogRecord]) -> Vec<String> {
    records.iter().map(|r| r.text.clone()).collect()
}

/// Polls as time passes: `rounds` rounds, each a scan interval later than the one before.
fn run(t: &mut Tailer, clock: &mut Instant, rounds: u32) {
    for _ in 0..rounds {
        *clock += SCAN_EVERY;
        t.poll(*clock);
    }
}

#[test]
fn a_new_file_is_read_from_its_start_and_the_last_record_carries_the_position() {
    let s = Setup::new();
    let mut t = s.tailer(&[s.source("*.log")]);
    let mut clock = Instant::now();
    run(&mut t, &mut clock, 1);
    append(&s.log("app.log"), numbered("a", 0..100));
    run(&mut t, &mut clock, 2);
    let got = s.take();
    assert_eq!(texts(&got), numbered("a", 0..100));
    assert_eq!(got[0].source, s.log("app.log").display().to_string());
    let pos = got.last().unwrap().position.clone().expect("position");
    assert_eq!(pos.offset, fs::metadata(s.log("app.log")).unwrap().len());
    // Every record carries the position just past its line (a torn write keeps a prefix).
    let line_len = "a line 00000\n".len() as u64;
    for (i, r) in got.iter().enumerate() {
        assert_eq!(
            r.position.as_ref().unwrap().offset,
            (i as u64 + 1) * line_len
        );
    }
}

#[test]
fn read_from_end_skips_what_was_there_at_first_start_but_not_files_that_come_later() {
    let s = Setup::new();
    append(&s.log("old.log"), numbered("old", 0..10));
    // A line without its newline yet: reading from the end starts after the last full line.
    fs::OpenOptions::new()
        .append(true)
        .open(s.log("old.log"))
        .unwrap()
        .write_all(b"partial ")
        .unwrap();
    let mut src = s.source("*.log");
    src.read_from = ReadFrom::End;
    let mut t = s.tailer(std::slice::from_ref(&src));
    let mut clock = Instant::now();
    run(&mut t, &mut clock, 1);
    append(&s.log("old.log"), ["line ends".to_string()]);
    append(&s.log("new.log"), numbered("new", 0..3));
    run(&mut t, &mut clock, 2);
    let mut got = texts(&s.take());
    got.sort();
    let mut want = vec!["partial line ends".to_string()];
    want.extend(numbered("new", 0..3));
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn rotation_by_rename_reads_the_old_file_to_its_end_when_only_the_live_name_matches() {
    let s = Setup::new();
    let mut t = s.tailer(&[s.source("app.log")]);
    let mut clock = Instant::now();
    append(&s.log("app.log"), numbered("x", 0..50));
    run(&mut t, &mut clock, 1);
    // logrotate renames; the application writes a little more to the old file before it
    // reopens, then to the new one.
    fs::rename(s.log("app.log"), s.log("app.log.1")).unwrap();
    append(&s.log("app.log.1"), numbered("x", 50..60));
    run(&mut t, &mut clock, 1);
    append(&s.log("app.log"), numbered("x", 60..100));
    run(&mut t, &mut clock, 2);
    assert_eq!(texts(&s.take()), numbered("x", 0..100));
    // The renamed file is closed once quiet at its end; the new one stays open.
    clock += QUIET_CLOSE;
    run(&mut t, &mut clock, 1);
    assert_eq!(t.open_files(), [s.log("app.log")]);
}

#[test]
fn a_glob_that_matches_rotated_files_ships_no_line_twice_after_renames() {
    let s = Setup::new();
    let mut t = s.tailer(&[s.source("app.log*")]);
    let mut clock = Instant::now();
    let mut want = Vec::new();
    for round in 0..4 {
        let lines = numbered(&format!("g{round}"), 0..30);
        append(&s.log("app.log"), lines.clone());
        want.extend(lines);
        run(&mut t, &mut clock, 1);
        // Rotate: app.log.N → app.log.N+1, app.log → app.log.1.
        for n in (1..=round).rev() {
            let _ = fs::rename(
                s.log(&format!("app.log.{n}")),
                s.log(&format!("app.log.{}", n + 1)),
            );
        }
        fs::rename(s.log("app.log"), s.log("app.log.1")).unwrap();
    }
    run(&mut t, &mut clock, 2);
    assert_eq!(texts(&s.take()), want);
}

/// copytruncate under a glob that matches the copy: 40 lines read, 20 more written, copied and
/// truncated before the agent reads again, then `new_lines` written to the truncated file.
/// Every line must arrive once, each file's in order.
fn copytruncate_with_the_copy_matched(new_lines: u32) {
    let s = Setup::new();
    let mut t = s.tailer(&[s.source("app.log*")]);
    let mut clock = Instant::now();
    append(&s.log("app.log"), numbered("a", 0..40));
    run(&mut t, &mut clock, 1);
    append(&s.log("app.log"), numbered("a", 40..60));
    copy_and_truncate(&s.log("app.log"), &s.log("app.log.1"));
    append(&s.log("app.log"), numbered("b", 0..new_lines));
    run(&mut t, &mut clock, 3);
    let got = texts(&s.take());
    let mut want = numbered("a", 0..60);
    want.extend(numbered("b", 0..new_lines));
    let mut sorted = got.clone();
    sorted.sort();
    want.sort();
    assert_eq!(sorted, want, "each line once");
    for tag in ['a', 'b'] {
        let file: Vec<_> = got.iter().filter(|l| l.starts_with(tag)).cloned().collect();
        let mut ordered = file.clone();
        ordered.sort();
        assert_eq!(file, ordered, "file {tag} in order");
    }
}

#[test]
fn copytruncate_resumes_from_the_copy_so_lines_written_before_the_copy_are_not_lost() {
    copytruncate_with_the_copy_matched(25);
}

#[test]
fn copytruncate_is_seen_even_when_the_file_has_grown_past_the_old_position_again() {
    // The truncated file is longer than the position read before: only its first line shows
    // it was truncated.
    copytruncate_with_the_copy_matched(200);
}

#[test]
fn copytruncate_with_only_the_live_name_matched_restarts_at_zero_without_duplicates() {
    let s = Setup::new();
    let mut t = s.tailer(&[s.source("app.log")]);
    let mut clock = Instant::now();
    append(&s.log("app.log"), numbered("a", 0..40));
    run(&mut t, &mut clock, 1);
    copy_and_truncate(&s.log("app.log"), &s.log("app.log.1"));
    append(&s.log("app.log"), numbered("b", 0..10));
    run(&mut t, &mut clock, 2);
    let mut want = numbered("a", 0..40);
    want.extend(numbered("b", 0..10));
    assert_eq!(texts(&s.take()), want);
}

#[test]
fn a_restart_resumes_where_the_spool_ends_even_when_saved_positions_lag() {
    let s = Setup::new();
    let src = s.source("*.log");
    let mut clock = Instant::now();
    {
        let mut t = s.tailer(std::slice::from_ref(&src));
        append(&s.log("app.log"), numbered("a", 0..10));
        run(&mut t, &mut clock, 1);
        t.save();
    }
    let early = fs::read(s.dir.path().join("positions/checkpoints.json")).unwrap();
    {
        let mut t = s.tailer(std::slice::from_ref(&src));
        append(&s.log("app.log"), numbered("a", 10..30));
        run(&mut t, &mut clock, 1);
        // Killed before a lagging save: put the older positions back, as a crash between
        // the spool write and the position write would leave them.
    }
    fs::write(s.dir.path().join("positions/checkpoints.json"), &early).unwrap();
    // The spool is reopened as after a crash; nothing was acknowledged yet.
    let spool = Setup::open_spool(s.dir.path());
    let s2 = Setup { dir: s.dir, spool };
    append(&s2.log("app.log"), numbered("a", 30..40));
    let mut t = s2.tailer(std::slice::from_ref(&src));
    run(&mut t, &mut clock, 2);
    assert_eq!(texts(&s2.take()), numbered("a", 0..40));
}

#[test]
fn a_file_replaced_while_the_agent_was_down_is_read_from_its_start() {
    let s = Setup::new();
    let src = s.source("*.log");
    let mut clock = Instant::now();
    {
        let mut t = s.tailer(std::slice::from_ref(&src));
        append(&s.log("app.log"), numbered("old", 0..20));
        run(&mut t, &mut clock, 1);
        t.save();
    }
    fs::remove_file(s.log("app.log")).unwrap();
    append(&s.log("app.log"), numbered("new", 0..5));
    let mut t = s.tailer(std::slice::from_ref(&src));
    run(&mut t, &mut clock, 1);
    let mut want = numbered("old", 0..20);
    want.extend(numbered("new", 0..5));
    assert_eq!(texts(&s.take()), want);
}

#[test]
fn multiline_events_are_joined_and_the_last_one_leaves_after_its_timeout() {
    let s = Setup::new();
    let mut src = s.source("*.log");
    src.multiline_start = Some(r"^\d{4}-".into());
    let mut t = s.tailer(&[src]);
    let mut clock = Instant::now();
    append(
        &s.log("app.log"),
        [
            "2026-11-26 ERROR request failed".to_string(),
            "panicked at src/main.rs:10".to_string(),
            "   0: app::main".to_string(),
            "2026-11-26 INFO next request".to_string(),
        ],
    );
    t.poll(clock);
    let got = s.take();
    assert_eq!(
        texts(&got),
        ["2026-11-26 ERROR request failed\npanicked at src/main.rs:10\n   0: app::main"]
    );
    assert_eq!(got[0].level.as_deref(), Some("error"));
    // The open event's start is the position: a restart would read it again, not lose it.
    assert_eq!(
        got[0].position.as_ref().unwrap().offset,
        "2026-11-26 ERROR request failed\npanicked at src/main.rs:10\n   0: app::main\n".len()
            as u64
    );
    clock += Duration::from_millis(500);
    t.poll(clock);
    assert!(s.take().is_empty());
    clock += Duration::from_millis(600);
    t.poll(clock);
    assert_eq!(texts(&s.take()), ["2026-11-26 INFO next request"]);
}

#[test]
fn a_write_torn_by_a_kill_resumes_after_the_last_record_that_made_it() {
    let s = Setup::new();
    let src = s.source("*.log");
    let mut clock = Instant::now();
    let positions = s.dir.path().join("positions/checkpoints.json");
    {
        let mut t = s.tailer(std::slice::from_ref(&src));
        append(&s.log("app.log"), numbered("a", 0..500));
        run(&mut t, &mut clock, 1);
    }
    // Killed in the middle of that read's one write to the spool: its end is torn off, and the
    // positions file never got the new position.
    fs::remove_file(&positions).unwrap();
    let mut segments: Vec<_> = fs::read_dir(s.dir.path().join("spool"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segments.sort();
    let last = segments.last().unwrap();
    let len = fs::metadata(last).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(last)
        .unwrap()
        .set_len(len - 3_000)
        .unwrap();
    let s2 = Setup {
        spool: Setup::open_spool(s.dir.path()),
        dir: s.dir,
    };
    let mut t = s2.tailer(std::slice::from_ref(&src));
    run(&mut t, &mut clock, 2);
    assert_eq!(
        texts(&s2.take()),
        numbered("a", 0..500),
        "each line once, in order"
    );
}

#[test]
fn a_reload_keeps_the_place_of_files_that_stay_and_reads_added_sources_as_at_a_first_start() {
    let s = Setup::new();
    let stays = s.source("app.log");
    let removed = s.source("gone.log");
    let mut clock = Instant::now();
    let mut t = s.tailer(&[stays.clone(), removed.clone()]);
    run(&mut t, &mut clock, 1);
    append(&s.log("app.log"), numbered("a", 0..10));
    append(&s.log("gone.log"), numbered("g", 0..5));
    // A line still being written when the reload comes: read again whole afterwards.
    fs::OpenOptions::new()
        .append(true)
        .open(s.log("app.log"))
        .unwrap()
        .write_all(b"half ")
        .unwrap();
    run(&mut t, &mut clock, 1);
    // The reload: the old tailer stops (saving its positions), a new one starts with one
    // source removed and one added, whose file already has a past.
    t.save();
    drop(t);
    append(&s.log("other.log"), numbered("past", 0..5));
    append(&s.log("app.log"), ["of a line".to_string()]);
    append(&s.log("app.log"), numbered("a", 10..20));
    append(&s.log("gone.log"), numbered("g", 5..8));
    let mut added = s.source("other.log");
    added.read_from = ReadFrom::End;
    let mut t = Tailer::after_reload(
        &[stays.clone(), added.clone()],
        &[stays, removed],
        &s.dir.path().join("positions"),
        s.spool.clone(),
    );
    run(&mut t, &mut clock, 1);
    append(&s.log("other.log"), numbered("now", 0..3));
    run(&mut t, &mut clock, 2);
    let got = s.take();
    let of = |path: &str| -> Vec<String> {
        let source = s.log(path).display().to_string();
        got.iter()
            .filter(|r| r.source == source)
            .map(|r| r.text.clone())
            .collect()
    };
    let mut want = numbered("a", 0..10);
    want.push("half of a line".to_string());
    want.extend(numbered("a", 10..20));
    assert_eq!(of("app.log"), want, "the file that stays: each line once");
    assert_eq!(
        of("gone.log"),
        numbered("g", 0..5),
        "a removed source is read no more"
    );
    assert_eq!(
        of("other.log"),
        numbered("now", 0..3),
        "an added source with read_from = \"end\" skips the past of files already there"
    );
}
