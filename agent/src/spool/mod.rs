//! The agent's durable spool: every record is written here before it is shipped, and only the
//! collector's acknowledgement lets it go.
//!
//! # On disk (`<data_dir>/spool/`)
//!
//! - `NNNNNNNNNNNNNNNNNNNN.seg`: segments, append-only, named by the sequence number of their first
//!   record (20 digits); a new segment starts when the current one reaches `segment_bytes`. Each
//!   record is a [`frame`] with a checksum.
//! - `state.0`, `state.1` ([`state`]): the sequence numbers the collector has stored
//!   ([`acked::Acked`]: all up to a prefix, plus ranges above it) and the batch being sent (its
//!   id, first and last sequence number). Overwritten in place by turns; the batch in flight is
//!   synced before the batch is sent, so that after a crash the same records go again under the
//!   same batch id and the collector stores them once. (Spools from before these files kept the
//!   same in `acked` and `inflight`; they are read once and replaced.)
//!
//! # Invariants
//!
//! - Sequence numbers increase by one per record, across segments and restarts (the next one
//!   follows the last valid frame found at start, the acknowledged one and the batch in flight):
//!   a number that went out in a batch is never given to another record.
//! - A segment is deleted only when every record in it is acknowledged, or when the spool is over
//!   `max_bytes`: then the oldest segment goes, and its unacknowledged records are counted as
//!   dropped.
//! - Batch ids are `<epoch>-<first>-<last>` with an epoch drawn at each start, so a batch formed
//!   after a restart never reuses the id of an earlier, different batch. A batch holds every
//!   unacknowledged record from `first` to `last`.
//! - When more than two batches wait (the collector was away), batches alternate between the
//!   oldest records and the ones written since draining began, so the collector sees current
//!   state at once; acknowledgements then arrive out of order, which `acked` records.
//! - At start, damage (a torn last frame after a crash, or a corrupt stretch) is skipped with a
//!   warning that says how many bytes of which segment were lost; the agent never refuses to start
//!   because of its spool. A spool that cannot be written (disk full, permissions) drops what it
//!   cannot store, counts it and says so once per episode; the probes go on.

pub mod acked;
pub mod frame;
pub mod state;

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lookout_protocol::Record;
use tokio::sync::Notify;
use tokio::time::Instant;

/// A batch handed to the shipper and not yet acknowledged.
#[derive(Debug, Clone)]
pub struct PendingBatch {
    /// The batch id; retries reuse it.
    pub batch_id: String,
    /// The records, in the order they were produced.
    pub records: Arc<Vec<Record>>,
}

/// When written records are synced to the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// After every record: nothing acknowledged to a probe is lost on power failure; slow.
    Always,
    /// At most this long after a write (the default, 1 s): a power failure loses at most that.
    Every(Duration),
    /// Never explicitly: the operating system decides (a crash of the agent alone loses nothing).
    Never,
}

/// Spool settings.
#[derive(Debug, Clone)]
pub struct SpoolConfig {
    /// The spool's folder.
    pub dir: PathBuf,
    /// Largest total size of the segments, in bytes.
    pub max_bytes: u64,
    /// Size at which a new segment starts, in bytes.
    pub segment_bytes: u64,
    /// When to sync.
    pub fsync: FsyncPolicy,
    /// Most bytes of records (as JSON) in one batch; a batch holds at least one record.
    pub batch_bytes: usize,
    /// Longest a record waits before it is due to be sent ([`Spool::push`]).
    pub flush_interval: Duration,
    /// Longest a steady result waits ([`Spool::push_steady`]).
    pub steady_wait: Duration,
}

/// Why the spool could not be opened at all (its folder cannot be made or read).
#[derive(Debug, thiserror::Error)]
#[error("spool folder {path}: {source}")]
pub struct SpoolError {
    /// The folder.
    pub path: String,
    /// The cause.
    pub source: std::io::Error,
}

#[derive(Debug)]
struct Segment {
    first_seq: u64,
    last_seq: Option<u64>,
    records: u64,
    bytes: u64,
    path: PathBuf,
    /// Kept open for reading batches, so forming one costs a `pread`, not an open.
    reader: std::sync::OnceLock<File>,
}

