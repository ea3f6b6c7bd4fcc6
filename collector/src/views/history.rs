//! The status page's rollup part, shared by views for a few seconds: every check's daily totals
//! over [`DAYS`] days and hourly totals over the last 24 hours. Reading it touches every
//! series' 90 daily and 24 hourly rows, which takes a moment with many checks, and rollups lag
//! results by a few seconds anyway; so one read serves every view for [`HISTORY_TTL_SECS`], and
//! a view that finds it older gets it as it is while a background task reads the next. States
//! and incidents are not cached: the status model reads them fresh on every view.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};

use crate::store::rollup::{DAY_MS, bucket_start};
use crate::store::{CheckTotal, Store, StoreError, TotalsWidth};

/// Days in the status page's bars.
pub const DAYS: usize = 90;
/// An hour in Unix ms.
pub(super) const HOUR_MS: i64 = 3_600_000;
/// How long views share one [`History`].
pub const HISTORY_TTL_SECS: i64 = 10;

/// Every check's daily and hourly totals, as read at one moment.
#[derive(Debug)]
pub struct History {
    /// When it was read.
    computed: DateTime<Utc>,
    /// Start of the oldest day, Unix ms.
    pub(super) first_day: i64,
    /// Daily totals by check.
    pub(super) days: HashMap<String, Vec<CheckTotal>>,
    /// Hourly totals by check, the last 24 hours.
    pub(super) hours: HashMap<String, Vec<CheckTotal>>,
}

/// The shared [`History`], and whether a refresh is under way. Clones share one cache.
#[derive(Debug, Default, Clone)]
pub struct HistoryCache {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    // std's Mutex: held only to clone or replace the Arc.
    current: std::sync::Mutex<Option<Arc<History>>>,
    refreshing: AtomicBool,
}

impl HistoryCache {
    fn get(&self) -> Option<Arc<History>> {
        self.shared
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set(&self, h: Arc<History>) {
        *self
            .shared
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(h);
    }

    /// The current [`History`]: the shared one while fresh; a stale one of the same day while a
    /// background task reads the next; read now when there is none or the day changed.
    pub async fn current(
        &self,
        store: &Arc<dyn Store>,
        now: DateTime<Utc>,
    ) -> Result<Arc<History>, StoreError> {
        let today = bucket_start(now.timestamp_millis(), DAY_MS);
        match self.get() {
            Some(h) if (now - h.computed).num_seconds() < HISTORY_TTL_SECS => Ok(h),
            Some(h) if h.first_day + (DAYS as i64 - 1) * DAY_MS == today => {
                if !self.shared.refreshing.swap(true, Ordering::AcqRel) {
                    let (cache, store) = (self.clone(), store.clone());
                    tokio::spawn(async move {
                        match load(store.as_ref(), crate::clock::now()).await {
                            Ok(fresh) => cache.set(Arc::new(fresh)),
                            Err(e) => {
                                tracing::warn!(error = %e, "status page history refresh failed")
                            }
                        }
                        cache.shared.refreshing.store(false, Ordering::Release);
                    });
                }
                Ok(h)
            }
            _ => {
                let h = Arc::new(load(store.as_ref(), now).await?);
                self.set(h.clone());
                Ok(h)
            }
        }
    }
}

async fn load(store: &dyn Store, now: DateTime<Utc>) -> Result<History, StoreError> {
    let now_ms = now.timestamp_millis();
    let first_day = bucket_start(now_ms, DAY_MS) - (DAYS as i64 - 1) * DAY_MS;
    let first_hour = bucket_start(now_ms, HOUR_MS) - 23 * HOUR_MS;
    let since = |ms: i64| DateTime::from_timestamp_millis(ms).unwrap_or(now);
    let (days, hours) = tokio::try_join!(
        store.check_totals(TotalsWidth::Day, since(first_day)),
        store.check_totals(TotalsWidth::Hour, since(first_hour)),
    )?;
    let by_check = |rows: Vec<CheckTotal>| {
        let mut out: HashMap<String, Vec<CheckTotal>> = HashMap::new();
        for r in rows {
            out.entry(r.check.clone()).or_default().push(r);
        }
        out
    };
    Ok(History {
        computed: now,
        first_day,
        days: by_check(days),
        hours: by_check(hours),
    })
}
