//! What the public status page shows, built from rollups only: each check's state, 90 daily
//! uptime figures with the day's incidents, uptime over 24 h, 7, 30 and 90 days, and hourly
//! response times over 24 h; open and recent incidents; maintenance windows. The HTML page
//! (`GET /`) and `GET /api/v1/status` both serve this model.
//!
//! Cost per view, whatever the checks' intervals: the latest result of each series, 90 daily
//! rows and 24 hourly rows a series (`Store::check_totals`), and the uptime alerts' history of
//! 90 days.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use lookout_config::CollectorConfig;
use serde::Serialize;

use super::checks::{CheckStatus, CheckView, check_views};
use super::history::{DAYS, HOUR_MS, HistoryCache};
use crate::store::rollup::{DAY_MS, bucket_start};
use crate::store::{CheckTotal, Store, StoreError};

/// Recent incidents listed: those that began in this many days.
const RECENT_DAYS: i64 = 14;
/// Maintenance windows listed ahead of time: those that start within this many days.
const UPCOMING_DAYS: i64 = 7;
/// The group of checks that have none.
pub const OTHER_GROUP: &str = "Other";

/// `GET /api/v1/status` answer, and the page's model.
#[derive(Debug, Serialize)]
pub struct StatusModel {
    /// The page's title (`[status_page] title`).
    pub title: String,
    /// When this was computed.
    pub generated: DateTime<Utc>,
    /// `up` when every check is up, `down` when any is down, else `degraded` (some pending or
    /// unknown) — or `up` with no checks at all.
    pub overall: &'static str,
    /// Checks by group: configured groups in the order of their first check, then `Other`
    /// (checks without a group, and agents' own checks); empty groups left out.
    pub groups: Vec<GroupModel>,
    /// Incidents still open, newest first.
    pub open_incidents: Vec<IncidentModel>,
    /// Incidents of the last 14 days that are over, newest first.
    pub recent_incidents: Vec<IncidentModel>,
    /// Maintenance windows open now or starting within 7 days.
    pub maintenance: Vec<MaintenanceModel>,
}

/// One group of checks.
#[derive(Debug, Serialize)]
pub struct GroupModel {
    /// Its name.
    pub name: String,
    /// Its checks, by name.
    pub checks: Vec<CheckModel>,
}

/// One check on the page.
#[derive(Debug, Serialize)]
pub struct CheckModel {
    /// Its name.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its state now.
    pub status: CheckStatus,
    /// Uptime (0..1) over the last 24 hours, 7, 30 and 90 days; null without results.
    pub uptime: UptimeWindows,
    /// The last 90 UTC days, oldest first; today last.
    pub days: Vec<DayModel>,
    /// Mean response time per hour over the last 24 hours, oldest first; hours without results
    /// are left out.
    pub response_ms: Vec<ResponsePoint>,
    /// Why it fails, while it does, in words that give nothing away (`status 503`, `timeout`,
    /// `connection refused`): the public page shows no probe's raw error, which can name
    /// addresses, hosts or a response's body. Readers see the detail in `/api/v1/checks`.
    pub error: Option<String>,
}

/// Uptime over the page's windows.
#[derive(Debug, Default, Serialize)]
pub struct UptimeWindows {
    /// Last 24 hours.
    #[serde(rename = "24h")]
    pub h24: Option<f64>,
    /// Last 7 days (today included).
    #[serde(rename = "7d")]
    pub d7: Option<f64>,
    /// Last 30 days.
    #[serde(rename = "30d")]
    pub d30: Option<f64>,
    /// Last 90 days.
    #[serde(rename = "90d")]
    pub d90: Option<f64>,
}

/// One day of a check.
#[derive(Debug, Clone, Serialize)]
pub struct DayModel {
    /// The day, `YYYY-MM-DD` (UTC).
    pub date: String,
    /// Results that day.
    pub count: u64,
    /// Failed results that day.
    pub failures: u64,
    /// Uptime that day, null without results.
    pub uptime: Option<f64>,
    /// Incidents of this check that were open during the day.
    pub incidents: u32,
}

/// Mean response time of one hour.
#[derive(Debug, Serialize)]
pub struct ResponsePoint {
    /// Start of the hour.
    pub time: DateTime<Utc>,
    /// Mean response time, ms.
    pub avg_ms: f64,
}

/// One incident: a check's uptime alert from firing to resolved.
#[derive(Debug, Serialize)]
pub struct IncidentModel {
    /// The check.
    pub check: String,
    /// `down` or `flapping`: the alert's own summary names locations and the probe's error,
    /// which the public page does not show (readers find it in `/api/v1/alerts`).
    pub summary: String,
    /// When it began.
    pub started: DateTime<Utc>,
    /// When it ended; null while open.
    pub ended: Option<DateTime<Utc>>,
}

