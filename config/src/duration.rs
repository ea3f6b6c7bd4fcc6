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

/// Formats a duration for a sentence: a whole number of days as `31d` (where [`format`]
/// writes humantime's months and years, of 30.44 and 365.25 days), the rest as [`format`].
/// [`parse`] reads both.
pub fn short(d: &Duration) -> String {
    const DAY: u64 = 86_400;
    if d.subsec_nanos() == 0 && d.as_secs() >= DAY && d.as_secs().is_multiple_of(DAY) {
        format!("{}d", d.as_secs() / DAY)
    } else {
        format(d)
    }
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
        for (d, text) in [
            (31 * 86_400, "31d"),
            (366 * 86_400, "366d"),
            (5400, "1h 30m"),
        ] {
            let d = Duration::from_secs(d);
            assert_eq!(short(&d), text);
            assert_eq!(parse(&short(&d)).unwrap(), d);
        }
    }
}
