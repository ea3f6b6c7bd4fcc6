//! The desk: records what the rules decided as transitions with their notifications, releases
//! held alerts and queues reminders.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use lookout_config::CollectorConfig;
use tokio::sync::Notify;

use super::book::{Book, Memo};
use super::hold::Holds;
use super::{Decision, Vantage};
use crate::notify::{AlertNote, NoteKind, Router};
use crate::store::alerting::{AlertRow, AlertState, Ledger, NewNotification, Silence, Transition};
use crate::store::{Store, StoreError};

/// What the configuration sets for notifying: routes and maintenance windows.
#[derive(Debug)]
struct Policy {
    router: Router,
    holds: Holds,
}

impl Policy {
    fn new(config: &CollectorConfig) -> Self {
        Self {
            router: Router::new(config),
            holds: Holds::new(config),
        }
    }

    /// The note for an alert.
    fn note(&self, fingerprint: &str, memo: &Memo, kind: NoteKind) -> AlertNote {
        AlertNote {
            fingerprint: fingerprint.to_string(),
            rule: memo.rule.clone(),
            labels: memo.labels.clone(),
            kind,
            summary: memo.summary.clone(),
            detail: memo.detail.clone(),
            fired_at: memo.fired_at.unwrap_or_else(Utc::now),
            resolved_at: None,
            link: self.router.link(&memo.labels),
            acked_by: None,
            ack_link: None,
        }
    }
}

/// Where a desk's transitions go.
pub enum Sink<'a> {
    /// The store, each transition in a transaction of its own; the sender is woken at once.
    Own,
    /// The open transaction of a group of batches (rules/group.rs); `queued` tells whether
    /// notifications were queued in it, for the sender to be woken once it commits.
    Group {
        /// The group's transaction.
        ledger: &'a mut dyn Ledger,
        /// Notifications were queued in it.
        queued: bool,
    },
}

impl std::fmt::Debug for Sink<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sink::Own => f.write_str("Own"),
            Sink::Group { queued, .. } => f.debug_struct("Group").field("queued", queued).finish(),
        }
    }
}

/// The store as a [`Ledger`]: each transition in a transaction of its own.
struct StoreLedger<'a>(&'a dyn Store);

#[async_trait::async_trait]
impl Ledger for StoreLedger<'_> {
    async fn record_transition(
        &mut self,
        t: &Transition,
        notify: &[NewNotification],
    ) -> Result<Option<i64>, StoreError> {
        self.0.record_transition(t, notify).await
    }

    async fn alert(&mut self, fingerprint: &str) -> Result<Option<AlertRow>, StoreError> {
        Ok(self
            .0
            .alerts(&AlertState::ALL)
            .await?
            .into_iter()
            .find(|a| a.fingerprint == fingerprint))
    }
}

/// Records alert transitions with their notifications.
#[derive(Debug)]
pub struct Desk {
    store: Arc<dyn Store>,
    // std's RwLock: read briefly (an Arc cloned), never across an await.
    policy: RwLock<Arc<Policy>>,
    /// Woken when notifications are queued (the sender waits on it).
    queued: Arc<Notify>,
}

impl Desk {
    /// A desk over `store`, routing by `config`; `queued` is notified whenever notifications
    /// are queued.
    pub fn new(store: Arc<dyn Store>, config: &CollectorConfig, queued: Arc<Notify>) -> Self {
        Self {
            store,
            policy: RwLock::new(Arc::new(Policy::new(config))),
            queued,
        }
    }

    /// Takes the routes and maintenance windows of a reloaded configuration.
    pub fn reload(&self, config: &CollectorConfig) {
        *self.policy.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(Policy::new(config));
    }

