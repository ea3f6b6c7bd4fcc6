//! Who may do what, stated in each handler's signature. Every route takes one of these axum
//! extractors; each decides from the request's head alone and refuses before the handler runs
//! and before any body is read, so a route cannot forget its check and nobody without a
//! credential makes the collector buffer a body. docs/security.md has the table of every
//! route and its level, and `collector/tests/access.rs` walks the router to hold it.
//!
//! - [`Public`]: anyone: the status page and its JSON, badges, `/healthz`, the OpenAPI
//!   document, the login page. Nothing public carries a probe's raw error, an address or a
//!   host's labels.
//! - [`Reader`]: a read token (`[server] read_tokens`), the admin token or the admin's login,
//!   for the API's other reads, the live tail and `/metrics`; anyone with `[server]
//!   public_read = true` (or the older `[status_page] public_admin = true`). Else 401, or 403
//!   with the keys to set when no credential is configured at all.
//! - [`AgentAuth`]: an agent's bearer token (an `[[agents]]` token, or an enrolled agent's
//!   credential, [`crate::enrolment`]), for `/v1/ingest`, `/v1/assignments` and
//!   `/v1/goodbye`; else 401. With `[server.tls] client_ca`, also a client certificate that
//!   names that agent: 401 without one, 403 when it names another ([`certificate`]).
//! - [`Enroller`]: the fleet's enrolment token, for `POST /v1/enroll`; else 401 (429 after
//!   many wrong ones), or 403 when enrolment is off.
//! - [`Admin`]: the admin token as a bearer token, or the admin pages' login cookie
//!   ([`session`]), for the API's writes; else 401, or 403 when no admin token is set.
//! - [`AdminPage`]: the admin (who may write), or anyone where reading is public (who may
//!   look); else a redirect to the login page.
//! - [`AdminForm`]: the admin, posting a form from this site (`Origin`); else a page that
//!   says why (403 from another site, 401 without the login).
//!
//! - [`link::LinkHolder`], [`link::LinkForm`]: whoever holds a link to acknowledge an alert
//!   that a notification carried (`/ack/{token}`: the signed token is the credential); else
//!   403, or 410 once it expired; the form's `POST` also from this site (`Origin`).
//!
//! The API's refusals are [`AppError`]s: JSON, and `WWW-Authenticate: Bearer` with a 401. The
//! admin pages' are [`PageRefusal`]s, which `web` renders as pages. A push monitor's ping
//! carries its heartbeat's own token, checked by its handler against the heartbeat it names.

pub mod certificate;
pub mod link;
pub mod session;

use std::sync::Arc;

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use subtle::ConstantTimeEq;

use crate::enrolment::Found;
use crate::error::AppError;
use crate::state::{AppState, Credential};
use certificate::{AgentCertificate, bound_to_certificate};
use lookout_config::Token;
use lookout_protocol::http::CREDENTIAL_ROTATED_HEADER;

/// An agent, by the bearer token it presented (`Authorization: Bearer <agent token>`).
#[derive(Debug, Clone)]
pub struct AgentAuth(pub Credential);