/// One maintenance window.
#[derive(Debug, Serialize)]
pub struct MaintenanceModel {
    /// Its name.
    pub name: String,
    /// Open now.
    pub active: bool,
    /// When it starts (or started).
    pub starts: DateTime<Utc>,
    /// When it ends.
    pub ends: DateTime<Utc>,
}

/// Builds the page's model at the collector's clock, with `history` shared between views.
pub async fn model(
    store: &Arc<dyn Store>,
    config: &CollectorConfig,
    history: &HistoryCache,
) -> Result<StatusModel, StoreError> {
    let now = crate::clock::now();
    let now_ms = now.timestamp_millis();
    let today = bucket_start(now_ms, DAY_MS);
    let (views, history, incidents) = tokio::try_join!(
        check_views(store.as_ref(), config),
        history.current(store, now),
        async {
            let first_day = today - (DAYS as i64 - 1) * DAY_MS;
            store
                .incidents(
                    crate::alert::UPTIME_RULE,
                    DateTime::from_timestamp_millis(first_day).unwrap_or(now),
                )
                .await
        },
    )?;
    let first_day = history.first_day;
    let mut incident_days: HashMap<&str, [u32; DAYS]> = HashMap::new();
    for i in &incidents {
        let Some(check) = i.labels.get("check") else {
            continue;
        };
        let start = i.started.timestamp_millis().max(first_day);
        let end = i.ended.map_or(now_ms, |e| e.timestamp_millis());
        let slots = incident_days.entry(check).or_insert([0; DAYS]);
        let mut day = bucket_start(start, DAY_MS);
        while day <= end && day < first_day + DAYS as i64 * DAY_MS {
            slots[((day - first_day) / DAY_MS) as usize] += 1;
            day += DAY_MS;
        }
    }
    let groups_of: HashMap<&str, &str> = config
        .checks
        .iter()
        .filter_map(|c| Some((c.name.as_str(), c.group.as_deref()?)))
        .collect();
    let mut order: Vec<&str> = Vec::new();
    for g in config.checks.iter().filter_map(|c| c.group.as_deref()) {
        if !order.contains(&g) {
            order.push(g);
        }
    }
    // Ungrouped checks (and agents' own) last.
    order.push(OTHER_GROUP);
    // The days' names, made once: formatting a date costs more than the rest of a day.
    let dates: Vec<String> = (0..DAYS as i64)
        .map(|i| {
            DateTime::from_timestamp_millis(first_day + i * DAY_MS)
                .map(|d| d.format("%Y-%m-%d").to_string())
                .unwrap_or_default()
        })
        .collect();
    let mut groups: BTreeMap<usize, GroupModel> = BTreeMap::new();
    let (mut any_down, mut all_up) = (false, true);
    for v in views {
        any_down |= v.status == CheckStatus::Down;
        all_up &= v.status == CheckStatus::Up;
        let group = groups_of
            .get(v.name.as_str())
            .copied()
            .unwrap_or(OTHER_GROUP);
        let index = order.iter().position(|g| *g == group).unwrap_or_else(|| {
            order.push(group);
            order.len() - 1
        });
        let none = Vec::new();
        let day_rows = history.days.get(&v.name).unwrap_or(&none);
        let hour_rows = history.hours.get(&v.name).unwrap_or(&none);
        let mut check = check_model(v, day_rows, hour_rows, &dates, first_day, now_ms);
        if let Some(slots) = incident_days.get(check.name.as_str()) {
            for (d, n) in check.days.iter_mut().zip(slots) {
                d.incidents = *n;
            }
        }
        groups
            .entry(index)
            .or_insert_with(|| GroupModel {
                name: group.to_string(),
                checks: Vec::new(),
            })
            .checks
            .push(check);
    }
    let recent_cutoff = now - ChronoDuration::days(RECENT_DAYS);
    let (open, over): (Vec<_>, Vec<_>) = incidents
        .into_iter()
        .filter_map(|i| {
            Some(IncidentModel {
                check: i.labels.get("check")?.clone(),
                // The alert's summary names locations and the probe's error: not public.
                summary: if i.summary.starts_with("flapping") {
                    "flapping".into()
                } else {
                    "down".into()
                },
                started: i.started,
                ended: i.ended,
            })
        })
        .partition(|i| i.ended.is_none());
    Ok(StatusModel {
        title: config.status_page.title.clone(),
        generated: now,
        overall: if any_down {
            "down"
        } else if all_up {
            "up"
        } else {
            "degraded"
        },
        groups: groups.into_values().collect(),
        open_incidents: open,
        recent_incidents: over
            .into_iter()
            .filter(|i| i.ended.is_some_and(|e| e >= recent_cutoff))
            .collect(),
        maintenance: maintenance(&config.maintenance, now),
    })
}

