//! Metric threshold rules (`[[rules]]`), evaluated on each sample as it arrives.
//!
//! Each rule keeps, per series it matches, the samples of its `window` in memory (a rule over
//! one metric of a few hundred hosts at 10 s and a 5 m window is a few thousand numbers). A
//! sample updates its series' window and aggregate, and the series' state moves:
//! breached for less than `for` is pending, for `for` or longer is firing; a firing series stays
//! firing `keep_firing_for` after the value is back, then resolves. Times are the samples' own,
//! so a backlog is evaluated as it happened.

use std::collections::{BTreeMap, HashMap, VecDeque};

use chrono::{DateTime, Utc};
use lookout_config::{Aggregate, RuleConfig};

use crate::store::alerting::AlertState;

/// A sample as the rules see it.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    /// The agent that sent it.
    pub agent: &'a str,
    /// The metric.
    pub name: &'a str,
    /// Its labels.
    pub labels: &'a BTreeMap<String, String>,
    /// When it was taken.
    pub time: DateTime<Utc>,
    /// Its value.
    pub value: f64,
}

/// What a sample changed for one series' alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The alert's fingerprint (`rule/<name>/<label=value,...>`).
    pub fingerprint: String,
    /// The rule.
    pub rule: String,
    /// The alert's labels: the series' identifying labels and the severity.
    pub labels: BTreeMap<String, String>,
    /// The alert's new state.
    pub to: AlertState,
    /// When.
    pub at: DateTime<Utc>,
    /// For people.
    pub summary: String,
    /// The agent, when one agent's data makes the alert.
    pub agent: Option<String>,
}

#[derive(Debug)]
struct Series {
    window: VecDeque<(DateTime<Utc>, f64)>,
    breached_since: Option<DateTime<Utc>>,
    cleared_since: Option<DateTime<Utc>>,
    state: Option<AlertState>,
}

/// The threshold rules and the windows of the series they follow.
#[derive(Debug, Default)]
pub struct Thresholds {
    rules: Vec<RuleConfig>,
    series: HashMap<String, Series>,
}

impl Thresholds {
    /// Takes the configured rules; windows of rules that did not change are kept.
    pub fn configure(&mut self, rules: &[RuleConfig]) {
        if self.rules == rules {
            return;
        }
        let kept: Vec<&str> = rules
            .iter()
            .filter(|r| self.rules.contains(r))
            .map(|r| r.name.as_str())
            .collect();
        self.series.retain(|fp, _| {
            kept.iter().any(|name| {
                fp.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('/'))
            })
        });
        self.rules = rules.to_vec();
    }

    /// Drops a series' state (its transition could not be recorded): the next sample starts
    /// it again from the alert's stored state.
    pub fn forget(&mut self, fingerprint: &str) {
        self.series.remove(fingerprint);
    }

    /// True when some rule follows `metric`.
    pub fn wants(&self, metric: &str) -> bool {
        self.rules.iter().any(|r| r.metric == metric)
    }

    /// Takes one sample; returns the alert changes it makes. `stored` tells the state an
    /// alert already has in the store (a restart resumes a firing series as firing).
    pub fn observe(
        &mut self,
        s: Sample<'_>,
        stored: impl Fn(&str) -> Option<AlertState>,
    ) -> Vec<Verdict> {
        let mut out = Vec::new();
        for rule in self.rules.iter().filter(|r| r.metric == s.name) {
            let matches = rule.labels.iter().all(|(k, v)| {
                if k == "agent" {
                    v == s.agent
                } else {
                    s.labels.get(k) == Some(v)
                }
            });
            if !matches || !s.value.is_finite() {
                continue;
            }
            let (key_labels, agent) = identity(rule, &s);
            let fingerprint = format!(
                "{}/{}",
                rule.name,
                key_labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            );
            let series = self.series.entry(fingerprint.clone()).or_insert_with(|| {
                Series {
                    window: VecDeque::new(),
                    breached_since: None,
                    cleared_since: None,
                    // Resume from the stored alert: a firing one goes on firing, a pending one
                    // resolves if the value is fine.
                    state: stored(&fingerprint),
                }
            });
            // Samples arrive in time order per agent, but a series merged across agents (`by`)
            // gets each agent's in turn: keep the window sorted.
            let at = series.window.partition_point(|(t, _)| *t <= s.time);
            if at == series.window.len() {
                series.window.push_back((s.time, s.value));
            } else {
                series.window.insert(at, (s.time, s.value));
            }
            let newest = series.window.back().map_or(s.time, |(t, _)| *t);
            let horizon = newest - chrono::Duration::from_std(rule.window).unwrap_or_default();
            while series.window.front().is_some_and(|(t, _)| *t < horizon) {
                series.window.pop_front();
            }
            let Some(value) = aggregate(rule.aggregate, &series.window) else {
                continue;
            };
            let hold = chrono::Duration::from_std(rule.for_).unwrap_or_default();
            let keep = chrono::Duration::from_std(rule.keep_firing_for).unwrap_or_default();
            let next = if rule.breached(value) {
                series.cleared_since = None;
                let since = *series.breached_since.get_or_insert(s.time);
                if series.state == Some(AlertState::Firing) || s.time - since >= hold {
                    AlertState::Firing
                } else {
                    AlertState::Pending
                }
            } else {
                series.breached_since = None;
                match series.state {
                    Some(AlertState::Firing) => {
                        let since = *series.cleared_since.get_or_insert(s.time);
                        if s.time - since >= keep {
                            AlertState::Resolved
                        } else {
                            AlertState::Firing
                        }
                    }
                    _ => AlertState::Resolved,
                }
            };
            if series.state == Some(next)
                || (series.state.is_none() && next == AlertState::Resolved)
            {
                continue;
            }
            series.state = Some(next);
            let mut labels = key_labels;
            labels.insert("rule".into(), rule.name.clone());
            labels.insert("severity".into(), rule.severity.clone());
            let place = agent
                .as_deref()
                .map(|a| format!(" on {a}"))
                .unwrap_or_default();
            let series_text = series_text(s.labels);
            let summary = match next {
                AlertState::Resolved => format!(
                    "{}: {} {}{series_text}{place} = {} (back within the threshold)",
                    rule.name,
                    aggregate_word(rule.aggregate),
                    rule.metric,
                    round(value)
                ),
                _ => format!(
                    "{}: {} {}{series_text}{place} = {}, {}",
                    rule.name,
                    aggregate_word(rule.aggregate),
                    rule.metric,
                    round(value),
                    rule.threshold_text()
                ),
            };
            out.push(Verdict {
                fingerprint,
                rule: rule.name.clone(),
                labels,
                to: next,
                at: s.time,
                summary,
                agent,
            });
        }
        out
    }
}

