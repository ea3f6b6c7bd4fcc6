//! The JSON API under `/api/v1`: checks and their state, raw results, hosts.

pub mod agents;
pub mod cluster;
pub mod install;
pub mod logs;
pub mod metrics;
pub mod openapi;
pub mod ping;
pub mod status;
pub mod uptime;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use serde::{Deserialize, Serialize};

use crate::auth::{Admin, Reader};
use crate::error::AppError;
use crate::state::AppState;
use crate::store::alerting::{AlertRow, AlertState, Silence};
use crate::store::{MetricRow, ResultQuery, ResultRow};
use crate::views::{CheckView, check_exists, check_views};

/// `GET /api/v1/checks` answer.
#[derive(Debug, Serialize)]
pub struct ChecksAnswer {
    /// The checks, by name.
    pub checks: Vec<CheckView>,
}

/// `GET /api/v1/checks`.
pub async fn checks(
    State(state): State<Arc<AppState>>,
    _: Reader,
) -> Result<Json<ChecksAnswer>, AppError> {
    Ok(Json(ChecksAnswer {
        checks: check_views(state.store.as_ref(), &state.config()).await?,
    }))
}

/// Query of `GET /api/v1/checks/{name}/results`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultsParams {
    /// Only this agent's results.
    agent: Option<String>,
    /// From, RFC 3339; default `to` minus one hour.
    from: Option<String>,
    /// To, RFC 3339; default now.
    to: Option<String>,
    /// At most this many (newest first); default 1000, at most 10000.
    limit: Option<u32>,
}

/// `GET /api/v1/checks/{name}/results` answer.
#[derive(Debug, Serialize)]
pub struct ResultsAnswer {
    /// The check.
    pub check: String,
    /// The window asked for.
    pub from: DateTime<Utc>,
    /// The window asked for.
    pub to: DateTime<Utc>,
    /// Results, newest first.
    pub results: Vec<ResultRow>,
}

const MAX_RESULTS: u32 = 10_000;

pub(crate) fn parse_time(name: &str, value: &str) -> Result<DateTime<Utc>, AppError> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            AppError::BadRequest(format!(
                "{name}={value:?} is not an RFC 3339 time ({e}): expected e.g. 2026-11-26T04:00:00Z"
            ))
        })
}

