//! Agents that enrolled themselves: who they are, the digest of the credential each presents,
//! and what the admin did to them (revoked, rotated, allowed to enrol again). Kept in the
//! store, not in a configuration file, so that every collector sharing the database knows
//! them, and the `lookout-collector agents` commands can change them while a collector runs.
//!
//! Invariants, both backends:
//! - A credential is stored as its SHA-256; the one exception is a rotation's new credential
//!   (`rotation_pending`), kept until the agent has used it so that any collector can hand it
//!   over, then cleared ([`EnrolledStore::rotation_taken`]).
//! - A name is enrolled once: a second enrolment under it changes nothing unless the admin
//!   allowed one ([`EnrolledStore::allow_reenroll`]), which the enrolment uses up. The check
//!   and the write are one statement, so two collectors cannot both enrol a name.
//! - Every change of a row raises its `version`; [`EnrolledStore::enrolled_generation`] (the
//!   count of rows and the sum of versions) changes with any change, which is how a collector
//!   learns that another one (or the CLI) changed the table.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use lookout_config::{Token, TokenDigest};

use super::StoreError;

/// One enrolled agent as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct EnrolledRow {
    /// Its name.
    pub name: String,
    /// The digest of the credential it presents.
    pub token_sha256: TokenDigest,
    /// While a rotation's grace lasts: the digest of the credential it had.
    pub previous_sha256: Option<TokenDigest>,
    /// When the previous credential stops working.
    pub previous_until: Option<DateTime<Utc>>,
    /// A rotation's new credential, until the agent has used it.
    pub rotation_pending: Option<Token>,
    /// `permanent` or `ephemeral`, as `[enrollment] lifecycle` was at its enrolment.
    pub lifecycle: String,
    /// When it enrolled (last, if it enrolled again).
    pub enrolled: DateTime<Utc>,
    /// When its credential was last rotated.
    pub rotated: Option<DateTime<Utc>>,
    /// When it was revoked; a revoked agent is refused until it enrols again.
    pub revoked: Option<DateTime<Utc>>,
    /// Until when it may enrol again (the admin allowed it).
    pub reenroll_until: Option<DateTime<Utc>>,
}

/// What an enrolment did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enrolled {
    /// The name is enrolled now, with the new credential.
    Done,
    /// The name was enrolled before and no new enrolment is allowed: nothing changed.
    Taken,
}

/// The enrolled agents' table.
#[async_trait]
pub trait EnrolledStore: Send + Sync {
    /// Every enrolled agent, revoked ones included, by name.
    async fn enrolled_agents(&self) -> Result<Vec<EnrolledRow>, StoreError>;

    /// One enrolled agent.
    async fn enrolled_agent(&self, name: &str) -> Result<Option<EnrolledRow>, StoreError>;

    /// A figure that changes whenever any enrolled agent changes (rows and the sum of their
    /// versions): cheap to ask for often.
    async fn enrolled_generation(&self) -> Result<(i64, i64), StoreError>;

    /// Enrols `name` with the credential of this digest at `now`, unless it is enrolled and
    /// not allowed to enrol again (by [`EnrolledStore::allow_reenroll`], until after `now`).
    /// Enrolling again replaces the credential, ends a revocation and uses the permission up.
    async fn enroll(
        &self,
        name: &str,
        digest: &TokenDigest,
        lifecycle: &str,
        now: DateTime<Utc>,
    ) -> Result<Enrolled, StoreError>;

    /// Revokes `name`'s credentials (and any rotation in progress) at `now`; false when no
    /// agent of that name is enrolled.
    async fn revoke_enrolled(&self, name: &str, now: DateTime<Utc>) -> Result<bool, StoreError>;

    /// Gives `name` the credential `new` (stored by its digest, and as itself until the
    /// agent uses it), keeping the current one valid until `previous_until`; false when no
    /// agent of that name is enrolled, or it is revoked.
    async fn rotate_enrolled(
        &self,
        name: &str,
        new: &Token,
        previous_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Forgets the new credential of `name`'s rotation once the agent has presented the
    /// credential of `digest` (the new one): from then on only its digest is kept.
    async fn rotation_taken(&self, name: &str, digest: &TokenDigest) -> Result<(), StoreError>;

    /// Allows `name` to enrol once more, until `until`; false when no agent of that name is
    /// enrolled.
    async fn allow_reenroll(&self, name: &str, until: DateTime<Utc>) -> Result<bool, StoreError>;
}
