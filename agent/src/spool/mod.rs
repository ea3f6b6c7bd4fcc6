//! The agent's durable spool: every record is written here before it is shipped, and only the
//! collector's acknowledgement lets it go.
//!
//! Two halves, the way a disk buffer splits storage from reading (Vector's `disk_v2` has a
//! writer, a reader and a ledger):
//!
//! - [`log`]: the segment files, appending, syncing, recovery at start, deleting what is
//!   acknowledged or what no longer fits, and the ledger ([`state`], [`acked`]) of what the
//!   collector has stored and which batch is in flight;
//! - [`batcher`]: forming batches from what the log holds, the alternation of backlog and fresh
//!   records, and the shipping policy ([`Haste`]: when a record is due).
//!
//! [`Spool`] puts the two behind one lock, so that a record appended is either in no batch or in
//! exactly one, and a log tailer's `then` (see [`Spool::push_all`]) runs before any batch can
//! take the records it wrote.
//!
//! # On disk (`<data_dir>/spool/`)
//!
//! This format is what an agent of an earlier version left behind: a new version reads it as it
//! is (the tests open spools written frame by frame, and with the legacy bookkeeping files).
//!
//! - `NNNNNNNNNNNNNNNNNNNN.seg`: segments, append-only, named by the sequence number of their first
//!   record (20 decimal digits, zero-padded); a new segment starts when the current one would
//!   pass `segment_bytes` (a segment holds at least one record). A segment is the concatenation
//!   of its records' [`frame`]s: `LKS1`, `u32` payload length, `u64` sequence number, CRC-32,
//!   then the record as JSON ([`lookout_protocol::Record`]), little-endian.
//! - `state.0`, `state.1` ([`state`]): the sequence numbers the collector has stored
//!   ([`acked::Acked`]: all up to a prefix, plus ranges above it) and the batch being sent (its
//!   id, first and last sequence number). Overwritten in place by turns, each with a generation
//!   and a CRC-32; the valid slot with the higher generation is the state. The batch in flight
//!   is recorded before the batch is sent, so that after a crash the same records go again
//!   under the same batch id and the collector stores them once. (Spools from before these files
//!   kept the same in `acked`, the [`acked::Acked`] form, and `inflight`, `<id> <first> <last>`
//!   as text; they are read once and replaced.)
//! - `rejected/<batch id>.json`: batches the collector refused for good, with its reason (the
//!   last [`MAX_REJECTED`]); never read back.
//!
//! # Invariants
//!
//! - Sequence numbers increase by one per record, across segments and restarts (the next one
//!   follows the last valid frame found at start, the acknowledged one and the batch in flight):
//!   a number that went out in a batch is never given to another record. The numbers read at
//!   start can be any (a damaged file): when none is left below `u64::MAX`, records are
//!   dropped and counted rather than numbered again.
//! - A segment is deleted only when every record in it is acknowledged, or when the spool is over
//!   `max_bytes`: then the oldest segment goes, and its unacknowledged records are counted as
//!   dropped (those of the batch in flight excepted: the shipper holds them).
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
mod batcher;
pub mod frame;
mod log;
pub mod state;

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lookout_protocol::Record;
use tokio::sync::Notify;
use tokio::time::Instant;

pub use batcher::Haste;

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
    /// Longest a record waits before it is due to be sent ([`Haste::Flush`]).
    pub flush_interval: Duration,
    /// Longest a steady result waits ([`Haste::Steady`]).
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
struct Inner {
    log: log::Log,
    batcher: batcher::Batcher,
}

/// The spool. Cheap to share: every method takes `&self`.
#[derive(Debug)]
pub struct Spool {
    cfg: SpoolConfig,
    // std's Mutex: never held across an await, nor (with a sync interval) while the disk syncs;
    // with `fsync = "always"` a write syncs under it, and async callers run those writes on the
    // blocking pool.
    inner: Mutex<Inner>,
    /// Signalled when records are written (their deadline may be earlier than the one waited
    /// for).
    notify: Notify,
    /// Signalled when written records start waiting for a sync.
    dirtied: Arc<Notify>,
}