impl FromRequestParts<Arc<AppState>> for AgentAuth {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let value = parts.headers.get(header::AUTHORIZATION).ok_or_else(|| {
            AppError::Unauthorized("missing Authorization: Bearer <agent token>".into())
        })?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                AppError::Unauthorized("expected Authorization: Bearer <agent token>".into())
            })?;
        let digest = Token::new(token).digest();
        let mut found = state.credential_for(&digest, crate::clock::now());
        if matches!(found, Err(Found::Unknown)) {
            // Perhaps enrolled on another collector a moment ago (enrolment module doc).
            let reloaded = state
                .enrolled
                .reload_after_miss(state.store.as_ref())
                .await
                .unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "cannot reload the enrolled agents");
                    false
                });
            if reloaded {
                found = state.credential_for(&digest, crate::clock::now());
            }
        }
        let agent = found.map_err(|why| {
            AppError::Unauthorized(match why {
                Found::Revoked(name) => format!(
                    "the credential of agent {name:?} was revoked: the admin can allow it to \
                     enrol again (lookout-collector agents allow-reenroll {name})"
                ),
                Found::Expired(name) => format!(
                    "this credential of agent {name:?} was replaced and its grace has ended: \
                     put the new credential in the agent's credential file"
                ),
                Found::Unknown | Found::Agent { .. } => "unknown agent token".into(),
            })
        })?;
        // Present on connections of a collector with `[server.tls] client_ca` only; checked
        // before a rotation is handed over or recorded.
        if let Some(cert) = parts.extensions.get::<AgentCertificate>() {
            bound_to_certificate(state, &agent, cert)?;
        }
        if let Some(new) = &agent.handover
            && let Some(slot) = parts.extensions.get::<Handover>()
            && let Ok(value) = axum::http::HeaderValue::from_str(new.expose())
        {
            let _ = slot.0.set(value);
        }
        if agent.rotation_done {
            let (state, name) = (state.clone(), agent.name.clone());
            tokio::spawn(async move {
                if let Err(e) = state
                    .enrolled
                    .finish_rotation(state.store.as_ref(), &name, &digest)
                    .await
                {
                    tracing::warn!(agent = %name, error = %e, "cannot record a finished rotation; tried again on its next request");
                }
            });
        }
        Ok(AgentAuth(agent))
    }
}

/// Where an agent route's answer takes the new credential of an agent that presented the one
/// its rotation replaced; put in the request by [`hand_over`], filled by [`AgentAuth`].
#[derive(Debug, Clone, Default)]
pub struct Handover(Arc<std::sync::OnceLock<axum::http::HeaderValue>>);

/// Middleware of the agent routes: an answer to an agent whose credential was rotated carries
/// the new one in [`CREDENTIAL_ROTATED_HEADER`], over the connection it authenticated on.
pub async fn hand_over(
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let slot = Handover::default();
    req.extensions_mut().insert(slot.clone());
    let mut resp = next.run(req).await;
    if let Some(value) = slot.0.get() {
        resp.headers_mut()
            .insert(CREDENTIAL_ROTATED_HEADER, value.clone());
    }
    resp
}

/// A request to enrol: the fleet's enrolment token (`[enrollment] token`) as a bearer token.
/// 403 with the key to set when enrolment is off, 429 after [`crate::sessions::MAX_FAILURES`]
/// wrong tokens from one address in [`crate::sessions::FAILURE_WINDOW`], 401 otherwise.
#[derive(Debug, Clone, Copy)]
pub struct Enroller;

impl FromRequestParts<Arc<AppState>> for Enroller {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let config = state.config();
        let Some(expected) = config.enrollment.as_ref().and_then(|e| e.digest()) else {
            return Err(AppError::Forbidden(
                "enrolment is off: set [enrollment] token in the collector's configuration, \
                 or give this agent an [[agents]] entry and its token"
                    .into(),
            ));
        };
        let ClientAddr(addr) = ClientAddr::from_request_parts(parts, state)
            .await
            .unwrap_or(ClientAddr(None));
        let now = std::time::Instant::now();
        if let Err(wait) = state.enrol_failures.may_try(addr, now) {
            return Err(AppError::TooManyAttempts(
                format!(
                    "too many enrolments with a wrong token from this address; retry in {wait} s"
                ),
                wait,
            ));
        }
        let given = bearer(&parts.headers).ok_or_else(|| {
            AppError::Unauthorized("expected Authorization: Bearer <enrolment token>".into())
        })?;
        // Digests compared in constant time: the time taken says nothing of the token.
        if !bool::from(Token::new(given).digest().0.ct_eq(&expected.0)) {
            state.enrol_failures.failed(addr, now);
            return Err(AppError::Unauthorized(
                "wrong enrolment token: the agent's enroll_token must be the collector's \
                 [enrollment] token"
                    .into(),
            ));
        }
        Ok(Enroller)
    }
}

/// The admin: a valid `Authorization: Bearer <admin_token>`, or the admin pages' login cookie
/// ([`session`]). Refused with 403 when no admin token is configured, 401 when it does not match.
#[derive(Debug, Clone)]
pub struct Admin {
    /// Who acted, for the record: `admin` (the admin token) or `admin (login)` (the cookie).
    /// No header names it: a client could name anyone.
    pub by: String,
}

