//! Following files: which files the globs match, which of them are the same file, and where to
//! read each.
//!
//! # Identity
//!
//! A file open for reading is known by its device and inode, so a rename (logrotate's default)
//! does not make it another file: it is read to its end under its new name, or, when the globs
//! no longer match it, until it has been quiet for [`QUIET_CLOSE`]. A file not yet open is
//! known by its fingerprint: a checksum of its first line (at most [`FINGERPRINT_BYTES`]), the
//! key of its position in [`Checkpoints`]. So a file the agent already read is resumed where it
//! stopped, after a restart, a rename while it was down, or a copy:
//!
//! - copytruncate: the copy (`app.log.1`, when the globs match it) has the original's
//!   fingerprint, and is skipped while the original still has it; once the original is
//!   truncated, the copy resumes at the original's position, so lines written between the last
//!   read and the copy are read from the copy, and none twice. The truncated original starts
//!   again at 0 under its new fingerprint.
//! - A file replaced while the agent was down has a new fingerprint: read from its start.
//! - A file with the fingerprint of another file open now is a copy of it: skipped, unless it
//!   holds what that file held when it was found truncated (below).
//!
//! Files whose first lines are identical (a fixed banner) share a fingerprint and are taken
//! for copies of each other; the first line should say something unique, such as a time.
//!
//! # Truncation
//!
//! A file is taken for truncated, and read again from 0, when
//! - its size falls under the read position (checked every round, by `fstat`);
//! - it no longer holds the last bytes read, up to [`mark::TAIL_BYTES`] ending at the read
//!   position ([`mark::Tail`]): checked every round, even when the file is exactly as long as
//!   the position, and again after each read, before what was read is used. So a truncation
//!   written again up to or past the old position between two looks (a busy writer right
//!   after copytruncate) is seen, whatever its first line. A truncation between a read and
//!   its check: what was read is kept when the file no longer holds it (it was read before,
//!   so it is the copy's too, which resumes after it), and dropped when it does (it is the new
//!   content, read again from 0): no line lost, none twice;
//! - its first line is no longer the one it had (when it is longer than the position);
//! - it is opened again (after a restart, a reload or an idle close) and does not hold the
//!   bytes before its saved position: a checksum of them ([`mark::Mark`]) is saved with it.
//!
//! What cannot be told: a file truncated and written again with the same bytes at every
//! offset up to the position (a writer of one fixed line, `yes`) is, by its content, the same
//! file; only a size seen under the position at one of the looks (five a second when idle)
//! shows it. Its new lines past the position are read; those up to it are taken for the old.
//!
//! Once a file is found truncated, its place (key, position, mark) is kept for
//! [`COPY_WAIT`]: a copy of it found then with the live file's fingerprint (lines alike at
//! their start make the first line the same before and after) that holds the mark is its
//! copy, read from that place under its own key (the fingerprint, `.`, the mark's checksum).
//! A restart before such a copy is read to its end leaves the rest unread (it is then taken
//! for a copy of the live file).
//!
//! A writer that does not append (`app > app.log`) writes at its own offset after a
//! truncation, after a hole of NULs: that hole is skipped, not shipped
//! ([`mark::after_hole`]).
//!
//! # Positions
//!
//! A file's position is the start of the first line not yet shipped: a line without its `\n`
//! yet, or a multiline event still open, is read again after a restart.

use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use lookout_config::logs::{LogSourceConfig, ReadFrom};
use lookout_protocol::{FilePosition, LogRecord, Record};

use super::checkpoints::Checkpoints;
use super::lines::{Line, Multiline, Splitter, detect_level};
use super::mark::{self, Mark, Tail, fingerprint, last_line_end};
use super::tap::Taps;
use crate::spool::Spool;

/// Bytes of a file's first line that make its fingerprint.
pub const FINGERPRINT_BYTES: usize = 256;
/// A file the globs no longer match is closed after it has been at its end this long.
pub const QUIET_CLOSE: Duration = Duration::from_secs(5);
/// A file still matched is closed after this long without growing (and opened again if it
/// grows).
pub const IDLE_CLOSE: Duration = Duration::from_secs(300);
/// How often the globs are expanded again.
pub const SCAN_EVERY: Duration = Duration::from_secs(1);
/// Most bytes read from one file in one round, so one busy file does not starve the others.
const ROUND_BYTES: usize = 4 << 20;
const READ_BYTES: usize = 256 << 10;

