//! Selectors: which agents a check or a log rule applies to (`"label=value"`, or
//! `"name=<agent>"`), matched against an agent's labels and name.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

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