impl FromRequestParts<Arc<AppState>> for Admin {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let who = admin(state, &parts.headers)?;
        // A write on a login cookie must come from a page of this site: browsers send
        // `Origin` with every write, so one without it is not a page of ours.
        let cookie_write = bearer(&parts.headers).is_none() && parts.method != Method::GET;
        if cookie_write && !session::from_this_site(&parts.headers) {
            return Err(AppError::Forbidden(
                "a write with the login cookie needs an Origin header of this site".into(),
            ));
        }
        Ok(who)
    }
}

/// The bearer token of `Authorization: Bearer <token>`, if the request has one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

fn admin(state: &AppState, headers: &HeaderMap) -> Result<Admin, AppError> {
    let config = state.config();
    let Some(expected) = config
        .server
        .admin_token
        .as_ref()
        .map(lookout_config::Token::expose)
    else {
        return Err(AppError::Forbidden(
            "writing endpoints are off: set [server] admin_token to use them".into(),
        ));
    };
    let by = match bearer(headers) {
        Some(given) => {
            if !same(given, expected) {
                return Err(AppError::Unauthorized("wrong admin token".into()));
            }
            "admin"
        }
        // A browser logged in to the admin pages.
        None if logged_in(state, headers, expected) => "admin (login)",
        None => {
            return Err(AppError::Unauthorized(
                "expected Authorization: Bearer <admin token>".into(),
            ));
        }
    };
    // Who acted is the credential's, never a header the client chooses.
    let by = by.to_string();
    Ok(Admin { by })
}

/// Anyone: the route shows nothing that needs a credential (see the module's list). It is
/// an extractor all the same, so that every handler states its access in its signature.
#[derive(Debug, Clone, Copy)]
pub struct Public;

impl FromRequestParts<Arc<AppState>> for Public {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        _parts: &mut Parts,
        _state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        Ok(Public)
    }
}

/// A reader of what the collector knows (checks, results, hosts, metrics, alerts, logs,
/// `/metrics`): a read token, the admin token or the admin's login; anyone where reading is
/// configured public.
#[derive(Debug, Clone, Copy)]
pub struct Reader;

impl FromRequestParts<Arc<AppState>> for Reader {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        reader(state, &parts.headers).map(|()| Reader)
    }
}

/// True when anyone may read: `[server] public_read`, or the older `[status_page]
/// public_admin`, which opened the admin pages' views and the logs.
fn public_read(config: &lookout_config::CollectorConfig) -> bool {
    config.server.public_read || config.status_page.public_admin
}

fn reader(state: &AppState, headers: &HeaderMap) -> Result<(), AppError> {
    let config = state.config();
    if public_read(&config) {
        return Ok(());
    }
    let admin_token = config.server.admin_token.as_ref().map(Token::expose);
    if admin_token.is_none() && config.server.read_tokens.is_empty() {
        return Err(AppError::Forbidden(
            "reading is closed: set [server] read_tokens (or admin_token) and send one as \
             Authorization: Bearer <token>, or public_read = true on a trusted network"
                .into(),
        ));
    }
    match bearer(headers) {
        Some(given) => {
            // Every configured token is compared, each in constant time.
            let mut known = admin_token.is_some_and(|t| same(given, t));
            for t in &config.server.read_tokens {
                known |= same(given, t.expose());
            }
            if known {
                Ok(())
            } else {
                Err(AppError::Unauthorized(
                    "unknown token: reading needs a read token or the admin token".into(),
                ))
            }
        }
        None if admin_token.is_some_and(|t| logged_in(state, headers, t)) => Ok(()),
        None => Err(AppError::Unauthorized(
            "reading needs Authorization: Bearer <read token> ([server] read_tokens) or the \
             admin token"
                .into(),
        )),
    }
}

/// How long a login lasts, in seconds (`[server] session_lifetime`).
pub(crate) fn session_lifetime(config: &lookout_config::CollectorConfig) -> i64 {
    i64::try_from(config.server.session_lifetime.as_secs()).unwrap_or(i64::MAX)
}

