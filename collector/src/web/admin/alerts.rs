//! `/admin/alerts`: alerts firing, pending and recently resolved, and the active silences; with
//! the login, buttons to acknowledge an alert, silence it for some hours, and end a silence
//! (forms that post and answer with a redirect back to the page).

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Duration as ChronoDuration;
use maud::{Markup, html};
use serde::Deserialize;

use super::{ago, labels_text, page};
use crate::auth::{Access, AdminForm, AdminPage};
use crate::error::AppError;
use crate::state::AppState;
use crate::store::alerting::{AlertRow, AlertState, Silence};

/// `GET /admin/alerts`.
pub async fn alerts(
    State(state): State<Arc<AppState>>,
    AdminPage(access): AdminPage,
) -> Result<Response, AppError> {
    let now = crate::clock::now();
    let all = state.store.alerts(&AlertState::ALL).await?;
    let silences = state.store.silences(now).await?;
    let write = access == Access::Write;
    let sections = [
        ("Firing", AlertState::Firing, usize::MAX),
        ("Pending", AlertState::Pending, usize::MAX),
        ("Recently resolved", AlertState::Resolved, 50),
    ]
    .map(|(heading, wanted, limit)| {
        let rows: Vec<&AlertRow> = all
            .iter()
            .filter(|a| a.state == wanted)
            .take(limit)
            .collect();
        (heading, rows)
    });
    let main = html! {
        @for (heading, rows) in &sections {
            h2 { (heading) " (" (rows.len()) ")" }
            @if rows.is_empty() {
                p class="muted" { "None." }
            } @else {
                div class="table-wrap" {
                    table {
                        thead {
                            tr {
                                th { "Alert" } th { "Since" } th { "Labels" } th { "Summary" } th {}
                            }
                        }
                        tbody {
                            @for a in rows {
                                tr data-alert=(a.id) {
                                    td { (a.rule) }
                                    td { (ago(a.since, now)) }
                                    td { (labels_text(&a.labels)) }
                                    td { (a.summary) }
                                    td { (buttons(a, write)) }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Silences (" (silences.len()) ")" }
        @if silences.is_empty() {
            p class="muted" { "None." }
        }
        @for s in &silences {
            p class="notice" data-silence=(s.id) {
                (labels_text(&s.matchers)) " until " (s.ends.format("%Y-%m-%d %H:%M UTC"))
                ", by " (s.created_by)
                @if !s.comment.is_empty() { ": " (s.comment) }
                " "
                @if write {
                    form class="inline" method="post" action={ "/admin/silences/" (s.id) "/expire" } {
                        button type="submit" { "End now" }
                    }
                }
            }
        }
    };
    Ok(page("Alerts", access, None, main))
}

/// What an alert's row offers: who acknowledged it, and with the login (`write`) the buttons to
/// acknowledge (a firing alert) and silence it (one not resolved).
fn buttons(a: &AlertRow, write: bool) -> Markup {
    html! {
        @if a.state == AlertState::Firing {
            @match (&a.acked_by, write) {
                (Some(by), _) => { "acknowledged by " (by) " " }
                (None, true) => {
                    form class="inline" method="post" action={ "/admin/alerts/" (a.id) "/ack" } {
                        button type="submit" { "Acknowledge" }
                    }
                    " "
                }
                (None, false) => {}
            }
        }
        @if write && a.state != AlertState::Resolved {
            form class="inline" method="post" action="/admin/silences" {
                input type="hidden" name="alert" value=(a.id);
                select name="hours" aria-label="Silence for" {
                    option value="1" { "1 h" }
                    option value="4" { "4 h" }
                    option value="24" { "24 h" }
                }
                " "
                button type="submit" { "Silence" }
            }
        }
    }
}

/// `POST /admin/alerts/{id}/ack`.
pub async fn ack(
    State(state): State<Arc<AppState>>,
    Path(id): Path<i64>,
    _: AdminForm,
) -> Result<Response, AppError> {
    let now = crate::clock::now();
    if !crate::notify::ack::acknowledge(state.store.as_ref(), id, "admin", now).await? {
        return Err(AppError::NotFound(format!("no firing alert with id {id}")));
    }
    state.notifier.wake();
    Ok(Redirect::to("/admin/alerts").into_response())
}

/// Body of `POST /admin/silences`.
#[derive(Debug, Deserialize)]
pub struct SilenceForm {
    alert: i64,
    hours: u32,
}

/// `POST /admin/silences`: silences one alert (all its labels) for some hours.
pub async fn silence(
    State(state): State<Arc<AppState>>,
    _: AdminForm,
    Form(f): Form<SilenceForm>,
) -> Result<Response, AppError> {
    if !(1..=168).contains(&f.hours) {
        return Err(AppError::BadRequest(format!(
            "hours={}: expected 1 to 168",
            f.hours
        )));
    }
    let Some(alert) = state
        .store
        .alerts(&AlertState::ALL)
        .await?
        .into_iter()
        .find(|a| a.id == f.alert)
    else {
        return Err(AppError::NotFound(format!("no alert with id {}", f.alert)));
    };
    let now = crate::clock::now();
    // All its labels: this alert, not its neighbours. A silence without matchers would
    // silence everything.
    let matchers = alert.labels.clone();
    if matchers.is_empty() {
        return Err(AppError::BadRequest(format!(
            "alert {} has no labels to silence it by",
            alert.id
        )));
    }
    let silence = Silence {
        id: 0,
        matchers,
        starts: now,
        ends: now + ChronoDuration::hours(i64::from(f.hours)),
        created_by: "admin".into(),
        comment: format!("from the alerts page: {}", alert.summary),
    };
    state.store.create_silence(&silence).await?;
    Ok(Redirect::to("/admin/alerts").into_response())
}

/// `POST /admin/silences/{id}/expire`.
pub async fn expire_silence(
    State(state): State<Arc<AppState>>,
    Path(id): Path<i64>,
    _: AdminForm,
) -> Result<Response, AppError> {
    if !state.store.expire_silence(id, crate::clock::now()).await? {
        return Err(AppError::NotFound(format!(
            "no active silence with id {id}"
        )));
    }
    Ok(Redirect::to("/admin/alerts").into_response())
}
