//! Every route of the collector, with the access level docs/security.md gives it. The router
//! is built from this table, so the table cannot miss a route; the level written here is the
//! claim that `collector/tests/access.rs` checks against what each route does with and without
//! each kind of credential (the handlers' extractors in [`crate::auth`] decide), and against
//! the table in docs/security.md.

use std::sync::Arc;

use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodRouter, delete, get, post};
use lookout_protocol::http;
use serde::Serialize;

use crate::state::AppState;
use crate::{api, ingest, web};

/// Who may use a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Anyone ([`crate::auth::Public`]).
    Public,
    /// A read token, the admin token or the admin's login ([`crate::auth::Reader`]).
    Reader,
    /// The admin token or the admin's login ([`crate::auth::Admin`] and the admin pages').
    Admin,
    /// An agent's token ([`crate::auth::AgentAuth`]).
    Agent,
    /// The token of the heartbeat the path names ([`crate::auth::Pinger`]).
    Heartbeat,
    /// The fleet's enrolment token, `[enrollment] token` ([`crate::auth::Enroller`]).
    Enrolment,
    /// A signed link to acknowledge an alert, its token in the path
    /// ([`crate::auth::link::LinkHolder`]).
    Link,
}

impl Level {
    /// The level's name, as docs/security.md writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Public => "public",
            Level::Reader => "reader",
            Level::Admin => "admin",
            Level::Agent => "agent",
            Level::Heartbeat => "heartbeat",
            Level::Enrolment => "enrolment",
            Level::Link => "link",
        }
    }
}

/// One method of one route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The HTTP method.
    pub method: Method,
    /// The path, with axum's `{param}` placeholders.
    pub path: &'static str,
    /// Who may use it.
    pub level: Level,
}

/// The router under construction and the list of what it holds.
pub struct Table {
    /// The routes, without state or layers.
    pub router: Router<Arc<AppState>>,
    /// Every method of every route, in the order added.
    pub routes: Vec<Route>,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("routes", &self.routes)
            .finish()
    }
}

impl Table {
    fn add(
        mut self,
        method: Method,
        path: &'static str,
        level: Level,
        route: MethodRouter<Arc<AppState>>,
    ) -> Self {
        self.routes.push(Route {
            method,
            path,
            level,
        });
        self.router = self.router.route(path, route);
        self
    }

    fn get<H, T>(self, path: &'static str, level: Level, handler: H) -> Self
    where
        H: Handler<T, Arc<AppState>>,
        T: 'static,
    {
        self.add(Method::GET, path, level, get(handler))
    }

    fn post<H, T>(self, path: &'static str, level: Level, handler: H) -> Self
    where
        H: Handler<T, Arc<AppState>>,
        T: 'static,
    {
        self.add(Method::POST, path, level, post(handler))
    }

    /// An agent's route: its answers may carry a rotated credential ([`crate::auth::hand_over`]),
    /// and all name the protocol versions this collector reads ([`ingest::advertise_versions`]).
    fn agent(self, method: Method, path: &'static str, route: MethodRouter<Arc<AppState>>) -> Self {
        let route = route
            .layer(axum::middleware::from_fn(crate::auth::hand_over))
            .layer(axum::middleware::map_response(ingest::advertise_versions));
        self.add(method, path, Level::Agent, route)
    }

    /// A push monitor's ping, by GET or POST (its body limit, `[server]
    /// max_ping_body_bytes`, is server::limits').
    fn ping<H, T>(self, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, Arc<AppState>> + Clone,
        T: 'static,
    {
        self.add(Method::GET, path, Level::Heartbeat, get(handler.clone()))
            .add(Method::POST, path, Level::Heartbeat, post(handler))
    }
}

/// Every route.
pub fn table() -> Table {
    use Level::{Admin, Enrolment, Link, Public, Reader};
    let t = Table {
        router: Router::new(),
        routes: Vec::new(),
    };
    t.get("/", Public, web::page::index)
        .get("/assets/lookout.css", Public, web::stylesheet)
        .get("/assets/status.js", Public, web::status_script)
        .get("/assets/tail.js", Public, web::tail_script)
        .get("/api/v1/status", Public, api::status::status)
        .get("/healthz", Public, crate::healthz)
        .get("/badge/{check}/status", Public, web::badge::status)
        .get("/badge/{check}/uptime", Public, web::badge::uptime)
        .get("/api/v1/openapi.json", Public, api::openapi::openapi)
        .get("/install.sh", Public, api::install::install_script)
        .get("/downloads/{file}", Public, api::install::download)
        .get("/login", Public, web::admin::login_form)
        .post("/login", Public, web::admin::login)
        .post("/logout", Public, web::admin::logout)
        .get("/ack/{token}", Link, web::ack::confirm)
        .post("/ack/{token}", Link, web::ack::acknowledge)
        .ping("/v1/ping/{name}", api::ping::success)
        .ping("/v1/ping/{name}/{what}", api::ping::signal)
        .agent(Method::POST, http::INGEST_PATH, post(ingest::ingest))
        .agent(
            Method::GET,
            http::ASSIGNMENTS_PATH,
            get(ingest::assignments),
        )
        .post(http::ENROLL_PATH, Enrolment, api::agents::enroll)
        .agent(Method::POST, http::GOODBYE_PATH, post(ingest::goodbye))
        .get("/metrics", Reader, crate::metrics)
        .get("/api/v1/heartbeats", Reader, api::ping::list)
        .get("/api/v1/logs", Reader, api::logs::search)
        .get("/api/v1/logs/tail", Reader, api::logs::tail)
        .get("/api/v1/checks", Reader, api::checks)
        .get("/api/v1/checks/{name}/results", Reader, api::results)
        .get("/api/v1/checks/{name}/uptime", Reader, api::uptime::uptime)
        .get("/api/v1/hosts", Reader, api::hosts)
        .get("/api/v1/cluster", Reader, api::cluster::cluster)
        .get("/api/v1/metrics", Reader, api::metrics::metrics)
        .get("/api/v1/alerts", Reader, api::alerts)
        .get("/api/v1/silences", Reader, api::silences)
        .post("/api/v1/alerts/{id}/ack", Admin, api::ack)
        .post("/api/v1/silences", Admin, api::create_silence)
        .post("/api/v1/agents/{name}/revoke", Admin, api::agents::revoke)
        .post("/api/v1/agents/{name}/rotate", Admin, api::agents::rotate)
        .post(
            "/api/v1/agents/{name}/allow-reenroll",
            Admin,
            api::agents::allow_reenroll,
        )
        .add(
            Method::DELETE,
            "/api/v1/silences/{id}",
            Admin,
            delete(api::expire_silence),
        )
        // A redirect to /admin/hosts, which asks for the login.
        .get("/admin", Public, web::admin::home)
        .get("/admin/hosts", Admin, web::admin::hosts)
        .get("/admin/hosts/{name}", Admin, web::admin::host)
        .get("/admin/checks", Admin, web::admin::checks)
        .get("/admin/logs", Admin, web::admin::logs)
        .get("/admin/logs/tail", Admin, web::admin::logs_tail)
        .get("/admin/alerts", Admin, web::admin::alerts)
        .post("/admin/alerts/{id}/ack", Admin, web::admin::ack)
        .post("/admin/silences", Admin, web::admin::silence)
        .post(
            "/admin/silences/{id}/expire",
            Admin,
            web::admin::expire_silence,
        )
}