/// One `[[logs]]` entry, compiled.
#[derive(Debug)]
struct Source {
    globs: Vec<String>,
    exclude: Vec<glob::Pattern>,
    read_from: ReadFrom,
    multiline: Option<(regex::bytes::Regex, Duration)>,
    max_line: usize,
    /// Added by a reload and not scanned yet: its files already there start as at a first
    /// start (`read_from`).
    added: bool,
}

#[derive(Debug)]
struct Tracked {
    /// None after a truncation, until the new first line is there.
    key: Option<String>,
    path: PathBuf,
    source: usize,
    id: (u64, u64),
    file: File,
    splitter: Splitter,
    multiline: Option<Multiline>,
    read_pos: u64,
    /// The last bytes read, ending at `read_pos`.
    tail: Tail,
    /// The mark saved with the position: of the bytes ending at it, or at an earlier one.
    mark: Option<Mark>,
    /// Truncated, and not read since: a hole at its start is skipped.
    fresh: bool,
    matched: bool,
    last_growth: Instant,
    /// The time given to its last read's lines. Each read's lines get a later one, by a
    /// millisecond at least, so that the collector's order (time, then arrival) keeps a file's
    /// order even when the spool sends a backlog and fresh lines by turns.
    last_time: chrono::DateTime<Utc>,
}

impl Tracked {
    /// Where reading resumes after a restart.
    fn resume_at(&self) -> u64 {
        let split = self.splitter.resume_at();
        self.multiline
            .as_ref()
            .and_then(Multiline::pending_start)
            .map_or(split, |p| p.min(split))
    }
}

/// The tailer of every `[[logs]]` entry.
#[derive(Debug)]
pub struct Tailer {
    sources: Vec<Source>,
    files: Vec<Tracked>,
    checkpoints: Checkpoints,
    spool: Arc<Spool>,
    last_scan: Option<Instant>,
    buf: Vec<u8>,
    taps: Taps,
    /// Where files stood when they were found truncated, for their copies (below).
    truncations: Vec<Truncation>,
}

/// A file's place when it was found truncated: its copy, if the globs match one, resumes
/// there. Needed only when the truncated file's new first line is its old one (lines alike
/// at their start): the copy then has the live file's fingerprint, and is told from a copy of
/// the live file by holding the bytes read before that place.
#[derive(Debug)]
struct Truncation {
    key: String,
    offset: u64,
    mark: Mark,
    at: Instant,
}

/// How long a truncated file's copy is looked for (it is there before the truncation, so the
/// next scan finds it).
const COPY_WAIT: Duration = Duration::from_secs(10);

impl Tailer {
    /// A tailer of `sources` that keeps its positions under `dir` and writes to `spool`
    /// (recovering positions from the records already there).
    pub fn new(sources: &[LogSourceConfig], dir: &Path, spool: Arc<Spool>) -> Self {
        Self::build(sources, None, dir, spool)
    }

    /// A tailer of `sources` that replaces one of `earlier` after a reload of the agent's
    /// configuration. Files resume at their positions, as after a restart; the files already
    /// there of a source that `earlier` did not have start as at a first start: at their end
    /// with `read_from = "end"`, so adding a source does not ship a log's whole past.
    pub fn after_reload(
        sources: &[LogSourceConfig],
        earlier: &[LogSourceConfig],
        dir: &Path,
        spool: Arc<Spool>,
    ) -> Self {
        Self::build(sources, Some(earlier), dir, spool)
    }

    fn build(
        sources: &[LogSourceConfig],
        earlier: Option<&[LogSourceConfig]>,
        dir: &Path,
        spool: Arc<Spool>,
    ) -> Self {
        let mut checkpoints = Checkpoints::open(dir);
        checkpoints.recover(&spool);
        let sources = sources
            .iter()
            .map(|s| Source {
                globs: s.paths.clone(),
                exclude: s
                    .exclude
                    .iter()
                    .filter_map(|p| glob::Pattern::new(p).ok())
                    .collect(),
                read_from: s.read_from,
                multiline: s
                    .multiline_start
                    .as_ref()
                    .and_then(|re| regex::bytes::Regex::new(re).ok())
                    .map(|re| (re, s.multiline_timeout)),
                max_line: s.max_line_bytes,
                added: earlier.is_some_and(|e| !e.contains(s)),
            })
            .collect();
        Self {
            sources,
            files: Vec::new(),
            checkpoints,
            spool,
            last_scan: None,
            buf: vec![0; READ_BYTES],
            taps: Taps::default(),
            truncations: Vec::new(),
        }
    }

