//! The queue between what produces records (probes, host metrics) and the shipper.
//!
//! This is the seam where the durable on-disk spool goes: producers only [`Queue::push`], the
//! shipper only takes a [`PendingBatch`] with [`Queue::next_batch`] and calls [`Queue::ack`]
//! once the collector has stored it. Until it is acknowledged, the same batch (same id, same
//! records) is handed out again, so a retry after a lost answer stores nothing twice.
//!
//! This implementation keeps records in memory, bounded by `max_records`: beyond it the oldest
//! waiting records are dropped and counted, so a long collector outage costs bounded memory.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use lookout_protocol::Record;
use tokio::sync::Notify;

/// A batch handed to the shipper and not yet acknowledged.
#[derive(Debug, Clone)]
pub struct PendingBatch {
    /// The batch id; retries reuse it.
    pub batch_id: String,
    /// The records, in the order they were produced.
    pub records: Arc<Vec<Record>>,
}

/// A bounded in-memory queue of records waiting to be shipped.
#[derive(Debug)]
pub struct Queue {
    // std's Mutex: every critical section is a few pointer moves with no await inside.
    inner: Mutex<Inner>,
    notify: Notify,
    max_records: usize,
}

#[derive(Debug, Default)]
struct Inner {
    waiting: VecDeque<Record>,
    in_flight: Option<PendingBatch>,
    dropped: u64,
    dropping: bool,
}

impl Queue {
    /// A queue that holds at most `max_records` waiting records.
    pub fn new(max_records: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            notify: Notify::new(),
            max_records: max_records.max(1),
        }
    }

    /// Adds a record; when the queue is full the oldest waiting record is dropped and counted.
    pub fn push(&self, record: Record) {
        {
            let mut inner = self.lock();
            if inner.waiting.len() >= self.max_records {
                inner.waiting.pop_front();
                inner.dropped += 1;
                if !inner.dropping {
                    inner.dropping = true;
                    tracing::warn!(
                        max_records = self.max_records,
                        "queue full while the collector is unreachable: dropping the oldest records"
                    );
                }
            } else if inner.dropping && inner.waiting.len() < self.max_records / 2 {
                inner.dropping = false;
            }
            inner.waiting.push_back(record);
        }
        self.notify.notify_one();
    }

    /// The batch to send: the unacknowledged one if there is one, else a new one of at most
    /// `max` waiting records. `None` when nothing waits.
    pub fn next_batch(&self, max: usize) -> Option<PendingBatch> {
        let mut inner = self.lock();
        if let Some(b) = &inner.in_flight {
            return Some(b.clone());
        }
        if inner.waiting.is_empty() {
            return None;
        }
        let n = inner.waiting.len().min(max.max(1));
        let records: Vec<Record> = inner.waiting.drain(..n).collect();
        let batch = PendingBatch {
            batch_id: uuid::Uuid::now_v7().to_string(),
            records: Arc::new(records),
        };
        inner.in_flight = Some(batch.clone());
        Some(batch)
    }

    /// Marks the batch as stored by the collector (or set aside for good): it is not sent again.
    pub fn ack(&self, batch_id: &str) {
        let mut inner = self.lock();
        if inner
            .in_flight
            .as_ref()
            .is_some_and(|b| b.batch_id == batch_id)
        {
            inner.in_flight = None;
        }
    }

    /// Records waiting, not counting the batch in flight.
    pub fn len(&self) -> usize {
        self.lock().waiting.len()
    }

    /// True when nothing waits and nothing is in flight.
    pub fn is_empty(&self) -> bool {
        let inner = self.lock();
        inner.waiting.is_empty() && inner.in_flight.is_none()
    }

    /// Records dropped because the queue was full, since start.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    /// Waits until a record is pushed (returns at once if one was pushed since the last wait).
    pub async fn pushed(&self) {
        self.notify.notified().await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave Inner half-updated in a way that matters
        // more than losing the agent's data, so a poisoned lock is used as it is.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lookout_protocol::LogRecord;

    fn log(i: usize) -> Record {
        Record::Log(LogRecord {
            time: chrono::Utc::now(),
            source: "t".into(),
            level: None,
            text: i.to_string(),
        })
    }

    fn text(r: &Record) -> &str {
        match r {
            Record::Log(l) => &l.text,
            _ => unreachable!("only logs in these tests"),
        }
    }

    #[test]
    fn unacknowledged_batch_is_handed_out_again_unchanged() {
        let q = Queue::new(100);
        for i in 0..5 {
            q.push(log(i));
        }
        let a = q.next_batch(3).unwrap();
        q.push(log(5));
        let again = q.next_batch(3).unwrap();
        assert_eq!(a.batch_id, again.batch_id);
        assert_eq!(again.records.len(), 3);
        q.ack(&a.batch_id);
        let b = q.next_batch(10).unwrap();
        assert_ne!(a.batch_id, b.batch_id);
        let texts: Vec<&str> = b.records.iter().map(text).collect();
        assert_eq!(texts, ["3", "4", "5"]);
        q.ack(&b.batch_id);
        assert!(q.next_batch(10).is_none());
        assert!(q.is_empty());
    }

    #[test]
    fn full_queue_drops_the_oldest_and_counts() {
        let q = Queue::new(10);
        for i in 0..25 {
            q.push(log(i));
        }
        assert_eq!(q.len(), 10);
        assert_eq!(q.dropped(), 15);
        let b = q.next_batch(100).unwrap();
        assert_eq!(text(&b.records[0]), "15");
    }
}
