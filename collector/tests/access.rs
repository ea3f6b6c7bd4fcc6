//! Every route of the router, with every kind of credential: the level each route claims in
//! `collector/src/routes.rs` (from which the router is built, so a route added later is walked
//! too) is the level docs/security.md gives it, and is what the route does.
//!
//! A credential is let in when the answer is neither 401 nor 403 nor a redirect to the login
//! page; what the handler then says (200, 400 for a sample request it finds wrong, 404 for an
//! id that does not exist) is the handler's business, tested elsewhere.

mod support;

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use lookout_collector::routes::{Level, table};
use tower::ServiceExt;

const ADMIN: &str = "access-admin-token-0123456789";
const AGENT: &str = "access-agent-token-0123456789";
const READ: &str = "access-read-token-0123456789";
const BEAT: &str = "access-beat-token-0123456789";
const ENROL: &str = "access-enrol-token-0123456789";

const CONFIG: &str = r#"
[server]
admin_token = "access-admin-token-0123456789"
read_tokens = ["access-read-token-0123456789"]

[[agents]]
name = "web-1"
token = "access-agent-token-0123456789"

[enrollment]
token = "access-enrol-token-0123456789"

[[checks]]
name = "api"
type = "http"
url = "http://127.0.0.1:1/"

[[heartbeats]]
name = "backup"
token = "access-beat-token-0123456789"
period = "1h"
"#;

/// The credentials a request can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Nobody,
    Agent,
    Reader,
    Heartbeat,
    Admin,
    Enroller,
}

const EVERYONE: [Who; 6] = [
    Who::Nobody,
    Who::Agent,
    Who::Reader,
    Who::Heartbeat,
    Who::Admin,
    Who::Enroller,
];

/// Who a level lets in, from docs/security.md's table of levels: the admin reads too.
fn admitted(level: Level, who: Who) -> bool {
    match level {
        Level::Public => true,
        Level::Heartbeat => who == Who::Heartbeat,
        Level::Agent => who == Who::Agent,
        Level::Reader => matches!(who, Who::Reader | Who::Admin),
        Level::Admin => who == Who::Admin,
        Level::Enrolment => who == Who::Enroller,
        // Only the signed token in the path opens a link, and no credential in a header does:
        // the walk holds a well-formed token signed with another key (collector/tests/
        // ack_link.rs holds good ones).
        Level::Link => false,
    }
}

/// A request for `path` with its parameters filled in, carrying `who`'s credential.
fn request(method: &Method, path: &str, who: Who) -> Request<Body> {
    let uri = path
        .replace(
            "{name}",
            if path.starts_with("/v1/ping/") {
                "backup"
            } else {
                "api"
            },
        )
        .replace("{check}", "api")
        .replace("{id}", "1")
        .replace("{what}", "start")
        .replace("{file}", "lookout-agent-linux-x86_64")
        .replace(
            "{token}",
            "1.1795687200000.4102444800.0123456789abcdef0123456789abcdef",
        );
    assert!(
        !uri.contains('{'),
        "{path}: a parameter this test does not fill"
    );
    let token = match who {
        Who::Nobody => None,
        Who::Agent => Some(AGENT),
        Who::Reader => Some(READ),
        Who::Heartbeat => Some(BEAT),
        Who::Admin => Some(ADMIN),
        Who::Enroller => Some(ENROL),
    };
    let mut req = Request::builder()
        .method(method.clone())
        .uri(uri)
        .header(header::HOST, "127.0.0.1:7700");
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    if method == Method::POST && (path.starts_with("/admin/") || path.starts_with("/ack/")) {
        req = req
            .header(header::ORIGIN, "http://127.0.0.1:7700")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    }
    req.body(Body::empty()).unwrap()
}

/// True when the answer refuses the request's credential.
fn refused(status: StatusCode, location: Option<&str>) -> bool {
    status == StatusCode::UNAUTHORIZED
        || status == StatusCode::FORBIDDEN
        || location.is_some_and(|l| l.starts_with("/login"))
}

