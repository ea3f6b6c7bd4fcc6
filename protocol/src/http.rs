//! The protocol's HTTP face: the paths an agent calls, the headers it sends beyond HTTP's own,
//! and the content type and encodings of the bodies. The agent sends with these names and the
//! collector routes and reads with them, so each exists once: renaming one is a change of the
//! protocol, for both sides at once (the formats themselves are in the crate's top doc).
//!
//! | Name | Where | Sent by | What it is for |
//! | --- | --- | --- | --- |
//! | [`INGEST_PATH`] | `POST` | agent | a batch of records, answered once stored |
//! | [`ASSIGNMENTS_PATH`] | `GET` | agent | the checks the collector assigns to the agent |
//! | [`ENROLL_PATH`] | `POST` | agent | an [`EnrollRequest`] with the fleet's enrolment token, answered with an [`EnrollAnswer`]: the agent's own credential |
//! | [`CREDENTIAL_ROTATED_HEADER`] | any answer to an agent | collector | the agent's new credential, on an answer to a request made with the one it replaces |
//! | [`GOODBYE_PATH`] | `POST` | agent | it is stopping cleanly, after its last delivery: no page for the silence that follows |
//! | [`LABELS_HEADER`] | assignments request | agent | the agent's own labels, so the collector can assign by them |
//! | [`POLL_HEADER`] | assignments request | agent | how often it asks: how long a silence means it is down |
//! | [`BACKLOG_HEADER`] | ingest request | agent | records waiting in its spool: a growing backlog shows an agent falling behind |
//! | [`VERSIONS_HEADER`] | every answer on the agent's routes | collector | the batch versions it reads: the agent sends the highest both speak |
//! | [`AGENT_PRODUCT`] | `User-Agent` of both | agent | `lookout-agent/<version>`, the version the hosts page shows |
//! | [`JSON_CONTENT_TYPE`] | `Content-Type` of both bodies | both | a batch, and an assignments document, are JSON |
//! | [`Encoding`] | `Content-Encoding` of a batch | agent | its compression: `zstd` (what agents send), `gzip` or `identity` |
//!
//! A header the collector cannot read (a backlog that is not a number) is ignored, except the
//! labels header, which is refused with 400: labels decide which checks an agent gets.

use crate::DecodeError;

/// Where an agent sends its batches (`POST`): one [`Batch`](crate::Batch) per request.
pub const INGEST_PATH: &str = "/v1/ingest";

/// Where an agent asks for its checks (`GET`): answers an [`Assignments`](crate::Assignments)
/// document, or 304 with `If-None-Match` while its revision has not changed.
pub const ASSIGNMENTS_PATH: &str = "/v1/assignments";

/// Where an agent without a credential of its own enrols (`POST`, `Authorization: Bearer
/// <enrolment token>`): an [`EnrollRequest`], answered 201 with an [`EnrollAnswer`]; 401 for
/// a wrong enrolment token, 409 for a name enrolled already (or configured), 403 for a name
/// `[enrollment] allowed_names` does not take, 400 for one that is no agent name, 429 after
/// too many wrong tokens, and 403 when the collector has no `[enrollment]`.
pub const ENROLL_PATH: &str = "/v1/enroll";

/// The header on an answer to an agent that presented a credential the admin has replaced
/// (rotated): its value is the new credential, which the agent keeps and presents from then
/// on; the old one stops working when the collector's `[enrollment] rotation_grace` ends.
pub const CREDENTIAL_ROTATED_HEADER: &str = "lookout-credential-rotated";

/// The body of a request to [`ENROLL_PATH`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// The name the agent enrols under (its configuration's `name`).
    pub name: String,
    /// `"permanent"` or `"ephemeral"` when the agent's configuration sets `lifecycle`: what
    /// its silence will mean. Absent (or null), the collector's `[enrollment] lifecycle` decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<String>,
}

/// The answer of [`ENROLL_PATH`]: the credential, given once.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EnrollAnswer {
    /// The name enrolled.
    pub name: String,
    /// The agent's bearer credential from now on.
    pub credential: String,
}

impl std::fmt::Debug for EnrollAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The credential is a secret: never in a log line or a panic message.
        f.debug_struct("EnrollAnswer")
            .field("name", &self.name)
            .field("credential", &"****")
            .finish()
    }
}

/// Where an agent says it is stopping cleanly (`POST`, no body), after its last delivery: a
/// permanent agent is then `stopped` and its silence does not page until it ships again; an
/// ephemeral one is retired at once. Answered 204.
pub const GOODBYE_PATH: &str = "/v1/goodbye";

/// The header that carries the agent's own labels (a JSON object of strings) to
/// [`ASSIGNMENTS_PATH`]; the collector's `[[agents]] labels` take precedence.
pub const LABELS_HEADER: &str = "lookout-agent-labels";

/// The header that tells the collector how often this agent asks for its assignments, in
/// milliseconds: the longest it is silent while healthy, from which the collector derives when
/// it is down.
pub const POLL_HEADER: &str = "lookout-agent-poll-interval-ms";

/// The header that tells the collector how many records wait in this agent's spool, this
/// batch's included: a backlog that grows says the agent cannot keep up or was cut off.
pub const BACKLOG_HEADER: &str = "lookout-agent-spool-backlog";

/// The header on every answer of the agent's routes (`/v1/ingest`, `/v1/assignments`,
/// `/v1/goodbye`, their refusals included) naming the batch versions the collector reads, as
/// [`Versions`](crate::version::Versions) writes them: `1`, or `1, 2`. Agents send the highest
/// version both speak ([`negotiate`](crate::version::negotiate)); a collector without it reads 1.
pub const VERSIONS_HEADER: &str = "lookout-protocol-versions";

/// The product in an agent's `User-Agent` (`lookout-agent/0.1.0`): the collector takes the
/// version after the slash for its hosts page.
pub const AGENT_PRODUCT: &str = "lookout-agent";

/// The `Content-Type` of a batch (before its `Content-Encoding`) and of an assignments answer.
pub const JSON_CONTENT_TYPE: &str = "application/json";

/// The compression of a request body (`Content-Encoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// zstd, what agents send.
    Zstd,
    /// gzip, for tools that have no zstd.
    Gzip,
    /// Uncompressed JSON.
    Identity,
}

impl Encoding {
    /// Reads a `Content-Encoding` header value (absent means identity).
    pub fn from_header(value: Option<&str>) -> Result<Self, DecodeError> {
        match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("identity") => Ok(Encoding::Identity),
            Some("zstd") => Ok(Encoding::Zstd),
            Some("gzip") | Some("x-gzip") => Ok(Encoding::Gzip),
            Some(other) => Err(DecodeError::UnsupportedEncoding(other.to_string())),
        }
    }

    /// The header value.
    pub fn header_value(self) -> &'static str {
        match self {
            Encoding::Zstd => "zstd",
            Encoding::Gzip => "gzip",
            Encoding::Identity => "identity",
        }
    }
}
