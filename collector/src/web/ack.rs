//! `/ack/{token}`: acknowledging an alert from the link a notification carried
//! ([`crate::notify::link`]). `GET` shows which alert and since when, with a button, and changes
//! nothing: chat services unfurl links and mail scanners follow them, and neither may
//! acknowledge. The button's `POST` acknowledges (`acked_by` "acknowledge link") and says so,
//! and as whom; or says who already had, or that the alert no longer fires (410). A refused
//! token is a page with a sentence, 403 or 410 ([`LinkRefusal`]). Every answer is
//! `Cache-Control: no-store`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{Markup, html};

use super::layout::document;
use crate::auth::link::{LinkForm, LinkHolder, LinkRefusal};
use crate::error::AppError;
use crate::notify::link::{LinkError, Signed};
use crate::state::AppState;
use crate::store::alerting::{AlertRow, AlertState};

/// Who an acknowledgement from a link is recorded as.
pub const ACKED_BY: &str = "acknowledge link";

/// `GET /ack/{token}`: the confirmation page.
pub async fn confirm(
    State(state): State<Arc<AppState>>,
    LinkHolder(signed): LinkHolder,
) -> Result<Response, AppError> {
    let alert = match open(&state, &signed).await? {
        Ok(alert) => alert,
        Err(answered) => return Ok(answered),
    };
    let now = crate::clock::now();
    let body = html! {
        (about(&alert, now))
        form method="post" {
            button type="submit" { "Acknowledge" }
        }
        p class="muted" {
            "Acknowledging tells the channels this alert was sent to that someone is on it, and
             stops its reminders. It does not resolve it. This link works until "
            (signed.expires.format("%Y-%m-%d %H:%M UTC")) "."
        }
    };
    Ok(page(StatusCode::OK, "Acknowledge this alert?", body))
}

/// `POST /ack/{token}`: acknowledges, once.
pub async fn acknowledge(
    State(state): State<Arc<AppState>>,
    LinkForm(signed): LinkForm,
) -> Result<Response, AppError> {
    let alert = match open(&state, &signed).await? {
        Ok(alert) => alert,
        Err(answered) => return Ok(answered),
    };
    let now = crate::clock::now();
    if !crate::notify::ack::acknowledge(state.store.as_ref(), alert.id, ACKED_BY, now).await? {
        return Ok(no_longer_firing());
    }
    state.notifier.wake();
    let body = html! {
        (about(&alert, now))
        p {
            "Acknowledged by " strong { (ACKED_BY) } ". The channels it was sent to are told; its
             reminders stop."
        }
    };
    Ok(page(StatusCode::OK, "Acknowledged", body))
}

/// The alert the link names, while it still fires the firing the link was made for and nobody
/// acknowledged it; else the page that says it no longer fires, or who already acknowledged it.
async fn open(state: &AppState, signed: &Signed) -> Result<Result<AlertRow, Response>, AppError> {
    let alert = state
        .store
        .alerts(&[AlertState::Firing])
        .await?
        .into_iter()
        .find(|a| a.id == signed.alert_id)
        .filter(|a| a.fired_at.map(|t| t.timestamp_millis()) == Some(signed.fired_ms));
    Ok(match alert {
        None => Err(no_longer_firing()),
        Some(a) => match &a.acked_by {
            Some(by) => Err(already(&a, by)),
            None => Ok(a),
        },
    })
}

fn no_longer_firing() -> Response {
    let body = html! {
        p { "This alert is no longer firing: it resolved (or fired again since, with a message of
             its own). There is nothing to acknowledge." }
    };
    page(StatusCode::GONE, "No longer firing", body)
}

fn already(alert: &AlertRow, by: &str) -> Response {
    let body = html! {
        (about(alert, crate::clock::now()))
        p { "Already acknowledged by " strong { (by) } "." }
    };
    page(StatusCode::OK, "Already acknowledged", body)
}

/// Which alert, and since when: what the message that carried the link said.
fn about(alert: &AlertRow, now: DateTime<Utc>) -> Markup {
    let since = alert.fired_at.unwrap_or(alert.since);
    let minutes = (now - since).num_minutes().max(0);
    html! {
        p { strong { (alert.summary) } }
        p class="muted" {
            "Firing since " (since.format("%Y-%m-%d %H:%M:%S UTC"))
            " (" (minutes) " min)"
        }
    }
}

fn page(status: StatusCode, title: &str, main: Markup) -> Response {
    let body = html! {
        header { h1 { (title) } }
        main { (main) }
    };
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        Html(document(&format!("{title} · Lookout"), None, html! {}, body).into_string()),
    )
        .into_response()
}

/// A refused link, as a page: 410 for an expired one, 403 otherwise.
impl IntoResponse for LinkRefusal {
    fn into_response(self) -> Response {
        let (status, text) = match self {
            LinkRefusal::Token(e @ LinkError::Expired) => (
                StatusCode::GONE,
                format!(
                    "{e}. Acknowledge the alert from the admin pages, or from a newer message."
                ),
            ),
            LinkRefusal::Token(e) => (StatusCode::FORBIDDEN, format!("{e}.")),
            LinkRefusal::CrossSite => (
                StatusCode::FORBIDDEN,
                "This form was sent from another site's page.".to_string(),
            ),
        };
        page(status, "Refused", html! { p { (text) } })
    }
}
