//! The spool's durable log: segment files of [`frame`]s, and the ledger of what the collector
//! has stored ([`state`], [`Acked`]).
//!
//! This is the storage half of the spool, the part that must survive a crash: it appends records
//! under increasing sequence numbers, reads them back from a position, syncs them per the
//! [`FsyncPolicy`], recovers from a torn or damaged segment at start, deletes segments once
//! every record in them is acknowledged (or the oldest when over `max_bytes`), and keeps the
//! ledger (acknowledged numbers, the batch in flight) in the state slots. It knows nothing of
//! when records should leave or how batches are formed: that is [`super::batcher`].
//!
//! With a sync interval (the default) nothing here waits on the disk while the spool is locked:
//! [`Log::unsynced`] hands out what needs syncing, the current segment, segments closed since
//! and the state slot, and the caller syncs them unlocked and off the async runtime. With
//! `fsync = "always"` a write syncs before it returns, so the spool runs such writes on the
//! blocking pool when they come from an async task.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use lookout_protocol::Record;
use tokio::sync::Notify;

use super::acked::Acked;
use super::state::{self, InFlight};
use super::{FsyncPolicy, SpoolConfig, frame};

/// A place in the log: the first sequence number of a segment and a byte offset in it.
pub(super) type Pos = (u64, u64);

#[derive(Debug)]
pub(super) struct Segment {
    first_seq: u64,
    last_seq: Option<u64>,
    records: u64,
    bytes: u64,
    path: PathBuf,
    /// Kept open for reading batches, so forming one costs a `pread`, not an open.
    reader: OnceLock<File>,
}