impl Segment {
    fn new(first_seq: u64, last_seq: Option<u64>, records: u64, bytes: u64, path: PathBuf) -> Self {
        Self {
            first_seq,
            last_seq,
            records,
            bytes,
            path,
            reader: std::sync::OnceLock::new(),
        }
    }

    /// At most `len` of the segment's bytes from `offset` on.
    fn read_range(&self, offset: u64, len: u64) -> Vec<u8> {
        if self.reader.get().is_none()
            && let Ok(f) = File::open(&self.path)
        {
            let _ = self.reader.set(f);
        }
        let len = len.min(self.bytes.saturating_sub(offset)) as usize;
        let fallback = || {
            let mut tail = read_tail(&self.path, offset);
            tail.truncate(len);
            tail
        };
        let Some(f) = self.reader.get() else {
            return fallback();
        };
        let mut buf = vec![0; len];
        if let Err(e) = std::os::unix::fs::FileExt::read_exact_at(f, &mut buf, offset) {
            tracing::warn!(segment = %self.path.display(), error = %e, "spool segment read failed");
            return fallback();
        }
        buf
    }

    /// The segment's bytes from `offset` to the end of what was written.
    fn read_from(&self, offset: u64) -> Vec<u8> {
        self.read_range(offset, u64::MAX)
    }
}

/// Records read from the spool: the records, their first and last sequence numbers, and the
/// position just past them.
type Taken = (Vec<Record>, u64, u64, (u64, u64));

/// A batch being formed: its records, their first and last sequence numbers, their bytes.
#[derive(Default)]
struct Forming {
    records: Vec<Record>,
    first: u64,
    last: u64,
    bytes: usize,
}

#[derive(Debug)]
struct Inner {
    epoch: String,
    segments: VecDeque<Segment>,
    writer: Option<File>,
    next_seq: u64,
    acked: acked::Acked,
    /// While a backlog drains: where the fresh records start (records written after the
    /// collector came back); batches alternate between these and the oldest.
    live_at: Option<(u64, u64)>,
    live_turn: bool,
    /// Next record to hand out: its segment's first sequence number and byte offset.
    read_at: (u64, u64),
    in_flight: Option<(PendingBatch, u64, u64)>,
    state: state::StateFiles,
    /// Records on disk not yet acknowledged (sequence numbers can have gaps after a crash, so
    /// this is counted, not computed).
    held: u64,
    dropped: u64,
    dropping: bool,
    /// In a spool-full episode: said once, quiet until the spool is down to half its size.
    full: bool,
    dirty: bool,
    /// The state slot written last is not synced yet.
    state_dirty: bool,
    /// When the next batch should leave: the earliest deadline of the records not yet taken
    /// into a batch; `None` when there are none.
    due: Option<Instant>,
}

/// The spool. Cheap to share: every method takes `&self`.
#[derive(Debug)]
pub struct Spool {
    cfg: SpoolConfig,
    // std's Mutex: file appends are short and never held across an await.
    inner: Mutex<Inner>,
    /// Signalled when records are written (their deadline may be earlier than the one waited
    /// for).
    notify: Notify,
    /// Signalled when written records start waiting for a sync.
    dirtied: Notify,
}

/// Refused batches kept in `rejected/`.
pub const MAX_REJECTED: usize = 100;

fn seg_name(first: u64) -> String {
    format!("{first:020}.seg")
}