/// True when the request carries a live login cookie for the admin `token`.
pub(crate) fn logged_in(state: &AppState, headers: &HeaderMap, token: &str) -> bool {
    let lifetime = session_lifetime(&state.config());
    session::valid(
        headers,
        token,
        &state.sessions.key(),
        lifetime,
        crate::clock::now().timestamp(),
    )
}

/// The client's address, where the server knows it (not in tests that call the router
/// directly): what failed logins are counted by.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// Constant-time equality of a presented and a configured token.
fn same(given: &str, expected: &str) -> bool {
    bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

/// A push monitor's ping (`/v1/ping/{name}...`): the token of the heartbeat it names, as
/// `?token=` or a bearer token; the heartbeat's name. 404 for a heartbeat that does not exist,
/// 401 for a wrong or missing token.
#[derive(Debug, Clone)]
pub struct Pinger(pub String);

impl FromRequestParts<Arc<AppState>> for Pinger {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| AppError::BadRequest(e.body_text()))?;
        let name = params
            .iter()
            .find(|(key, _)| *key == "name")
            .map(|(_, value)| value.to_string())
            .ok_or_else(|| AppError::NotFound("no heartbeat named in the path".into()))?;
        let config = state.config();
        let Some(hb) = config.heartbeats.iter().find(|h| h.name == name) else {
            return Err(AppError::NotFound(format!("no heartbeat named {name:?}")));
        };
        let query = parts
            .uri
            .query()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .find(|(k, _)| k == "token")
                    .map(|(_, v)| v.into_owned())
            })
            .unwrap_or_default();
        let given = query.as_deref().or(bearer(&parts.headers)).unwrap_or("");
        if !same(given, hb.token.expose()) {
            return Err(AppError::Unauthorized(format!(
                "wrong or missing token for heartbeat {name:?}: add ?token=..."
            )));
        }
        Ok(Pinger(name))
    }
}

/// What a request may do on the admin pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Logged in (or a valid bearer token): everything.
    Write,
    /// Not logged in, pages configured public: look only.
    Read,
}

/// A visitor of the admin pages: the [`Admin`] may write; with `[status_page] public_admin =
/// true` anyone else may look. Anyone else is sent to the login page, which brings them back.
#[derive(Debug, Clone, Copy)]
pub struct AdminPage(pub Access);

impl FromRequestParts<Arc<AppState>> for AdminPage {
    type Rejection = PageRefusal;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        if admin(state, &parts.headers).is_ok() {
            return Ok(AdminPage(Access::Write));
        }
        if public_read(&state.config()) {
            return Ok(AdminPage(Access::Read));
        }
        // The page asked for, as its handler's path parameters see it (decoded); not its query.
        let path = parts.uri.path();
        let next = percent_encoding::percent_decode_str(path)
            .decode_utf8()
            .map_or_else(|_| path.to_string(), |p| p.into_owned());
        Err(PageRefusal::LoginFirst { next })
    }
}

/// A button on the admin pages (acknowledge, silence): the [`Admin`], posting from a page of
/// this site. Browsers send `Origin` with every POST; one that names another site is refused
/// whatever cookie comes with it.
#[derive(Debug, Clone, Copy)]
pub struct AdminForm;

impl FromRequestParts<Arc<AppState>> for AdminForm {
    type Rejection = PageRefusal;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        if !session::from_this_site(&parts.headers) {
            return Err(PageRefusal::CrossSite);
        }
        admin(state, &parts.headers)
            .map(|_| AdminForm)
            .map_err(|_| PageRefusal::NotLoggedIn)
    }
}

/// Why an admin page refused a request; `web` renders each as a page (a redirect to the login
/// page, or a page that says what is missing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageRefusal {
    /// Not logged in and the pages are not public: log in, then come back to `next`.
    LoginFirst {
        /// The page asked for.
        next: String,
    },
    /// A form sent from another site's page.
    CrossSite,
    /// A button that needs the login, pressed without it.
    NotLoggedIn,
}

#[cfg(test)]
mod tests;
