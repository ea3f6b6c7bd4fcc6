//! `[[rules]]`: metric thresholds. Each series of `metric` whose labels match (one per agent and
//! label set, or one per value of the `by` labels) is an alert of its own: the `aggregate` of its
//! samples over `window`, compared with `above` or `below`, must hold `for` a while to fire, and
//! stays firing `keep_firing_for` after it clears.
//!
//! Besides host metrics, two series come from checks: `check.latency_ms` and
//! `check.cert_days_left` (TLS certificates), labelled `check`; a TLS expiry alert is a rule
//! `metric = "check.cert_days_left", aggregate = "min", below = 14`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How a window of samples becomes one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    /// The mean.
    Avg,
    /// The largest.
    Max,
    /// The smallest.
    Min,
    /// The newest.
    Last,
    /// Increase per second (for counters; a reset counts from zero).
    Rate,
}

/// `[[rules]]`: one metric threshold rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Unique name; the alert's `rule` label.
    pub name: String,
    /// The metric (`system.filesystem.utilization`, `check.cert_days_left`...).
    pub metric: String,
    /// Label values a series must have (`{ mountpoint = "/" }`); `agent` matches the agent's
    /// name. Default: every series of the metric.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The labels that make one alert (`["check"]`: one per check, whichever agent reports
    /// it). Default: one per agent and label set.
    #[serde(default)]
    pub by: Option<Vec<String>>,
    /// `avg`, `max`, `min`, `last` or `rate`. Default `avg`.
    #[serde(default = "default_aggregate")]
    pub aggregate: Aggregate,
    /// The samples aggregated: those of the last `window`. Default `"1m"`.
    #[serde(default = "default_window", with = "crate::duration")]
    pub window: Duration,
    /// Fires when the value is above this.
    #[serde(default)]
    pub above: Option<f64>,
    /// Fires when the value is below this.
    #[serde(default)]
    pub below: Option<f64>,
    /// How long the condition must hold before it fires (pending meanwhile). Default `"0s"`.
    #[serde(rename = "for", default, with = "crate::duration")]
    pub for_: Duration,
    /// How long it stays firing after the condition clears (no resolve and re-fire on a value
    /// that hovers at the threshold). Default `"0s"`.
    #[serde(default, with = "crate::duration")]
    pub keep_firing_for: Duration,
    /// The severity of its alerts, for routing. Default `"warning"`.
    #[serde(default = "default_rule_severity")]
    pub severity: String,
}

fn default_aggregate() -> Aggregate {
    Aggregate::Avg
}
fn default_window() -> Duration {
    Duration::from_secs(60)
}
fn default_rule_severity() -> String {
    "warning".to_string()
}

/// Rule names the collector uses itself.
pub const RESERVED_RULE_NAMES: &[&str] = &["uptime", "agent", "heartbeat"];

impl RuleConfig {
    /// True when `value` is past the threshold.
    pub fn breached(&self, value: f64) -> bool {
        self.above.is_some_and(|a| value > a) || self.below.is_some_and(|b| value < b)
    }

    /// `above 0.9` or `below 14`.
    pub fn threshold_text(&self) -> String {
        match (self.above, self.below) {
            (Some(a), _) => format!("above {a}"),
            (_, Some(b)) => format!("below {b}"),
            _ => String::new(),
        }
    }

    /// What is wrong with it, as (key, problem).
    pub(crate) fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.name.trim().is_empty() {
            out.push(("name", "must not be empty".to_string()));
        } else if RESERVED_RULE_NAMES.contains(&self.name.as_str()) {
            out.push((
                "name",
                format!("{:?} is the name of a built-in rule", self.name),
            ));
        } else if self.name.contains('/') {
            out.push(("name", "must not contain '/'".to_string()));
        }
        if self.metric.trim().is_empty() {
            out.push(("metric", "must not be empty".to_string()));
        }
        match (self.above, self.below) {
            (None, None) => out.push(("above", "required: above or below".into())),
            (Some(_), Some(_)) => out.push(("below", "give above or below, not both".into())),
            (Some(v), None) | (None, Some(v)) if !v.is_finite() => {
                out.push(("above", "must be a finite number".into()))
            }
            _ => {}
        }
        if self.window < Duration::from_secs(1) {
            out.push(("window", "must be at least 1s".into()));
        }
        if self.window > Duration::from_secs(86_400) {
            out.push((
                "window",
                "must be at most 24h (the samples are kept in memory)".into(),
            ));
        }
        let month = Duration::from_secs(30 * 86_400);
        if self.for_ > month {
            out.push(("for", "must be at most 30d".into()));
        }
        if self.keep_firing_for > month {
            out.push(("keep_firing_for", "must be at most 30d".into()));
        }
        if self.severity.trim().is_empty() {
            out.push(("severity", "must not be empty".into()));
        }
        if self.by.as_ref().is_some_and(|b| b.is_empty()) {
            out.push(("by", "name at least one label, or leave it out".into()));
        }
        out
    }
}
