//! Agent endpoints: `POST /v1/ingest` stores a batch and answers only once it is durable;
//! `GET /v1/assignments` tells an agent which checks to run. The formats, paths and headers are
//! documented in `lookout-protocol` (its `http` module names them for both sides).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use lookout_protocol::http::{
    AGENT_PRODUCT, BACKLOG_HEADER, LABELS_HEADER, POLL_HEADER, VERSIONS_HEADER,
};
use lookout_protocol::{Assignments, DecodeError, Encoding, decode_batch_bounded};
use tracing::Instrument as _;
use tracing::field::Empty;

use crate::auth::AgentAuth;
use crate::error::AppError;
use crate::state::{AppState, Credential};
use crate::store::IngestOutcome;

/// Most refusals listed in one answer; the count says how many there were.
const REFUSALS_LISTED: usize = 100;

/// The answer to a batch: what was stored, and which records were refused and why.
#[derive(Debug, serde::Serialize)]
pub struct IngestAnswer {
    /// What the store did with the batch.
    #[serde(flatten)]
    pub outcome: IngestOutcome,
    /// Records not stored: the first [`REFUSALS_LISTED`], by their index in the batch.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<Refusal>,
}

/// One refused record.
#[derive(Debug, serde::Serialize)]
pub struct Refusal {
    /// Its index in the batch's `records`.
    pub index: usize,
    /// Why: `unassigned_check` (a result for a check the collector gives other agents),
    /// `too_old` or `in_future` (dated outside `[server] max_record_age` / `max_record_ahead`),
    /// or one of the limits of [`crate::admission`]: `too_many_labels`, `label_too_long`,
    /// `string_too_long`, `series_rate`, `too_many_checks`.
    pub reason: &'static str,
}

/// The [`VERSIONS_HEADER`] value: the batch versions this collector reads.
static VERSIONS: std::sync::LazyLock<Option<HeaderValue>> = std::sync::LazyLock::new(|| {
    HeaderValue::from_str(&lookout_protocol::version::Versions::supported().header_value()).ok()
});

/// Middleware of the agent routes: every answer, refusals included, names the batch versions
/// this collector reads in [`VERSIONS_HEADER`], so an agent of another release sends one of
/// them, and tells a batch refused for its version from a malformed one
/// ([`lookout_protocol::version`]).
pub async fn advertise_versions(mut resp: Response) -> Response {
    if let Some(v) = VERSIONS.as_ref() {
        resp.headers_mut().insert(VERSIONS_HEADER, v.clone());
    }
    resp
}