/// The labels that make one alert of `rule` for this sample, and its agent when the agent is
/// one of them.
fn identity(rule: &RuleConfig, s: &Sample<'_>) -> (BTreeMap<String, String>, Option<String>) {
    let mut all = s.labels.clone();
    all.insert("agent".into(), s.agent.to_string());
    let labels: BTreeMap<String, String> = match &rule.by {
        None => all,
        Some(by) => all.into_iter().filter(|(k, _)| by.contains(k)).collect(),
    };
    let agent = labels.get("agent").cloned();
    (labels, agent)
}

fn series_text(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{{{}}}", inner.join(","))
}

fn aggregate_word(a: Aggregate) -> &'static str {
    match a {
        Aggregate::Avg => "avg",
        Aggregate::Max => "max",
        Aggregate::Min => "min",
        Aggregate::Last => "last",
        Aggregate::Rate => "rate",
    }
}

fn round(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{:.3}", v)
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

/// The aggregate of a window, oldest sample first; `None` when it has no value (a rate needs
/// two samples).
fn aggregate(a: Aggregate, w: &VecDeque<(DateTime<Utc>, f64)>) -> Option<f64> {
    let values = w.iter().map(|(_, v)| *v);
    match a {
        Aggregate::Avg => (!w.is_empty()).then(|| values.sum::<f64>() / w.len() as f64),
        Aggregate::Max => values.reduce(f64::max),
        Aggregate::Min => values.reduce(f64::min),
        Aggregate::Last => w.back().map(|(_, v)| *v),
        Aggregate::Rate => {
            let (first, last) = (w.front()?, w.back()?);
            let secs = (last.0 - first.0).num_milliseconds() as f64 / 1000.0;
            if secs <= 0.0 {
                return None;
            }
            // Sum the increases; a drop is a counter reset, counted from zero.
            let mut increase = 0.0;
            for pair in w.iter().collect::<Vec<_>>().windows(2) {
                let (a, b) = (pair[0].1, pair[1].1);
                increase += if b >= a { b - a } else { b };
            }
            Some(increase / secs)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::time::Duration;

    fn rule(toml_extra: impl FnOnce(&mut RuleConfig)) -> RuleConfig {
        let mut r = RuleConfig {
            name: "disk".into(),
            metric: "system.filesystem.utilization".into(),
            labels: [("mountpoint".to_string(), "/".to_string())].into(),
            by: None,
            aggregate: Aggregate::Avg,
            window: Duration::from_secs(60),
            above: Some(0.9),
            below: None,
            for_: Duration::from_secs(30),
            keep_firing_for: Duration::ZERO,
            severity: "warning".into(),
        };
        toml_extra(&mut r);
        r
    }

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
    }

    fn feed(
        th: &mut Thresholds,
        agent: &str,
        mount: &str,
        at: i64,
        v: f64,
    ) -> Vec<(AlertState, String)> {
        let labels: BTreeMap<String, String> =
            [("mountpoint".to_string(), mount.to_string())].into();
        th.observe(
            Sample {
                agent,
                name: "system.filesystem.utilization",
                labels: &labels,
                time: t(at),
                value: v,
            },
            |_| None,
        )
        .into_iter()
        .map(|v| (v.to, v.fingerprint))
        .collect()
    }

    #[test]
    fn pending_for_the_hold_then_firing_then_resolved() {
        let mut th = Thresholds::default();
        th.configure(&[rule(|_| {})]);
        assert!(feed(&mut th, "web-1", "/", 0, 0.8).is_empty());
        assert!(
            feed(&mut th, "web-1", "/data", 0, 0.99).is_empty(),
            "other mount"
        );
        // avg(0.8, 1.0) = 0.9 is not above 0.9: the window's average is what counts.
        assert!(feed(&mut th, "web-1", "/", 10, 1.0).is_empty());
        let fp = "disk/agent=web-1,mountpoint=/".to_string();
        assert_eq!(
            feed(&mut th, "web-1", "/", 20, 1.0),
            [(AlertState::Pending, fp.clone())]
        );
        assert!(
            feed(&mut th, "web-1", "/", 40, 1.0).is_empty(),
            "20 s of 30"
        );
        assert_eq!(
            feed(&mut th, "web-1", "/", 50, 1.0),
            [(AlertState::Firing, fp.clone())]
        );
        assert!(feed(&mut th, "web-1", "/", 60, 1.0).is_empty());
        // Another agent is its own alert.
        assert_eq!(feed(&mut th, "web-2", "/", 60, 1.0).len(), 1);
        // A sample from earlier than the newest joins the window in its place.
        assert!(feed(&mut th, "web-1", "/", 55, 1.0).is_empty());
        // avg(1.0 x6, 0.1) = 0.87: back under, resolved (no keep_firing_for here).
        assert_eq!(
            feed(&mut th, "web-1", "/", 70, 0.1),
            [(AlertState::Resolved, fp)]
        );
    }

    #[test]
    fn keep_firing_for_rides_out_a_dip_and_rate_reads_counters() {
        let mut th = Thresholds::default();
        th.configure(&[rule(|r| {
            r.aggregate = Aggregate::Last;
            r.for_ = Duration::ZERO;
            r.keep_firing_for = Duration::from_secs(30);
        })]);
        assert_eq!(feed(&mut th, "a", "/", 0, 0.95)[0].0, AlertState::Firing);
        assert!(feed(&mut th, "a", "/", 10, 0.5).is_empty(), "dip");
        assert!(
            feed(&mut th, "a", "/", 20, 0.95).is_empty(),
            "back: still the same firing"
        );
        assert!(feed(&mut th, "a", "/", 30, 0.5).is_empty());
        assert!(feed(&mut th, "a", "/", 50, 0.5).is_empty());
        assert_eq!(feed(&mut th, "a", "/", 60, 0.5)[0].0, AlertState::Resolved);

        let mut w = VecDeque::new();
        for (s, v) in [(0, 100.0), (10, 200.0), (20, 50.0), (30, 150.0)] {
            w.push_back((t(s), v));
        }
        // +100, reset to 50 (counts 50), +100: 250 over 30 s.
        let r = aggregate(Aggregate::Rate, &w).unwrap();
        assert!((r - 250.0 / 30.0).abs() < 1e-9, "{r}");
    }

    #[test]
    fn by_merges_agents_and_a_firing_alert_resumes_firing() {
        let mut th = Thresholds::default();
        th.configure(&[RuleConfig {
            name: "tls".into(),
            metric: "check.cert_days_left".into(),
            labels: BTreeMap::new(),
            by: Some(vec!["check".into()]),
            aggregate: Aggregate::Min,
            window: Duration::from_secs(3600),
            above: None,
            below: Some(14.0),
            for_: Duration::ZERO,
            keep_firing_for: Duration::ZERO,
            severity: "warning".into(),
        }]);
        let labels: BTreeMap<String, String> = [("check".to_string(), "api".to_string())].into();
        let sample = |agent, at, value| Sample {
            agent,
            name: "check.cert_days_left",
            labels: &labels,
            time: t(at),
            value,
        };
        let v = th.observe(sample("a", 0, 10.0), |_| Some(AlertState::Firing));
        assert!(v.is_empty(), "resumed as firing: no second firing");
        let v = th.observe(sample("b", 10, 40.0), |_| None);
        assert!(v.is_empty(), "min over the window is still 10");
        let v = th.observe(sample("b", 4000, 40.0), |_| None);
        assert_eq!(v[0].to, AlertState::Resolved);
        assert_eq!(v[0].fingerprint, "tls/check=api");
        assert_eq!(v[0].agent, None);
    }
}
