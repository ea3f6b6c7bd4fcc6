//! Each extractor with and without its credential, on the request's head alone.

use std::path::Path;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Request, header};
use lookout_config::CollectorConfig;

use super::*;
use crate::state::AppState;

const ADMIN: &str = "admin-token-0123456789abcdef";
const AGENT: &str = "web-1-token-0123456789abcdef";

/// A state over a fresh SQLite store; `server` is the `[server]` section's body, `extra` any
/// further sections.
async fn state(server: &str, extra: &str) -> (tempfile::TempDir, Arc<AppState>) {
    let text = format!(
        "[server]\n{server}\n\n[[agents]]\nname = \"web-1\"\ntoken = \"{AGENT}\"\n\n{extra}\n"
    );
    let config = CollectorConfig::parse(Path::new("test.toml"), &text, &|_| None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = crate::store::open(&url, &Default::default()).await.unwrap();
    let state = crate::build_state(store, config, None).await.unwrap();
    (dir, state)
}

fn with_admin_token() -> String {
    format!("admin_token = \"{ADMIN}\"")
}

fn parts(uri: &str, headers: &[(header::HeaderName, &str)]) -> Parts {
    let mut req = Request::builder().uri(uri);
    for (name, value) in headers {
        req = req.header(name, *value);
    }
    req.body(()).unwrap().into_parts().0
}

fn bearer(token: &str) -> (header::HeaderName, String) {
    (header::AUTHORIZATION, format!("Bearer {token}"))
}

async fn extract<T: FromRequestParts<Arc<AppState>>>(
    state: &Arc<AppState>,
    uri: &str,
    headers: &[(header::HeaderName, &str)],
) -> Result<T, T::Rejection> {
    T::from_request_parts(&mut parts(uri, headers), state).await
}

fn cookie(s: &AppState) -> String {
    let now = crate::clock::now().timestamp();
    format!(
        "{}={}",
        session::COOKIE,
        session::value_for(ADMIN, &s.sessions.key(), now)
    )
}

#[tokio::test]
async fn an_agent_is_known_by_its_token_only() {
    let (_dir, s) = state("", "").await;
    let (auth, token) = bearer(AGENT);
    let agent = extract::<AgentAuth>(&s, "/v1/ingest", &[(auth.clone(), token.as_str())])
        .await
        .unwrap();
    assert_eq!(agent.0.name, "web-1");
    for headers in [
        vec![],
        vec![(auth.clone(), "Basic d2ViLTE6eA==")],
        vec![(auth.clone(), "Bearer not-a-token-of-anyone")],
    ] {
        let refused = extract::<AgentAuth>(&s, "/v1/ingest", &headers).await;
        assert!(
            matches!(refused, Err(AppError::Unauthorized(_))),
            "{headers:?}: {refused:?}"
        );
    }
}

#[tokio::test]
async fn the_admin_is_the_admin_token_or_the_login_cookie() {
    let (_dir, s) = state(&with_admin_token(), "").await;
    let (auth, token) = bearer(ADMIN);
    let admin = extract::<Admin>(&s, "/api/v1/silences", &[(auth.clone(), token.as_str())])
        .await
        .unwrap();
    assert_eq!(admin.by, "admin");
    let named = extract::<Admin>(
        &s,
        "/api/v1/silences",
        &[
            (auth.clone(), token.as_str()),
            (header::HeaderName::from_static("x-lookout-user"), " ann "),
        ],
    )
    .await
    .unwrap();
    // Who acted is the credential's, not a header the client picks.
    assert_eq!(named.by, "admin");
    let cookie = cookie(&s);
    let by_login = extract::<Admin>(&s, "/api/v1/silences", &[(header::COOKIE, cookie.as_str())])
        .await
        .unwrap();
    assert_eq!(by_login.by, "admin (login)");
    // A write on the cookie needs an Origin of this site.
    let post = |headers: &[(header::HeaderName, &str)]| {
        let mut req = Request::post("/api/v1/silences");
        for (name, value) in headers {
            req = req.header(name, *value);
        }
        req.body(()).unwrap().into_parts().0
    };
    let host = (header::HOST, "127.0.0.1:7700");
    let with_cookie = (header::COOKIE, cookie.as_str());
    for (what, headers, ok) in [
        ("no Origin", vec![host.clone(), with_cookie.clone()], false),
        (
            "another site",
            vec![
                host.clone(),
                with_cookie.clone(),
                (header::ORIGIN, "https://evil.example"),
            ],
            false,
        ),
        (
            "this site",
            vec![
                host.clone(),
                with_cookie.clone(),
                (header::ORIGIN, "http://127.0.0.1:7700"),
            ],
            true,
        ),
        // A bearer token is not sent by a browser on its own: no Origin needed.
        ("the token", vec![(auth.clone(), token.as_str())], true),
    ] {
        let got = Admin::from_request_parts(&mut post(&headers), &s).await;
        assert_eq!(got.is_ok(), ok, "{what}: {got:?}");
    }
    let (_, wrong) = bearer("admin-token-wrong-0000");
    for headers in [vec![], vec![(auth.clone(), wrong.as_str())]] {
        let refused = extract::<Admin>(&s, "/api/v1/silences", &headers).await;
        assert!(
            matches!(refused, Err(AppError::Unauthorized(_))),
            "{refused:?}"
        );
    }
    // A wrong bearer token is refused even with a valid cookie beside it.
    let refused = extract::<Admin>(
        &s,
        "/api/v1/silences",
        &[(auth, wrong.as_str()), (header::COOKIE, cookie.as_str())],
    )
    .await;
    assert!(matches!(refused, Err(AppError::Unauthorized(_))));
}

#[tokio::test]
async fn without_an_admin_token_nobody_is_the_admin() {
    let (_dir, s) = state("", "").await;
    let (auth, token) = bearer(ADMIN);
    let refused = extract::<Admin>(&s, "/api/v1/silences", &[(auth, token.as_str())]).await;
    assert!(
        matches!(refused, Err(AppError::Forbidden(_))),
        "{refused:?}"
    );
}

const READ: &str = "grafana-read-token-0123456789";

#[tokio::test]
async fn readers_need_a_read_token_the_admin_token_or_the_login() {
    let server = format!("{}\nread_tokens = [\"{READ}\"]", with_admin_token());
    let (_dir, s) = state(&server, "").await;
    let cookie = cookie(&s);
    for (who, headers) in [
        ("read token", vec![bearer(READ)]),
        ("admin token", vec![bearer(ADMIN)]),
        ("login", vec![(header::COOKIE, cookie.clone())]),
    ] {
        let headers: Vec<_> = headers
            .iter()
            .map(|(n, v)| (n.clone(), v.as_str()))
            .collect();
        assert!(
            extract::<Reader>(&s, "/api/v1/checks", &headers)
                .await
                .is_ok(),
            "{who} refused"
        );
    }
    for (who, headers) in [
        ("nobody", vec![]),
        ("an agent", vec![bearer(AGENT)]),
        (
            "a wrong token",
            vec![bearer("grafana-read-token-0123456780")],
        ),
        // A read token is not a login: it is not taken from a cookie.
        (
            "a cookie of the read token",
            vec![(
                header::COOKIE,
                format!(
                    "{}={}",
                    session::COOKIE,
                    session::value_for(READ, &s.sessions.key(), 0)
                ),
            )],
        ),
    ] {
        let headers: Vec<_> = headers
            .iter()
            .map(|(n, v)| (n.clone(), v.as_str()))
            .collect();
        let refused = extract::<Reader>(&s, "/api/v1/checks", &headers).await;
        assert!(
            matches!(refused, Err(AppError::Unauthorized(_))),
            "{who}: {refused:?}"
        );
    }
    // A read token does not write.
    let (auth, token) = bearer(READ);
    let refused = extract::<Admin>(&s, "/api/v1/silences", &[(auth, token.as_str())]).await;
    assert!(
        matches!(refused, Err(AppError::Unauthorized(_))),
        "{refused:?}"
    );
}

#[tokio::test]
async fn reading_is_closed_by_default_and_open_only_when_asked() {
    // Nothing configured: refused, and the answer says which keys to set.
    let (_dir, closed) = state("", "").await;
    match extract::<Reader>(&closed, "/api/v1/logs", &[]).await {
        Err(AppError::Forbidden(why)) => {
            assert!(
                why.contains("read_tokens") && why.contains("public_read"),
                "{why}"
            )
        }
        other => panic!("{other:?}"),
    }
    for open in [
        "[server]\npublic_read = true",
        "[status_page]\npublic_admin = true",
    ] {
        let (section, key) = open.split_once('\n').unwrap();
        let (_dir, s) = if section == "[server]" {
            state(key, "").await
        } else {
            state(&with_admin_token(), open).await
        };
        assert!(
            extract::<Reader>(&s, "/api/v1/logs", &[]).await.is_ok(),
            "{open}"
        );
    }
}

#[tokio::test]
async fn a_ping_needs_the_token_of_the_heartbeat_it_names() {
    let beats = "[[heartbeats]]\nname = \"backup\"\ntoken = \"backup-token-0123456789abcdef\"\nperiod = \"1d\"\n\
                 [[heartbeats]]\nname = \"other\"\ntoken = \"other-token-0123456789abcdef\"\nperiod = \"1d\"";
    let (_dir, s) = state("", beats).await;
    // axum's path parameters are what the route matched: route the request for real.
    let app = axum::Router::new()
        .route(
            "/v1/ping/{name}",
            axum::routing::get(|Pinger(name): Pinger| async move { name }),
        )
        .with_state(s);
    let status = |uri: &'static str, auth: Option<&'static str>| {
        let app = app.clone();
        async move {
            use tower::ServiceExt as _;
            let mut req = Request::builder().uri(uri);
            if let Some(t) = auth {
                req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
            }
            app.oneshot(req.body(axum::body::Body::empty()).unwrap())
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        status("/v1/ping/backup?token=backup-token-0123456789abcdef", None).await,
        200
    );
    assert_eq!(
        status("/v1/ping/backup", Some("backup-token-0123456789abcdef")).await,
        200
    );
    assert_eq!(status("/v1/ping/backup", None).await, 401);
    assert_eq!(
        status("/v1/ping/backup?token=other-token-0123456789abcdef", None).await,
        401
    );
    assert_eq!(
        status("/v1/ping/nobody?token=backup-token-0123456789abcdef", None).await,
        404
    );
}

#[tokio::test]
async fn admin_pages_send_strangers_to_the_login_and_let_the_public_look() {
    let (_dir, private) = state(&with_admin_token(), "").await;
    let refused = extract::<AdminPage>(&private, "/admin/hosts/web%201?x=1", &[]).await;
    assert_eq!(
        refused.unwrap_err(),
        PageRefusal::LoginFirst {
            next: "/admin/hosts/web 1".into()
        }
    );
    let cookie = cookie(&private);
    let page = extract::<AdminPage>(
        &private,
        "/admin/hosts",
        &[(header::COOKIE, cookie.as_str())],
    )
    .await
    .unwrap();
    assert_eq!(page.0, Access::Write);
    let (_dir, public) = state(&with_admin_token(), "[status_page]\npublic_admin = true").await;
    let page = extract::<AdminPage>(&public, "/admin/hosts", &[])
        .await
        .unwrap();
    assert_eq!(page.0, Access::Read);
}

#[tokio::test]
async fn admin_buttons_need_the_login_and_a_form_of_this_site() {
    let (_dir, s) = state(&with_admin_token(), "[status_page]\npublic_admin = true").await;
    let cookie = cookie(&s);
    let host = (header::HOST, "127.0.0.1:7700");
    let here = (header::ORIGIN, "http://127.0.0.1:7700");
    let ok = extract::<AdminForm>(
        &s,
        "/admin/silences",
        &[
            host.clone(),
            here.clone(),
            (header::COOKIE, cookie.as_str()),
        ],
    )
    .await;
    assert!(ok.is_ok());
    let anonymous = extract::<AdminForm>(&s, "/admin/silences", &[host.clone(), here]).await;
    assert_eq!(anonymous.unwrap_err(), PageRefusal::NotLoggedIn);
    let elsewhere = extract::<AdminForm>(
        &s,
        "/admin/silences",
        &[
            host,
            (header::ORIGIN, "https://evil.example"),
            (header::COOKIE, cookie.as_str()),
        ],
    )
    .await;
    assert_eq!(elsewhere.unwrap_err(), PageRefusal::CrossSite);
}
