//! Agents that enrol themselves, as authentication sees them: the [`Registry`] is the
//! in-memory map from a credential's digest to the enrolled agent that presents it, so that
//! authenticating an agent's request never reads the database (the ingest path stays as it
//! was: one hash and one map lookup). [`ops`] holds what the admin does to enrolled agents
//! (list, revoke, rotate, allow a new enrolment), shared by the API and the
//! `lookout-collector agents` commands, which work on the store directly.
//!
//! How a collector learns of a change:
//! - one it made itself (an enrolment, a revocation, a rotation through its API): the map is
//!   reloaded at once, before the answer;
//! - one another collector on the same PostgreSQL made, or the CLI: every [`REFRESH`] the
//!   collector asks the store for the table's generation (count and sum of row versions, one
//!   small query) and reloads when it moved. A credential it does not know also reloads the
//!   map, at most once per [`MISS_RELOAD`] whoever asks, so an agent that just enrolled on
//!   another collector is let in on its first request, and a stream of wrong tokens costs
//!   one query a second at most. A revocation elsewhere therefore takes effect here within
//!   [`REFRESH`].
//!
//! A credential is `lkc_` and 64 hexadecimal digits: 32 bytes from the kernel's random source.

pub mod cli;
pub mod ops;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use lookout_config::{Token, TokenDigest};

use crate::store::StoreError;
use crate::store::enrolled::{EnrolledRow, EnrolledStore};

/// How often a collector asks whether the enrolled agents changed elsewhere.
pub const REFRESH: Duration = Duration::from_secs(5);

/// Least time between two reloads caused by unknown credentials.
pub const MISS_RELOAD: Duration = Duration::from_secs(1);

/// The prefix of an enrolled agent's credential, which tells it from a configured token in a
/// file or a leak report.
pub const CREDENTIAL_PREFIX: &str = "lkc_";

/// A fresh credential: [`CREDENTIAL_PREFIX`] and 32 random bytes in hex.
pub fn new_credential() -> std::io::Result<Token> {
    Ok(Token::new(format!(
        "{CREDENTIAL_PREFIX}{}",
        crate::admin_token::random_hex(32)?
    )))
}

/// What a credential's digest says about who presents it.
#[derive(Debug, Clone, PartialEq)]
pub enum Found {
    /// An enrolled agent, by its current credential, or by the previous one within its
    /// rotation's grace (then `handover` is the new one, to give it).
    Agent {
        /// The agent's name.
        name: String,
        /// The credential to hand over, when the one presented was replaced.
        handover: Option<Token>,
        /// The agent presented its new credential while the store still keeps it: it may go.
        rotation_done: bool,
    },
    /// A credential of an agent the admin revoked.
    Revoked(String),
    /// A replaced credential whose grace has ended.
    Expired(String),
    /// No enrolled agent has it.
    Unknown,
}

#[derive(Debug, Clone)]
enum Entry {
    Current {
        name: String,
        pending: bool,
    },
    Previous {
        name: String,
        until: DateTime<Utc>,
        handover: Option<Token>,
    },
    Revoked {
        name: String,
    },
}

#[derive(Debug, Default)]
struct Known {
    by_digest: HashMap<TokenDigest, Entry>,
    rows: Vec<EnrolledRow>,
}

/// The enrolled agents this collector knows, by their credentials' digests.
#[derive(Debug, Default)]
pub struct Registry {
    // std's RwLock: readers clone the Arc and let go at once; nothing awaits while holding it.
    known: RwLock<Arc<Known>>,
    /// The store's generation the map was loaded at.
    generation: Mutex<Option<(i64, i64)>>,
    /// When an unknown credential last reloaded the map.
    last_miss_reload: Mutex<Option<Instant>>,
    /// Agents whose finished rotation is being written, so it is written once.
    finishing: Mutex<std::collections::HashSet<String>>,
}

impl Registry {
    /// Who presents the credential of `digest`, as of `now`.
    pub fn find(&self, digest: &TokenDigest, now: DateTime<Utc>) -> Found {
        let known = self.known.read().unwrap_or_else(|p| p.into_inner()).clone();
        match known.by_digest.get(digest) {
            None => Found::Unknown,
            Some(Entry::Current { name, pending }) => Found::Agent {
                name: name.clone(),
                handover: None,
                rotation_done: *pending,
            },
            Some(Entry::Previous { name, until, .. }) if *until <= now => {
                Found::Expired(name.clone())
            }
            Some(Entry::Previous { name, handover, .. }) => Found::Agent {
                name: name.clone(),
                handover: handover.clone(),
                rotation_done: false,
            },
            Some(Entry::Revoked { name }) => Found::Revoked(name.clone()),
        }
    }

