//! The admin pages under `/admin`: hosts (with charts of CPU, memory, disk and network), checks
//! (each agent's latest result, why it failed, where the time went), logs (search, and a live
//! tail), alerts (firing and recent, with acknowledge and silence buttons).
//!
//! They need a login with the admin token (`/login`, see [`crate::auth::session`]); with
//! `[server] public_read = true` (or the older `[status_page] public_admin = true`) the
//! read-only views are open to anyone and the buttons
//! still need the login ([`AdminPage`](crate::auth::AdminPage),
//! [`AdminForm`](crate::auth::AdminForm)). Everything shown comes from the same store calls as
//! `/api/v1/...`. Forms post to the server and answer with a redirect, so the pages work without
//! JavaScript; only the live log tail needs it.
//!
//! One module a page: `hosts` (with `charts` and `integrations`), `checks`, `logs`, `alerts`,
//! and `login` for `/login` and `/logout`; their handlers are re-exported here for the router
//! ([`crate::router`]). This module holds what the pages share: the frame of an admin page
//! (head, navigation, heading), the page that explains a refusal, and small pieces of markup (a
//! time as "5 min ago", a label set). Every page is a maud template (see `web/layout.rs`),
//! which escapes what it shows.

mod alerts;
mod charts;
mod checks;
mod hosts;
mod integrations;
mod login;
mod logs;

pub use alerts::{ack, alerts, expire_silence, silence};
pub use checks::checks;
pub use hosts::{host, hosts};
pub use login::{login, login_form, logout};
pub use logs::{logs, logs_tail};

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use maud::{Markup, html};

use super::layout::document;
use crate::auth::{Access, PageRefusal};

/// `GET /admin`.
pub async fn home(_: crate::auth::Public) -> Redirect {
    Redirect::to("/admin/hosts")
}

/// `s` as a URL path segment or query value.
fn url_escape(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// An admin page's refusal, as a page: where to log in, or what is missing.
impl IntoResponse for PageRefusal {
    fn into_response(self) -> Response {
        match self {
            PageRefusal::LoginFirst { next } => {
                Redirect::to(&format!("/login?next={}", url_escape(&next))).into_response()
            }
            PageRefusal::CrossSite => message(
                StatusCode::FORBIDDEN,
                "Refused",
                "This form was sent from another site's page.",
            ),
            PageRefusal::NotLoggedIn => message(
                StatusCode::UNAUTHORIZED,
                "Log in first",
                "Acknowledging and silencing need the admin login.",
            ),
        }
    }
}

/// A page that says why something was refused, with the way on.
fn message(status: StatusCode, title: &str, text: &str) -> Response {
    let body = html! {
        header { h1 { (title) } }
        main {
            p { (text) }
            p { a href="/admin" { "Admin pages" } " · " a href="/login" { "Log in" } }
        }
    };
    (
        status,
        Html(document(title, None, html! {}, body).into_string()),
    )
        .into_response()
}

/// An admin page: head, navigation (with a log-out button or a log-in link, by `access`),
/// heading, and `main`.
fn page(title: &str, access: Access, script: Option<&str>, main: Markup) -> Response {
    let body = html! {
        header {
            nav class="admin" aria-label="Admin pages" {
                a href="/admin/hosts" { "Hosts" }
                a href="/admin/checks" { "Checks" }
                a href="/admin/logs" { "Logs" }
                a href="/admin/alerts" { "Alerts" }
                a href="/" { "Status page" }
                @match access {
                    Access::Write => {
                        form class="inline" method="post" action="/logout" {
                            button type="submit" { "Log out" }
                        }
                    }
                    Access::Read => { a href="/login" { "Log in" } }
                }
            }
            h1 { (title) }
        }
        main { (main) }
    };
    let title = format!("{title} · Lookout admin");
    Html(document(&title, script, html! {}, body).into_string()).into_response()
}

/// `t` as "5 min ago" from `now`, with the exact time on hover and for machines.
fn ago(t: DateTime<Utc>, now: DateTime<Utc>) -> Markup {
    let s = (now - t).num_seconds().max(0);
    let text = match s {
        0..120 => format!("{s} s ago"),
        120..7200 => format!("{} min ago", s / 60),
        7200..172_800 => format!("{} h ago", s / 3600),
        _ => format!("{} days ago", s / 86_400),
    };
    html! {
        time datetime=(t.to_rfc3339()) title=(t.format("%Y-%m-%d %H:%M:%S UTC")) { (text) }
    }
}

/// `t` as [`ago`], or "never".
fn seen(t: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Markup {
    match t {
        Some(t) => ago(t, now),
        None => html! { "never" },
    }
}

/// A label set as text: `env=prod, region=eu`.
fn labels_text(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}
