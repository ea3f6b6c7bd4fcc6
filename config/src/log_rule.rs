//! `[[log_rules]]`: alerts on log lines. "More than 10 lines matching `panic` in 5m on any web
//! host": each agent the rule selects counts its matching lines over `window`; more than
//! `threshold` fires that agent's alert, which resolves when the count is back within it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::selector::Selector;

/// `[[log_rules]]`: one log rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogRuleConfig {
    /// Unique name; the alert's `rule` label. Not one of the other rules' names.
    pub name: String,
    /// A regular expression (Rust `regex` syntax) a line's text must match.
    pub pattern: String,
    /// Only lines of this level (`error`, `warn`...), compared case-insensitively. Default:
    /// any level.
    #[serde(default)]
    pub level: Option<String>,
    /// The agents it watches: every selector (`"role=web"`, `"name=web-1"`) must match the
    /// labels of the agent's `[[agents]]` entry. Default: every agent.
    #[serde(default)]
    pub agents: Vec<Selector>,
    /// Fires when more than this many lines match within `window`. Default 0 (any line).
    #[serde(default)]
    pub threshold: u32,
    /// The window the lines are counted over. Default `"5m"`.
    #[serde(default = "default_window", with = "crate::duration")]
    pub window: Duration,
    /// The severity of its alerts, for routing. Default `"warning"`.
    #[serde(default = "default_severity")]
    pub severity: String,
}

fn default_window() -> Duration {
    Duration::from_secs(300)
}
fn default_severity() -> String {
    "warning".to_string()
}

impl LogRuleConfig {
    /// What is wrong with it, as (key, problem).
    pub(crate) fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.name.trim().is_empty() {
            out.push(("name", "must not be empty".to_string()));
        } else if crate::rule::RESERVED_RULE_NAMES.contains(&self.name.as_str()) {
            out.push((
                "name",
                format!("{:?} is the name of a built-in rule", self.name),
            ));
        } else if self.name.contains('/') {
            out.push(("name", "must not contain '/'".to_string()));
        }
        if let Err(e) = regex::Regex::new(&self.pattern) {
            // The regex crate's message spans lines with a caret under the problem.
            let first = e.to_string().lines().last().unwrap_or_default().to_string();
            out.push(("pattern", format!("invalid regular expression: {first}")));
        }
        if self.window < Duration::from_secs(1) || self.window > Duration::from_secs(86_400) {
            out.push(("window", "must be between 1s and 24h".into()));
        }
        if self.threshold > 100_000 {
            out.push(("threshold", "must be at most 100000".into()));
        }
        if self.severity.trim().is_empty() {
            out.push(("severity", "must not be empty".into()));
        }
        out
    }
}
