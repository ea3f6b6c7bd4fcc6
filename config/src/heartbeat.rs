//! `[[heartbeats]]`: push monitors for cron jobs and batch work, with Healthchecks.io's
//! semantics. The job pings `/v1/ping/{name}?token=...` when it succeeds (and optionally
//! `/start` when it begins, `/fail` or `/{exit_code}` when it ends); a heartbeat whose ping is
//! overdue is `late`, and `down` once `grace` has passed too.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::token::Token;

/// `[[heartbeats]]`: one push monitor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatConfig {
    /// Unique name, the `{name}` in the ping URL.
    pub name: String,
    /// The secret in the ping URL (`?token=`), at least 24 characters. Write `"${VAR}"`.
    pub token: Token,
    /// Expected time between pings (`"1h"`); or give `schedule`.
    #[serde(default, with = "crate::duration::option")]
    pub period: Option<Duration>,
    /// When the job runs, as cron in UTC (`"0 3 * * *"`); or give `period`.
    #[serde(default)]
    pub schedule: Option<String>,
    /// How long past the expected time before it is down (it is `late` meanwhile), and the
    /// longest run between `/start` and its end. Default `"5m"`.
    #[serde(default = "default_grace", with = "crate::duration")]
    pub grace: Duration,
    /// The severity of its alert, for routing. Default `"critical"`.
    #[serde(default = "crate::check::default_severity")]
    pub severity: String,
    /// A group on the status page.
    #[serde(default)]
    pub group: Option<String>,
}

fn default_grace() -> Duration {
    Duration::from_secs(300)
}

impl HeartbeatConfig {
    /// When the ping after one at `last` is due.
    pub fn next_expected(&self, last: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if let Some(p) = self.period {
            return last.checked_add_signed(chrono::Duration::from_std(p).ok()?);
        }
        let cron = croner::Cron::from_str(self.schedule.as_deref()?).ok()?;
        cron.find_next_occurrence(&last, false).ok()
    }

    /// What is wrong with it, as (key, problem).
    pub(crate) fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.name.trim().is_empty() {
            out.push(("name", "must not be empty".to_string()));
        } else if !self
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            out.push((
                "name",
                format!(
                    "{:?}: use letters, digits, '-', '_' and '.' (it goes in a URL)",
                    self.name
                ),
            ));
        }
        if let Err(problem) = self.token.check_strength() {
            out.push(("token", problem));
        }
        match (&self.period, &self.schedule) {
            (Some(_), Some(_)) => {
                out.push(("schedule", "give period or schedule, not both".into()))
            }
            (None, None) => out.push((
                "period",
                "required: period (\"1h\") or schedule (cron)".into(),
            )),
            (Some(p), None) if *p < Duration::from_secs(1) => {
                out.push(("period", "must be at least 1s".into()))
            }
            (None, Some(s)) => {
                if let Err(e) = croner::Cron::from_str(s) {
                    out.push(("schedule", format!("invalid cron expression {s:?}: {e}")));
                }
            }
            _ => {}
        }
        let year = Duration::from_secs(366 * 86_400);
        if self.period.is_some_and(|p| p > year) {
            out.push(("period", "must be at most 366d".into()));
        }
        if self.grace > year {
            out.push(("grace", "must be at most 366d".into()));
        }
        if self.severity.trim().is_empty() {
            out.push(("severity", "must not be empty".into()));
        }
        out
    }
}