/// `GET /api/v1/checks/{name}/results`.
pub async fn results(
    State(state): State<Arc<AppState>>,
    _: Reader,
    Path(name): Path<String>,
    params: Result<Query<ResultsParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ResultsAnswer>, AppError> {
    let Query(params) = params.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let (from, to) = window(
        params.from.as_deref(),
        params.to.as_deref(),
        ChronoDuration::hours(1),
    )?;
    let limit = params.limit.unwrap_or(1000);
    if limit == 0 || limit > MAX_RESULTS {
        return Err(AppError::BadRequest(format!(
            "limit must be 1 to {MAX_RESULTS}"
        )));
    }
    ensure_check_exists(&state, &name).await?;
    let rows = state
        .store
        .results(&ResultQuery {
            check: name.clone(),
            agent: params.agent,
            from,
            to,
            limit,
        })
        .await?;
    Ok(Json(ResultsAnswer {
        check: name,
        from,
        to,
        results: rows,
    }))
}

/// The `from`/`to` query window: `to` defaults to now, `from` to `to - default_span`.
pub(crate) fn window(
    from: Option<&str>,
    to: Option<&str>,
    default_span: ChronoDuration,
) -> Result<(DateTime<Utc>, DateTime<Utc>), AppError> {
    let to = to
        .map(|v| parse_time("to", v))
        .transpose()?
        .unwrap_or_else(Utc::now);
    let from = from
        .map(|v| parse_time("from", v))
        .transpose()?
        .unwrap_or(to - default_span);
    if from > to {
        return Err(AppError::BadRequest("from is after to".into()));
    }
    Ok((from, to))
}

/// A 404 unless `name` is a configured check or one an agent has reported.
pub(crate) async fn ensure_check_exists(state: &AppState, name: &str) -> Result<(), AppError> {
    if check_exists(state.store.as_ref(), &state.config(), name).await? {
        Ok(())
    } else {
        Err(AppError::NotFound(format!("no check named {name:?}")))
    }
}

/// One host in `GET /api/v1/hosts`.
#[derive(Debug, Serialize)]
pub struct HostView {
    /// The agent's name.
    pub name: String,
    /// Its labels: the configuration's over what it sent.
    pub labels: BTreeMap<String, String>,
    /// The labels it last sent about itself, as sent: information, which selects checks only
    /// where its `[[agents]]` entry has `self_labels`.
    pub claimed_labels: BTreeMap<String, String>,
    /// When it last shipped (RFC 3339), or null if never.
    pub last_seen: Option<DateTime<Utc>>,
    /// `up`; `down` (silent past its timeout, its alert firing); `stopped` (it said it was
    /// stopping); `retired` (an ephemeral agent gone); `unknown` (never heard from).
    pub state: &'static str,
    /// The latest sample of each of its metric series.
    pub metrics: Vec<MetricRow>,
    /// Where it comes from: `config` (`[[agents]]`, `[local_agent]`), `enrolled` (it enrolled
    /// itself, `POST /v1/enroll`), or null for an agent the collector no longer knows (its
    /// data stays).
    pub origin: Option<&'static str>,
    /// `permanent` or `ephemeral` (null when `origin` is).
    pub lifecycle: Option<String>,
    /// When it enrolled (enrolled agents).
    pub enrolled_at: Option<DateTime<Utc>>,
    /// When its credential was revoked: it is refused until it enrols again.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// `GET /api/v1/hosts` answer.
#[derive(Debug, Serialize)]
pub struct HostsAnswer {
    /// Every configured or reporting agent, by name.
    pub hosts: Vec<HostView>,
}

/// `GET /api/v1/hosts`.
pub async fn hosts(
    State(state): State<Arc<AppState>>,
    _: Reader,
) -> Result<Json<HostsAnswer>, AppError> {
    let stored = state.store.agents().await?;
    let mut names: BTreeSet<String> = stored.iter().map(|a| a.name.clone()).collect();
    let configured = state.configured_agents();
    names.extend(configured.iter().map(|c| c.name.clone()));
    let origins: BTreeMap<String, crate::enrolment::ops::AgentListing> =
        crate::enrolment::ops::listings(&state.config(), &state.enrolled.rows())
            .into_iter()
            .map(|l| (l.name.clone(), l))
            .collect();
    names.extend(origins.keys().cloned());
    let down: BTreeSet<String> = state
        .store
        .alerts(&[AlertState::Firing])
        .await?
        .into_iter()
        .filter(|a| a.rule == crate::alert::AGENT_RULE)
        .filter_map(|a| a.labels.get("agent").cloned())
        .collect();
    let mut hosts = Vec::with_capacity(names.len());
    for name in names {
        let row = stored.iter().find(|a| a.name == name);
        let mut labels = row.map(|r| r.labels.clone()).unwrap_or_default();
        if let Some(c) = configured.iter().find(|c| c.name == name) {
            labels.extend(c.labels.clone());
        }
        let origin = origins.get(&name);
        hosts.push(HostView {
            origin: origin.map(|o| o.origin),
            lifecycle: origin.map(|o| o.lifecycle.clone()),
            enrolled_at: origin.and_then(|o| o.enrolled_at),
            revoked_at: origin.and_then(|o| o.revoked_at),
            metrics: state.store.latest_metrics(&name).await?,
            last_seen: row.and_then(|r| r.last_seen),
            state: match row.and_then(|r| r.presence) {
                Some((presence, _)) => presence.as_str(),
                None if down.contains(&name) => "down",
                None if row.and_then(|r| r.last_seen).is_none() => "unknown",
                None => "up",
            },
            claimed_labels: row.map(|r| r.claimed_labels.clone()).unwrap_or_default(),
            labels,
            name,
        });
    }
    Ok(Json(HostsAnswer { hosts }))
}

/// Query of `GET /api/v1/alerts`.
#[derive(Debug, Deserialize)]
pub struct AlertsParams {
    /// `firing`, `pending`, `resolved` or `all` (the default).
    pub state: Option<String>,
}

/// `GET /api/v1/alerts`.
#[derive(Debug, Serialize)]
pub struct AlertsAnswer {
    /// Newest change first.
    pub alerts: Vec<AlertView>,
}

/// One alert with how its notifications stand.
#[derive(Debug, Serialize)]
pub struct AlertView {
    /// The alert.
    #[serde(flatten)]
    pub alert: AlertRow,
    /// Every notification queued about it, oldest first: channel, state (`pending`,
    /// `delivered`, `failed`), attempts and the last error.
    pub notifications: Vec<crate::store::alerting::Delivery>,
}

/// `GET /api/v1/alerts?state=firing|pending|resolved|all`.
pub async fn alerts(
    State(state): State<Arc<AppState>>,
    _: Reader,
    params: Result<Query<AlertsParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<AlertsAnswer>, AppError> {
    let Query(p) = params.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let states: Vec<AlertState> = match p.state.as_deref().unwrap_or("all") {
        "all" => AlertState::ALL.to_vec(),
        "firing" => vec![AlertState::Firing],
        "pending" => vec![AlertState::Pending],
        "resolved" => vec![AlertState::Resolved],
        other => {
            return Err(AppError::BadRequest(format!(
                "state {other:?}: expected firing, pending, resolved or all"
            )));
        }
    };
    let mut alerts = Vec::new();
    for alert in state.store.alerts(&states).await? {
        let notifications = state.store.deliveries(alert.id).await?;
        alerts.push(AlertView {
            alert,
            notifications,
        });
    }
    Ok(Json(AlertsAnswer { alerts }))
}

/// `POST /api/v1/alerts/{id}/ack` (admin token): acknowledges a firing alert, and tells the
/// channels that were sent its firing ([`crate::notify::ack`]).
pub async fn ack(
    State(state): State<Arc<AppState>>,
    Admin { by }: Admin,
    id: Result<Path<i64>, axum::extract::rejection::PathRejection>,
) -> Result<Json<serde_json::Value>, AppError> {
    let id = alert_id(id)?;
    let now = crate::clock::now();
    if !crate::notify::ack::acknowledge(state.store.as_ref(), id, &by, now).await? {
        return Err(AppError::NotFound(format!("no firing alert with id {id}")));
    }
    state.notifier.wake();
    Ok(Json(serde_json::json!({ "id": id, "acked_by": by })))
}

/// Body of `POST /api/v1/silences`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSilence {
    /// Label values an alert must all have (`{"check": "api"}`); at least one.
    pub matchers: BTreeMap<String, String>,
    /// Start; default now.
    pub starts: Option<DateTime<Utc>>,
    /// End; required, after the start.
    pub ends: DateTime<Utc>,
    /// Why.
    #[serde(default)]
    pub comment: String,
}

/// `POST /api/v1/silences` (admin token): stores a silence; matching alerts are recorded but
/// not sent while it is active.
pub async fn create_silence(
    State(state): State<Arc<AppState>>,
    Admin { by }: Admin,
    body: Result<Json<NewSilence>, axum::extract::rejection::JsonRejection>,
) -> Result<(axum::http::StatusCode, Json<Silence>), AppError> {
    let Json(n) = body.map_err(|e| AppError::BadRequest(e.body_text()))?;
    crate::nul::refuse("comment", &n.comment)?;
    for (name, value) in &n.matchers {
        crate::nul::refuse("matchers", name)?;
        crate::nul::refuse("matchers", value)?;
    }
    let starts = n.starts.unwrap_or_else(Utc::now);
    if n.matchers.is_empty() {
        return Err(AppError::BadRequest(
            "matchers: at least one label is required (a silence of everything is not a silence)"
                .into(),
        ));
    }
    if n.ends <= starts {
        return Err(AppError::BadRequest(format!(
            "ends ({}) must be after starts ({starts})",
            n.ends
        )));
    }
    let mut silence = Silence {
        id: 0,
        matchers: n.matchers,
        starts,
        ends: n.ends,
        created_by: by,
        comment: n.comment,
    };
    silence.id = state.store.create_silence(&silence).await?;
    Ok((axum::http::StatusCode::CREATED, Json(silence)))
}

/// `GET /api/v1/silences`: those that have not ended.
pub async fn silences(
    State(state): State<Arc<AppState>>,
    _: Reader,
) -> Result<Json<serde_json::Value>, AppError> {
    let list = state.store.silences(crate::clock::now()).await?;
    Ok(Json(serde_json::json!({ "silences": list })))
}

/// `DELETE /api/v1/silences/{id}` (admin token): ends a silence now.
pub async fn expire_silence(
    State(state): State<Arc<AppState>>,
    _: Admin,
    id: Result<Path<i64>, axum::extract::rejection::PathRejection>,
) -> Result<axum::http::StatusCode, AppError> {
    let id = alert_id(id)?;
    if !state.store.expire_silence(id, crate::clock::now()).await? {
        return Err(AppError::NotFound(format!(
            "no active silence with id {id}"
        )));
    }
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// An id from the path, or a JSON 400 that says what was wrong with it.
fn alert_id(
    id: Result<Path<i64>, axum::extract::rejection::PathRejection>,
) -> Result<i64, AppError> {
    id.map(|Path(id)| id)
        .map_err(|e| AppError::BadRequest(format!("id: {}", e.body_text())))
}
