//! `/admin/checks`: each check with its state and each agent's latest result: why it failed,
//! and where the time went (DNS, connect, TLS, first byte).

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use maud::html;

use super::{ago, page, url_escape};
use crate::auth::AdminPage;
use crate::error::AppError;
use crate::notify::route::check_anchor;
use crate::state::AppState;
use crate::views::check_views;
use crate::web::page::state_words;

/// `GET /admin/checks`.
pub async fn checks(
    State(state): State<Arc<AppState>>,
    AdminPage(access): AdminPage,
) -> Result<Response, AppError> {
    let now = crate::clock::now();
    let views = check_views(state.store.as_ref(), &state.config()).await?;
    let ms = |v: Option<f64>| v.map_or_else(|| "–".to_string(), |v| format!("{v:.1} ms"));
    let main = html! {
        @if views.is_empty() {
            p { "No checks yet." }
        }
        @for c in &views {
            section class={ "check s-" (c.status.as_str()) } data-check=(c.name) {
                div class="head" {
                    h2 id=(check_anchor(&c.name)) { (c.name) }
                    span class="state" { (state_words(c.status)) }
                }
                p class="muted" {
                    (c.kind) ", defined in " (c.defined_in) " · "
                    a href={ "/api/v1/checks/" (url_escape(&c.name)) "/results" } { "results" }
                    " · "
                    a href={ "/api/v1/checks/" (url_escape(&c.name)) "/uptime" } { "uptime" }
                }
                @if c.agents.is_empty() {
                    p { "No result yet." }
                } @else {
                    div class="table-wrap" {
                        table {
                            thead {
                                tr {
                                    th { "Agent" } th { "Result" } th { "When" } th { "Total" }
                                    th { "DNS" } th { "Connect" } th { "TLS" } th { "First byte" }
                                    th { "HTTP" } th { "Why it failed" }
                                }
                            }
                            tbody {
                                @for r in &c.agents {
                                    tr data-agent=(r.agent) {
                                        td { (r.agent) }
                                        td { (if r.ok { "✓ ok" } else { "✕ failed" }) }
                                        td { (ago(r.time, now)) }
                                        td { (ms(Some(r.latency_ms))) }
                                        td { (ms(r.timings.dns_ms)) }
                                        td { (ms(r.timings.connect_ms)) }
                                        td { (ms(r.timings.tls_ms)) }
                                        td { (ms(r.timings.ttfb_ms)) }
                                        td {
                                            @match r.status_code {
                                                Some(code) => { (code) }
                                                None => { "–" }
                                            }
                                        }
                                        td { (r.error.as_deref().unwrap_or("")) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page("Checks", access, None, main))
}
