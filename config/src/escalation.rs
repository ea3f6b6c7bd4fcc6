//! `[[escalations]]`: who is told when nobody acknowledges. A route that names a policy
//! (`escalation = "name"`, instead of `channels`) sends a firing alert to each step's channels
//! in turn, each step `after` the alert fired (Slack at once, Pushover after 5 minutes,
//! PagerDuty after 15), and, with `repeat`, the last step again every `repeat` until the alert
//! is acknowledged or resolved, which stops the policy. The collector queues every step when
//! the alert fires (docs/alerting.md, "Escalation"); this module only reads and checks the
//! policies.

use std::collections::HashSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::document::{Document, KeyPath};
use crate::notify::{ChannelConfig, RouteConfig};

/// The most steps a policy may have.
pub const MAX_STEPS: usize = 10;

/// The latest a step may come after the alert fired.
pub const MAX_AFTER: Duration = Duration::from_secs(7 * 86_400);

/// The shortest `repeat`: no one should be paged more often than this.
pub const MIN_REPEAT: Duration = Duration::from_secs(60);

/// The longest `repeat`.
pub const MAX_REPEAT: Duration = Duration::from_secs(30 * 86_400);

/// `[[escalations]]`: a policy of steps a route can name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationConfig {
    /// Unique name, used by routes' `escalation`.
    pub name: String,
    /// The steps, `after` increasing; at least one, at most [`MAX_STEPS`].
    pub steps: Vec<EscalationStep>,
    /// Send the last step again this often, until the alert is acknowledged or resolved.
    /// Default: no repeat. At least `1m`, at most `30d`.
    #[serde(default, with = "crate::duration::option")]
    pub repeat: Option<Duration>,
}

/// One step of an escalation policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationStep {
    /// How long after the alert fired this step is sent (`"0s"`: at once), unless the alert
    /// was acknowledged or resolved by then. At most `7d`.
    #[serde(with = "crate::duration")]
    pub after: Duration,
    /// The channels this step notifies (names of `[[channels]]`).
    pub channels: Vec<String>,
}

impl EscalationConfig {
    /// What is wrong with this policy on its own, as (key, problem).
    fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.name.trim().is_empty() {
            out.push(("name", "must not be empty".to_string()));
        }
        if self.steps.is_empty() {
            out.push(("steps", "must have at least one step".to_string()));
        }
        if self.steps.len() > MAX_STEPS {
            out.push((
                "steps",
                format!("at most {MAX_STEPS} steps (found {})", self.steps.len()),
            ));
        }
        match self.repeat {
            Some(r) if r < MIN_REPEAT => out.push(("repeat", "must be at least 1m".into())),
            Some(r) if r > MAX_REPEAT => out.push(("repeat", "must be at most 30d".into())),
            _ => {}
        }
        out
    }
}

/// Reads `[[escalations]]` and checks their steps against `channels`.
pub(crate) fn read(
    doc: &mut Document<'_>,
    channels: &[(usize, ChannelConfig)],
) -> Vec<EscalationConfig> {
    let policies = crate::read_named(
        doc,
        "escalations",
        "escalation",
        |e: &EscalationConfig| &e.name,
        EscalationConfig::problems,
    );
    let known: HashSet<&str> = channels.iter().map(|(_, c)| c.name.as_str()).collect();
    let listed = || {
        let names: Vec<&str> = channels.iter().map(|(_, c)| c.name.as_str()).collect();
        format!("{names:?}")
    };
    for (i, p) in &policies {
        let at = KeyPath::key("escalations").index(*i);
        let mut last: Option<Duration> = None;
        for (s, step) in p.steps.iter().enumerate() {
            let step_at = at.child("steps").index(s);
            if step.channels.is_empty() {
                doc.error_at(&step_at.child("channels"), "must name at least one channel");
            }
            for c in &step.channels {
                if !known.contains(c.as_str()) {
                    doc.error_at(
                        &step_at.child("channels"),
                        format!("no channel named {c:?} (channels: {})", listed()),
                    );
                }
            }
            if step.after > MAX_AFTER {
                doc.error_at(&step_at.child("after"), "must be at most 7d");
            }
            if let Some(before) = last.filter(|b| step.after <= *b) {
                doc.error_at(
                    &step_at.child("after"),
                    format!(
                        "must be later than the step before ({})",
                        crate::duration::format(&before)
                    ),
                );
            }
            last = Some(step.after);
        }
    }
    policies.into_iter().map(|(_, p)| p).collect()
}

/// Checks a route's choice of `channels` or `escalation` (the route at `at`) against the
/// `policies` read.
pub(crate) fn check_route(
    doc: &mut Document<'_>,
    at: &KeyPath,
    r: &RouteConfig,
    policies: &[EscalationConfig],
) {
    let Some(name) = &r.escalation else {
        if r.channels.is_empty() {
            doc.error_at(
                &at.child("channels"),
                "must name at least one channel (or give escalation = \"policy\")",
            );
        }
        return;
    };
    if !r.channels.is_empty() {
        doc.error_at(
            &at.child("escalation"),
            "give channels or escalation, not both (the policy's steps name the channels)",
        );
    }
    if r.repeat_interval.is_some() {
        doc.error_at(
            &at.child("repeat_interval"),
            "not with escalation: the policy's repeat says how often its last step is sent again",
        );
    }
    if !policies.iter().any(|p| &p.name == name) {
        let all: Vec<&str> = policies.iter().map(|p| p.name.as_str()).collect();
        doc.error_at(
            &at.child("escalation"),
            format!("no escalation named {name:?} (escalations: {all:?})"),
        );
    }
}

#[cfg(test)]
#[path = "escalation_tests.rs"]
mod tests;