fn write_atomic(dir: &Path, name: &str, bytes: &[u8], sync: bool) -> std::io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    if sync {
        f.sync_data()?;
    }
    fs::rename(&tmp, dir.join(name))?;
    if sync {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

impl Spool {
    /// Opens (creating if needed) the spool in `cfg.dir`, recovering from whatever a crash left.
    pub fn open(cfg: SpoolConfig) -> Result<Self, SpoolError> {
        // A folder that cannot be made or read does not stop the agent: it starts with an empty
        // spool, and records are dropped and counted until the folder can be written.
        if let Err(e) = fs::create_dir_all(&cfg.dir) {
            tracing::error!(dir = %cfg.dir.display(), error = %e, "cannot create the spool folder; records are dropped until it can be written");
        }
        let (state_files, found) = state::StateFiles::open(&cfg.dir);
        let legacy = found.is_none();
        let saved = found.unwrap_or_else(|| read_legacy_state(&cfg.dir));
        let acked = saved.acked.clone();
        let mut names: Vec<(u64, PathBuf)> = match fs::read_dir(&cfg.dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    let p = e.path();
                    let first = p
                        .file_name()?
                        .to_str()?
                        .strip_suffix(".seg")?
                        .parse()
                        .ok()?;
                    Some((first, p))
                })
                .collect(),
            Err(e) => {
                tracing::error!(dir = %cfg.dir.display(), error = %e, "cannot read the spool folder; starting with an empty spool");
                Vec::new()
            }
        };
        names.sort();
        let mut segments = VecDeque::new();
        let mut next_seq = acked.max() + 1;
        let mut held = 0u64;
        let count = names.len();
        for (i, (first, path)) in names.into_iter().enumerate() {
            let bytes = match fs::read(&path) {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(segment = %path.display(), error = %e, "spool segment unreadable; skipped");
                    continue;
                }
            };
            let (frames, skipped) = frame::scan(&bytes);
            let valid_end = frames.last().map_or(0, |f| f.end());
            if skipped > 0 {
                tracing::warn!(segment = %path.display(), lost_bytes = skipped, records_kept = frames.len(), "damaged spool segment: the unreadable part is skipped");
            }
            // The last segment is appended to: cut a torn tail so new frames follow valid ones.
            if i + 1 == count
                && valid_end < bytes.len()
                && let Err(e) = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_len(valid_end as u64))
            {
                tracing::warn!(segment = %path.display(), error = %e, "cannot cut the spool's torn tail");
            }
            held += frames.iter().filter(|f| !acked.contains(f.seq)).count() as u64;
            let last_seq = frames.last().map(|f| f.seq);
            if let Some(l) = last_seq {
                next_seq = next_seq.max(l + 1);
            }
            segments.push_back(Segment::new(
                first,
                last_seq,
                frames.len() as u64,
                valid_end as u64,
                path,
            ));
        }
        let read_at = segments.front().map_or((next_seq, 0), |s| (s.first_seq, 0));
        let spool = Self {
            inner: Mutex::new(Inner {
                epoch: format!("{:08x}", fastrand::u32(..)),
                segments,
                writer: None,
                next_seq,
                acked,
                live_at: None,
                live_turn: true,
                read_at,
                in_flight: None,
                state: state_files,
                held,
                dropped: 0,
                dropping: false,
                full: false,
                dirty: false,
                state_dirty: false,
                // What a previous run left unsent goes at once.
                due: (held > 0).then(Instant::now),
            }),
            cfg,
            notify: Notify::new(),
            dirtied: Notify::new(),
        };
        if let Some(flight) = saved.in_flight {
            spool.restore_in_flight(flight);
        }
        if legacy {
            let mut inner = spool.lock();
            let inner = &mut *inner;
            let flight = inner
                .in_flight
                .as_ref()
                .map(|(b, first, last)| state::InFlight {
                    id: b.batch_id.clone(),
                    first: *first,
                    last: *last,
                });
            if inner
                .state
                .write(&inner.acked, flight.as_ref(), true)
                .is_ok()
            {
                for old in ["acked", "inflight"] {
                    let _ = fs::remove_file(spool.cfg.dir.join(old));
                }
            }
        }
        spool.release_acked();
        Ok(spool)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A batch that was being sent when the agent stopped goes again, with its id.
    fn restore_in_flight(&self, flight: state::InFlight) {
        let state::InFlight { id, first, last } = flight;
        let mut inner = self.lock();
        // Those numbers were sent under that id: never give them to other records, even if a
        // crash tore some of them off the end of the spool.
        inner.next_seq = inner.next_seq.max(last + 1);
        if inner.acked.covers(first, last) {
            return;
        }
        let records = self.read_range(&inner, first, last);
        if records.is_empty() {
            return;
        }
        inner.in_flight = Some((
            PendingBatch {
                batch_id: id,
                records: Arc::new(records),
            },
            first,
            last,
        ));
    }

    /// Appends a record that should reach the collector at once (a check changed state): the
    /// shipper sends without waiting for the flush interval.
    pub fn push_urgent(&self, record: &Record) {
        self.write(std::slice::from_ref(record), Duration::ZERO, || {});
    }

    /// Appends a passing result of a check that was passing: it says nothing new, so it may wait
    /// for a later batch, up to the check's `interval` or the spool's `steady_wait`, whichever is
    /// shorter (and at least the flush interval). Within an interval the check's state at the
    /// collector stays fresh, so nothing there depends on it arriving sooner.
    pub fn push_steady(&self, record: &Record, interval: Duration) {
        let wait = interval
            .min(self.cfg.steady_wait)
            .max(self.cfg.flush_interval);
        self.write(std::slice::from_ref(record), wait, || {});
    }

    /// Appends a record, to be sent within the flush interval. Never fails: what cannot be
    /// stored is dropped and counted.
    pub fn push(&self, record: &Record) {
        self.push_all(std::slice::from_ref(record), || {});
    }

    /// Appends records, in as few writes as the segments allow, then runs `then` before any of
    /// them can be taken into a batch: a log tailer saves the file positions they reach there,
    /// so that a position is on disk before the records that reach it can be acknowledged and
    /// deleted. Never fails: what cannot be stored is dropped and counted.
    pub fn push_all(&self, records: &[Record], then: impl FnOnce()) {
        self.write(records, self.cfg.flush_interval, then);
    }

    /// Appends `records`, due to be sent within `wait`.
    fn write(&self, records: &[Record], wait: Duration, then: impl FnOnce()) {
        {
            let mut inner = self.lock();
            let mut run = Vec::new();
            let mut count = 0u64;
            for record in records {
                let payload = match serde_json::to_vec(record) {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::error!(error = %e, "a record could not be encoded; dropped");
                        continue;
                    }
                };
                let in_segment = inner.segments.back().map_or(0, |s| s.bytes);
                let frame_len = (frame::HEADER + payload.len()) as u64;
                if count > 0 && in_segment + run.len() as u64 + frame_len > self.cfg.segment_bytes {
                    // The run so far fills the segment; the next one starts a new segment.
                    self.write_run(&mut inner, count, &run);
                    run.clear();
                    count = 0;
                }
                let seq = inner.next_seq + count;
                run.extend_from_slice(&frame::encode(seq, &payload));
                count += 1;
            }
            if count > 0 {
                self.write_run(&mut inner, count, &run);
            }
            self.enforce_bound(&mut inner);
            let deadline = Instant::now() + wait;
            inner.due = Some(inner.due.map_or(deadline, |d| d.min(deadline)));
            then();
        }
        self.notify.notify_one();
    }

    /// When the next batch should be sent: at once while one is in flight (it is resent), else
    /// the earliest deadline of the records not yet in a batch; `None` when nothing waits.
    pub fn due(&self) -> Option<Instant> {
        let inner = self.lock();
        if inner.in_flight.is_some() {
            return Some(Instant::now());
        }
        inner.due
    }

    /// Writes `count` encoded frames numbered from `next_seq` on.
    fn write_run(&self, inner: &mut Inner, count: u64, bytes: &[u8]) {
        let first = inner.next_seq;
        match self.append(inner, first, count, bytes) {
            Ok(()) => {
                inner.next_seq += count;
                inner.held += count;
                if inner.dropping {
                    inner.dropping = false;
                    tracing::info!(dropped_total = inner.dropped, "spool writes again");
                }
            }
            Err(e) => {
                inner.dropped += count;
                inner.writer = None;
                if !inner.dropping {
                    inner.dropping = true;
                    tracing::error!(dir = %self.cfg.dir.display(), error = %e, "cannot write the spool: records are dropped until it can");
                }
            }
        }
    }

    /// Appends `count` frames, numbered from `seq` on, as one write.
    fn append(&self, inner: &mut Inner, seq: u64, count: u64, bytes: &[u8]) -> std::io::Result<()> {
        let roll = inner
            .segments
            .back()
            .is_none_or(|s| s.bytes + bytes.len() as u64 > self.cfg.segment_bytes && s.records > 0);
        if roll || inner.writer.is_none() {
            if roll {
                // The sync policy covers the segment being closed too: the flusher only syncs
                // the current writer.
                if inner.dirty
                    && let Some(w) = inner.writer.as_ref()
                    && let Err(e) = w.sync_data()
                {
                    tracing::warn!(error = %e, "spool sync failed");
                }
                let path = self.cfg.dir.join(seg_name(seq));
                inner
                    .segments
                    .push_back(Segment::new(seq, None, 0, 0, path));
            }
            let seg = inner.segments.back().expect("a segment was just ensured");
            inner.writer = Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&seg.path)?,
            );
        }
        let w = inner.writer.as_mut().expect("writer opened above");
        w.write_all(bytes)?;
        if self.cfg.fsync == FsyncPolicy::Always {
            w.sync_data()?;
        } else if !inner.dirty {
            inner.dirty = true;
            if !inner.state_dirty {
                self.dirtied.notify_one();
            }
        }
        let seg = inner.segments.back_mut().expect("a segment exists");
        seg.bytes += bytes.len() as u64;
        seg.records += count;
        seg.last_seq = Some(seq + count - 1);
        Ok(())
    }

    /// Over `max_bytes`: the oldest segments go, even unacknowledged; what they held is counted.
    fn enforce_bound(&self, inner: &mut Inner) {
        while inner.segments.iter().map(|s| s.bytes).sum::<u64>() > self.cfg.max_bytes
            && inner.segments.len() > 1
        {
            let Some(old) = inner.segments.pop_front() else {
                break;
            };
            // Records of the batch in flight stay: the shipper holds them and will deliver them.
            let acked = inner.acked.clone();
            let flying = inner
                .in_flight
                .as_ref()
                .map(|(_, first, last)| *first..=*last);
            let unacked = frame::scan(&old.read_from(0))
                .0
                .iter()
                .filter(|f| {
                    !acked.contains(f.seq) && !flying.as_ref().is_some_and(|r| r.contains(&f.seq))
                })
                .count() as u64;
            inner.held = inner.held.saturating_sub(unacked);
            inner.dropped += unacked;
            if unacked > 0 && !inner.full {
                inner.full = true;
                tracing::warn!(segment = %old.path.display(), records = unacked, max_bytes = self.cfg.max_bytes, "spool full: the oldest unsent records are dropped (said once until it has room again; see lookout.agent.spool.dropped)");
            }
            if let Err(e) = fs::remove_file(&old.path) {
                tracing::warn!(segment = %old.path.display(), error = %e, "cannot delete a spool segment");
            }
            if let Some(last) = old.last_seq {
                // Everything before the batch in flight is gone for good.
                let gone = flying
                    .as_ref()
                    .map_or(last, |r| last.min(r.start().saturating_sub(1)));
                inner.acked.advance_to(gone);
            }
            if inner.read_at.0 <= old.first_seq {
                inner.read_at = inner
                    .segments
                    .front()
                    .map_or((inner.next_seq, 0), |s| (s.first_seq, 0));
            }
        }
    }

    /// Syncs written records and the state to disk if any are pending (the flusher calls this
    /// at most `fsync` interval after a write).
    pub fn flush(&self) {
        let mut inner = self.lock();
        if inner.dirty
            && let Some(w) = inner.writer.as_mut()
            && let Err(e) = w.sync_data()
        {
            tracing::warn!(error = %e, "spool sync failed");
        }
        inner.dirty = false;
        if inner.state_dirty {
            if let Err(e) = inner.state.sync() {
                tracing::warn!(error = %e, "spool state sync failed");
            }
            inner.state_dirty = false;
        }
    }

    /// The batch to send: the unacknowledged one again, or the next at most `max` records.
    pub fn next_batch(&self, max: usize) -> Option<PendingBatch> {
        let mut inner = self.lock();
        if let Some((b, _, _)) = &inner.in_flight {
            return Some(b.clone());
        }
        let max = max.max(1);
        // A backlog of several batches: fresh records (written from now on) go out in every
        // other batch, so the collector sees current state at once while the backlog drains.
        if inner.live_at.is_none() && inner.held > 2 * max as u64 {
            inner.live_at = Some(
                inner
                    .segments
                    .back()
                    .map_or((inner.next_seq, 0), |s| (s.first_seq, s.bytes)),
            );
            inner.live_turn = true;
        }
        let mut taken = None;
        if let Some(live) = inner.live_at
            && inner.live_turn
            && let Some(t) = self.read_from(&inner, live, max)
        {
            inner.live_at = Some(t.3);
            taken = Some(t);
        }
        inner.live_turn = !inner.live_turn;
        let (records, first, last, _) = match taken {
            Some(t) => t,
            None => {
                let Some(t) = self.read_from(&inner, inner.read_at, max) else {
                    // Nothing readable is left to send.
                    inner.due = None;
                    return None;
                };
                inner.read_at = t.3;
                t
            }
        };
        // What this batch leaves behind (a backlog) goes next, at once; records written from
        // now on bring their own deadlines.
        inner.due = (inner.held > records.len() as u64).then(Instant::now);
        // The head has reached the fresh records: one lane again.
        if inner.live_at.is_some_and(|live| inner.read_at >= live) {
            inner.live_at = None;
        }
        let batch = PendingBatch {
            batch_id: format!("{}-{first}-{last}", inner.epoch),
            records: Arc::new(records),
        };
        // The boundary is on disk before the batch leaves, so a crash resends exactly this batch.
        let flight = state::InFlight {
            id: batch.batch_id.clone(),
            first,
            last,
        };
        // With `fsync = "always"` the boundary is synced before the batch leaves; with a sync
        // interval it is synced with the records, at most that interval later (a power failure
        // in between may store this one batch twice; a crash of the agent alone cannot).
        let sync = self.cfg.fsync == FsyncPolicy::Always;
        let inner = &mut *inner;
        if !sync {
            self.mark_state_dirty(inner);
        }
        if let Err(e) = inner.state.write(&inner.acked, Some(&flight), sync) {
            tracing::warn!(error = %e, "cannot record the batch in flight; after a crash it may be stored twice");
        }
        inner.in_flight = Some((batch.clone(), first, last));
        Some(batch)
    }

    /// Reads up to `max` valid records from `at`, skipping acknowledged and damaged ones.
    fn read_from(&self, inner: &Inner, at: (u64, u64), max: usize) -> Option<Taken> {
        let mut forming = Forming::default();
        let mut pos = at;
        // A batch is read a window at a time, not the rest of the segment: a window holds a
        // batch's bytes and their frame headers, so a full batch usually costs one read.
        let window = (self.cfg.batch_bytes + max.min(1 << 16) * frame::HEADER + (64 << 10)) as u64;
        for seg in inner.segments.iter().filter(|s| s.first_seq >= at.0) {
            let mut offset = if seg.first_seq == at.0 { at.1 } else { 0 };
            loop {
                let remaining = seg.bytes.saturating_sub(offset);
                let window_bytes = seg.read_range(offset, window.min(remaining));
                let rest: Vec<u8>;
                let mut buf = &window_bytes;
                let mut frames = frame::scan(buf).0;
                let mut whole = buf.len() as u64 >= remaining;
                if !whole && frames.is_empty() {
                    // No whole frame in the window (a record larger than it): the rest.
                    rest = seg.read_range(offset, remaining);
                    buf = &rest;
                    frames = frame::scan(buf).0;
                    whole = true;
                }
                if let Some(end) = self.take_frames(inner, &frames, max, &mut forming) {
                    let (records, first, last) = (forming.records, forming.first, forming.last);
                    return Some((records, first, last, (seg.first_seq, offset + end as u64)));
                }
                // Without the segment's end in it, a window's last frame may be cut short:
                // reading goes on after the last whole frame.
                let consumed = if whole {
                    buf.len() as u64
                } else {
                    frames.last().map_or(0, |f| f.end() as u64)
                };
                offset += consumed;
                pos = (seg.first_seq, offset);
                if whole || consumed == 0 {
                    break;
                }
            }
        }
        let Forming {
            records,
            first,
            last,
            ..
        } = forming;
        (!records.is_empty()).then_some((records, first, last, pos))
    }

    /// Adds `frames` to the batch being formed; once it is full, returns the offset (in the
    /// frames' buffer) where the next batch starts.
    fn take_frames(
        &self,
        inner: &Inner,
        frames: &[frame::Found<'_>],
        max: usize,
        forming: &mut Forming,
    ) -> Option<usize> {
        for f in frames {
            if inner.acked.contains(f.seq) {
                continue;
            }
            if !forming.records.is_empty() && forming.bytes + f.payload.len() > self.cfg.batch_bytes
            {
                return Some(f.offset);
            }
            forming.bytes += f.payload.len();
            match serde_json::from_slice::<Record>(f.payload) {
                Ok(r) => {
                    if forming.records.is_empty() {
                        forming.first = f.seq;
                    }
                    forming.last = f.seq;
                    forming.records.push(r);
                }
                Err(e) => {
                    tracing::warn!(seq = f.seq, error = %e, "unreadable spooled record skipped")
                }
            }
            if forming.records.len() >= max {
                return Some(f.end());
            }
        }
        None
    }

    fn read_range(&self, inner: &Inner, first: u64, last: u64) -> Vec<Record> {
        let start = inner
            .segments
            .iter()
            .rev()
            .find(|s| s.first_seq <= first)
            .map_or(0, |s| s.first_seq);
        let mut out = Vec::new();
        for seg in inner.segments.iter().filter(|s| s.first_seq >= start) {
            for f in frame::scan(&seg.read_from(0)).0 {
                // As when the batch was formed: acknowledged records were not in it.
                if (first..=last).contains(&f.seq)
                    && !inner.acked.contains(f.seq)
                    && let Ok(r) = serde_json::from_slice::<Record>(f.payload)
                {
                    out.push(r);
                }
            }
        }
        out
    }

    /// The collector stored this batch: its records are released, for good.
    pub fn ack(&self, batch_id: &str) {
        {
            let mut inner = self.lock();
            let Some((b, first, last)) = &inner.in_flight else {
                return;
            };
            if b.batch_id != batch_id {
                return;
            }
            let (first, last, released) = (*first, *last, b.records.len() as u64);
            inner.held = inner.held.saturating_sub(released);
            inner.acked.insert(first, last);
            inner.in_flight = None;
            let inner = &mut *inner;
            self.mark_state_dirty(inner);
            if let Err(e) = inner.state.write(&inner.acked, None, false) {
                tracing::warn!(error = %e, "cannot record the acknowledgement; the batch may be resent and deduplicated");
            }
        }
        self.release_acked();
    }

    /// The collector refused this batch for good (a 4xx other than 408/429): it is moved out of
    /// the spool into `rejected/<batch id>.json` with the reason, so an operator can see what and
    /// why, and nothing behind it waits. At most [`MAX_REJECTED`] files are kept, oldest deleted.
    pub fn set_aside(&self, batch: &PendingBatch, reason: &str) {
        let dir = self.cfg.dir.join("rejected");
        let body = serde_json::json!({ "batch_id": batch.batch_id, "error": reason, "records": *batch.records });
        let written = fs::create_dir_all(&dir).and_then(|()| {
            write_atomic(
                &dir,
                &format!("{}.json", batch.batch_id),
                body.to_string().as_bytes(),
                false,
            )
        });
        if let Err(e) = written {
            tracing::error!(batch = %batch.batch_id, error = %e, "cannot keep the refused batch; its records are lost");
        }
        if let Ok(entries) = fs::read_dir(&dir) {
            let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
                .filter_map(|e| e.ok())
                .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
                .collect();
            files.sort();
            for (_, old) in files.iter().take(files.len().saturating_sub(MAX_REJECTED)) {
                if let Err(e) = fs::remove_file(old) {
                    tracing::debug!(file = %old.display(), error = %e, "cannot delete an old refused batch");
                }
            }
        }
        self.ack(&batch.batch_id);
    }

    /// Deletes segments whose records are all acknowledged (never the one being written).
    fn release_acked(&self) {
        let mut inner = self.lock();
        if inner.full
            && inner.segments.iter().map(|s| s.bytes).sum::<u64>() < self.cfg.max_bytes / 2
        {
            inner.full = false;
            tracing::info!(dropped_total = inner.dropped, "spool has room again");
        }
        while inner.segments.len() > 1 {
            let done = inner.segments.front().is_some_and(|s| {
                s.last_seq
                    .is_none_or(|l| inner.acked.covers(s.first_seq, l))
            });
            if !done {
                break;
            }
            if let Some(old) = inner.segments.pop_front()
                && let Err(e) = fs::remove_file(&old.path)
            {
                tracing::warn!(segment = %old.path.display(), error = %e, "cannot delete a spool segment");
            }
        }
        if inner.read_at.0
            < inner
                .segments
                .front()
                .map_or(inner.next_seq, |s| s.first_seq)
        {
            inner.read_at = inner
                .segments
                .front()
                .map_or((inner.next_seq, 0), |s| (s.first_seq, 0));
        }
    }

    /// Records stored and not yet acknowledged.
    pub fn backlog(&self) -> u64 {
        self.lock().held
    }

    /// True when nothing waits to be sent.
    pub fn is_empty(&self) -> bool {
        self.backlog() == 0
    }

    /// Records dropped since start (spool full, or not writable).
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    /// Calls `f` with every record on disk whose JSON contains `needle`, oldest first,
    /// acknowledged or not (a log tailer recovers its file positions from them at start).
    pub fn scan_records(&self, needle: &[u8], mut f: impl FnMut(Record)) {
        let inner = self.lock();
        for seg in &inner.segments {
            let bytes = seg.read_from(0);
            for found in frame::scan(&bytes).0 {
                if !found.payload.windows(needle.len()).any(|w| w == needle) {
                    continue;
                }
                match serde_json::from_slice(found.payload) {
                    Ok(r) => f(r),
                    Err(e) => {
                        tracing::warn!(segment = %seg.path.display(), error = %e, "a spooled record cannot be read back")
                    }
                }
            }
        }
    }

    /// Bytes of segments on disk.
    pub fn bytes(&self) -> u64 {
        self.lock().segments.iter().map(|s| s.bytes).sum()
    }

    /// With a sync interval, the state file waits for the next sync (with `always` the caller
    /// syncs or it need not; with `never` nothing does).
    fn mark_state_dirty(&self, inner: &mut Inner) {
        if !matches!(self.cfg.fsync, FsyncPolicy::Every(_)) || inner.state_dirty {
            return;
        }
        inner.state_dirty = true;
        if !inner.dirty {
            self.dirtied.notify_one();
        }
    }

    /// Waits until written records wait for a sync (returns at once if that happened since the
    /// last call).
    pub async fn dirtied(&self) {
        self.dirtied.notified().await;
    }

    /// Waits until records are written (returns at once if some were since the last call).
    pub async fn pushed(&self) {
        self.notify.notified().await;
    }
}

