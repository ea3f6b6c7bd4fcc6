//! The wire protocol between `lookout-agent` and `lookout-collector`, version 1.
//!
//! Parts: [`Batch`] and its [`Record`]s (what agents ship), [`Assignments`] (what the collector
//! tells an agent to run), the codec ([`encode_batch`], [`decode_batch`]), and [`http`]: the
//! paths, headers, content type and encodings both sides use by name.
//!
//! # Ingest: `POST /v1/ingest`
//!
//! - Headers: `Authorization: Bearer <agent token>`, `Content-Type: application/json`,
//!   `Content-Encoding: zstd` (preferred), `gzip` or `identity`; optionally
//!   `lookout-agent-spool-backlog: <records waiting>` ([`http::BACKLOG_HEADER`]).
//! - Body: one [`Batch`] as JSON, compressed as the header says. Example, uncompressed:
//!
//! ```json
//! {"version":1,"agent":"web-1","batch_id":"0190c2b4-...","records":[
//!   {"kind":"check_result","check":"api","time":"2026-11-26T04:00:00.123Z","ok":false,
//!    "latency_ms":12.5,"error":"status 503, expected 2xx","status_code":503,
//!    "timings":{"total_ms":12.5}},
//!   {"kind":"metric","name":"system.memory.usage","labels":{"state":"used"},
//!    "time":"2026-11-26T04:00:00Z","value":1.2e9,"metric_type":"gauge"},
//!   {"kind":"log","time":"2026-11-26T04:00:00Z","source":"/var/log/app.log","level":"error",
//!    "text":"connection refused","position":{"file":"8f0e2c1a02d","offset":40960}}]}
//! ```
//!
//! A log record's optional `position` is the agent's read position in its source after that
//! line (a file's fingerprint and byte offset, or `"journald"` and a journal `cursor`); agents
//! resume from the newest one after a crash, and a collector may ignore it.
//!
//! - Invariants: `version` is one the collector reads: it names them in the
//!   [`http::VERSIONS_HEADER`] of every answer on the agent's routes, and the agent sends the
//!   highest both speak ([`version`]; a collector without the header reads 1). `agent` is the name the token belongs to;
//!   `batch_id` is 1 to [`MAX_BATCH_ID_LEN`] characters and unique per agent, and a retry of the
//!   same batch reuses it, so the collector stores each (agent, batch id) once. Every record is
//!   the batch's agent's. Times are RFC 3339 in UTC. Metric values are finite.
//! - Answers: 200 `{"stored": n, "duplicate": bool}` only after the batch is durably stored (a
//!   duplicate is acknowledged and stores nothing), with `"refused": [{"index", "reason"}]`
//!   listing records the collector would not store (the rest are stored); 400 with a reason
//!   (malformed, unknown version, wrong agent; a batch refused for its version is kept by the
//!   agent and sent again once a version both speak is advertised, see [`version`]); 401 bad or missing token (or no client
//!   certificate, where the collector requires one); 403 a client certificate that names
//!   another agent; 413 body or
//!   decompressed batch too large, or more records than the collector reads in one batch;
//!   415 unknown `Content-Encoding`; 429 when busy and 5xx when storage failed (retry after
//!   `Retry-After`).
//!
//! # Assignments: `GET /v1/assignments`
//!
//! Same bearer token, and optionally `lookout-agent-labels: <JSON object>` (the agent's own
//! labels, [`http::LABELS_HEADER`]) and `lookout-agent-poll-interval-ms: <ms>` (how often it
//! asks, [`http::POLL_HEADER`]). Answers an [`Assignments`] document listing the checks the
//! collector's configuration assigns to this agent. With `If-None-Match: "<revision>"` it answers 304 when
//! nothing changed. Checks use the configuration's schema ([`lookout_config::CheckConfig`]);
//! an agent skips (and reports) a check it cannot read instead of refusing them all, so a newer
//! collector can assign a check type an older agent does not know.

use std::collections::BTreeMap;
use std::io::Read;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

mod bounded;
pub mod http;
pub mod version;

pub use http::Encoding;
pub use lookout_config::CheckConfig;

/// The newest protocol version this crate speaks; it reads every version from
/// [`version::OLDEST_PROTOCOL_VERSION`] up to this one, and negotiates which to send
/// ([`version`]).
pub const PROTOCOL_VERSION: u32 = 1;

/// Longest accepted batch id.
pub const MAX_BATCH_ID_LEN: usize = 128;