fn check_model(
    v: CheckView,
    day_rows: &[CheckTotal],
    hour_rows: &[CheckTotal],
    dates: &[String],
    first_day: i64,
    now_ms: i64,
) -> CheckModel {
    let mut days: Vec<DayModel> = dates
        .iter()
        .map(|date| DayModel {
            date: date.clone(),
            count: 0,
            failures: 0,
            uptime: None,
            incidents: 0,
        })
        .collect();
    for r in day_rows {
        let i = (r.bucket_ms - first_day) / DAY_MS;
        if let Some(d) = usize::try_from(i).ok().and_then(|i| days.get_mut(i)) {
            d.count = r.count;
            d.failures = r.failures;
            d.uptime = ratio(r.count, r.failures);
        }
    }
    let window = |n: usize| {
        let (c, f) = days[DAYS - n..]
            .iter()
            .fold((0, 0), |(c, f), d| (c + d.count, f + d.failures));
        ratio(c, f)
    };
    let first_hour = bucket_start(now_ms, HOUR_MS) - 23 * HOUR_MS;
    let recent = || hour_rows.iter().filter(|h| h.bucket_ms >= first_hour);
    let (c24, f24) = recent().fold((0, 0), |(c, f), h| (c + h.count, f + h.failures));
    let mut hourly: Vec<&CheckTotal> = recent().filter(|h| h.count > 0).collect();
    hourly.sort_by_key(|h| h.bucket_ms);
    CheckModel {
        uptime: UptimeWindows {
            h24: ratio(c24, f24),
            d7: window(7),
            d30: window(30),
            d90: window(DAYS),
        },
        response_ms: hourly
            .iter()
            .filter_map(|h| {
                Some(ResponsePoint {
                    time: DateTime::from_timestamp_millis(h.bucket_ms)?,
                    avg_ms: h.latency_sum_ms / h.count as f64,
                })
            })
            .collect(),
        error: (v.status == CheckStatus::Down)
            .then(|| {
                v.agents
                    .iter()
                    .find(|a| !a.ok)
                    .map(|a| public_reason(a.status_code, a.error.as_deref()))
            })
            .flatten(),
        name: v.name,
        kind: v.kind,
        status: v.status,
        days,
    }
}

fn ratio(count: u64, failures: u64) -> Option<f64> {
    (count > 0).then(|| (count - failures.min(count)) as f64 / count as f64)
}

/// Windows open at `now` or starting within [`UPCOMING_DAYS`], soonest first.
fn maintenance(
    windows: &[lookout_config::MaintenanceConfig],
    now: DateTime<Utc>,
) -> Vec<MaintenanceModel> {
    let horizon = now + ChronoDuration::days(UPCOMING_DAYS);
    let mut out = Vec::new();
    for w in windows {
        let span = w.current_or_next(now);
        if let Some((starts, ends)) = span
            && ends > now
            && starts <= horizon
        {
            out.push(MaintenanceModel {
                name: w.name.clone(),
                active: starts <= now,
                starts,
                ends,
            });
        }
    }
    out.sort_by_key(|m| m.starts);
    out
}

/// A failed probe's reason as the public may see it: the kind of failure, never the text of
/// the error (which can hold an address, a host name, a TLS subject or a response's body).
pub fn public_reason(status_code: Option<u16>, error: Option<&str>) -> String {
    let error = error.unwrap_or("").to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| error.contains(w));
    if error.starts_with("status ")
        && let Some(code) = status_code
    {
        return format!("status {code}");
    }
    let kind = if has(&["timed out", "timeout", "deadline"]) {
        "timeout"
    } else if has(&["connection refused"]) {
        "connection refused"
    } else if has(&["connection reset", "broken pipe", "connection closed"]) {
        "connection lost"
    } else if has(&[
        "dns",
        "resolve",
        "lookup",
        "nxdomain",
        "servfail",
        "name or service",
    ]) {
        "DNS failure"
    } else if has(&["certificate", "tls", "ssl", "handshake"]) {
        "TLS failure"
    } else if has(&["unreachable", "no route"]) {
        "unreachable"
    } else {
        "check failed"
    };
    kind.to_string()
}

#[cfg(test)]
mod public_reason_tests {
    use super::public_reason;

    #[test]
    fn the_kind_of_failure_and_nothing_of_the_error_text() {
        for (code, error, want) in [
            (Some(503), "status 503, expected 2xx", "status 503"),
            (None, "timed out after 5s", "timeout"),
            (
                None,
                "HTTP: error sending request: connection refused (os error 111) to 10.0.0.5:443",
                "connection refused",
            ),
            (
                None,
                "HTTP: dns error: failed to lookup address db.internal.example",
                "DNS failure",
            ),
            (
                None,
                "TLS: invalid peer certificate: NotValidForName (CN=secret.internal)",
                "TLS failure",
            ),
            (
                Some(200),
                "condition [BODY].token == \"s3cr3t\" failed: found \"x\"",
                "check failed",
            ),
            (None, "", "check failed"),
        ] {
            let got = public_reason(code, Some(error));
            assert_eq!(got, want, "{error}");
            for secret in ["10.0.0.5", "db.internal", "secret.internal", "s3cr3t"] {
                assert!(!got.contains(secret));
            }
        }
    }
}