/// `POST /v1/ingest`. A refused token is answered before the body is read, and counted with
/// the other refusals.
pub async fn ingest(
    State(state): State<Arc<AppState>>,
    agent: Result<AgentAuth, AppError>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<IngestAnswer>, AppError> {
    let result = match agent {
        Ok(AgentAuth(agent)) => ingest_batch(&state, agent, &headers, body).await,
        Err(e) => Err(e.into()),
    };
    result.map_err(|Refused { error, reason }| {
        state.metrics.reject(reason);
        error
    })
}

/// A refused request and its reason in `lookout_ingest_rejects_total`.
struct Refused {
    error: AppError,
    reason: &'static str,
}

impl From<AppError> for Refused {
    fn from(error: AppError) -> Self {
        let reason = match &error {
            AppError::Unauthorized(_) | AppError::Forbidden(_) => "unauthorized",
            AppError::Conflict(_) | AppError::TooManyAttempts(..) => "bad_request",
            AppError::Overloaded(_) | AppError::Unavailable(_) => "overloaded",
            AppError::RequestTimeout(_) => "timeout",
            AppError::PayloadTooLarge(_) => "too_large",
            AppError::UnsupportedMediaType(_) => "unsupported_encoding",
            AppError::BadRequest(_) | AppError::NotFound(_) => "bad_request",
            AppError::Store(_) => "storage",
        };
        Self { error, reason }
    }
}

#[tracing::instrument(
    name = "ingest",
    level = "debug",
    skip_all,
    fields(agent = Empty, batch = Empty, records = Empty, duplicate = Empty, bytes = Empty)
)]
async fn ingest_batch(
    state: &Arc<AppState>,
    agent: Credential,
    headers: &HeaderMap,
    body: Body,
) -> Result<Json<IngestAnswer>, Refused> {
    let span = tracing::Span::current();
    span.record("agent", agent.name.as_str());
    // Heard from, whatever happens to its batch: a refused agent is busy-waiting, not down.
    state.evaluator.heard_from(&agent.name);
    // Bounded work in progress: past it, answer at once rather than buffer more bodies.
    let _slot = state
        .ingest_slots()
        .clone()
        .try_acquire_owned()
        .map_err(|_| {
            AppError::Overloaded(
                "the collector is busy with other batches; retry after the Retry-After seconds"
                    .into(),
            )
        })?;
    let backlog = whole_number(headers, BACKLOG_HEADER)?;
    let config = state.config();
    let max_body = config.server.max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max_body) {
        return Err(too_large(max_body).into());
    }
    let encoding = Encoding::from_header(
        headers
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok()),
    )
    .map_err(|e| AppError::UnsupportedMediaType(e.to_string()))?;
    let bytes = axum::body::to_bytes(body, max_body).await.map_err(|e| {
        if crate::server::limits::timed_out(&e) {
            AppError::RequestTimeout(e.to_string())
        } else {
            too_large(max_body)
        }
    })?;
    let (batch, refused) = match decode_inline(state, &agent, &bytes, encoding) {
        Some(decoded) => decoded?,
        None => {
            // A large batch takes milliseconds of CPU to decompress and parse: off the async
            // workers, so that a burst of them does not hold up every other request.
            let (state, agent, bytes) = (state.clone(), agent.clone(), bytes.clone());
            let span = tracing::Span::current();
            let max_decoded = config.server.max_decoded_bytes;
            tokio::task::spawn_blocking(move || {
                span.in_scope(|| decode_and_screen(&state, &agent, &bytes, encoding, max_decoded))
            })
            .await
            .map_err(|e| {
                AppError::Store(crate::store::StoreError::Corrupt(format!(
                    "decoding a batch stopped: {e}"
                )))
            })??
        }
    };
    span.record("batch", tracing::field::display(&batch.batch_id));
    span.record("records", batch.records.len());
    span.record("bytes", bytes.len());
    if let Some(n) = backlog {
        state.metrics.backlog(&agent.name, n);
    }
    let started = std::time::Instant::now();
    let batch = Arc::new(batch);
    let outcome = state
        .ingest_writer
        .ingest(&agent.name, batch.clone(), crate::clock::now())
        .instrument(tracing::debug_span!("store", records = batch.records.len()))
        .await
        .map_err(AppError::from)?;
    state.metrics.store_write(started.elapsed().as_secs_f64());
    span.record("duplicate", outcome.duplicate);
    if !outcome.duplicate {
        state.forwarder.forward(&agent.name, &batch.records);
    }
    if !outcome.duplicate && state.log_feed.receiver_count() > 0 {
        for r in &batch.records {
            if let lookout_protocol::Record::Log(l) = r {
                // No reader left is not an error: the next tail subscribes afresh.
                let _ = state.log_feed.send(Arc::new(crate::store::LogRow {
                    id: 0,
                    time: l.time,
                    agent: agent.name.clone(),
                    source: l.source.clone(),
                    level: l.level.clone(),
                    text: l.text.clone(),
                }));
            }
        }
    }
    if !outcome.duplicate {
        state.evaluator.stored();
    }
    let mut kinds = [("check_result", 0), ("metric", 0), ("log", 0)];
    for r in &batch.records {
        let k = match r {
            lookout_protocol::Record::CheckResult(_) => 0,
            lookout_protocol::Record::Metric(_) => 1,
            lookout_protocol::Record::Log(_) => 2,
        };
        kinds[k].1 += 1;
    }
    state.metrics.batch(
        bytes.len(),
        outcome.duplicate,
        kinds,
        started.elapsed().as_secs_f64(),
    );
    tracing::debug!(agent = %agent.name, batch = %batch.batch_id, stored = outcome.stored, duplicate = outcome.duplicate, refused = refused.len(), "batch ingested");
    let refused = refused.into_iter().take(REFUSALS_LISTED).collect();
    Ok(Json(IngestAnswer { outcome, refused }))
}

/// Batches of up to this many bytes of JSON are decoded on the request's own async worker:
/// 128 KiB is about 700 metric samples, 0.4 ms of decoding (`decode_bench`: 546 ns a sample
/// record), no longer than other requests' handlers run. Agents' usual batches are a few
/// kilobytes to tens of kilobytes. Larger ones go to the blocking pool. Handing every batch to
/// it cost more than it saved: on two busy cores each hand-off, there and back, waits for a
/// thread to be scheduled, and the 10,000-agent fleet's p99 went from 63 to 107 ms
/// (docs/performance.md).
const INLINE_DECODE_BYTES: usize = 128 * 1024;

