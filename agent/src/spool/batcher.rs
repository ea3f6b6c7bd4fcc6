//! Batches formed from what the [`log`](super::log) holds, and when they should leave.
//!
//! This is the shipping half of the spool, kept apart from storage so that a change of policy
//! (how long a record may wait, how a backlog drains) never touches the files:
//!
//! - **When** ([`Haste`]): each record brings a deadline (none for a change of a check's
//!   state, the flush interval for most records, longer for a steady result), and the next batch
//!   is due at the earliest deadline of the records not yet taken ([`Batcher::due`]).
//! - **What**: a batch holds every unacknowledged record between its first and last sequence
//!   number, at most `max` records and `batch_bytes` of JSON (at least one record). Its id is
//!   `<epoch>-<first>-<last>`, the epoch drawn at each start; the log records it as in flight
//!   before it leaves, and it is handed out again, same id, until it is acknowledged.
//! - **Which first**: when more than two batches wait (the collector was away), batches
//!   alternate between the oldest records and those written since draining began, so the
//!   collector sees current state at once while the backlog drains.

use std::sync::Arc;
use std::time::Duration;

use lookout_protocol::Record;
use tokio::time::Instant;

use super::log::{Log, Pos};
use super::state::InFlight;
use super::{PendingBatch, SpoolConfig, frame};

/// How soon a record should reach the collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Haste {
    /// At once: a check changed state, so the shipper sends without waiting.
    AtOnce,
    /// Within the flush interval.
    Flush,
    /// A passing result of a check that was passing, whose interval is given: it says nothing
    /// new, so it may wait for a later batch, up to that interval or `steady_wait`, whichever is
    /// shorter (and at least the flush interval). Within an interval the check's state at the
    /// collector stays fresh, so nothing there depends on it arriving sooner.
    Steady(Duration),
}

/// A batch being formed: its records, their first and last sequence numbers, their bytes.
#[derive(Default)]
struct Forming {
    records: Vec<Record>,
    first: u64,
    last: u64,
    bytes: usize,
}

/// Forms batches and keeps the deadlines. Not shared by itself: the spool keeps it behind its
/// lock, beside the log.
#[derive(Debug)]
pub(super) struct Batcher {
    epoch: String,
    batch_bytes: usize,
    flush_interval: Duration,
    steady_wait: Duration,
    /// While a backlog drains: where the fresh records start (records written after the
    /// collector came back); batches alternate between these and the oldest.
    live_at: Option<Pos>,
    live_turn: bool,
    /// Next record to hand out.
    read_at: Pos,
    /// The batch handed out and not yet acknowledged, with its first and last numbers.
    in_flight: Option<(PendingBatch, u64, u64)>,
    /// When the next batch should leave: the earliest deadline of the records not yet taken
    /// into a batch; `None` when there are none.
    due: Option<Instant>,
}

impl Batcher {
    /// A batcher for `log` as it was just opened: what a previous run left unsent goes at once,
    /// the batch it had in flight first, under its id. Returns the batch in flight restored, for
    /// the log's ledger.
    pub(super) fn new(
        cfg: &SpoolConfig,
        log: &Log,
        in_flight: Option<InFlight>,
    ) -> (Self, Option<InFlight>) {
        let mut batcher = Self {
            epoch: format!("{:08x}", fastrand::u32(..)),
            batch_bytes: cfg.batch_bytes,
            flush_interval: cfg.flush_interval,
            steady_wait: cfg.steady_wait,
            live_at: None,
            live_turn: true,
            read_at: log.front(),
            in_flight: None,
            due: (log.held() > 0).then(Instant::now),
        };
        let restored = in_flight.filter(|f| batcher.restore(log, f));
        (batcher, restored)
    }

    /// Takes back the batch that was being sent when the agent stopped; false when nothing of
    /// it is left to send.
    fn restore(&mut self, log: &Log, flight: &InFlight) -> bool {
        if log.acked.covers(flight.first, flight.last) {
            return false;
        }
        let records = log.records_between(flight.first, flight.last);
        if records.is_empty() {
            return false;
        }
        self.in_flight = Some((
            PendingBatch {
                batch_id: flight.id.clone(),
                records: Arc::new(records),
            },
            flight.first,
            flight.last,
        ));
        true
    }

