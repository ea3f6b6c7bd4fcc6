//! Log rules (`[[log_rules]]`): each selected agent counts the lines matching the rule over its
//! window; more than `threshold` fires that agent's alert, and it resolves once the count is
//! back within the threshold, which the 5 s tick notices as the window slides.
//!
//! Only the newest `threshold + 1` matching times are kept per agent: whether there are more
//! than `threshold` in the window is all the rule asks, so a flood costs no memory.

use std::collections::{BTreeMap, HashMap, VecDeque};

use chrono::{DateTime, Utc};
use lookout_config::LogRuleConfig;
use lookout_protocol::LogRecord;
use regex::Regex;

use super::threshold::Verdict;
use crate::store::alerting::AlertState;

#[derive(Debug)]
struct Counting {
    times: VecDeque<DateTime<Utc>>,
    firing: bool,
    latest: String,
}

/// The log rules and their counts.
#[derive(Debug, Default)]
pub struct LogRules {
    rules: Vec<(LogRuleConfig, Regex)>,
    counts: HashMap<String, Counting>,
}

/// The longest part of a line quoted in a summary.
const QUOTED: usize = 200;

impl LogRules {
    /// Takes the configured rules (their patterns were checked at load); counts of rules that
    /// did not change are kept.
    pub fn configure(&mut self, rules: &[LogRuleConfig]) {
        let same = self.rules.len() == rules.len()
            && self.rules.iter().zip(rules).all(|((a, _), b)| a == b);
        if same {
            return;
        }
        self.rules = rules
            .iter()
            .filter_map(|r| Regex::new(&r.pattern).ok().map(|re| (r.clone(), re)))
            .collect();
        let names: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
        self.counts.retain(|fp, _| {
            names
                .iter()
                .any(|n| fp.strip_prefix(n).is_some_and(|rest| rest.starts_with('/')))
        });
    }

    /// Drops an agent's count for a rule (its transition could not be recorded): the next
    /// matching line starts it again from the alert's stored state.
    pub fn forget(&mut self, fingerprint: &str) {
        self.counts.remove(fingerprint);
    }

    /// True when there is any rule.
    pub fn any(&self) -> bool {
        !self.rules.is_empty()
    }

    /// Takes one line from `agent` (labels: its `[[agents]]` labels); returns the alerts it
    /// fires. `stored` tells an alert's stored state (a firing one resumes firing).
    pub fn observe(
        &mut self,
        agent: &str,
        labels: &BTreeMap<String, String>,
        line: &LogRecord,
        stored: impl Fn(&str) -> Option<AlertState>,
    ) -> Vec<Verdict> {
        let mut out = Vec::new();
        for (rule, re) in &self.rules {
            if !rule.agents.iter().all(|s| s.matches(agent, labels)) {
                continue;
            }
            if let Some(level) = &rule.level
                && !line
                    .level
                    .as_deref()
                    .is_some_and(|l| l.eq_ignore_ascii_case(level))
            {
                continue;
            }
            if !re.is_match(&line.text) {
                continue;
            }
            let fingerprint = fingerprint(rule, agent);
            let c = self
                .counts
                .entry(fingerprint.clone())
                .or_insert_with(|| Counting {
                    times: VecDeque::new(),
                    firing: stored(&fingerprint) == Some(AlertState::Firing),
                    latest: String::new(),
                });
            let at = c.times.partition_point(|t| *t <= line.time);
            c.times.insert(at, line.time);
            while c.times.len() > rule.threshold as usize + 1 {
                c.times.pop_front();
            }
            c.latest = quote(&line.text);
            let newest = c.times.back().copied().unwrap_or(line.time);
            let count = in_window(&c.times, newest, rule);
            if count > rule.threshold as usize && !c.firing {
                c.firing = true;
                out.push(verdict(
                    rule,
                    agent,
                    fingerprint,
                    AlertState::Firing,
                    line.time,
                    &c.latest,
                ));
            }
        }
        out
    }

    /// Resolves, at `now`, the alerts whose windows no longer hold more than their threshold.
    pub fn tick(&mut self, now: DateTime<Utc>) -> Vec<Verdict> {
        let mut out = Vec::new();
        for (rule, _) in &self.rules {
            let prefix = format!("{}/agent=", rule.name);
            for (fingerprint, c) in self.counts.iter_mut() {
                let Some(agent) = fingerprint.strip_prefix(&prefix) else {
                    continue;
                };
                if c.firing && in_window(&c.times, now, rule) <= rule.threshold as usize {
                    c.firing = false;
                    out.push(verdict(
                        rule,
                        agent,
                        fingerprint.clone(),
                        AlertState::Resolved,
                        now,
                        &c.latest,
                    ));
                }
            }
        }
        out
    }
}