#[tokio::test]
async fn every_route_admits_exactly_its_level() {
    let dir = tempfile::tempdir().unwrap();
    let state = support::collector_state(dir.path(), CONFIG).await;
    let routes = table().routes;
    assert!(routes.len() >= 40, "only {} routes", routes.len());
    let mut wrong = Vec::new();
    for route in &routes {
        for who in EVERYONE {
            let resp = lookout_collector::router(state.clone())
                .oneshot(request(&route.method, route.path, who))
                .await
                .unwrap();
            let location = resp
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok());
            let let_in = !refused(resp.status(), location);
            if let_in != admitted(route.level, who) {
                wrong.push(format!(
                    "{} {} ({}) with {who:?}: {}{}",
                    route.method,
                    route.path,
                    route.level.as_str(),
                    resp.status(),
                    location.map(|l| format!(" to {l}")).unwrap_or_default()
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[tokio::test]
async fn with_no_token_configured_reading_and_writing_say_which_key_to_set() {
    let dir = tempfile::tempdir().unwrap();
    let state = support::collector_state(
        dir.path(),
        "[[agents]]\nname = \"web-1\"\ntoken = \"access-agent-token-0123456789\"\n",
    )
    .await;
    for route in table().routes {
        let key = match route.level {
            Level::Reader => "read_tokens",
            Level::Admin if route.path.starts_with("/api/") => "admin_token",
            Level::Enrolment => "[enrollment] token",
            _ => continue,
        };
        let resp = lookout_collector::router(state.clone())
            .oneshot(request(&route.method, route.path, Who::Nobody))
            .await
            .unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&body);
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "{} {}: {text}",
            route.method,
            route.path
        );
        assert!(
            text.contains(key),
            "{} {}: {text}",
            route.method,
            route.path
        );
    }
}

#[test]
fn docs_security_lists_every_route_with_its_level() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/security.md"))
        .expect("docs/security.md");
    // Rows of the form | `GET` | `/path` | level |
    let documented: BTreeSet<(String, String, String)> = doc
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l
                .trim()
                .trim_matches('|')
                .split('|')
                .map(str::trim)
                .collect();
            match cells.as_slice() {
                [method, path, level] if method.starts_with('`') && path.starts_with("`/") => {
                    Some((
                        method.trim_matches('`').to_string(),
                        path.trim_matches('`').to_string(),
                        // The level is the cell's first word; a note may follow.
                        level.split_whitespace().next().unwrap_or("").to_string(),
                    ))
                }
                _ => None,
            }
        })
        .collect();
    let routed: BTreeSet<(String, String, String)> = table()
        .routes
        .iter()
        .map(|r| {
            (
                r.method.to_string(),
                r.path.to_string(),
                r.level.as_str().to_string(),
            )
        })
        .collect();
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "routed, not in docs/security.md (or at another level): {undocumented:#?}\n\
         in docs/security.md, not routed so: {unrouted:#?}"
    );
}

/// The Content-Security-Policy's `name` directive: its sources.
fn directive<'a>(csp: &'a str, name: &str) -> Option<&'a str> {
    csp.split(';')
        .map(str::trim)
        .find_map(|d| d.strip_prefix(name).filter(|rest| rest.starts_with(' ')))
        .map(str::trim)
}

#[tokio::test]
async fn every_page_forbids_inline_scripts_and_framing_but_where_configured() {
    let dir = tempfile::tempdir().unwrap();
    let config =
        format!("{CONFIG}\n[status_page]\nframe_ancestors = [\"https://intranet.example.com\"]\n");
    let state = support::collector_state(dir.path(), &config).await;
    let mut pages = 0;
    for route in table().routes.iter().filter(|r| r.method == Method::GET) {
        let resp = lookout_collector::router(state.clone())
            .oneshot(request(&route.method, route.path, Who::Admin))
            .await
            .unwrap();
        let h = resp.headers();
        let what = format!("GET {}", route.path);
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{what}");
        assert_eq!(h[header::REFERRER_POLICY], "same-origin", "{what}");
        let kind = h
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !(kind.starts_with("text/html") || kind.starts_with("image/svg+xml")) {
            continue;
        }
        pages += 1;
        let csp = h
            .get(header::CONTENT_SECURITY_POLICY)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("{what}: no Content-Security-Policy"));
        let scripts = directive(csp, "script-src").unwrap_or_else(|| panic!("{what}: {csp}"));
        assert_eq!(scripts, "'self'", "{what}: {csp}");
        assert_eq!(
            directive(csp, "default-src"),
            Some("'none'"),
            "{what}: {csp}"
        );
        let frames = directive(csp, "frame-ancestors");
        if route.path == "/" {
            assert_eq!(frames, Some("https://intranet.example.com"), "{csp}");
            assert!(h.get(header::X_FRAME_OPTIONS).is_none());
        } else {
            assert_eq!(frames, Some("'none'"), "{what}: {csp}");
            assert_eq!(h[header::X_FRAME_OPTIONS], "DENY", "{what}");
        }
    }
    // The status page, the login page, five admin pages and two badges.
    assert!(pages >= 9, "only {pages} pages");
}

#[tokio::test]
async fn after_ten_wrong_logins_the_login_waits() {
    let dir = tempfile::tempdir().unwrap();
    let state = support::collector_state(dir.path(), CONFIG).await;
    let login = |token: &str| {
        Request::post("/login")
            .header(header::HOST, "127.0.0.1:7700")
            .header(header::ORIGIN, "http://127.0.0.1:7700")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("token={token}&next=/admin/alerts")))
            .unwrap()
    };
    let right = lookout_collector::router(state.clone())
        .oneshot(login(ADMIN))
        .await
        .unwrap();
    assert_eq!(right.status(), StatusCode::SEE_OTHER);
    let cookie = right.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    for i in 0..10 {
        let wrong = lookout_collector::router(state.clone())
            .oneshot(login("access-admin-token-0123456780"))
            .await
            .unwrap();
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    // The eleventh, even with the right token, waits.
    let held = lookout_collector::router(state.clone())
        .oneshot(login(ADMIN))
        .await
        .unwrap();
    assert_eq!(held.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = held.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((500..=600).contains(&wait), "Retry-After: {wait}");
}