    fn policy(&self) -> Arc<Policy> {
        self.policy
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Records a decided transition with the notifications it sends, in a transaction of its
    /// own, and wakes the sender if it queued any; see [`Desk::record_in`].
    pub async fn record(
        &self,
        book: &mut Book,
        vantage: &dyn Vantage,
        d: Decision,
    ) -> Result<(), StoreError> {
        self.record_to(&mut Sink::Own, book, vantage, d).await
    }

    /// Records a decided transition into `sink`: [`Desk::record`] or [`Desk::record_in`].
    pub async fn record_to(
        &self,
        sink: &mut Sink<'_>,
        book: &mut Book,
        vantage: &dyn Vantage,
        d: Decision,
    ) -> Result<(), StoreError> {
        match sink {
            Sink::Own => {
                if self
                    .record_in(&mut StoreLedger(&*self.store), book, vantage, d)
                    .await?
                {
                    self.wake_sender();
                }
            }
            Sink::Group { ledger, queued } => {
                *queued |= self.record_in(&mut **ledger, book, vantage, d).await?;
            }
        }
        Ok(())
    }

    /// Records a decided transition with the notifications it sends in `ledger`, unless it
    /// changes nothing: the alert is already there (down → flapping), an alert that never
    /// fired is resolved, or a firing alert's condition is back on the way (flapping that
    /// settles on an unconfirmed failure: it fires until it resolves). `book` takes the
    /// transition as soon as `ledger` has it: a caller whose ledger then fails to commit reloads
    /// the book from the store. True when notifications were queued: the caller wakes the
    /// sender ([`Desk::wake_sender`]) once they are committed, not before.
    pub async fn record_in(
        &self,
        ledger: &mut dyn Ledger,
        book: &mut Book,
        vantage: &dyn Vantage,
        d: Decision,
    ) -> Result<bool, StoreError> {
        let before = book.memos.get(&d.fingerprint).cloned();
        let from = before.as_ref().map(|m| m.state);
        if from == Some(d.to)
            || (from.is_none() && d.to == AlertState::Resolved)
            || (from == Some(AlertState::Firing) && d.to == AlertState::Pending)
        {
            return Ok(false);
        }
        let policy = self.policy();
        let now = crate::clock::now();
        let mut memo = Memo {
            state: d.to,
            rule: d.rule,
            labels: d.labels,
            summary: d.summary,
            detail: d.detail,
            fired_at: before.as_ref().and_then(|m| m.fired_at),
            notified_at: None,
            depends_on: d.depends_on,
        };
        if d.to != AlertState::Resolved {
            memo.notified_at = before.as_ref().and_then(|m| m.notified_at);
        }
        let mut notes = Vec::new();
        match d.to {
            AlertState::Firing => {
                memo.fired_at = Some(d.at);
                let silences = self.store.silences(now).await?;
                if let Some(why) = policy.holds.why(book, vantage, &silences, &memo, d.at, now) {
                    tracing::info!(alert = %d.fingerprint, reason = %why, "alert firing, notification held back");
                } else {
                    notes = policy.router.plan(
                        &policy.note(&d.fingerprint, &memo, NoteKind::Firing),
                        d.at,
                        now,
                    );
                }
                memo.notified_at = (!notes.is_empty()).then_some(now);
            }
            AlertState::Resolved if before.as_ref().is_some_and(|m| m.notified_at.is_some()) => {
                let mut n = policy.note(&d.fingerprint, &memo, NoteKind::Resolved);
                n.resolved_at = Some(d.at);
                notes = policy.router.plan(&n, d.at, now);
            }
            _ => {}
        }
        let t = Transition {
            fingerprint: d.fingerprint.clone(),
            rule: memo.rule.clone(),
            labels: memo.labels.clone(),
            from,
            to: d.to,
            at: d.at,
            summary: memo.summary.clone(),
            fired_at: memo.fired_at,
            notified_at: memo.notified_at,
            recorded_at: now,
        };
        let stored = ledger.record_transition(&t, &notes).await?;
        if stored.is_some() {
            tracing::info!(alert = %t.fingerprint, from = ?t.from, to = ?t.to, notifications = notes.len(), summary = %t.summary, "alert transition");
            book.memos.insert(d.fingerprint, memo);
            return Ok(!notes.is_empty());
        }
        // Another writer (another collector, in HA) moved the alert first: take what it holds.
        tracing::warn!(alert = %t.fingerprint, "alert was not in the expected state; reloading it");
        match ledger.alert(&t.fingerprint).await? {
            Some(row) => book.memos.insert(d.fingerprint, Memo::of(&row)),
            None => book.memos.remove(&d.fingerprint),
        };
        Ok(false)
    }

    /// Wakes the notification sender: notifications were committed to the outbox.
    pub fn wake_sender(&self) {
        self.queued.notify_one();
    }

    /// Notifies firing alerts that were held back and no longer are, and queues reminders of
    /// firing, unacknowledged alerts whose `repeat_interval` came round.
    pub async fn release_and_remind(
        &self,
        book: &mut Book,
        vantage: &dyn Vantage,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let firing: Vec<(String, Memo)> = book
            .memos
            .iter()
            .filter(|(_, m)| m.state == AlertState::Firing)
            .map(|(f, m)| (f.clone(), m.clone()))
            .collect();
        if firing.is_empty() {
            return Ok(());
        }
        let policy = self.policy();
        let mut acked: Option<HashMap<String, bool>> = None;
        let mut silences: Option<Vec<Silence>> = None;
        for (fingerprint, memo) in firing {
            let kind = match memo.notified_at {
                None => NoteKind::Firing,
                Some(last) => {
                    let Some(every) = policy.router.repeat_interval(&memo.labels) else {
                        continue;
                    };
                    if now - last
                        < chrono::Duration::from_std(every).unwrap_or(chrono::Duration::MAX)
                    {
                        continue;
                    }
                    if acked.is_none() {
                        acked = Some(
                            self.store
                                .alerts(&[AlertState::Firing])
                                .await?
                                .into_iter()
                                .map(|a| (a.fingerprint, a.acked_by.is_some()))
                                .collect(),
                        );
                    }
                    if acked.as_ref().and_then(|m| m.get(&fingerprint)) != Some(&false) {
                        continue;
                    }
                    NoteKind::Reminder
                }
            };
            if silences.is_none() {
                silences = Some(self.store.silences(now).await?);
            }
            let quiet = silences.as_deref().unwrap_or_default();
            if policy
                .holds
                .why(book, vantage, quiet, &memo, now, now)
                .is_some()
            {
                continue;
            }
            let n = policy.note(&fingerprint, &memo, kind);
            let notes = match (kind, memo.notified_at) {
                (NoteKind::Reminder, Some(last)) => policy.router.plan_reminder(&n, last, now),
                _ => policy.router.plan(&n, now, now),
            };
            if notes.is_empty() {
                continue;
            }
            if self
                .store
                .queue_notifications(&fingerprint, AlertState::Firing, now, &notes)
                .await?
            {
                tracing::info!(alert = %fingerprint, kind = kind.as_str(), notifications = notes.len(), "notification queued");
                if let Some(m) = book.memos.get_mut(&fingerprint) {
                    m.notified_at = Some(now);
                }
                self.queued.notify_one();
            }
        }
        Ok(())
    }
}
