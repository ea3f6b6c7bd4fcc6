//! What the admin does to agents, in one place for the admin API (`/api/v1/agents/...`) and
//! the `lookout-collector agents` commands: list every agent (configured and enrolled, each
//! with where it comes from), revoke or rotate an enrolled agent's credential, allow an
//! enrolled name to enrol again. Each works on the store alone, so the commands work beside a
//! running collector, which learns of the change within [`super::REFRESH`].
//!
//! An agent of the configuration file cannot be revoked or rotated here: its token is in that
//! file, and the answer says to edit it.

use chrono::{DateTime, Utc};
use lookout_config::{CollectorConfig, Token};
use serde::Serialize;

use crate::store::enrolled::EnrolledRow;
use crate::store::{Store, StoreError};

/// Why an operation on an agent was refused.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// No agent of that name.
    #[error("no agent named {0:?} is enrolled or configured")]
    NotFound(String),
    /// The agent is in the configuration file.
    #[error(
        "{0:?} is an [[agents]] entry of the collector's configuration file: change its token \
         there (previous_token keeps the old one working while agents move), then reload"
    )]
    Configured(String),
    /// The agent is revoked: it can be allowed to enrol again, not rotated.
    #[error(
        "{0:?} is revoked: allow it to enrol again (agents allow-reenroll) instead of rotating"
    )]
    Revoked(String),
    /// No `[enrollment]` section: nothing says how long a grace or a permission lasts.
    #[error("enrolment is off: set [enrollment] in the collector's configuration")]
    EnrolmentOff,
    /// The credential could not be drawn.
    #[error("cannot draw a credential from the system's random source: {0}")]
    Random(#[source] std::io::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One agent, wherever it comes from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentListing {
    /// Its name.
    pub name: String,
    /// `config` (an `[[agents]]` entry or `[local_agent]`) or `enrolled`.
    pub origin: &'static str,
    /// `permanent` or `ephemeral`.
    pub lifecycle: String,
    /// When it enrolled (enrolled agents).
    pub enrolled_at: Option<DateTime<Utc>>,
    /// When its credential was last rotated.
    pub rotated_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Every configured agent (in the file's order), then every enrolled one (by name), from
/// the store.
pub async fn list(
    store: &dyn Store,
    config: &CollectorConfig,
) -> Result<Vec<AgentListing>, OpError> {
    Ok(listings(config, &store.enrolled_agents().await?))
}

/// Every configured agent (in the file's order), then every enrolled one of `rows` (by name);
/// an enrolled row under a configured name is left out: the file wins.
pub fn listings(config: &CollectorConfig, rows: &[EnrolledRow]) -> Vec<AgentListing> {
    let configured = configured_names(config);
    let mut out: Vec<AgentListing> = configured
        .iter()
        .map(|name| AgentListing {
            name: name.clone(),
            origin: "config",
            lifecycle: config
                .agents
                .iter()
                .find(|a| &a.name == name)
                .map_or("permanent", |a| a.lifecycle.as_str())
                .into(),
            enrolled_at: None,
            rotated_at: None,
            revoked_at: None,
        })
        .collect();
    out.extend(
        rows.iter()
            .filter(|r| !configured.contains(&r.name))
            .map(|r| AgentListing {
                name: r.name.clone(),
                origin: "enrolled",
                lifecycle: r.lifecycle.clone(),
                enrolled_at: Some(r.enrolled),
                rotated_at: r.rotated,
                revoked_at: r.revoked,
            }),
    );
    out
}

/// The names of the agents the configuration gives: `[[agents]]` and `[local_agent]`.
pub fn configured_names(config: &CollectorConfig) -> Vec<String> {
    config
        .agents
        .iter()
        .map(|a| a.name.clone())
        .chain(config.local_agent.iter().map(|l| l.name.clone()))
        .collect()
}

fn not_configured(config: &CollectorConfig, name: &str) -> Result<(), OpError> {
    if configured_names(config).iter().any(|n| n == name) {
        return Err(OpError::Configured(name.to_string()));
    }
    Ok(())
}

/// Revokes an enrolled agent's credential: its next request is refused (401), until the
/// admin allows it to enrol again. Returns when it was revoked.
pub async fn revoke(
    store: &dyn Store,
    config: &CollectorConfig,
    name: &str,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, OpError> {
    not_configured(config, name)?;
    if !store.revoke_enrolled(name, now).await? {
        return Err(OpError::NotFound(name.to_string()));
    }
    let row = store.enrolled_agent(name).await?;
    Ok(row.and_then(|r| r.revoked).unwrap_or(now))
}

/// A rotation's result: the new credential (shown once) and when the old one stops working.
#[derive(Debug, Clone)]
pub struct Rotated {
    /// The agent's new credential.
    pub credential: Token,
    /// When the old credential stops working.
    pub previous_valid_until: DateTime<Utc>,
}

/// Gives an enrolled agent a new credential; the old one works for `[enrollment]
/// rotation_grace`, and the agent is handed the new one on its next request with the old.
pub async fn rotate(
    store: &dyn Store,
    config: &CollectorConfig,
    name: &str,
    now: DateTime<Utc>,
) -> Result<Rotated, OpError> {
    not_configured(config, name)?;
    let grace = config
        .enrollment
        .as_ref()
        .ok_or(OpError::EnrolmentOff)?
        .rotation_grace;
    let credential = super::new_credential().map_err(OpError::Random)?;
    let until = now + chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::hours(1));
    if store.rotate_enrolled(name, &credential, until, now).await? {
        return Ok(Rotated {
            credential,
            previous_valid_until: until,
        });
    }
    match store.enrolled_agent(name).await? {
        Some(_) => Err(OpError::Revoked(name.to_string())),
        None => Err(OpError::NotFound(name.to_string())),
    }
}

/// Allows an enrolled name to enrol once more within `[enrollment] reenroll_window` (a
/// server rebuilt under the same name); returns until when.
pub async fn allow_reenroll(
    store: &dyn Store,
    config: &CollectorConfig,
    name: &str,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, OpError> {
    not_configured(config, name)?;
    let window = config
        .enrollment
        .as_ref()
        .ok_or(OpError::EnrolmentOff)?
        .reenroll_window;
    let until = now + chrono::Duration::from_std(window).unwrap_or(chrono::Duration::hours(1));
    if !store.allow_reenroll(name, until).await? {
        return Err(OpError::NotFound(name.to_string()));
    }
    Ok(until)
}