/// Decodes and screens a batch that says it is small ([`INLINE_DECODE_BYTES`]) where the
/// request runs; `None` for one to decode on the blocking pool. The claim is checked: the
/// decoding here stops at the bound, and a body that holds more than it said goes to the pool.
fn decode_inline(
    state: &AppState,
    agent: &Credential,
    bytes: &[u8],
    encoding: Encoding,
) -> Option<Result<(lookout_protocol::Batch, Vec<Refusal>), Refused>> {
    let max_decoded = state.config().server.max_decoded_bytes;
    let bound = INLINE_DECODE_BYTES.min(max_decoded);
    if lookout_protocol::declared_size(bytes, encoding).is_none_or(|n| n > bound as u64) {
        return None;
    }
    match decode_and_screen(state, agent, bytes, encoding, bound) {
        Err(Refused {
            reason: "too_large",
            ..
        }) if bound < max_decoded => None,
        decoded => Some(decoded),
    }
}

/// Decodes a batch within `max_decoded` bytes and the `[server]` limit on its records,
/// checks that it is `agent`'s, and [`screen`]s its records.
fn decode_and_screen(
    state: &AppState,
    agent: &Credential,
    bytes: &[u8],
    encoding: Encoding,
    max_decoded: usize,
) -> Result<(lookout_protocol::Batch, Vec<Refusal>), Refused> {
    let server = &state.config().server;
    let batch = decode_batch_bounded(bytes, encoding, max_decoded, server.max_records_per_batch)
        .map_err(|e| match e {
            DecodeError::TooLarge { .. } => AppError::PayloadTooLarge(e.to_string()).into(),
            DecodeError::TooManyRecords { .. } => Refused {
                error: AppError::PayloadTooLarge(format!(
                    "{e} ([server] max_records_per_batch): send it in smaller batches"
                )),
                reason: "too_many_records",
            },
            DecodeError::UnsupportedEncoding(_) => {
                AppError::UnsupportedMediaType(e.to_string()).into()
            }
            // An agent of a release too far from this one: it keeps the batch, and reads
            // which versions to send from the answer's header (advertise_versions).
            DecodeError::Version(_) => Refused {
                error: AppError::BadRequest(e.to_string()),
                reason: "unsupported_version",
            },
            other => AppError::BadRequest(other.to_string()).into(),
        })?;
    if batch.agent != agent.name {
        return Err(AppError::BadRequest(format!(
            "the batch is from agent {:?} but the token is {:?}'s",
            batch.agent, agent.name
        ))
        .into());
    }
    Ok(screen(state, agent, batch))
}

/// Takes out of `batch` the records `agent` may not send: results for a check the collector
/// assigns to other agents only (an agent's own local checks, which the collector does not
/// define, are its business), and records dated outside the window the configuration allows.
/// Each is counted in `lookout_ingest_rejects_total{reason}` and listed in the answer; the
/// rest of the batch is stored, so one bad record does not cost the good ones.
fn screen(
    state: &AppState,
    agent: &Credential,
    mut batch: lookout_protocol::Batch,
) -> (lookout_protocol::Batch, Vec<Refusal>) {
    use lookout_protocol::Record;
    let config = state.config();
    let now = crate::clock::now();
    let oldest = now
        - chrono::Duration::from_std(config.server.max_record_age).unwrap_or(chrono::Duration::MAX);
    let newest = now
        + chrono::Duration::from_std(config.server.max_record_ahead)
            .unwrap_or(chrono::Duration::zero());
    let limits = crate::admission::Limits::from(&config.server);
    let ledger = state.ledgers.agent(&agent.name);
    let mut admit = state.ledgers.admit(&ledger, limits);
    let central = |name: &str| config.checks.iter().any(|c| c.name == name);
    // Worked out once, and only for a batch with a result for a check the collector defines:
    // most batches carry metrics, logs or an agent's own checks.
    let mut assigned: Option<std::collections::HashSet<String>> = None;
    let mut refused = Vec::new();
    let mut index = 0;
    batch.records.retain_mut(|r| {
        let time = match r {
            Record::CheckResult(c) => c.time,
            Record::Metric(m) => m.time,
            Record::Log(l) => l.time,
        };
        let shaped = crate::admission::shape(r, &limits);
        let reason = if let Err(why) = shaped {
            Some(why)
        } else if time < oldest {
            Some("too_old")
        } else if time > newest {
            Some("in_future")
        } else {
            match r {
                Record::CheckResult(c) if central(&c.check) => {
                    let assigned = assigned.get_or_insert_with(|| {
                        state.with_assigned(agent, |checks| {
                            checks.into_iter().map(|c| c.name.clone()).collect()
                        })
                    });
                    (!assigned.contains(&c.check)).then_some("unassigned_check")
                }
                _ => None,
            }
        }
        // Counted against the agent's series and check names last: only what is stored. The
        // checks the collector defines are bounded by its configuration, not counted.
        .or_else(|| match r {
            Record::CheckResult(c) if central(&c.check) => None,
            _ => admit.record(r).err(),
        });
        match (reason, shaped) {
            (None, Ok(crate::admission::Shaped::LogLineCut)) => state.metrics.cut("log_text"),
            (None, Ok(crate::admission::Shaped::ErrorCut)) => state.metrics.cut("error"),
            _ => {}
        }
        if let Some(reason) = reason {
            state.metrics.reject(reason);
            refused.push(Refusal { index, reason });
        }
        index += 1;
        reason.is_none()
    });
    if !refused.is_empty() {
        tracing::warn!(agent = %agent.name, batch = %batch.batch_id, refused = refused.len(), first = refused[0].reason, "records refused");
    }
    (batch, refused)
}