/// One shipment from an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    /// Protocol version, [`PROTOCOL_VERSION`].
    pub version: u32,
    /// Name of the agent that produced every record.
    pub agent: String,
    /// Unique per agent; a retry reuses it.
    pub batch_id: String,
    /// What is shipped.
    pub records: Vec<Record>,
}

/// One record of a batch: an object whose `kind` says which.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    /// The result of one probe.
    CheckResult(CheckResult),
    /// One metric sample.
    Metric(MetricSample),
    /// One log line.
    Log(LogRecord),
}

/// A record's `kind`.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum RecordKind {
    CheckResult,
    Metric,
    Log,
}

impl RecordKind {
    fn read<'de, D: serde::Deserializer<'de>>(self, fields: D) -> Result<Record, D::Error> {
        Ok(match self {
            RecordKind::CheckResult => Record::CheckResult(CheckResult::deserialize(fields)?),
            RecordKind::Metric => Record::Metric(MetricSample::deserialize(fields)?),
            RecordKind::Log => Record::Log(LogRecord::deserialize(fields)?),
        })
    }
}

/// Reads a record as serde's derive for an internally tagged enum would, without its cost in
/// the common case. The derive buffers every record's fields (each string copied) before it
/// knows the kind, and then reads them again: most of a batch's decoding time. Agents write
/// `kind` first, so the rest of the object is read straight into the kind's struct; only a
/// record with fields before its `kind` is buffered.
impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(RecordVisitor)
    }
}

struct RecordVisitor;

impl<'de> serde::de::Visitor<'de> for RecordVisitor {
    type Value = Record;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a record: an object with a \"kind\"")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Record, A::Error> {
        use serde::de::Error;
        use serde::de::value::MapAccessDeserializer;
        let mut before = serde_json::Map::new();
        let keep = |fields: &mut serde_json::Map<_, _>, key: String, value| {
            if key == "kind" || fields.contains_key(&key) {
                return Err(A::Error::custom(format_args!("duplicate field `{key}`")));
            }
            fields.insert(key, value);
            Ok(())
        };
        while let Some(key) = map.next_key::<String>()? {
            if key != "kind" {
                keep(&mut before, key, map.next_value()?)?;
                continue;
            }
            let kind: RecordKind = map.next_value()?;
            if before.is_empty() {
                return kind.read(MapAccessDeserializer::new(AfterKind(map)));
            }
            while let Some((key, value)) = map.next_entry::<String, serde_json::Value>()? {
                keep(&mut before, key, value)?;
            }
            return kind
                .read(serde_json::Value::Object(before))
                .map_err(A::Error::custom);
        }
        Err(A::Error::missing_field("kind"))
    }
}

/// A record's fields after its `kind`, as its struct reads them; a second `kind` is refused
/// (the struct would pass over it as a field it does not know).
struct AfterKind<A>(A);

impl<'de, A: serde::de::MapAccess<'de>> serde::de::MapAccess<'de> for AfterKind<A> {
    type Error = A::Error;

    fn next_key_seed<K: serde::de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        self.0.next_key_seed(NotKind(seed))
    }

    fn next_value_seed<V: serde::de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, A::Error> {
        self.0.next_value_seed(seed)
    }
}

/// Reads a field name for `K`, unless it is `kind`.
struct NotKind<K>(K);

impl<'de, K: serde::de::DeserializeSeed<'de>> serde::de::DeserializeSeed<'de> for NotKind<K> {
    type Value = K::Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<K::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de, K: serde::de::DeserializeSeed<'de>> serde::de::Visitor<'de> for NotKind<K> {
    type Value = K::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<K::Value, E> {
        if key == "kind" {
            return Err(E::duplicate_field("kind"));
        }
        self.0
            .deserialize(serde::de::value::StrDeserializer::<E>::new(key))
    }
}

/// The result of one probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The check's name.
    pub check: String,
    /// The check's type, so that a check defined on the agent alone is described too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_type: Option<lookout_config::CheckType>,
    /// When the probe started.
    #[serde(deserialize_with = "rfc3339")]
    pub time: DateTime<Utc>,
    /// True when every expectation held.
    pub ok: bool,
    /// Total time of the probe, in milliseconds.
    pub latency_ms: f64,
    /// Why the probe failed; `None` when `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// HTTP status, where the probe got one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    /// When the earliest certificate of the server's chain expires (TLS probes, and HTTP probes
    /// of `https` URLs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_expiry: Option<DateTime<Utc>>,
    /// Where the time went.
    #[serde(default)]
    pub timings: Timings,
}

