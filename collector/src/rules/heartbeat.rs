//! A push monitor's state from its latest pings, as Healthchecks.io defines it:
//!
//! - never pinged: `new` (no alert: a job that has not run yet is not late);
//! - its latest ping a success: `up` until the next one is due (`period` after it, or the next
//!   `schedule` time), then `late` for `grace`, then `down`;
//! - its latest ping a start: `started`, and `down` if the run takes longer than `grace`;
//! - its latest ping a failure (`/fail`, a non-zero exit code): `down` at once.

use chrono::{DateTime, Utc};
use lookout_config::HeartbeatConfig;
use serde::Serialize;

use crate::store::alerting::HeartbeatRow;

/// A push monitor's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BeatState {
    /// Never pinged.
    New,
    /// Pinged in time.
    Up,
    /// Running: started, not yet ended.
    Started,
    /// Overdue, within the grace time.
    Late,
    /// Overdue past the grace time, failed, or ran too long.
    Down,
}

/// A heartbeat's state at `now`, with what to tell people about it, and when its next ping is
/// due.
pub fn evaluate(
    cfg: &HeartbeatConfig,
    row: &HeartbeatRow,
    now: DateTime<Utc>,
) -> (BeatState, String, Option<DateTime<Utc>>) {
    let grace = chrono::Duration::from_std(cfg.grace).unwrap_or(chrono::Duration::MAX);
    let name = &cfg.name;
    let success = row.last_success;
    let latest = [row.last_success, row.last_start, row.last_fail]
        .into_iter()
        .flatten()
        .max();
    let Some(latest) = latest else {
        return (
            BeatState::New,
            format!("{name} has not been pinged yet"),
            None,
        );
    };
    if row.last_fail == Some(latest) && success != Some(latest) {
        let code = match row.last_exit_code {
            Some(c) if c != 0 => format!(" (exit code {c})"),
            _ => String::new(),
        };
        return (
            BeatState::Down,
            format!("{name} down: failed{code} at {}", hhmm(latest)),
            None,
        );
    }
    if row.last_start == Some(latest) && success != Some(latest) {
        let deadline = latest
            .checked_add_signed(grace)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        if now > deadline {
            return (
                BeatState::Down,
                format!(
                    "{name} down: started at {} and not finished within {}",
                    hhmm(latest),
                    lookout_config::duration::format(&cfg.grace)
                ),
                None,
            );
        }
        return (
            BeatState::Started,
            format!("{name} running since {}", hhmm(latest)),
            Some(deadline),
        );
    }
    let Some(due) = cfg.next_expected(latest) else {
        return (BeatState::Up, format!("{name} up"), None);
    };
    if now <= due {
        (
            BeatState::Up,
            format!("{name} up: last ping at {}", hhmm(latest)),
            Some(due),
        )
    } else if now
        <= due
            .checked_add_signed(grace)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    {
        (
            BeatState::Late,
            format!(
                "{name} late: expected by {}, last ping at {}",
                hhmm(due),
                hhmm(latest)
            ),
            Some(due),
        )
    } else {
        (
            BeatState::Down,
            format!(
                "{name} down: no ping since {} (expected by {})",
                hhmm(latest),
                hhmm(due)
            ),
            Some(due),
        )
    }
}

fn hhmm(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// Takes into `into` the pings of `stored` that are newer.
pub fn merge_pings(into: &mut HeartbeatRow, stored: &HeartbeatRow) {
    into.name.clone_from(&stored.name);
    let newer = |a: &mut Option<DateTime<Utc>>, b: Option<DateTime<Utc>>| {
        if b > *a {
            *a = b;
        }
    };
    let before = into.last_success.max(into.last_start).max(into.last_fail);
    newer(&mut into.last_success, stored.last_success);
    newer(&mut into.last_start, stored.last_start);
    newer(&mut into.last_fail, stored.last_fail);
    let after = into.last_success.max(into.last_start).max(into.last_fail);
    if after > before && stored.last_exit_code.is_some() {
        into.last_exit_code = stored.last_exit_code;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::time::Duration;

    fn cfg(period: Option<u64>, schedule: Option<&str>) -> HeartbeatConfig {
        HeartbeatConfig {
            name: "backup".into(),
            token: "0123456789abcdef".into(),
            period: period.map(Duration::from_secs),
            schedule: schedule.map(str::to_string),
            grace: Duration::from_secs(300),
            severity: "critical".into(),
            group: None,
        }
    }

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, h, m, 0).unwrap()
    }

    #[test]
    fn a_period_gives_up_then_late_then_down() {
        let c = cfg(Some(3600), None);
        let row = HeartbeatRow {
            last_success: Some(at(10, 0)),
            ..Default::default()
        };
        assert_eq!(
            evaluate(&c, &HeartbeatRow::default(), at(10, 0)).0,
            BeatState::New
        );
        assert_eq!(evaluate(&c, &row, at(10, 59)).0, BeatState::Up);
        assert_eq!(evaluate(&c, &row, at(11, 0)).2, Some(at(11, 0)));
        assert_eq!(evaluate(&c, &row, at(11, 3)).0, BeatState::Late);
        let (s, summary, _) = evaluate(&c, &row, at(11, 6));
        assert_eq!(s, BeatState::Down);
        assert!(
            summary.contains("no ping since 2026-11-26 10:00:00 UTC"),
            "{summary}"
        );
    }

    #[test]
    fn a_schedule_expects_the_next_run_after_the_last_ping() {
        // Daily at 03:00; pinged at 03:02 today: due tomorrow 03:00.
        let c = cfg(None, Some("0 3 * * *"));
        let row = HeartbeatRow {
            last_success: Some(at(3, 2)),
            ..Default::default()
        };
        let (s, _, due) = evaluate(&c, &row, at(23, 0));
        assert_eq!(s, BeatState::Up);
        assert_eq!(
            due,
            Some(Utc.with_ymd_and_hms(2026, 11, 27, 3, 0, 0).unwrap())
        );
    }

    #[test]
    fn a_failure_is_down_at_once_and_a_long_run_goes_down_after_grace() {
        let c = cfg(Some(3600), None);
        let failed = HeartbeatRow {
            last_success: Some(at(9, 0)),
            last_fail: Some(at(10, 0)),
            last_exit_code: Some(3),
            ..Default::default()
        };
        let (s, summary, _) = evaluate(&c, &failed, at(10, 0));
        assert_eq!(s, BeatState::Down);
        assert!(summary.contains("exit code 3"), "{summary}");
        // A success after the failure: up again.
        let ok = HeartbeatRow {
            last_success: Some(at(10, 5)),
            ..failed.clone()
        };
        assert_eq!(evaluate(&c, &ok, at(10, 6)).0, BeatState::Up);
        let running = HeartbeatRow {
            last_success: Some(at(9, 0)),
            last_start: Some(at(10, 0)),
            ..Default::default()
        };
        assert_eq!(evaluate(&c, &running, at(10, 4)).0, BeatState::Started);
        assert_eq!(evaluate(&c, &running, at(10, 6)).0, BeatState::Down);
    }
}