impl Segment {
    fn new(first_seq: u64, last_seq: Option<u64>, records: u64, bytes: u64, path: PathBuf) -> Self {
        Self {
            first_seq,
            last_seq,
            records,
            bytes,
            path,
            reader: OnceLock::new(),
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

/// Files written and not yet synced, taken from the log under the spool's lock and synced
/// without it, so that a slow disk holds up no writer.
#[derive(Debug, Default)]
pub(super) struct Unsynced {
    segments: Vec<Arc<File>>,
    state: Option<Arc<File>>,
}

impl Unsynced {
    /// Waits until the files are on the disk.
    pub(super) fn sync(self) {
        for f in &self.segments {
            if let Err(e) = f.sync_data() {
                tracing::warn!(error = %e, "spool sync failed");
            }
        }
        if let Some(f) = self.state
            && let Err(e) = f.sync_data()
        {
            tracing::warn!(error = %e, "spool state sync failed");
        }
    }
}

/// The segments and the ledger. Not shared by itself: the spool keeps it behind its lock.
#[derive(Debug)]
pub(super) struct Log {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    fsync: FsyncPolicy,
    segments: VecDeque<Segment>,
    pub(super) writer: Option<Arc<File>>,
    /// Segments closed with writes not yet synced (with a sync interval only).
    closed_dirty: Vec<Arc<File>>,
    next_seq: u64,
    pub(super) acked: Acked,
    /// The batch being sent, as the ledger holds it.
    in_flight: Option<InFlight>,
    state: state::StateFiles,
    /// Read from the files of a spool from before the state slots: rewritten once the batch in
    /// flight is known.
    legacy: bool,
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
    /// Signalled when written records start waiting for a sync.
    dirtied: Arc<Notify>,
}

fn seg_name(first: u64) -> String {
    format!("{first:020}.seg")
}

impl Log {
    /// Opens the log in `cfg.dir`, recovering from whatever a crash left, and returns it with
    /// the batch that was in flight when the previous run stopped. Call [`Log::opened`] once
    /// that batch is restored (or not).
    pub(super) fn open(cfg: &SpoolConfig, dirtied: Arc<Notify>) -> (Self, Option<InFlight>) {
        // A folder that cannot be made or read does not stop the agent: it starts with an empty
        // spool, and records are dropped and counted until the folder can be written.
        if let Err(e) = fs::create_dir_all(&cfg.dir) {
            tracing::error!(dir = %cfg.dir.display(), error = %e, "cannot create the spool folder; records are dropped until it can be written");
        }
        let (state_files, found) = state::StateFiles::open(&cfg.dir);
        let legacy = found.is_none();
        let saved = found.unwrap_or_else(|| state::read_legacy(&cfg.dir));
        let acked = saved.acked;
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
        // The numbers below come from files, which can hold any number: a damaged one near
        // u64::MAX must not overflow here (appending then refuses, see `append`).
        let mut next_seq = acked.max().saturating_add(1);
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
                next_seq = next_seq.max(l.saturating_add(1));
            }
            segments.push_back(Segment::new(
                first,
                last_seq,
                frames.len() as u64,
                valid_end as u64,
                path,
            ));
        }
        // The numbers of the batch that was in flight were sent under its id: never give them
        // to other records, even if a crash tore some of them off the end of the spool.
        if let Some(f) = &saved.in_flight {
            next_seq = next_seq.max(f.last.saturating_add(1));
        }
        let log = Self {
            dir: cfg.dir.clone(),
            max_bytes: cfg.max_bytes,
            segment_bytes: cfg.segment_bytes,
            fsync: cfg.fsync,
            segments,
            writer: None,
            closed_dirty: Vec::new(),
            next_seq,
            acked,
            in_flight: None,
            state: state_files,
            legacy,
            held,
            dropped: 0,
            dropping: false,
            full: false,
            dirty: false,
            state_dirty: false,
            dirtied,
        };
        (log, saved.in_flight)
    }

    /// Ends the opening: the bookkeeping of a spool from before the state slots is rewritten in
    /// them (with the batch in flight, if it was restored), and acknowledged segments go.
    pub(super) fn opened(&mut self, in_flight: Option<InFlight>) {
        self.in_flight = in_flight;
        if self.legacy {
            self.legacy = false;
            if self
                .state
                .write(&self.acked, self.in_flight.as_ref(), true)
                .is_ok()
            {
                for old in ["acked", "inflight"] {
                    let _ = fs::remove_file(self.dir.join(old));
                }
            }
        }
        self.release_acked();
    }

    /// Records stored and not yet acknowledged.
    pub(super) fn held(&self) -> u64 {
        self.held
    }

    /// Records dropped since start (spool full, or not writable).
    pub(super) fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Bytes of segments on disk.
    pub(super) fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    /// The oldest record's place.
    pub(super) fn front(&self) -> Pos {
        self.segments
            .front()
            .map_or((self.next_seq, 0), |s| (s.first_seq, 0))
    }

    /// Where the next record written will be.
    pub(super) fn end(&self) -> Pos {
        self.segments
            .back()
            .map_or((self.next_seq, 0), |s| (s.first_seq, s.bytes))
    }

    /// Appends records, in as few writes as the segments allow. Never fails: what cannot be
    /// stored is dropped and counted. Then, over `max_bytes`, the oldest segments go.
    pub(super) fn append(&mut self, records: &[Record]) {
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
            let in_segment = self.segments.back().map_or(0, |s| s.bytes);
            let frame_len = (frame::HEADER + payload.len()) as u64;
            if count > 0 && in_segment + run.len() as u64 + frame_len > self.segment_bytes {
                // The run so far fills the segment; the next one starts a new segment.
                self.write_run(count, &run);
                run.clear();
                count = 0;
            }
            // Numbers run out only when a damaged file said one near u64::MAX was used (no
            // spool counts that far): the record cannot be numbered, so it is dropped.
            let Some(seq) = self.next_seq.checked_add(count).filter(|s| *s < u64::MAX) else {
                self.dropped += 1;
                if !self.dropping {
                    self.dropping = true;
                    tracing::error!(dir = %self.dir.display(), "the spool's sequence numbers are used up (its files name one near 2^64, which only damage does): records are dropped; stop the agent and remove the spool folder");
                }
                continue;
            };
            run.extend_from_slice(&frame::encode(seq, &payload));
            count += 1;
        }
        if count > 0 {
            self.write_run(count, &run);
        }
        self.enforce_bound();
    }

