//! `[enrollment]`: agents that enrol themselves. Without the section enrolment is off: every
//! agent is an `[[agents]]` entry. With it, an agent started with the fleet's enrolment token
//! (and no credential of its own) asks `POST /v1/enroll` for a credential under its name, and
//! the collector keeps that agent in its store, not in this file (docs/agents.md).
//!
//! The section lives here, beside its validation and the rule for names an agent may enrol
//! under ([`check_agent_name`]), because both the collector (at enrolment) and the
//! configuration (its `allowed_names`) need them.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::document::{Document, KeyPath};
use crate::token::{Token, TokenDigest};

/// Longest name an agent may enrol under, in bytes.
pub const MAX_AGENT_NAME_BYTES: usize = 128;

/// `[enrollment]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollmentConfig {
    /// The fleet's enrolment token, which agents present to `POST /v1/enroll` (their
    /// `enroll_token`): at least 24 characters. Write `"${LOOKOUT_ENROLL_TOKEN}"` to keep it
    /// out of the file, or give `token_sha256` instead. One of the two is required; an empty
    /// `token` (an unset `"${LOOKOUT_ENROLL_TOKEN:-}"`) leaves enrolment off, as if the
    /// section were not there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Token>,
    /// The enrolment token's SHA-256 (64 hex digits), instead of `token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_sha256: Option<TokenDigest>,
    /// Labels every enrolled agent gets for check selection, as `[[agents]] labels` does: they
    /// take precedence over the labels the agent sends (which are kept as its claims). Applied
    /// as they are now, so a reload changes them for every enrolled agent. Default none.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// A glob (`*` any characters, `?` one) that a name must match, whole, to enrol
    /// (`"web-*"`). Default none: any name that [`check_agent_name`] takes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_names: Option<String>,
    /// What an enrolled agent is: `"permanent"` (default; silence pages) or `"ephemeral"`.
    /// Stored with each agent at enrolment.
    #[serde(default)]
    pub lifecycle: Lifecycle,
    /// How long an ephemeral enrolled agent may be silent before it is retired. Default
    /// 15 min; at least 5 s. Only with `lifecycle = "ephemeral"`.
    #[serde(default, with = "crate::duration::option")]
    pub retire_after: Option<Duration>,
    /// After `lookout-collector agents rotate NAME`, how long the agent's old credential
    /// still works (it is given the new one on its first request with the old). Default
    /// `"1h"`; 1 s to 30 d.
    #[serde(default = "default_rotation_grace", with = "crate::duration")]
    pub rotation_grace: Duration,
    /// After the admin allows an enrolled name to enrol again (`agents allow-reenroll NAME`),
    /// how long that permission lasts; it is used up by one enrolment. Default `"1h"`;
    /// 1 s to 30 d.
    #[serde(default = "default_reenroll_window", with = "crate::duration")]
    pub reenroll_window: Duration,
}

/// Whether an agent is expected to stay.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lifecycle {
    /// A server that stays: its silence is an outage.
    #[default]
    Permanent,
    /// A server that an autoscaler may remove.
    Ephemeral,
}

impl Lifecycle {
    /// The name as the file and the store write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Permanent => "permanent",
            Lifecycle::Ephemeral => "ephemeral",
        }
    }

    /// The lifecycle of this name, if it is one.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "permanent" => Some(Lifecycle::Permanent),
            "ephemeral" => Some(Lifecycle::Ephemeral),
            _ => None,
        }
    }
}

fn default_rotation_grace() -> Duration {
    Duration::from_secs(3600)
}

fn default_reenroll_window() -> Duration {
    Duration::from_secs(3600)
}

impl EnrollmentConfig {
    /// The digest of the enrolment token, however it is configured.
    pub fn digest(&self) -> Option<TokenDigest> {
        self.token.as_ref().map(Token::digest).or(self.token_sha256)
    }

