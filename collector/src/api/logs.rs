//! `GET /api/v1/logs`: search of stored log lines, newest first, in pages; and
//! `GET /api/v1/logs/tail`: the lines that match, as they arrive (Server-Sent Events).
//!
//! Both are for readers ([`Reader`]: a read token, the admin token or the admin's login), as
//! the rest of the API's reads.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use chrono::{DateTime, Utc};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::auth::Reader;
use crate::error::AppError;
use crate::state::AppState;
use crate::store::{LogQuery, LogRow};

/// Lines per page unless `limit` says otherwise, and the most it may say.
const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

/// Query of `GET /api/v1/logs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsParams {
    /// Words that must all occur in a line, in any case (whole words).
    q: Option<String>,
    /// Only this agent's lines.
    agent: Option<String>,
    /// Only lines from this source (the file's path).
    source: Option<String>,
    /// Only lines of this level (`error`, `warn`, `info`, `debug`, `trace`).
    level: Option<String>,
    /// From, RFC 3339; default: the oldest kept.
    from: Option<String>,
    /// To, RFC 3339; default now.
    to: Option<String>,
    /// Lines per page; default 100, at most 1000.
    limit: Option<u32>,
    /// The `next_cursor` of the page before.
    cursor: Option<String>,
}

/// `GET /api/v1/logs` answer.
#[derive(Debug, Serialize)]
pub struct LogsAnswer {
    /// The lines, newest first.
    pub lines: Vec<LogRow>,
    /// Where the next page starts; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

fn cursor_of(row: &LogRow) -> String {
    format!("{}.{}", row.time.timestamp_millis(), row.id)
}

fn parse_cursor(c: &str) -> Result<(i64, i64), AppError> {
    c.split_once('.')
        .and_then(|(t, id)| Some((t.parse().ok()?, id.parse().ok()?)))
        .ok_or_else(|| {
            AppError::BadRequest(format!(
                "cursor={c:?} is not one this API gave: pass a page's next_cursor as it is"
            ))
        })
}

/// `GET /api/v1/logs`.
pub async fn search(
    State(state): State<Arc<AppState>>,
    _: Reader,
    params: Result<Query<LogsParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<LogsAnswer>, AppError> {
    let Query(p) = params.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let to = match p.to.as_deref() {
        Some(v) => super::parse_time("to", v)?,
        None => crate::clock::now(),
    };
    let from = match p.from.as_deref() {
        Some(v) => super::parse_time("from", v)?,
        None => DateTime::<Utc>::UNIX_EPOCH,
    };
    if from > to {
        return Err(AppError::BadRequest(format!(
            "from ({from}) is after to ({to})"
        )));
    }
    let limit = p.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(AppError::BadRequest(format!(
            "limit must be 1 to {MAX_LIMIT}"
        )));
    }
    let before = p.cursor.as_deref().map(parse_cursor).transpose()?;
    let mut lines = state
        .store
        .logs(&LogQuery {
            text: p.q.filter(|q| !q.trim().is_empty()),
            agent: p.agent,
            source: p.source,
            level: p.level.map(|l| l.to_ascii_lowercase()),
            before,
            from,
            to,
            // One more than the page: whether there is a next page.
            limit: limit + 1,
        })
        .await?;
    let next_cursor = if lines.len() > limit as usize {
        lines.truncate(limit as usize);
        lines.last().map(cursor_of)
    } else {
        None
    };
    Ok(Json(LogsAnswer { lines, next_cursor }))
}

/// Query of `GET /api/v1/logs/tail`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TailParams {
    q: Option<String>,
    agent: Option<String>,
    source: Option<String>,
    level: Option<String>,
}

/// The words of a text as search sees them: runs of letters and digits, in lower case.
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

struct TailFilter {
    words: Vec<String>,
    agent: Option<String>,
    source: Option<String>,
    level: Option<String>,
}

impl TailFilter {
    fn matches(&self, l: &LogRow) -> bool {
        if self.agent.as_ref().is_some_and(|a| *a != l.agent)
            || self.source.as_ref().is_some_and(|s| *s != l.source)
            || self.level.is_some() && self.level != l.level
        {
            return false;
        }
        if self.words.is_empty() {
            return true;
        }
        let have: HashSet<String> = words(&l.text).collect();
        self.words.iter().all(|w| have.contains(w))
    }
}

/// `GET /api/v1/logs/tail`: `event: line` with each matching line as JSON, as it is stored;
/// `event: lagged` with `{"missed": n}` when this reader fell too far behind.
pub async fn tail(
    State(state): State<Arc<AppState>>,
    _: Reader,
    params: Result<Query<TailParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, AppError> {
    let Query(p) = params.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let filter = TailFilter {
        words: p
            .q
            .as_deref()
            .map(|q| words(q).collect())
            .unwrap_or_default(),
        agent: p.agent,
        source: p.source,
        level: p.level.map(|l| l.to_ascii_lowercase()),
    };
    // Each reader holds its permit for as long as its stream is open.
    let permit = state
        .tail_slots()
        .clone()
        .try_acquire_owned()
        .map_err(|_| {
            AppError::Unavailable(format!(
                "the collector has {} live-tail readers, its limit ([server] \
                 max_tail_subscribers); retry later",
                state.config().server.max_tail_subscribers
            ))
        })?;
    let rx = state.log_feed.subscribe();
    let stream = futures_util::stream::unfold(
        (rx, filter, permit),
        |(mut rx, filter, permit)| async move {
            loop {
                let event = match rx.recv().await {
                    Ok(line) if filter.matches(&line) => Event::default()
                        .event("line")
                        .json_data(&*line)
                        .unwrap_or_else(|_| Event::default().event("line")),
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(n)) => Event::default()
                        .event("lagged")
                        .data(format!("{{\"missed\":{n}}}")),
                    Err(broadcast::error::RecvError::Closed) => return None,
                };
                return Some((Ok(event), (rx, filter, permit)));
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