/// Refused batches kept in `rejected/`.
pub const MAX_REJECTED: usize = 100;

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
        let dirtied = Arc::new(Notify::new());
        let (mut log, saved) = log::Log::open(&cfg, dirtied.clone());
        let (batcher, restored) = batcher::Batcher::new(&cfg, &log, saved);
        log.opened(restored);
        Ok(Self {
            inner: Mutex::new(Inner { log, batcher }),
            cfg,
            notify: Notify::new(),
            dirtied,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens the spool as [`Spool::open`] does, on the blocking pool: recovery reads every
    /// segment, and rewriting a legacy spool's bookkeeping syncs.
    pub async fn open_off_runtime(cfg: SpoolConfig) -> Result<Self, SpoolError> {
        let path = cfg.dir.display().to_string();
        tokio::task::spawn_blocking(move || Self::open(cfg))
            .await
            .map_err(|e| SpoolError {
                path,
                source: std::io::Error::other(e),
            })?
    }

    /// Appends `records` from an async task, due as `haste` says. With `fsync = "always"` a
    /// write waits on the disk, so it runs on the blocking pool and the task waits for it there;
    /// otherwise a write only copies into the page cache and runs here.
    pub async fn push_async(self: &Arc<Self>, records: Vec<Record>, haste: Haste) {
        if self.cfg.fsync != FsyncPolicy::Always {
            self.write(&records, haste, || {});
            return;
        }
        let spool = self.clone();
        if let Err(e) =
            tokio::task::spawn_blocking(move || spool.write(&records, haste, || {})).await
        {
            tracing::warn!(error = %e, "spool write task failed");
        }
    }

    /// Appends a record, due to be sent as `haste` says. Never fails: what cannot be stored is
    /// dropped and counted.
    pub fn push_as(&self, record: &Record, haste: Haste) {
        self.write(std::slice::from_ref(record), haste, || {});
    }

    /// Appends a record, to be sent within the flush interval. Never fails: what cannot be
    /// stored is dropped and counted.
    pub fn push(&self, record: &Record) {
        self.push_as(record, Haste::Flush);
    }

    /// Appends records, in as few writes as the segments allow, then runs `then` before any of
    /// them can be taken into a batch: a log tailer saves the file positions they reach there,
    /// so that a position is on disk before the records that reach it can be acknowledged and
    /// deleted. Never fails: what cannot be stored is dropped and counted.
    pub fn push_all(&self, records: &[Record], then: impl FnOnce()) {
        self.write(records, Haste::Flush, then);
    }

    /// Appends `records`, due as `haste` says.
    fn write(&self, records: &[Record], haste: Haste, then: impl FnOnce()) {
        {
            let mut inner = self.lock();
            let Inner { log, batcher } = &mut *inner;
            log.append(records);
            batcher.written(batcher.wait(haste));
            then();
        }
        self.notify.notify_one();
    }

    /// When the next batch should be sent: at once while one is in flight (it is resent), else
    /// the earliest deadline of the records not yet in a batch; `None` when nothing waits.
    pub fn due(&self) -> Option<Instant> {
        self.lock().batcher.due()
    }

    /// Syncs written records and the state to disk if any are pending (the flusher calls this
    /// at most `fsync` interval after a write, on the blocking pool). The spool stays unlocked
    /// while the disk works, so writers and the shipper go on meanwhile.
    pub fn flush(&self) {
        let unsynced = self.lock().log.unsynced();
        unsynced.sync();
    }

    /// The batch to send: the unacknowledged one again, or the next at most `max` records.
    pub fn next_batch(&self, max: usize) -> Option<PendingBatch> {
        let mut inner = self.lock();
        let Inner { log, batcher } = &mut *inner;
        batcher.next_batch(log, max)
    }

    /// [`Spool::next_batch`] from an async task: with `fsync = "always"` forming a batch syncs
    /// its record in the ledger, so it runs on the blocking pool.
    pub async fn next_batch_async(self: &Arc<Self>, max: usize) -> Option<PendingBatch> {
        if self.cfg.fsync != FsyncPolicy::Always {
            return self.next_batch(max);
        }
        let spool = self.clone();
        match tokio::task::spawn_blocking(move || spool.next_batch(max)).await {
            Ok(batch) => batch,
            Err(e) => {
                tracing::warn!(error = %e, "spool read task failed");
                None
            }
        }
    }

    /// The collector stored this batch: its records are released, for good.
    pub fn ack(&self, batch_id: &str) {
        let mut inner = self.lock();
        let Inner { log, batcher } = &mut *inner;
        if let Some(released) = batcher.ack(batch_id) {
            log.ack(released);
        }
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

    /// Records stored and not yet acknowledged.
    pub fn backlog(&self) -> u64 {
        self.lock().log.held()
    }

    /// True when nothing waits to be sent.
    pub fn is_empty(&self) -> bool {
        self.backlog() == 0
    }

    /// Records dropped since start (spool full, or not writable).
    pub fn dropped(&self) -> u64 {
        self.lock().log.dropped()
    }

    /// Calls `f` with every record on disk whose JSON contains `needle`, oldest first,
    /// acknowledged or not (a log tailer recovers its file positions from them at start).
    pub fn scan_records(&self, needle: &[u8], f: impl FnMut(Record)) {
        self.lock().log.scan_records(needle, f);
    }

    /// Bytes of segments on disk.
    pub fn bytes(&self) -> u64 {
        self.lock().log.bytes()
    }

    /// True when the segments hold more than nine tenths of `max_bytes`: a writer that can wait
    /// (the OTLP receiver, whose senders retry) should, since past `max_bytes` the oldest
    /// records are dropped.
    pub fn nearly_full(&self) -> bool {
        self.bytes() > self.cfg.max_bytes / 10 * 9
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

#[cfg(test)]
mod tests;