fn too_large(limit: usize) -> AppError {
    AppError::PayloadTooLarge(format!("the request body is larger than {limit} bytes"))
}

/// The whole number (0 or more) in header `name`, if sent; more than u64 holds counts as
/// u64::MAX (both its users clamp or only show it); anything else is 400.
fn whole_number(headers: &HeaderMap, name: &str) -> Result<Option<u64>, AppError> {
    let Some(value) = headers.get(name) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        .map(|v| Some(v.parse::<u64>().unwrap_or(u64::MAX)))
        .ok_or_else(|| AppError::BadRequest(format!("{name}: expected a whole number (0 or more)")))
}

/// `POST /v1/goodbye`: the agent is stopping cleanly. Recorded in the store first, so that on
/// a shared database the leader learns it even when a follower answers; 204.
pub async fn goodbye(
    State(state): State<Arc<AppState>>,
    AgentAuth(agent): AgentAuth,
) -> Result<StatusCode, AppError> {
    state
        .store
        .set_agent_presence(
            &agent.name,
            Some(crate::store::Presence::Stopped),
            crate::clock::now(),
        )
        .await?;
    state.evaluator.said_goodbye(&agent.name).await;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/assignments`.
pub async fn assignments(
    State(state): State<Arc<AppState>>,
    AgentAuth(agent): AgentAuth,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let claimed: BTreeMap<String, String> = match headers.get(LABELS_HEADER) {
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| serde_json::from_str(s).ok())
            .ok_or_else(|| {
                AppError::BadRequest(format!(
                    "{LABELS_HEADER}: expected a JSON object of strings"
                ))
            })?,
        None => BTreeMap::new(),
    };
    // Asking for its assignments shows the agent alive, even one with nothing to ship; how
    // often it asks sets how long a silence means it is down.
    let poll = whole_number(&headers, POLL_HEADER)?
        .map(|ms| std::time::Duration::from_millis(ms.clamp(1_000, 86_400_000)));
    // Shown as the agent says, under what the configuration says, and kept as sent beside
    // them; trusted to select checks only where its entry has `self_labels`
    // (AppState::with_assigned).
    let mut labels = claimed.clone();
    labels.extend(agent.labels.clone());
    // `lookout-agent/0.1.0`: the version shown on the hosts page.
    let version = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix(AGENT_PRODUCT)?.strip_prefix('/'))
        .map(|v| {
            v.split_whitespace()
                .next()
                .unwrap_or_default()
                .chars()
                .take(40)
                .collect::<String>()
        })
        .filter(|v| !v.is_empty());
    state
        .store
        .upsert_agent(&agent.name, &labels, Some(&claimed), version.as_deref())
        .await?;
    state.evaluator.polled(&agent.name, poll).await;
    state.set_claims(&agent, &labels);
    let doc = Assignments::new(
        state.with_assigned(&agent, |checks| checks.into_iter().cloned().collect()),
    );
    let etag = format!("\"{}\"", doc.revision);
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let etag_value =
        HeaderValue::from_str(&etag).map_err(|e| AppError::BadRequest(e.to_string()))?;
    if unchanged {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag_value)]).into_response());
    }
    Ok(([(header::ETAG, etag_value)], Json(doc)).into_response())
}