    /// The same tailer, handing the lines of the files `taps` names to their tap.
    pub fn with_taps(mut self, taps: Taps) -> Self {
        self.taps = taps;
        self
    }

    /// One round: the globs again when due, then every open file read as far as it goes (up
    /// to a bound per file). True when anything was read.
    pub fn poll(&mut self, now: Instant) -> bool {
        if self
            .last_scan
            .is_none_or(|t| now.duration_since(t) >= SCAN_EVERY)
        {
            self.scan(now);
            self.last_scan = Some(now);
        }
        let mut any = false;
        for i in 0..self.files.len() {
            any |= self.read(i, now);
        }
        self.flush_quiet_events(now);
        self.close_finished(now);
        any
    }

    /// Saves the positions (at stop).
    pub fn save(&mut self) {
        self.checkpoints.save();
    }

    /// Paths of the files open now (for tests and logs).
    pub fn open_files(&self) -> Vec<PathBuf> {
        self.files.iter().map(|t| t.path.clone()).collect()
    }

    fn scan(&mut self, now: Instant) {
        let mut seen = HashSet::new();
        for si in 0..self.sources.len() {
            for path in self.matches(si) {
                let Ok(meta) = std::fs::metadata(&path) else {
                    continue;
                };
                if !meta.is_file() {
                    continue;
                }
                let id = (meta.dev(), meta.ino());
                if !seen.insert(id) {
                    continue;
                }
                if self.files.iter().any(|t| t.id == id) || meta.len() == 0 {
                    continue;
                }
                self.open(si, &path, id, meta.len(), now);
            }
        }
        for t in &mut self.files {
            t.matched = seen.contains(&t.id);
        }
        self.truncations
            .retain(|c| now.duration_since(c.at) < COPY_WAIT);
        self.checkpoints.first_start = false;
        for s in &mut self.sources {
            s.added = false;
        }
        self.checkpoints.save();
    }

    fn matches(&self, si: usize) -> Vec<PathBuf> {
        let src = &self.sources[si];
        let mut out = Vec::new();
        for g in &src.globs {
            let Ok(paths) = glob::glob(g) else { continue };
            for p in paths.flatten() {
                if !src.exclude.iter().any(|x| x.matches_path(&p)) {
                    out.push(p);
                }
            }
        }
        out
    }