    /// `Err` with a sentence when `name` may not enrol: it breaks [`check_agent_name`] or
    /// does not match `allowed_names`.
    pub fn check_name(&self, name: &str) -> Result<(), String> {
        check_agent_name(name)?;
        if let Some(pattern) = &self.allowed_names
            && !wildmatch::WildMatch::new(pattern).matches(name)
        {
            return Err(format!(
                "the name {name:?} does not match [enrollment] allowed_names ({pattern:?})"
            ));
        }
        Ok(())
    }
}

/// `Err` with a sentence when `name` cannot be an enrolled agent's name: 1 to
/// [`MAX_AGENT_NAME_BYTES`] bytes of ASCII letters, digits, `.`, `-` and `_`, starting with a
/// letter or digit (a host name fits; nothing that a path, a label or a log line would need to
/// escape).
pub fn check_agent_name(name: &str) -> Result<(), String> {
    let shown: String = name.chars().take(40).collect();
    if name.is_empty() || name.len() > MAX_AGENT_NAME_BYTES {
        return Err(format!(
            "an agent's name has 1 to {MAX_AGENT_NAME_BYTES} bytes (got {})",
            name.len()
        ));
    }
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
    if !name.chars().all(ok) || !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(format!(
            "the name {shown:?} is not an agent name: use ASCII letters, digits, '.', '-' and \
             '_', starting with a letter or digit"
        ));
    }
    Ok(())
}

/// Reports the section's problems at their keys.
pub(crate) fn validate(doc: &mut Document<'_>, e: &EnrollmentConfig) {
    let at = KeyPath::key("enrollment");
    match (&e.token, &e.token_sha256) {
        (Some(_), Some(_)) => doc.error_at(
            &at.child("token_sha256"),
            "give token or token_sha256, not both",
        ),
        (None, None) => doc.error_at(&at.child("token"), "required: token (or token_sha256)"),
        (Some(t), None) => {
            if let Err(problem) = t.check_strength() {
                doc.error_at(&at.child("token"), problem);
            }
        }
        (None, Some(_)) => {}
    }
    if let Some(p) = &e.allowed_names
        && p.trim().is_empty()
    {
        doc.error_at(
            &at.child("allowed_names"),
            "expected a glob such as \"web-*\" (or leave the key out)",
        );
    }
    let range = Duration::from_secs(1)..=Duration::from_secs(30 * 86_400);
    if e.retire_after.is_some_and(|d| d < Duration::from_secs(5)) {
        doc.error_at(&at.child("retire_after"), "must be at least 5s");
    } else if e.retire_after.is_some() && e.lifecycle == Lifecycle::Permanent {
        doc.error_at(
            &at.child("retire_after"),
            "only an agent with lifecycle = \"ephemeral\" is retired: set lifecycle, or \
             remove retire_after",
        );
    }
    if !range.contains(&e.rotation_grace) {
        doc.error_at(&at.child("rotation_grace"), "must be 1s to 30d");
    }
    if !range.contains(&e.reenroll_window) {
        doc.error_at(&at.child("reenroll_window"), "must be 1s to 30d");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rule_and_the_glob() {
        for good in ["web-1", "a", "db.eu-west_2", &"x".repeat(128)] {
            assert_eq!(check_agent_name(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "-web",
            ".x",
            "web 1",
            "wéb",
            "a/b",
            &"x".repeat(129),
            "a\nb",
        ] {
            assert!(check_agent_name(bad).is_err(), "{bad:?}");
        }
        let e = EnrollmentConfig {
            token: None,
            token_sha256: None,
            labels: BTreeMap::new(),
            allowed_names: Some("web-*".into()),
            lifecycle: Lifecycle::Permanent,
            retire_after: None,
            rotation_grace: default_rotation_grace(),
            reenroll_window: default_reenroll_window(),
        };
        assert_eq!(e.check_name("web-12"), Ok(()));
        let refused = e.check_name("db-1").unwrap_err();
        assert!(refused.contains("allowed_names"), "{refused}");
        assert!(
            e.check_name("web 1").is_err(),
            "the rule holds under the glob"
        );
    }
}