fn fingerprint(rule: &LogRuleConfig, agent: &str) -> String {
    format!("{}/agent={agent}", rule.name)
}

/// How many of `times` fall within the rule's window ending at `end`.
fn in_window(times: &VecDeque<DateTime<Utc>>, end: DateTime<Utc>, rule: &LogRuleConfig) -> usize {
    let start = end - chrono::Duration::from_std(rule.window).unwrap_or_default();
    times.iter().filter(|t| **t > start && **t <= end).count()
}

fn quote(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default().trim();
    if line.chars().count() <= QUOTED {
        return line.to_string();
    }
    let cut: String = line.chars().take(QUOTED).collect();
    format!("{cut}…")
}

fn verdict(
    rule: &LogRuleConfig,
    agent: &str,
    fingerprint: String,
    to: AlertState,
    at: DateTime<Utc>,
    latest: &str,
) -> Verdict {
    let window = lookout_config::duration::format(&rule.window);
    let summary = match to {
        AlertState::Resolved => format!(
            "{}: at most {} lines matching /{}/ in {window} on {agent} again",
            rule.name, rule.threshold, rule.pattern
        ),
        _ => format!(
            "{}: more than {} lines matching /{}/ in {window} on {agent}; latest: {latest}",
            rule.name, rule.threshold, rule.pattern
        ),
    };
    let labels: BTreeMap<String, String> = [
        ("agent".to_string(), agent.to_string()),
        ("rule".to_string(), rule.name.clone()),
        ("severity".to_string(), rule.severity.clone()),
    ]
    .into();
    Verdict {
        fingerprint,
        rule: rule.name.clone(),
        labels,
        to,
        at,
        summary,
        agent: Some(agent.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::time::Duration;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
    }

    fn line(at: i64, level: &str, text: &str) -> LogRecord {
        LogRecord {
            time: t(at),
            source: "/var/log/app.log".into(),
            level: Some(level.into()),
            text: text.into(),
            position: None,
        }
    }

    fn panics() -> LogRuleConfig {
        LogRuleConfig {
            name: "panics".into(),
            pattern: "panic(ked)?".into(),
            level: None,
            agents: vec!["role=web".parse().unwrap()],
            threshold: 2,
            window: Duration::from_secs(60),
            severity: "critical".into(),
        }
    }

    #[test]
    fn more_than_the_threshold_in_the_window_fires_once_and_resolves_as_it_slides() {
        let mut rules = LogRules::default();
        rules.configure(&[panics()]);
        let web: BTreeMap<String, String> = [("role".to_string(), "web".to_string())].into();
        let db: BTreeMap<String, String> = [("role".to_string(), "db".to_string())].into();
        let mut feed = |agent: &str, labels: &BTreeMap<String, String>, at: i64, text: &str| {
            rules.observe(agent, labels, &line(at, "error", text), |_| None)
        };
        assert!(feed("web-1", &web, 0, "thread main panicked at src/x.rs").is_empty());
        assert!(feed("web-1", &web, 10, "all fine").is_empty());
        assert!(
            feed("web-1", &web, 20, "panic: oh no").is_empty(),
            "2 is not more than 2"
        );
        assert!(feed("db-1", &db, 25, "panic").is_empty(), "not selected");
        let v = feed("web-1", &web, 30, "panicked again");
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].to, AlertState::Firing);
        assert_eq!(v[0].fingerprint, "panics/agent=web-1");
        assert_eq!(
            v[0].summary,
            "panics: more than 2 lines matching /panic(ked)?/ in 1m on web-1; latest: panicked again"
        );
        assert!(
            feed("web-1", &web, 31, "panic").is_empty(),
            "already firing"
        );
        assert!(rules.tick(t(61)).is_empty(), "3 still within 1m of 61");
        let v = rules.tick(t(91));
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].to, AlertState::Resolved);
    }

    #[test]
    fn a_level_narrows_the_lines_and_a_firing_alert_resumes() {
        let mut rules = LogRules::default();
        let mut rule = panics();
        rule.level = Some("ERROR".into());
        rule.threshold = 0;
        rule.agents.clear();
        rules.configure(&[rule]);
        let none = BTreeMap::new();
        let info = line(0, "info", "panic is a word in this info line");
        assert!(rules.observe("a", &none, &info, |_| None).is_empty());
        // Stored as firing: no second firing.
        let err = line(1, "error", "panic");
        assert!(
            rules
                .observe("a", &none, &err, |_| Some(AlertState::Firing))
                .is_empty()
        );
        assert_eq!(rules.tick(t(200))[0].to, AlertState::Resolved);
    }
}
