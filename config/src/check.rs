//! `[[checks]]`: what to probe, how often, and on which agents. The same schema serves the
//! collector's central checks, an agent's local checks and the wire form of assignments.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The kind of probe a check runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckType {
    /// An HTTP(S) request; up when the status is one of `expected_status`.
    Http,
}

impl fmt::Display for CheckType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CheckType::Http => "http",
        })
    }
}

/// One check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckConfig {
    /// Unique name of the check; it names the check in the API, the status page and alerts.
    pub name: String,
    /// The probe to run (`http`).
    #[serde(rename = "type")]
    pub kind: CheckType,
    /// Time between two probes. Default `"30s"`; at least 1 s.
    #[serde(default = "default_interval", with = "crate::duration")]
    pub interval: Duration,
    /// Time one probe may take before it counts as failed. Default `"10s"`; at most `interval`.
    #[serde(default = "default_timeout", with = "crate::duration")]
    pub timeout: Duration,
    /// Agents that run this check: every selector (`"label=value"`, or `"name=<agent>"`) must
    /// match the agent's labels. Empty (the default): every agent. Ignored on an agent's local
    /// checks, which that agent always runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub run_on: Vec<Selector>,
    /// `http`: the URL to request (`http://` or `https://`). Required for `http`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `http`: the request method. Default `"GET"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// `http`: the statuses that count as up. Default: any 2xx.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expected_status: Vec<u16>,
}

fn default_interval() -> Duration {
    Duration::from_secs(30)
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

impl CheckConfig {
    /// Problems with this check's values, each as (key, message). Empty when valid.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.name.trim().is_empty() {
            out.push(("name", "must not be empty".to_string()));
        } else if self.name.len() > 200 || self.name.contains(['/', '?', '#']) {
            out.push((
                "name",
                format!(
                    "{:?}: expected at most 200 characters and no '/', '?' or '#'",
                    self.name
                ),
            ));
        }
        if self.interval < Duration::from_secs(1) {
            out.push(("interval", "must be at least 1s".to_string()));
        }
        if self.timeout.is_zero() {
            out.push(("timeout", "must be more than 0s".to_string()));
        } else if self.timeout > self.interval {
            out.push((
                "timeout",
                format!(
                    "{} is longer than the interval ({}): expected at most the interval",
                    crate::duration::format(&self.timeout),
                    crate::duration::format(&self.interval)
                ),
            ));
        }
        match self.kind {
            CheckType::Http => self.http_problems(&mut out),
        }
        out
    }

    fn http_problems(&self, out: &mut Vec<(&'static str, String)>) {
        match &self.url {
            None => out.push(("url", "is required for type \"http\"".to_string())),
            Some(u) => match url::Url::parse(u) {
                Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => {}
                Ok(parsed) => out.push((
                    "url",
                    format!(
                        "scheme {:?} is not supported: expected http or https",
                        parsed.scheme()
                    ),
                )),
                Err(e) => out.push(("url", format!("{u:?} is not a valid URL: {e}"))),
            },
        }
        if let Some(m) = &self.method
            && !matches!(
                m.as_str(),
                "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS"
            )
        {
            out.push((
                "method",
                format!("{m:?}: expected GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS"),
            ));
        }
        if let Some(s) = self
            .expected_status
            .iter()
            .find(|s| !(100..=599).contains(*s))
        {
            out.push((
                "expected_status",
                format!("{s} is not an HTTP status: expected 100 to 599"),
            ));
        }
    }

    /// True when this check is to run on an agent with these labels and name.
    pub fn runs_on(&self, agent: &str, labels: &BTreeMap<String, String>) -> bool {
        self.run_on.iter().all(|s| s.matches(agent, labels))
    }
}

/// `key=value`: matches an agent whose label `key` is `value`; the key `name` matches the agent's
/// name when the agent has no label of that name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Selector {
    /// Label key.
    pub key: String,
    /// Label value.
    pub value: String,
}

impl Selector {
    /// True when the agent matches.
    pub fn matches(&self, agent: &str, labels: &BTreeMap<String, String>) -> bool {
        match labels.get(&self.key) {
            Some(v) => *v == self.value,
            None => self.key == "name" && self.value == agent,
        }
    }
}

impl std::str::FromStr for Selector {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() && !v.trim().is_empty() => Ok(Selector {
                key: k.trim().to_string(),
                value: v.trim().to_string(),
            }),
            _ => Err(format!(
                "invalid selector {s:?}: expected \"label=value\", e.g. \"role=web\""
            )),
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.key, self.value)
    }
}

impl Serialize for Selector {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Selector {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(url: &str) -> CheckConfig {
        CheckConfig {
            name: "api".into(),
            kind: CheckType::Http,
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
            run_on: vec![],
            url: Some(url.into()),
            method: None,
            expected_status: vec![],
        }
    }

    #[test]
    fn selectors_match_labels_and_name() {
        let mut labels = BTreeMap::new();
        labels.insert("role".to_string(), "web".to_string());
        let mut c = http("http://x/");
        assert!(c.runs_on("a", &labels), "no selector: every agent");
        c.run_on = vec!["role=web".parse().unwrap(), "name=a".parse().unwrap()];
        assert!(c.runs_on("a", &labels));
        assert!(!c.runs_on("b", &labels));
        c.run_on = vec!["role=db".parse().unwrap()];
        assert!(!c.runs_on("a", &labels));
        assert!("role".parse::<Selector>().is_err());
        assert!("=x".parse::<Selector>().is_err());
    }

    #[test]
    fn http_values_are_checked() {
        assert!(http("http://127.0.0.1:1/").problems().is_empty());
        let p = http("ftp://x/").problems();
        assert_eq!(p[0].0, "url");
        assert!(p[0].1.contains("ftp"));
        let mut c = http("http://x/");
        c.timeout = Duration::from_secs(60);
        c.expected_status = vec![200, 700];
        let keys: Vec<_> = c.problems().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["timeout", "expected_status"]);
    }

    #[test]
    fn json_round_trip_keeps_durations_readable() {
        let c = http("https://example.com/health");
        let json = serde_json::to_string(&c).unwrap();
        assert!(json.contains(r#""interval":"30s""#), "{json}");
        let back: CheckConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
    }
}
