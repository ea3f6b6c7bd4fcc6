//! `/login` and `/logout`: the admin token for a session cookie ([`crate::auth::session`]),
//! and back. The login page brings the visitor back to the admin page they asked for, and
//! never to another site.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::message;
use crate::auth::session;
use crate::auth::{self, ClientAddr, Public};
use crate::state::AppState;
use crate::web::layout::document;

/// Query of `/login`.
#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

/// Only paths on this site's admin pages: never a redirect elsewhere.
fn next_page(next: Option<&str>) -> &str {
    next.filter(|n| n.starts_with("/admin") && !n.starts_with("//") && !n.contains('\\'))
        .unwrap_or("/admin")
}

fn login_page(state: &AppState, next: &str, error: Option<&str>) -> Html<String> {
    let no_login = state.config().server.admin_token.is_none();
    let body = html! {
        header { h1 { "Log in" } }
        main {
            @if no_login {
                p {
                    "The admin pages need a login, and none is possible: set " code { "[server] admin_token" }
                    " in the collector's configuration, or " code { "[server] public_read = true" }
                    " to show them read-only."
                }
            } @else {
                @if let Some(e) = error {
                    p class="error" role="alert" { (e) }
                }
                form method="post" action="/login" {
                    input type="hidden" name="next" value=(next);
                    p {
                        label for="token" { "Admin token" } br;
                        input id="token" name="token" type="password" autocomplete="current-password" required;
                    }
                    p { button type="submit" { "Log in" } }
                }
            }
            p { a href="/" { "Status page" } }
        }
    };
    Html(document("Log in · Lookout admin", None, html! {}, body).into_string())
}

/// `GET /login`.
pub async fn login_form(
    _: Public,
    State(state): State<Arc<AppState>>,
    Query(q): Query<LoginQuery>,
) -> Html<String> {
    login_page(&state, next_page(q.next.as_deref()), None)
}

/// Body of `POST /login`.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    token: String,
    next: Option<String>,
}

/// `POST /login`: the admin token for a session cookie. At most
/// [`MAX_FAILURES`](crate::sessions::MAX_FAILURES) failures per client address in ten minutes
/// (429 with `Retry-After` after that), and a failure does the same work as a success, so its
/// time tells nothing.
pub async fn login(
    _: Public,
    State(state): State<Arc<AppState>>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    use subtle::ConstantTimeEq;
    let next = next_page(f.next.as_deref()).to_string();
    let config = state.config();
    let Some(expected) = config
        .server
        .admin_token
        .as_ref()
        .map(lookout_config::Token::expose)
    else {
        return (StatusCode::FORBIDDEN, login_page(&state, &next, None)).into_response();
    };
    if !session::from_this_site(&headers) {
        return message(
            StatusCode::FORBIDDEN,
            "Refused",
            "This form was sent from another site's page.",
        );
    }
    let started = std::time::Instant::now();
    if let Err(wait) = state.sessions.may_try(addr, started) {
        let mut resp = (
            StatusCode::TOO_MANY_REQUESTS,
            login_page(
                &state,
                &next,
                Some("Too many wrong tokens from this address: try again later."),
            ),
        )
            .into_response();
        resp.headers_mut()
            .insert(header::RETRY_AFTER, axum::http::HeaderValue::from(wait));
        return resp;
    }
    let right = bool::from(f.token.trim().as_bytes().ct_eq(expected.as_bytes()));
    // The cookie is made either way: a failure costs what a success does.
    let lifetime = auth::session_lifetime(&config);
    let value = session::value_for(
        expected,
        &state.sessions.key(),
        crate::clock::now().timestamp(),
    );
    let secure = session::over_https(&headers, config.server.public_url.as_deref());
    if !right {
        state.sessions.failed(addr, started);
        return (
            StatusCode::UNAUTHORIZED,
            login_page(&state, &next, Some("Wrong admin token.")),
        )
            .into_response();
    }
    (
        [(
            header::SET_COOKIE,
            session::set_cookie(&value, lifetime, secure),
        )],
        Redirect::to(&next),
    )
        .into_response()
}

/// `POST /logout`: ends the login. Posted from a page of this site with a live login, it ends
/// every login (a new session key), so a copy of the cookie is refused too; otherwise it only
/// clears this browser's cookie.
pub async fn logout(_: Public, State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let config = state.config();
    let live = config
        .server
        .admin_token
        .as_ref()
        .is_some_and(|t| auth::logged_in(&state, &headers, t.expose()));
    if live && session::from_this_site(&headers) {
        state.sessions.end_all();
    }
    let secure = session::over_https(&headers, config.server.public_url.as_deref());
    (
        [(header::SET_COOKIE, session::clear_cookie(secure))],
        Redirect::to("/"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_never_redirects_off_the_admin_pages() {
        assert_eq!(next_page(Some("/admin/logs?q=x")), "/admin/logs?q=x");
        assert_eq!(next_page(Some("https://evil.example/admin")), "/admin");
        assert_eq!(next_page(Some("//evil.example/admin")), "/admin");
        assert_eq!(next_page(None), "/admin");
    }
}
