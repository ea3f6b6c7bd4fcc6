//! Who may do what, stated in each handler's signature. Every route that shows monitored data
//! or changes anything takes one of these axum extractors; each decides from the request's
//! head alone and refuses before the handler runs and before any body is read, so a route
//! cannot forget its check and nobody without a credential makes the collector buffer a body.
//!
//! - [`AgentAuth`]: an agent's bearer token, for `/v1/ingest` and `/v1/assignments`; else 401.
//! - [`Admin`]: the admin token as a bearer token, or the admin pages' login cookie
//!   ([`session`]), for the API's writes; else 401, or 403 when no admin token is set.
//! - [`LogReader`]: the admin, for log lines; anyone when no admin token is set or with
//!   `[status_page] public_admin = true`.
//! - [`Reader`]: anyone, for the status page, badges, `/metrics` and the API's other reads.
//! - [`AdminPage`]: the admin (who may write), or anyone with `public_admin` (who may look);
//!   else a redirect to the login page.
//! - [`AdminForm`]: the admin, posting a form from this site (`Origin`); else a page that
//!   says why (403 from another site, 401 without the login).
//!
//! The API's refusals are [`AppError`]s: JSON, and `WWW-Authenticate: Bearer` with a 401. The
//! admin pages' are [`PageRefusal`]s, which `web` renders as pages. A push monitor's ping
//! carries its heartbeat's own token, checked by its handler against the heartbeat it names.
//!
//! [`Reader`] is where reading gets tightened (issue #27): today everyone who reaches the
//! collector may read what it does not mark private.

pub mod session;

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use subtle::ConstantTimeEq;

use crate::error::AppError;
use crate::state::{AppState, Credential};

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
        state
            .authenticate(token)
            .map(AgentAuth)
            .ok_or_else(|| AppError::Unauthorized("unknown agent token".into()))
    }
}

/// The admin: a valid `Authorization: Bearer <admin_token>`, or the admin pages' login cookie
/// ([`session`]). Refused with 403 when no admin token is configured, 401 when it does not match.
#[derive(Debug, Clone)]
pub struct Admin {
    /// The admin's name for the record: the optional `X-Lookout-User` header (at most 100
    /// characters), else `admin`.
    pub by: String,
}

impl FromRequestParts<Arc<AppState>> for Admin {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        admin(state, &parts.headers)
    }
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
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(given) => {
            if !bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
                return Err(AppError::Unauthorized("wrong admin token".into()));
            }
        }
        // A browser logged in to the admin pages.
        None if session::valid(headers, expected) => {}
        None => {
            return Err(AppError::Unauthorized(
                "expected Authorization: Bearer <admin token>".into(),
            ));
        }
    }
    let by = headers
        .get("x-lookout-user")
        .and_then(|v| v.to_str().ok())
        .map(|u| u.trim().chars().take(100).collect::<String>())
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "admin".into());
    Ok(Admin { by })
}

/// A reader of stored log lines (`/api/v1/logs`, its live tail). Logs can hold what the rest
/// of the API does not (addresses, identifiers, mistakes), so with `[server] admin_token` set
/// they need the [`Admin`]; without one, or with `[status_page] public_admin = true`, they are
/// open like the rest of the API.
#[derive(Debug, Clone, Copy)]
pub struct LogReader;

impl FromRequestParts<Arc<AppState>> for LogReader {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let config = state.config();
        if config.server.admin_token.is_some() && !config.status_page.public_admin {
            admin(state, &parts.headers)?;
        }
        Ok(LogReader)
    }
}

/// A reader of what the collector shows without a login: the status page, badges, the
/// Prometheus scrape and the API's reads other than logs. Today that is everyone who reaches
/// the collector; issue #27 (users and their roles) tightens it here, and every route that
/// takes a `Reader` follows.
#[derive(Debug, Clone, Copy)]
pub struct Reader;

impl FromRequestParts<Arc<AppState>> for Reader {
    type Rejection = AppError;

    async fn from_request_parts(
        _parts: &mut Parts,
        _state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        Ok(Reader)
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
        if state.config().status_page.public_admin {
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
        if !session::same_origin(&parts.headers) {
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
