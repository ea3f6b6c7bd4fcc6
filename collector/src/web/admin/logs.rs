//! `/admin/logs`: a search form and a page of matching lines, newest first, with a link to
//! older ones; `/admin/logs/tail`: the same filters followed live (through
//! `/api/v1/logs/tail`, by `/assets/tail.js`).

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::Response;
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use serde::Deserialize;

use super::page;
use crate::auth::AdminPage;
use crate::error::AppError;
use crate::state::AppState;
use crate::store::LogQuery;

/// Lines on a page of search results.
const PAGE: u32 = 200;

/// Query of `/admin/logs` and `/admin/logs/tail`.
#[derive(Debug, Default, Deserialize)]
pub struct LogsForm {
    #[serde(default)]
    q: String,
    #[serde(default)]
    agent: String,
    #[serde(default)]
    level: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    cursor: String,
}

impl LogsForm {
    /// The filter form, filled in with these filters, sent to `action`.
    fn filters(&self, action: &str, button: &str) -> Markup {
        html! {
            form method="get" action=(action) class="logs-form" role="search" {
                label { "Words " input name="q" value=(self.q) placeholder="timeout database"; }
                " "
                label { "Agent " input name="agent" value=(self.agent) size="10"; }
                " "
                label {
                    "Level "
                    select name="level" {
                        @for l in ["", "error", "warn", "info", "debug", "trace"] {
                            option value=(l) selected[self.level == l] {
                                (if l.is_empty() { "any" } else { l })
                            }
                        }
                    }
                }
                " "
                label { "Source " input name="source" value=(self.source) size="16"; }
                " "
                button type="submit" { (button) }
            }
        }
    }

    /// The filters (not the cursor) as a query string.
    fn query_string(&self) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(
                [
                    ("q", &self.q),
                    ("agent", &self.agent),
                    ("level", &self.level),
                    ("source", &self.source),
                ]
                .into_iter()
                .filter(|(_, v)| !v.is_empty()),
            )
            .finish()
    }
}

fn non_empty(s: &str) -> Option<String> {
    Some(s.trim().to_string()).filter(|s| !s.is_empty())
}

/// `GET /admin/logs`: the search form and a page of matching lines, newest first.
pub async fn logs(
    State(state): State<Arc<AppState>>,
    AdminPage(access): AdminPage,
    form: Result<Query<LogsForm>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, AppError> {
    let Query(f) = form.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let before = match f.cursor.split_once('.') {
        Some((t, id)) => Some(
            t.parse()
                .ok()
                .zip(id.parse().ok())
                .ok_or_else(|| AppError::BadRequest(format!("cursor {:?}", f.cursor)))?,
        ),
        None if f.cursor.is_empty() => None,
        None => return Err(AppError::BadRequest(format!("cursor {:?}", f.cursor))),
    };
    let mut lines = state
        .store
        .logs(&LogQuery {
            text: non_empty(&f.q),
            agent: non_empty(&f.agent),
            source: non_empty(&f.source),
            level: non_empty(&f.level).map(|l| l.to_ascii_lowercase()),
            before,
            from: DateTime::<Utc>::UNIX_EPOCH,
            to: crate::clock::now(),
            limit: PAGE + 1,
        })
        .await?;
    let more = lines.len() > PAGE as usize;
    lines.truncate(PAGE as usize);
    let query = f.query_string();
    // The link to the next page: these filters, from the last line shown.
    let older = lines.last().filter(|_| more).map(|last| {
        let and = if query.is_empty() { "" } else { "&" };
        format!(
            "/admin/logs?{query}{and}cursor={}.{}",
            last.time.timestamp_millis(),
            last.id
        )
    });
    let main = html! {
        (f.filters("/admin/logs", "Search"))
        p { a href={ "/admin/logs/tail?" (query) } { "Live tail with these filters" } }
        div class="table-wrap" {
            table id="log-results" {
                thead {
                    tr { th { "Time" } th { "Agent" } th { "Level" } th { "Source" } th { "Line" } }
                }
                tbody {
                    @if lines.is_empty() {
                        tr { td colspan="5" { "No matching lines." } }
                    }
                    @for l in &lines {
                        tr {
                            td { (l.time.format("%Y-%m-%d %H:%M:%S%.3f")) }
                            td { (l.agent) }
                            td { (l.level.as_deref().unwrap_or("")) }
                            td { (l.source) }
                            td class="logs" { (l.text) }
                        }
                    }
                }
            }
        }
        @if let Some(href) = older {
            p { a href=(href) { "Older lines" } }
        }
    };
    Ok(page("Logs", access, None, main))
}

/// `GET /admin/logs/tail`: lines as they arrive, through `/api/v1/logs/tail` (needs
/// JavaScript; the search page does not).
pub async fn logs_tail(Query(f): Query<LogsForm>, AdminPage(access): AdminPage) -> Response {
    let main = html! {
        (f.filters("/admin/logs/tail", "Follow"))
        p id="tail-state" role="status" { "Connecting…" }
        noscript {
            p {
                "The live tail needs JavaScript; " a href="/admin/logs" { "search" }
                " works without it."
            }
        }
        div id="tail" class="logs" data-source={ "/api/v1/logs/tail?" (f.query_string()) }
            aria-live="polite" {}
    };
    page("Live log tail", access, Some("/assets/tail.js"), main)
}