    /// How long a record of this haste may wait.
    pub(super) fn wait(&self, haste: Haste) -> Duration {
        match haste {
            Haste::AtOnce => Duration::ZERO,
            Haste::Flush => self.flush_interval,
            Haste::Steady(interval) => interval.min(self.steady_wait).max(self.flush_interval),
        }
    }

    /// Records were written that may wait `wait`.
    pub(super) fn written(&mut self, wait: Duration) {
        let deadline = Instant::now() + wait;
        self.due = Some(self.due.map_or(deadline, |d| d.min(deadline)));
    }

    /// When the next batch should be sent: at once while one is in flight (it is resent), else
    /// the earliest deadline of the records not yet in a batch; `None` when nothing waits.
    pub(super) fn due(&self) -> Option<Instant> {
        if self.in_flight.is_some() {
            return Some(Instant::now());
        }
        self.due
    }

    /// The batch to send: the unacknowledged one again, or the next at most `max` records.
    pub(super) fn next_batch(&mut self, log: &mut Log, max: usize) -> Option<PendingBatch> {
        if let Some((b, _, _)) = &self.in_flight {
            return Some(b.clone());
        }
        // Segments deleted since (acknowledged, or the spool was full) are behind the front.
        let front = log.front();
        if self.read_at.0 < front.0 {
            self.read_at = front;
        }
        let max = max.max(1);
        // A backlog of several batches: fresh records (written from now on) go out in every
        // other batch, so the collector sees current state at once while the backlog drains.
        if self.live_at.is_none() && log.held() > 2 * max as u64 {
            self.live_at = Some(log.end());
            self.live_turn = true;
        }
        let mut taken = None;
        if let Some(live) = self.live_at
            && self.live_turn
            && let Some(t) = self.read(log, live, max)
        {
            self.live_at = Some(t.3);
            taken = Some(t);
        }
        self.live_turn = !self.live_turn;
        let (records, first, last, _) = match taken {
            Some(t) => t,
            None => {
                let Some(t) = self.read(log, self.read_at, max) else {
                    // Nothing readable is left to send.
                    self.due = None;
                    return None;
                };
                self.read_at = t.3;
                t
            }
        };
        // What this batch leaves behind (a backlog) goes next, at once; records written from
        // now on bring their own deadlines.
        self.due = (log.held() > records.len() as u64).then(Instant::now);
        // The head has reached the fresh records: one lane again.
        if self.live_at.is_some_and(|live| self.read_at >= live) {
            self.live_at = None;
        }
        let batch = PendingBatch {
            batch_id: format!("{}-{first}-{last}", self.epoch),
            records: Arc::new(records),
        };
        // The boundary is on disk before the batch leaves, so a crash resends exactly this batch.
        log.begin(InFlight {
            id: batch.batch_id.clone(),
            first,
            last,
        });
        self.in_flight = Some((batch.clone(), first, last));
        Some(batch)
    }

    /// The batch `batch_id` was stored (or set aside): returns how many records it released,
    /// `None` when it is not the batch in flight.
    pub(super) fn ack(&mut self, batch_id: &str) -> Option<u64> {
        match &self.in_flight {
            Some((b, _, _)) if b.batch_id == batch_id => {
                let released = b.records.len() as u64;
                self.in_flight = None;
                Some(released)
            }
            _ => None,
        }
    }

    /// Reads up to `max` valid records from `at`, skipping acknowledged and damaged ones: the
    /// records, their first and last sequence numbers, and the place just past them.
    fn read(&self, log: &Log, at: Pos, max: usize) -> Option<(Vec<Record>, u64, u64, Pos)> {
        let mut forming = Forming::default();
        // A batch is read a window at a time, not the rest of the segment: a window holds a
        // batch's bytes and their frame headers, so a full batch usually costs one read.
        let window = (self.batch_bytes + max.min(1 << 16) * frame::HEADER + (64 << 10)) as u64;
        let (pos, _) = log.read_frames(at, window, |frames| {
            self.take_frames(log, frames, max, &mut forming)
        });
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
        log: &Log,
        frames: &[frame::Found<'_>],
        max: usize,
        forming: &mut Forming,
    ) -> Option<usize> {
        for f in frames {
            if log.acked.contains(f.seq) {
                continue;
            }
            if !forming.records.is_empty() && forming.bytes + f.payload.len() > self.batch_bytes {
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
}