/// Where a probe's time went, each in milliseconds; a phase the probe did not measure is `None`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Name resolution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_ms: Option<f64>,
    /// TCP connect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_ms: Option<f64>,
    /// TLS handshake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ms: Option<f64>,
    /// From the request sent to the first byte of the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttfb_ms: Option<f64>,
    /// The whole probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_ms: Option<f64>,
}

/// One metric sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSample {
    /// Metric name, in OpenTelemetry's style (`system.cpu.utilization`).
    pub name: String,
    /// Labels that tell series of one metric apart (`cpu`, `device`, `state`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// When it was taken.
    #[serde(deserialize_with = "rfc3339")]
    pub time: DateTime<Utc>,
    /// The value; always finite.
    pub value: f64,
    /// Gauge (a level) or counter (a running total).
    #[serde(default)]
    pub metric_type: MetricType,
}

/// How a metric's value is to be read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricType {
    /// A level that goes up and down.
    #[default]
    Gauge,
    /// A running total since some start; rates come from differences.
    Counter,
}

/// One log line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    /// When it was written (or read, when the line has no time).
    #[serde(deserialize_with = "rfc3339")]
    pub time: DateTime<Utc>,
    /// Where it came from, such as a file path.
    pub source: String,
    /// Severity, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    /// The line.
    pub text: String,
    /// Where the agent's reading of the file stood after this line. Agent bookkeeping (it
    /// resumes from the newest one in its spool after a crash); the collector may ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<FilePosition>,
}

/// A read position in a tailed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilePosition {
    /// The file's identity: a fingerprint of its first line, the same across renames and
    /// copies.
    pub file: String,
    /// The byte offset reading resumes from.
    pub offset: u64,
    /// For the systemd journal: the cursor of the entry (`file` is `journald`, `offset` 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// The checks the collector assigns to one agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assignments {
    /// Changes whenever the assigned checks change; sent back in `If-None-Match`.
    pub revision: String,
    /// The checks.
    pub checks: Vec<CheckConfig>,
}

/// The lenient reading of an [`Assignments`] document: checks are read one by one.
#[derive(Deserialize)]
struct LenientAssignments {
    revision: String,
    checks: Vec<serde_json::Value>,
}

impl Assignments {
    /// Builds the document, with a revision derived from the checks.
    pub fn new(checks: Vec<CheckConfig>) -> Self {
        let json = serde_json::to_vec(&checks).unwrap_or_default();
        Self {
            revision: format!("{:016x}", fnv1a(&json)),
            checks,
        }
    }

    /// Reads a document, skipping any check that this build cannot read; each skipped check is
    /// returned with the reason.
    pub fn decode_lenient(body: &[u8]) -> Result<(Self, Vec<String>), serde_json::Error> {
        let raw: LenientAssignments = serde_json::from_slice(body)?;
        let mut checks = Vec::with_capacity(raw.checks.len());
        let mut skipped = Vec::new();
        for value in raw.checks {
            let name = value
                .get("name")
                .and_then(|n| n.as_str())
                .unwrap_or("?")
                .to_string();
            let kind = value.get("type").cloned().unwrap_or_default();
            if let Err(e) = serde_json::from_value::<lookout_config::CheckType>(kind) {
                skipped.push(format!("check {name:?}: type not known to this agent: {e}"));
                continue;
            }
            match serde_json::from_value::<CheckConfig>(value) {
                Ok(c) => checks.push(c),
                Err(e) => skipped.push(format!("check {name:?}: {e}")),
            }
        }
        Ok((
            Self {
                revision: raw.revision,
                checks,
            },
            skipped,
        ))
    }
}

/// FNV-1a: a stable hash for revisions (std's hasher may change between releases).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Reads a record's time: RFC 3339 through chrono's own parser for it, borrowed from the
/// batch's text, which is a fifth of the cost of the generic parse that `DateTime`'s
/// `Deserialize` runs (decode_bench). A time that parser refuses gets the generic parse, so
/// what was read before still is.
fn rfc3339<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
    struct Rfc3339;
    impl serde::de::Visitor<'_> for Rfc3339 {
        type Value = DateTime<Utc>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an RFC 3339 time")
        }

        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            match DateTime::parse_from_rfc3339(v) {
                Ok(t) => Ok(t.with_timezone(&Utc)),
                Err(_) => v.parse().map_err(E::custom),
            }
        }
    }
    deserializer.deserialize_str(Rfc3339)
}

