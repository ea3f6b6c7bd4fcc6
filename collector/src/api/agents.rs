//! Agents' credentials through the API: an agent enrols itself (`POST /v1/enroll`, with the
//! fleet's enrolment token), and the admin revokes, rotates or lets a name enrol again
//! (`POST /api/v1/agents/{name}/...`). The work is [`crate::enrolment::ops`], shared with the
//! `lookout-collector agents` commands; this module answers HTTP and puts each change in
//! force on this collector at once (others see it within `enrolment::REFRESH`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use lookout_config::collector::Lifecycle;
use lookout_protocol::http::{EnrollAnswer, EnrollRequest};
use serde::Serialize;

use crate::auth::certificate::{AgentCertificate, names_agent};
use crate::auth::{Admin, Enroller};
use crate::enrolment::ops::{self, OpError};
use crate::error::AppError;
use crate::state::AppState;
use crate::store::enrolled::Enrolled;

impl From<OpError> for AppError {
    fn from(e: OpError) -> Self {
        match e {
            OpError::NotFound(_) => AppError::NotFound(e.to_string()),
            OpError::Configured(_) | OpError::Revoked(_) | OpError::EnrolmentOff => {
                AppError::Conflict(e.to_string())
            }
            OpError::Store(s) => AppError::Store(s),
            OpError::Random(_) => {
                tracing::error!(error = %e, "cannot make a credential");
                AppError::Unavailable("cannot make a credential now; retry later".into())
            }
        }
    }
}

/// Reloads this collector's enrolled agents after a change it made; a failure is logged (the
/// periodic refresh tries again).
async fn put_in_force(state: &AppState) {
    if let Err(e) = state.enrolled.reload(state.store.as_ref()).await {
        tracing::warn!(error = %e, "cannot reload the enrolled agents after a change");
    }
}

/// `POST /v1/enroll` (the enrolment token): makes the agent `name` with a fresh credential,
/// answered once (201), with the lifecycle the agent asks for or else `[enrollment]
/// lifecycle`. 400 for a name that is not an agent name or an unknown lifecycle, 403 for one
/// `[enrollment] allowed_names` refuses, 409 for a name configured or enrolled already. With
/// `[server.tls] client_ca`, 401 without a client certificate and 403 with one that does not
/// name `name`.
pub async fn enroll(
    State(state): State<Arc<AppState>>,
    _: Enroller,
    certificate: Option<axum::Extension<AgentCertificate>>,
    body: Result<Json<EnrollRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<EnrollAnswer>), AppError> {
    let Json(EnrollRequest { name, lifecycle }) = body.map_err(|e| {
        AppError::BadRequest(format!(
            "expected {{\"name\": \"<agent name>\"}} and an optional \"lifecycle\": {}",
            e.body_text()
        ))
    })?;
    // With `[server.tls] client_ca`: an agent enrols under the name its certificate gives.
    if let Some(axum::Extension(cert)) = &certificate {
        names_agent(cert, &name)?;
    }
    let config = state.config();
    let Some(enrollment) = &config.enrollment else {
        return Err(AppError::Forbidden("enrolment is off".into()));
    };
    lookout_config::collector::enrollment::check_agent_name(&name).map_err(AppError::BadRequest)?;
    let lifecycle = match lifecycle.as_deref() {
        None => enrollment.lifecycle,
        Some("permanent") => Lifecycle::Permanent,
        Some("ephemeral") => Lifecycle::Ephemeral,
        Some(other) => {
            return Err(AppError::BadRequest(format!(
                "lifecycle {:?} is neither \"permanent\" nor \"ephemeral\"",
                other.chars().take(32).collect::<String>()
            )));
        }
    };
    enrollment.check_name(&name).map_err(AppError::Forbidden)?;
    if ops::configured_names(&config).contains(&name) {
        return Err(AppError::Conflict(format!(
            "{name:?} is an [[agents]] entry of the collector's configuration: give this agent \
             that entry's token, or another name"
        )));
    }
    let credential = crate::enrolment::new_credential().map_err(OpError::Random)?;
    let now = crate::clock::now();
    match state
        .store
        .enroll(&name, &credential.digest(), lifecycle.as_str(), now)
        .await?
    {
        Enrolled::Done => {}
        Enrolled::Taken => {
            return Err(AppError::Conflict(format!(
                "an agent named {name:?} is enrolled already: if this is the same server \
                 rebuilt, the admin can allow one more enrolment (lookout-collector agents \
                 allow-reenroll {name}, or POST /api/v1/agents/{name}/allow-reenroll); \
                 otherwise give this agent another name"
            )));
        }
    }
    put_in_force(&state).await;
    tracing::info!(agent = %name, lifecycle = lifecycle.as_str(), "agent enrolled");
    Ok((
        StatusCode::CREATED,
        Json(EnrollAnswer {
            name,
            credential: credential.expose().to_string(),
        }),
    ))
}