/// The bookkeeping of a spool written before the `state.N` files: `acked` (the
/// [`acked::Acked`] form) and `inflight` (`<id> <first> <last>`).
fn read_legacy_state(dir: &Path) -> state::State {
    let acked = match fs::read(dir.join("acked")) {
        Ok(b) => acked::Acked::decode(&b).unwrap_or_else(|| {
            tracing::warn!(dir = %dir.display(), "the spool's acknowledgement file is damaged: records already delivered may be sent again");
            acked::Acked::default()
        }),
        Err(_) => acked::Acked::default(),
    };
    let in_flight = fs::read_to_string(dir.join("inflight"))
        .ok()
        .and_then(|text| {
            let mut parts = text.split_whitespace();
            Some(state::InFlight {
                id: parts.next()?.to_string(),
                first: parts.next()?.parse().ok()?,
                last: parts.next()?.parse().ok()?,
            })
        });
    state::State { acked, in_flight }
}

fn read_tail(path: &Path, offset: u64) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Ok(mut f) = File::open(path)
        && f.seek(SeekFrom::Start(offset)).is_ok()
        && let Err(e) = f.read_to_end(&mut buf)
    {
        tracing::warn!(segment = %path.display(), error = %e, "spool segment read failed");
    }
    buf
}

#[cfg(test)]
mod tests;