    /// Whether the enrolled agent `name` (not revoked) is ephemeral, as last loaded; `None`
    /// for a name not enrolled.
    pub fn ephemeral(&self, name: &str) -> Option<bool> {
        let known = self.known.read().unwrap_or_else(|p| p.into_inner()).clone();
        let row = known
            .rows
            .iter()
            .find(|r| r.name == name && r.revoked.is_none())?;
        Some(row.lifecycle == lookout_config::collector::Lifecycle::Ephemeral.as_str())
    }

    /// Every enrolled agent as last loaded, by name.
    pub fn rows(&self) -> Vec<EnrolledRow> {
        self.known
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .rows
            .clone()
    }

    /// Loads the map from the store.
    pub async fn reload(&self, store: &dyn EnrolledStore) -> Result<(), StoreError> {
        let generation = store.enrolled_generation().await?;
        let rows = store.enrolled_agents().await?;
        let mut by_digest = HashMap::with_capacity(rows.len() * 2);
        for r in &rows {
            let name = r.name.clone();
            if r.revoked.is_some() {
                by_digest.insert(r.token_sha256, Entry::Revoked { name });
                continue;
            }
            by_digest.insert(
                r.token_sha256,
                Entry::Current {
                    name: name.clone(),
                    pending: r.rotation_pending.is_some(),
                },
            );
            if let (Some(previous), Some(until)) = (r.previous_sha256, r.previous_until) {
                by_digest.insert(
                    previous,
                    Entry::Previous {
                        name,
                        until,
                        handover: r.rotation_pending.clone(),
                    },
                );
            }
        }
        *self.known.write().unwrap_or_else(|p| p.into_inner()) =
            Arc::new(Known { by_digest, rows });
        *self.generation.lock().unwrap_or_else(|p| p.into_inner()) = Some(generation);
        Ok(())
    }

    /// Reloads when the store's generation moved since the last load; true when it did.
    pub async fn refresh(&self, store: &dyn EnrolledStore) -> Result<bool, StoreError> {
        let now = store.enrolled_generation().await?;
        let seen = *self.generation.lock().unwrap_or_else(|p| p.into_inner());
        if seen == Some(now) {
            return Ok(false);
        }
        self.reload(store).await?;
        Ok(true)
    }

    /// After an unknown credential: reloads, unless a miss did in the last [`MISS_RELOAD`];
    /// true when it reloaded.
    pub async fn reload_after_miss(&self, store: &dyn EnrolledStore) -> Result<bool, StoreError> {
        {
            let mut last = self
                .last_miss_reload
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| t.elapsed() < MISS_RELOAD) {
                return Ok(false);
            }
            *last = Some(Instant::now());
        }
        self.refresh(store).await
    }
}

impl Registry {
    /// Forgets, in the store, the new credential of `name`'s rotation now that the agent has
    /// presented it (by `digest`), then reloads; one at a time per agent.
    pub async fn finish_rotation(
        &self,
        store: &dyn EnrolledStore,
        name: &str,
        digest: &TokenDigest,
    ) -> Result<(), StoreError> {
        if !self
            .finishing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string())
        {
            return Ok(());
        }
        let done = async {
            store.rotation_taken(name, digest).await?;
            self.reload(store).await
        }
        .await;
        self.finishing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        done
    }
}

/// Refreshes `registry` every [`REFRESH`] until `stop`; a failing store is logged and tried
/// again at the next tick.
pub async fn follow(
    registry: Arc<Registry>,
    store: Arc<dyn crate::store::Store>,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut ticks = tokio::time::interval(REFRESH);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        if let Err(e) = registry.refresh(store.as_ref()).await {
            tracing::warn!(error = %e, "cannot refresh the enrolled agents; keeping the ones known");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credential_is_prefixed_random_hex() {
        let a = new_credential().unwrap();
        let b = new_credential().unwrap();
        assert_ne!(a, b);
        let hex = a.expose().strip_prefix(CREDENTIAL_PREFIX).unwrap();
        assert_eq!(hex.len(), 64);
        assert!(hex.bytes().all(|c| c.is_ascii_hexdigit()));
        assert!(a.check_strength().is_ok());
    }
}
