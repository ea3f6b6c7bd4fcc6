//! Durations in configuration and on the wire are strings such as `"30s"`, `"5m"` or `"1h 30m"`.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// Parses a human duration, with an error that shows the expected form.
pub fn parse(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| {
        format!("invalid duration {s:?} ({e}): expected e.g. \"500ms\", \"30s\", \"5m\"")
    })
}

/// Formats a duration the way [`parse`] reads it.
pub fn format(d: &Duration) -> String {
    humantime::format_duration(*d).to_string()
}

/// `#[serde(with = "crate::duration")]` for a `Duration` field.
pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(d))
}

/// `#[serde(with = "crate::duration")]` for a `Duration` field.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse(&s).map_err(serde::de::Error::custom)
}

/// `#[serde(with = "crate::duration::option")]` for an `Option<Duration>` field.
pub mod option {
    use super::*;

    /// Serializes `Some` as its text (`None` fields are skipped by the caller).
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&format(d)),
            None => s.serialize_none(),
        }
    }

    /// Reads a duration's text.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        super::deserialize(d).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for s in ["500ms", "30s", "5m", "1h 30m", "2days"] {
            let d = parse(s).unwrap();
            assert_eq!(parse(&format(&d)).unwrap(), d);
        }
        assert_eq!(parse("30s").unwrap(), Duration::from_secs(30));
        assert!(parse("30").unwrap_err().contains("expected e.g."));
        assert!(parse("5 parsecs").is_err());
    }
}