    /// Writes `count` encoded frames numbered from `next_seq` on.
    fn write_run(&mut self, count: u64, bytes: &[u8]) {
        let first = self.next_seq;
        match self.write_frames(first, count, bytes) {
            Ok(()) => {
                self.next_seq += count;
                self.held += count;
                if self.dropping {
                    self.dropping = false;
                    tracing::info!(dropped_total = self.dropped, "spool writes again");
                }
            }
            Err(e) => {
                self.dropped += count;
                self.writer = None;
                if !self.dropping {
                    self.dropping = true;
                    tracing::error!(dir = %self.dir.display(), error = %e, "cannot write the spool: records are dropped until it can");
                }
            }
        }
    }

    /// Appends `count` frames, numbered from `seq` on, as one write.
    fn write_frames(&mut self, seq: u64, count: u64, bytes: &[u8]) -> std::io::Result<()> {
        let roll = self
            .segments
            .back()
            .is_none_or(|s| s.bytes + bytes.len() as u64 > self.segment_bytes && s.records > 0);
        if roll || self.writer.is_none() {
            if roll {
                // The sync interval covers the segment being closed too: the next sync takes it
                // with the current one, off this thread (with `never` nothing syncs it; with
                // `always` it is synced already).
                if self.dirty
                    && matches!(self.fsync, FsyncPolicy::Every(_))
                    && let Some(w) = self.writer.take()
                {
                    self.closed_dirty.push(w);
                }
                let path = self.dir.join(seg_name(seq));
                self.segments.push_back(Segment::new(seq, None, 0, 0, path));
            }
            let Some(seg) = self.segments.back() else {
                return Err(std::io::Error::other("no spool segment to write"));
            };
            self.writer = Some(Arc::new(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&seg.path)?,
            ));
        }
        let Some(w) = self.writer.as_deref() else {
            return Err(std::io::Error::other("spool segment not open"));
        };
        let mut w: &File = w;
        w.write_all(bytes)?;
        if self.fsync == FsyncPolicy::Always {
            w.sync_data()?;
        } else if !self.dirty {
            self.dirty = true;
            if !self.state_dirty {
                self.dirtied.notify_one();
            }
        }
        if let Some(seg) = self.segments.back_mut() {
            seg.bytes += bytes.len() as u64;
            seg.records += count;
            seg.last_seq = Some(seq + count - 1);
        }
        Ok(())
    }

    /// Over `max_bytes`: the oldest segments go, even unacknowledged; what they held is counted.
    fn enforce_bound(&mut self) {
        while self.bytes() > self.max_bytes && self.segments.len() > 1 {
            let Some(old) = self.segments.pop_front() else {
                break;
            };
            // Records of the batch in flight stay: the shipper holds them and will deliver them.
            let flying = self.in_flight.as_ref().map(|f| f.first..=f.last);
            let unacked = frame::scan(&old.read_from(0))
                .0
                .iter()
                .filter(|f| {
                    !self.acked.contains(f.seq)
                        && !flying.as_ref().is_some_and(|r| r.contains(&f.seq))
                })
                .count() as u64;
            self.held = self.held.saturating_sub(unacked);
            self.dropped += unacked;
            if unacked > 0 && !self.full {
                self.full = true;
                tracing::warn!(segment = %old.path.display(), records = unacked, max_bytes = self.max_bytes, "spool full: the oldest unsent records are dropped (said once until it has room again; see lookout.agent.spool.dropped)");
            }
            if let Err(e) = fs::remove_file(&old.path) {
                tracing::warn!(segment = %old.path.display(), error = %e, "cannot delete a spool segment");
            }
            if let Some(last) = old.last_seq {
                // Everything before the batch in flight is gone for good.
                let gone = flying
                    .as_ref()
                    .map_or(last, |r| last.min(r.start().saturating_sub(1)));
                self.acked.advance_to(gone);
            }
        }
    }

    /// Takes what waits for a sync and counts it as synced: the caller syncs it with
    /// [`Unsynced::sync`] after letting go of the spool's lock, so writers never wait on the disk.
    pub(super) fn unsynced(&mut self) -> Unsynced {
        let mut out = Unsynced {
            segments: std::mem::take(&mut self.closed_dirty),
            state: None,
        };
        if self.dirty
            && let Some(w) = &self.writer
        {
            out.segments.push(w.clone());
        }
        self.dirty = false;
        if self.state_dirty {
            out.state = self.state.last_written();
            self.state_dirty = false;
        }
        out
    }

    /// Hands the valid frames from `at` on to `take`, a window of about `window` bytes at a
    /// time, until `take` returns where in the frames' buffer it stopped. Returns the place just
    /// past what was taken (the end of the log when `take` never stopped) and whether it
    /// stopped.
    pub(super) fn read_frames(
        &self,
        at: Pos,
        window: u64,
        mut take: impl FnMut(&[frame::Found<'_>]) -> Option<usize>,
    ) -> (Pos, bool) {
        let mut pos = at;
        for seg in self.segments.iter().filter(|s| s.first_seq >= at.0) {
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
                if let Some(end) = take(&frames) {
                    return ((seg.first_seq, offset + end as u64), true);
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
        (pos, false)
    }

    /// The unacknowledged records numbered `first..=last`, as when a batch of them was formed.
    pub(super) fn records_between(&self, first: u64, last: u64) -> Vec<Record> {
        let start = self
            .segments
            .iter()
            .rev()
            .find(|s| s.first_seq <= first)
            .map_or(0, |s| s.first_seq);
        let mut out = Vec::new();
        for seg in self.segments.iter().filter(|s| s.first_seq >= start) {
            for f in frame::scan(&seg.read_from(0)).0 {
                if (first..=last).contains(&f.seq)
                    && !self.acked.contains(f.seq)
                    && let Ok(r) = serde_json::from_slice::<Record>(f.payload)
                {
                    out.push(r);
                }
            }
        }
        out
    }

    /// Calls `f` with every record on disk whose JSON contains `needle`, oldest first,
    /// acknowledged or not.
    pub(super) fn scan_records(&self, needle: &[u8], mut f: impl FnMut(Record)) {
        for seg in &self.segments {
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

    /// Records the batch about to be sent, so that after a crash the same records go again
    /// under the same id. With `fsync = "always"` the record is synced before the batch
    /// leaves; with a sync interval it is synced with the records, at most that interval later
    /// (a power failure in between may store this one batch twice; a crash of the agent alone
    /// cannot).
    pub(super) fn begin(&mut self, flight: InFlight) {
        let sync = self.fsync == FsyncPolicy::Always;
        if !sync {
            self.mark_state_dirty();
        }
        if let Err(e) = self.state.write(&self.acked, Some(&flight), sync) {
            tracing::warn!(error = %e, "cannot record the batch in flight; after a crash it may be stored twice");
        }
        self.in_flight = Some(flight);
    }

    /// The collector stored the batch in flight, `released` records: they go for good, and
    /// segments left with nothing unacknowledged are deleted.
    pub(super) fn ack(&mut self, released: u64) {
        let Some(flight) = self.in_flight.take() else {
            return;
        };
        self.held = self.held.saturating_sub(released);
        self.acked.insert(flight.first, flight.last);
        self.mark_state_dirty();
        if let Err(e) = self.state.write(&self.acked, None, false) {
            tracing::warn!(error = %e, "cannot record the acknowledgement; the batch may be resent and deduplicated");
        }
        self.release_acked();
    }

    /// Deletes segments whose records are all acknowledged (never the one being written).
    fn release_acked(&mut self) {
        if self.full && self.bytes() < self.max_bytes / 2 {
            self.full = false;
            tracing::info!(dropped_total = self.dropped, "spool has room again");
        }
        while self.segments.len() > 1 {
            let done = self
                .segments
                .front()
                .is_some_and(|s| s.last_seq.is_none_or(|l| self.acked.covers(s.first_seq, l)));
            if !done {
                break;
            }
            if let Some(old) = self.segments.pop_front()
                && let Err(e) = fs::remove_file(&old.path)
            {
                tracing::warn!(segment = %old.path.display(), error = %e, "cannot delete a spool segment");
            }
        }
    }

    /// With a sync interval, the state file waits for the next sync (with `always` the caller
    /// syncs or it need not; with `never` nothing does).
    fn mark_state_dirty(&mut self) {
        if !matches!(self.fsync, FsyncPolicy::Every(_)) || self.state_dirty {
            return;
        }
        self.state_dirty = true;
        if !self.dirty {
            self.dirtied.notify_one();
        }
    }
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
