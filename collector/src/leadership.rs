//! Whether this collector leads: evaluates rules, owns alert state, rolls up and applies
//! retention.
//!
//! With SQLite there is one collector, which leads from its start ([`Leadership::always`]).
//! With PostgreSQL several collectors share the database and the holder of an advisory lock
//! leads ([`crate::cluster::campaign`] wins and loses it). Everything that must run on one
//! collector only asks [`Leadership::leads`], or follows changes through
//! [`Leadership::watch`].
//!
//! This module depends on nothing else of the collector: the election, the evaluator, the
//! maintenance loop and the API all read it, and none of them is read by it. Times are passed
//! in by the caller (the collector's clock, [`crate::clock`]).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

/// Whether this collector leads, and since when.
#[derive(Debug)]
pub struct Leadership {
    since: watch::Sender<Option<DateTime<Utc>>>,
}

impl Leadership {
    /// Leads from `now` on (one collector per database).
    pub fn always(now: DateTime<Utc>) -> Arc<Self> {
        Arc::new(Self {
            since: watch::Sender::new(Some(now)),
        })
    }

    /// Leads once it wins the election, which calls [`Leadership::set`].
    pub fn contender() -> Arc<Self> {
        Arc::new(Self {
            since: watch::Sender::new(None),
        })
    }

    /// True while this collector leads.
    pub fn leads(&self) -> bool {
        self.since.borrow().is_some()
    }

    /// Since when it leads.
    pub fn since(&self) -> Option<DateTime<Utc>> {
        *self.since.borrow()
    }

    /// Follows changes.
    pub fn watch(&self) -> watch::Receiver<Option<DateTime<Utc>>> {
        self.since.subscribe()
    }

    /// Leads (from `now`, if it did not already) or stops leading; watchers are told of a
    /// change only.
    pub fn set(&self, leads: bool, now: DateTime<Utc>) {
        self.since.send_if_modified(|s| {
            let changed = s.is_some() != leads;
            if changed {
                *s = leads.then_some(now);
            }
            changed
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_contender_leads_once_set_and_keeps_its_start() {
        let l = Leadership::contender();
        assert!(!l.leads());
        let mut w = l.watch();
        let t0 = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).expect("time");
        l.set(true, t0);
        assert!(w.has_changed().expect("open"));
        w.mark_unchanged();
        // Leading again later changes nothing: it has led since t0.
        l.set(true, t0 + chrono::Duration::seconds(5));
        assert_eq!(l.since(), Some(t0));
        assert!(!w.has_changed().expect("open"));
        l.set(false, t0);
        assert!(!l.leads());
        assert!(w.has_changed().expect("open"));
    }
}
