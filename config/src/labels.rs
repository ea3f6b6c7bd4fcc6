//! An agent's `labels`, written as a TOML table (`labels = { role = "web" }`) or as one string
//! (`labels = "role=web,env=production"`). The string form exists for the environment:
//! interpolation fills string values only, so a container or a unit that configures its agent
//! by variables (`labels = "${LOOKOUT_AGENT_LABELS:-}"`, deploy/container/agent.toml) can give
//! any set of labels in one. An empty string is no labels.
//!
//! In the string, pairs are separated by commas and each is `key=value`, both trimmed; a key
//! is not empty, holds no `=`, and appears once. Neither may hold a comma (use the table form).

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

/// Deserialises labels from a table or a `key=value,...` string.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Labels {
        Table(BTreeMap<String, String>),
        Text(String),
    }
    match Labels::deserialize(d).map_err(|_| {
        serde::de::Error::custom("expected a table of strings, or \"key=value,...\"")
    })? {
        Labels::Table(t) => Ok(t),
        Labels::Text(s) => parse(&s).map_err(serde::de::Error::custom),
    }
}

/// Parses `key=value,key=value`; `Err` says which pair is wrong and why.
pub fn parse(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(format!(
                "{pair:?} is not key=value (labels: \"role=web,env=prod\")"
            ));
        };
        let (key, value) = (key.trim(), value.trim());
        if key.is_empty() {
            return Err(format!(
                "{pair:?} has no key (labels: \"role=web,env=prod\")"
            ));
        }
        if out.insert(key.to_string(), value.to_string()).is_some() {
            return Err(format!("the label {key:?} is given twice"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_read_and_mistakes_named() {
        let l = parse(" role=web , env = production,zone=").unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!(l["role"], "web");
        assert_eq!(l["env"], "production");
        assert_eq!(l["zone"], "");
        assert!(parse("").unwrap().is_empty());
        assert!(parse(" , ").unwrap().is_empty());
        assert_eq!(parse("a=b=c").unwrap()["a"], "b=c");
        for (bad, says) in [
            ("role", "not key=value"),
            ("=web", "no key"),
            ("role=web,role=db", "given twice"),
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