    fn open(&mut self, si: usize, path: &Path, id: (u64, u64), len: u64, now: Instant) {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot open a log file; trying again later");
                return;
            }
        };
        let Some(mut key) = fingerprint(&file) else {
            return; // no complete first line yet
        };
        let mut copy_of: Option<Truncation> = None;
        if self.files.iter().any(|t| t.key.as_deref() == Some(&key)) {
            // A copy of a file being read, unless it holds what that file held when it was
            // found truncated.
            let found = self
                .truncations
                .iter()
                .position(|c| c.key == key && c.mark.held(&file));
            let Some(found) = found else {
                return;
            };
            let c = self.truncations.swap_remove(found);
            // Its own key, so that its positions are not the live file's: its fingerprint, a
            // dot, and its mark's checksum.
            key = format!("{key}.{:08x}", c.mark.crc);
            copy_of = Some(c);
        }
        let src = &self.sources[si];
        let (saved, mut mark) = match &copy_of {
            Some(c) => (Some(c.offset), Some(c.mark)),
            None => (self.checkpoints.get(&key), self.checkpoints.mark(&key)),
        };
        let start = match saved {
            Some(at) if mark.is_none_or(|m| m.held(&file)) => at.min(len),
            Some(at) => {
                // Same first line, but not the bytes read before the position: truncated
                // and written again since (while the agent was down or the file closed).
                tracing::info!(file = %path.display(), offset = at, "log file truncated since its position was saved; reading it from its start");
                mark = None;
                0
            }
            None if (self.checkpoints.first_start || src.added)
                && src.read_from == ReadFrom::End =>
            {
                last_line_end(&file, len)
            }
            None => 0,
        };
        tracing::info!(file = %path.display(), offset = start, "tailing");
        let tail = Tail::at(&file, start);
        let path_text = path.display().to_string();
        self.checkpoints.set(&key, start, mark, &path_text);
        self.files.push(Tracked {
            key: Some(key),
            path: path.to_path_buf(),
            source: si,
            id,
            file,
            splitter: Splitter::new(src.max_line, start),
            multiline: src
                .multiline
                .as_ref()
                .map(|(re, t)| Multiline::new(re.clone(), *t, src.max_line)),
            read_pos: start,
            tail,
            mark,
            fresh: false,
            matched: true,
            last_growth: now,
            last_time: chrono::DateTime::<Utc>::UNIX_EPOCH,
        });
    }

    /// Reads file `i` as far as it goes now; true when it had anything new.
    fn read(&mut self, i: usize, now: Instant) -> bool {
        let len = match self.files[i].file.metadata() {
            Ok(m) => m.len(),
            Err(_) => return false,
        };
        // Truncated: shorter than what was read; or written again up to or past the old
        // position between two looks (as a busy writer does right after copytruncate), so
        // that its first line is no longer the one it had, or it no longer holds the bytes
        // read last before that position.
        let t = &self.files[i];
        let first = t
            .key
            .as_deref()
            .map(|k| k.split_once('.').map_or(k, |(f, _)| f));
        let rewritten = first.is_some()
            && ((len > t.read_pos && fingerprint(&t.file).as_deref() != first)
                || !t.tail.held(&t.file, t.read_pos));
        if len < t.read_pos || rewritten {
            self.truncated(i, now);
        }
        let t = &mut self.files[i];
        if t.fresh {
            let Some(at) = mark::after_hole(&t.file, t.read_pos, &mut self.buf) else {
                return false;
            };
            if at > t.read_pos {
                tracing::info!(file = %t.path.display(), bytes = at - t.read_pos, "skipped a hole left by a writer that does not append");
                t.read_pos = at;
                t.splitter = Splitter::new(self.sources[t.source].max_line, at);
            }
            t.fresh = false;
        }
        if t.key.is_none() {
            match fingerprint(&t.file) {
                Some(k) => t.key = Some(k),
                None => return false,
            }
        }
        let mut lines = Vec::new();
        let mut read = 0;
        let mut cut = false;
        while read < ROUND_BYTES {
            let n = match t.file.read_at(&mut self.buf, t.read_pos) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(file = %t.path.display(), error = %e, "log file read failed");
                    break;
                }
            };
            // Still the same file once read (it holds the bytes before what was read), so what
            // was read is from it. Truncated meanwhile: what was read is kept only if the file
            // no longer holds it there (read before the truncation, so it is in the copy too,
            // which resumes after it); else it is the new content, read again from 0.
            let chunk = &self.buf[..n];
            cut = !t.tail.held(&t.file, t.read_pos);
            if !cut || !mark::holds(&t.file, t.read_pos, chunk) {
                t.splitter.feed(chunk, &mut lines);
                t.tail.push(chunk);
                t.read_pos += n as u64;
                read += n;
            }
            if cut {
                break;
            }
        }
        if read == 0 {
            if cut {
                self.truncated(i, now);
            }
            return cut;
        }
        t.last_growth = now;
        let mut events = Vec::with_capacity(lines.len());
        match &mut t.multiline {
            Some(m) => {
                for l in lines {
                    m.push(l, now, &mut events);
                }
            }
            None => events = lines,
        }
        self.ship(i, events);
        if cut {
            self.truncated(i, now);
        }
        true
    }

    /// The file was truncated under us (copytruncate, or `> file`): what was read of it stays read
    /// (a copy resumes from its position), and it starts again at 0 under a new fingerprint.
    fn truncated(&mut self, i: usize, now: Instant) {
        let done = self.files[i]
            .multiline
            .as_mut()
            .and_then(|m| m.flush(now, true));
        self.ship(i, done.into_iter().collect());
        let t = &mut self.files[i];
        tracing::info!(file = %t.path.display(), "log file truncated; reading it from its start");
        if let (Some(key), Some(mark)) = (t.key.clone(), t.mark) {
            self.truncations.push(Truncation {
                key,
                offset: t.resume_at(),
                mark,
                at: now,
            });
        }
        let src = &self.sources[t.source];
        t.key = None;
        t.read_pos = 0;
        t.tail = Tail::default();
        t.mark = None;
        t.fresh = true;
        t.splitter = Splitter::new(src.max_line, 0);
        t.multiline = src
            .multiline
            .as_ref()
            .map(|(re, to)| Multiline::new(re.clone(), *to, src.max_line));
    }

    /// Ships `events` of file `i` with the position they bring it to, and saves that position
    /// before any of them can leave the spool.
    fn ship(&mut self, i: usize, events: Vec<Line>) {
        let t = &mut self.files[i];
        let Some(key) = t.key.clone() else {
            return;
        };
        let position = t.resume_at();
        if position == t.read_pos {
            t.mark = t.tail.mark(position);
        }
        let mark = t.mark;
        let source = t.path.display().to_string();
        if !events.is_empty()
            && let Some(tap) = self.taps.find(&t.path)
        {
            tap.lines(&events);
        }
        let time = Utc::now().max(t.last_time + chrono::Duration::milliseconds(1));
        if !events.is_empty() {
            t.last_time = time;
        }
        // Every record carries the position just past it: a read's records go to the spool in
        // one write, and a `kill -9` can tear that write after any of them; the newest
        // position among the records that made it is where reading resumes.
        let mut records: Vec<Record> = events
            .into_iter()
            .filter(|e| e.cut > 0 || e.bytes.iter().any(|b| !b.is_ascii_whitespace()))
            .map(|e| {
                let text = e.text();
                Record::Log(LogRecord {
                    time,
                    source: source.clone(),
                    level: detect_level(&text).map(str::to_string),
                    text,
                    position: Some(FilePosition {
                        file: key.clone(),
                        offset: e.end,
                        cursor: None,
                    }),
                })
            })
            .collect();
        let checkpoints = &mut self.checkpoints;
        match records.last_mut() {
            Some(Record::Log(last)) => {
                // The last one's: past the lines it skipped too (blank ones), up to an event
                // still open or a line without its end.
                if let Some(p) = last.position.as_mut() {
                    p.offset = position;
                }
                self.spool.push_all(&records, || {
                    checkpoints.set(&key, position, mark, &source);
                    checkpoints.save();
                });
            }
            // Only blank lines: nothing to ship, and nothing lost if the position is saved late.
            _ => checkpoints.set(&key, position, mark, &source),
        }
    }

    fn flush_quiet_events(&mut self, now: Instant) {
        for i in 0..self.files.len() {
            let done = self.files[i]
                .multiline
                .as_mut()
                .and_then(|m| m.flush(now, false));
            if let Some(e) = done {
                self.ship(i, vec![e]);
            }
        }
    }

    /// Closes files renamed away or deleted once they have been quiet at their end, with their
    /// last line even if it never got its `\n`; and files idle for long (opened again when
    /// they grow).
    fn close_finished(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.files.len() {
            let t = &self.files[i];
            let at_end = t.file.metadata().is_ok_and(|m| m.len() <= t.read_pos);
            let quiet = now.duration_since(t.last_growth);
            let gone = !t.matched && at_end && quiet >= QUIET_CLOSE;
            let idle = t.matched && at_end && quiet >= IDLE_CLOSE && !t.splitter.has_partial();
            if !(gone || idle) {
                i += 1;
                continue;
            }
            if gone {
                let t = &mut self.files[i];
                let mut last: Vec<Line> = t
                    .multiline
                    .as_mut()
                    .and_then(|m| m.flush(now, true))
                    .into_iter()
                    .collect();
                if let Some(partial) = t.splitter.flush() {
                    last.push(partial);
                }
                self.ship(i, last);
            }
            let t = self.files.remove(i);
            tracing::info!(file = %t.path.display(), offset = t.read_pos, renamed_or_deleted = gone, "closed");
        }
    }
}