/// `POST /api/v1/agents/{name}/revoke` answer.
#[derive(Debug, Serialize)]
pub struct Revoked {
    /// The agent.
    pub name: String,
    /// When it was revoked.
    pub revoked_at: DateTime<Utc>,
}

/// `POST /api/v1/agents/{name}/revoke` (admin): the agent's next request is refused (401).
pub async fn revoke(
    State(state): State<Arc<AppState>>,
    Admin { by }: Admin,
    Path(name): Path<String>,
) -> Result<Json<Revoked>, AppError> {
    let at = ops::revoke(
        state.store.as_ref(),
        &state.config(),
        &name,
        crate::clock::now(),
    )
    .await?;
    put_in_force(&state).await;
    tracing::info!(agent = %name, %by, "agent revoked");
    Ok(Json(Revoked {
        name,
        revoked_at: at,
    }))
}

/// `POST /api/v1/agents/{name}/rotate` answer: the new credential, shown once.
#[derive(Serialize)]
pub struct RotatedAnswer {
    /// The agent.
    pub name: String,
    /// Its new credential; the agent is given it on its next request with the old one.
    pub credential: String,
    /// When the old credential stops working (`[enrollment] rotation_grace` from now).
    pub previous_valid_until: DateTime<Utc>,
}

impl std::fmt::Debug for RotatedAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotatedAnswer")
            .field("name", &self.name)
            .field("previous_valid_until", &self.previous_valid_until)
            .finish_non_exhaustive()
    }
}

/// `POST /api/v1/agents/{name}/rotate` (admin).
pub async fn rotate(
    State(state): State<Arc<AppState>>,
    Admin { by }: Admin,
    Path(name): Path<String>,
) -> Result<Json<RotatedAnswer>, AppError> {
    let r = ops::rotate(
        state.store.as_ref(),
        &state.config(),
        &name,
        crate::clock::now(),
    )
    .await?;
    put_in_force(&state).await;
    tracing::info!(agent = %name, %by, until = %r.previous_valid_until, "agent credential rotated");
    Ok(Json(RotatedAnswer {
        name,
        credential: r.credential.expose().to_string(),
        previous_valid_until: r.previous_valid_until,
    }))
}

/// `POST /api/v1/agents/{name}/allow-reenroll` answer.
#[derive(Debug, Serialize)]
pub struct Allowed {
    /// The agent.
    pub name: String,
    /// Until when one enrolment under the name is allowed.
    pub until: DateTime<Utc>,
}

/// `POST /api/v1/agents/{name}/allow-reenroll` (admin): one more enrolment under the name,
/// within `[enrollment] reenroll_window`.
pub async fn allow_reenroll(
    State(state): State<Arc<AppState>>,
    Admin { by }: Admin,
    Path(name): Path<String>,
) -> Result<Json<Allowed>, AppError> {
    let until = ops::allow_reenroll(
        state.store.as_ref(),
        &state.config(),
        &name,
        crate::clock::now(),
    )
    .await?;
    put_in_force(&state).await;
    tracing::info!(agent = %name, %by, %until, "agent allowed to enrol again");
    Ok(Json(Allowed { name, until }))
}