/// Why a request body is not a valid batch.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The `Content-Encoding` is not one this collector reads.
    #[error("unsupported Content-Encoding {0:?}: expected zstd, gzip or identity")]
    UnsupportedEncoding(String),
    /// The body does not decompress.
    #[error("the body is not valid {encoding}: {source}")]
    Compression {
        /// The encoding that was claimed.
        encoding: &'static str,
        /// What the decompressor said.
        source: std::io::Error,
    },
    /// The decompressed batch is larger than allowed.
    #[error("the batch is larger than {limit} bytes once decompressed")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// More records than the receiver reads in one batch.
    #[error("the batch has more than {limit} records")]
    TooManyRecords {
        /// The most records a batch may have.
        limit: usize,
    },
    /// The JSON does not describe a batch.
    #[error("malformed batch: {0}")]
    Json(#[from] serde_json::Error),
    /// The batch's version is not one this build reads.
    /// Its text starts with [`version::REFUSAL_TEXT`], which agents look for.
    #[error(
        "unsupported protocol version {0}: this collector reads versions {supported}",
        supported = version::Versions::supported()
    )]
    Version(u32),
    /// A value breaks an invariant of the format.
    #[error("invalid batch: {0}")]
    Invalid(String),
}

/// The zstd level agents compress with: the fastest. On batches of log lines it costs about half
/// the CPU of level 3 for a few percent more bytes, and an agent's CPU is what matters.
pub const ZSTD_LEVEL: i32 = 1;

/// Serialises and compresses a batch.
pub fn encode_batch(batch: &Batch, encoding: Encoding) -> std::io::Result<Vec<u8>> {
    let json = serde_json::to_vec(batch).map_err(std::io::Error::other)?;
    match encoding {
        Encoding::Identity => Ok(json),
        Encoding::Zstd => zstd::encode_all(json.as_slice(), ZSTD_LEVEL),
        Encoding::Gzip => {
            use std::io::Write;
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(&json)?;
            enc.finish()
        }
    }
}

/// Encodes batches as zstd with one compression context, for a sender of many batches in a row
/// to keep (a fresh context per batch costs more than compressing a small batch). Kept, a
/// context holds its tables (about 130 KB for small batches) between batches, so the agent,
/// whose batches come seconds apart, makes one per batch.
pub struct ZstdBatchEncoder {
    compressor: zstd::bulk::Compressor<'static>,
}

impl std::fmt::Debug for ZstdBatchEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZstdBatchEncoder").finish_non_exhaustive()
    }
}

impl ZstdBatchEncoder {
    /// A new encoder (zstd level [`ZSTD_LEVEL`]).
    pub fn new() -> std::io::Result<Self> {
        Ok(Self {
            compressor: zstd::bulk::Compressor::new(ZSTD_LEVEL)?,
        })
    }

    /// The batch as JSON, zstd-compressed: what [`encode_batch`] with [`Encoding::Zstd`] gives.
    pub fn encode(&mut self, batch: &Batch) -> std::io::Result<Vec<u8>> {
        let json = serde_json::to_vec(batch).map_err(std::io::Error::other)?;
        self.compressor.compress(&json)
    }
}

/// Decompresses (never past `max_decoded` bytes) and parses a batch, and checks its invariants.
pub fn decode_batch(
    body: &[u8],
    encoding: Encoding,
    max_decoded: usize,
) -> Result<Batch, DecodeError> {
    decode_batch_bounded(body, encoding, max_decoded, usize::MAX)
}

/// [`decode_batch`], reading at most `max_records` records: a batch with more is
/// [`DecodeError::TooManyRecords`], found without parsing the records past the bound.
pub fn decode_batch_bounded(
    body: &[u8],
    encoding: Encoding,
    max_decoded: usize,
    max_records: usize,
) -> Result<Batch, DecodeError> {
    use serde::de::DeserializeSeed as _;
    let mut json = decompress(body, encoding, max_decoded)?;
    replace_escaped_nul(&mut json);
    let over = std::cell::Cell::new(false);
    let mut de = serde_json::Deserializer::from_slice(&json);
    let batch = bounded::BatchSeed {
        max_records,
        over: &over,
    }
    .deserialize(&mut de)
    .and_then(|b| de.end().map(|()| b))
    .map_err(|e| {
        if over.get() {
            DecodeError::TooManyRecords { limit: max_records }
        } else {
            DecodeError::Json(e)
        }
    })?;
    validate(&batch)?;
    Ok(batch)
}

/// Turns each JSON escape `\u0000` in `json` into `\uFFFD` (the replacement character), in
/// place. PostgreSQL cannot store a NUL in text, so a batch holding one was refused by the store
/// on every retry, and the agent's spool stuck behind it; SQLite would have kept it, so one
/// rule for both: a NUL in any string of a batch arrives as U+FFFD. JSON has no other way to
/// write a NUL (a raw one in a string is invalid JSON); `\\u0000` (an escaped backslash, then
/// text) is left alone.
fn replace_escaped_nul(json: &mut [u8]) {
    let found: Vec<usize> = memchr::memmem::find_iter(json, b"\\u0000").collect();
    for at in found {
        // An escape when an odd number of backslashes ends at `at`.
        let backslashes = json[..=at]
            .iter()
            .rev()
            .take_while(|&&b| b == b'\\')
            .count();
        if backslashes % 2 == 1 {
            json[at + 2..at + 6].copy_from_slice(b"FFFD");
        }
    }
}

/// Decompresses `body` as `encoding` says, never past `max` bytes: a body that inflates further
/// (a compression bomb) is [`DecodeError::TooLarge`], found after reading `max + 1` bytes of
/// it. Also used by the agent's OTLP receiver for its gzip bodies.
pub fn decompress(body: &[u8], encoding: Encoding, max: usize) -> Result<Vec<u8>, DecodeError> {
    let name = encoding.header_value();
    let reader: Box<dyn Read + '_> = match encoding {
        Encoding::Identity => {
            if body.len() > max {
                return Err(DecodeError::TooLarge { limit: max });
            }
            return Ok(body.to_vec());
        }
        Encoding::Zstd => Box::new(zstd::stream::read::Decoder::new(body).map_err(|source| {
            DecodeError::Compression {
                encoding: name,
                source,
            }
        })?),
        Encoding::Gzip => Box::new(flate2::read::GzDecoder::new(body)),
    };
    // Read one byte past the limit to tell "exactly max" from "more": a small body that
    // inflates without bound (a compression bomb) stops here.
    let mut out = Vec::with_capacity(size_hint(body, encoding).min(max.saturating_add(1)));
    reader
        .take(max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|source| DecodeError::Compression {
            encoding: name,
            source,
        })?;
    if out.len() > max {
        return Err(DecodeError::TooLarge { limit: max });
    }
    Ok(out)
}

/// The decompressed size a zstd frame declares (agents' frames do), to read into one buffer
/// instead of growing one by doubling: growing a 64 MiB batch held its old and new buffers
/// at once. Only room, never trusted: the read stops at the limit whatever it says.
fn size_hint(body: &[u8], encoding: Encoding) -> usize {
    match encoding {
        Encoding::Zstd => declared_size(body, encoding)
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(0),
        Encoding::Identity | Encoding::Gzip => 0,
    }
}

/// How many bytes of JSON `body` says it holds, without decompressing it: its length when
/// not compressed, the size its first zstd frame declares (agents write one frame and
/// declare its size), `None` for gzip or a frame that declares nothing. A claim, not a bound:
/// a body of several frames or a corrupt one holds something else, so whoever plans by it
/// still decodes within a limit.
pub fn declared_size(body: &[u8], encoding: Encoding) -> Option<u64> {
    match encoding {
        Encoding::Identity => u64::try_from(body.len()).ok(),
        Encoding::Zstd => zstd::zstd_safe::get_frame_content_size(body).ok().flatten(),
        Encoding::Gzip => None,
    }
}

fn validate(batch: &Batch) -> Result<(), DecodeError> {
    if !(version::OLDEST_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&batch.version) {
        return Err(DecodeError::Version(batch.version));
    }
    if batch.agent.is_empty() {
        return Err(DecodeError::Invalid("agent is empty".into()));
    }
    if batch.batch_id.is_empty() || batch.batch_id.len() > MAX_BATCH_ID_LEN {
        return Err(DecodeError::Invalid(format!(
            "batch_id must be 1 to {MAX_BATCH_ID_LEN} characters"
        )));
    }
    for (i, r) in batch.records.iter().enumerate() {
        let problem = match r {
            Record::CheckResult(c) if c.check.is_empty() => Some("check name is empty"),
            Record::CheckResult(c) if !c.latency_ms.is_finite() || c.latency_ms < 0.0 => {
                Some("latency_ms must be a finite, non-negative number")
            }
            Record::Metric(m) if m.name.is_empty() => Some("metric name is empty"),
            Record::Metric(m) if !m.value.is_finite() => Some("metric value must be finite"),
            _ => None,
        };
        if let Some(p) = problem {
            return Err(DecodeError::Invalid(format!("records[{i}]: {p}")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
