//! `lookout-collector`: ingests what agents ship, stores it and serves it.
//!
//! Parts:
//! - [`ingest`]: `POST /v1/ingest` and `GET /v1/assignments`, for agents;
//! - [`store`]: the storage interface and its SQLite and PostgreSQL backends;
//! - [`backup`]: `lookout-collector backup`, a copy of the store taken while it runs;
//! - [`enrolment`]: agents that enrol themselves: their credentials in memory, and what the
//!   admin does to them (shared by the API and the `agents` commands);
//! - [`telemetry`]: the collector's own figures at `/metrics`;
//! - [`forward`]: what arrives, copied to an OTLP receiver;
//! - [`healthcheck`]: the `healthcheck` command, which asks a collector's `/healthz` (for the
//!   container image's `HEALTHCHECK`);
//! - [`maintenance`]: rollups and retention in the background;
//! - [`notify`]: routing alerts to channels (email, Slack, webhook) and delivering the outbox;
//! - [`views`]: what the API and the pages both show (checks' states, the status page's model);
//! - [`api`]: the JSON API under `/api/v1`;
//! - [`web`]: the pages: the status page at `/`, badges, the admin pages;
//! - [`auth`]: who may do what, as extractors each handler names in its signature;
//! - [`routes`]: every route with its handler and access level;
//! - [`server`]: the accept loop, connection and request limits;
//! - [`state`]: what every request shares (store, configuration, credentials);
//! - [`tasks`]: the background tasks, watched, and waited for at a stop;
//! - [`watchdog`]: `[watchdog]`, an external heartbeat pinged while the collector is healthy;
//! - [`error`]: how errors become HTTP answers.
//!
//! [`start`] binds the listener, opens the store, starts the built-in local agent if configured,
//! and serves until its [`Running::shutdown`] token is cancelled; the binary only parses the
//! command line, wires signals and waits.

pub mod admin_token;
pub mod admission;
pub mod alert;
pub mod api;
pub mod auth;
pub mod backup;
pub mod clock;
pub mod cluster;
pub mod enrolment;
pub mod error;
pub mod evaluation;
pub mod forward;
pub mod healthcheck;
pub mod ingest;
pub mod install;
pub mod leadership;
pub mod maintenance;
pub mod notify;
pub mod nul;
pub mod routes;
pub mod rules;
pub mod server;
pub mod sessions;
pub mod state;
pub mod store;
pub mod tasks;
pub mod telemetry;
pub mod views;
pub mod watchdog;
pub mod web;
pub mod writer;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use lookout_agent::local::{CollectorTls, LocalAgent};
use lookout_config::CollectorConfig;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use state::{AppState, Credential};

/// How long a stop waits for each of its phases: the local agent, the background tasks, the
/// requests in progress.
const STOP_DEADLINE: Duration = Duration::from_secs(10);

/// Why the collector could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The store could not be opened.
    #[error("cannot open storage: {0}")]
    Store(#[from] store::StoreError),
    /// The server failed while running.
    #[error("the HTTP server failed: {0}")]
    Serve(std::io::Error),
    /// The generated admin token could not be made or read.
    #[error("the admin token: {0}")]
    AdminToken(#[from] admin_token::AdminTokenError),
    /// The kernel's random source could not be read.
    #[error("cannot read random bytes: {0}")]
    Random(std::io::Error),
    /// The local agent could not start.
    #[error("the local agent failed: {0}")]
    LocalAgent(#[from] lookout_agent::local::AgentError),
    /// `[server.tls]`'s files cannot be used.
    #[error("[server.tls]: {0}")]
    Tls(#[from] server::tls::TlsError),
    /// `[install] agent_ca` cannot be served to agents.
    #[error("[install] agent_ca: {0}")]
    AgentCa(server::tls::TlsError),
    /// The local agent's TLS configuration could not be made.
    #[error("[server.tls]: the local agent's client: {0}")]
    LocalTls(rustls::Error),
    /// `[watchdog]` could not start.
    #[error(transparent)]
    Watchdog(#[from] watchdog::WatchdogError),
}

/// The HTTP routes, over `state`; [`routes`] lists them with their access levels.
pub fn router(state: Arc<AppState>) -> Router {
    let limits = server::limits::RequestLimits::new(&state.config().server);
    routes::table()
        .router
        // Body limits are server::limits' (and ingest's own), each answered with a sentence.
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn_with_state(
            limits,
            server::limits::enforce,
        ))
        // Content-Security-Policy and the other security headers (web/headers.rs).
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            web::headers::add,
        ))
        // Answers in gzip for clients that take it: a status page of 1,000 checks is megabytes
        // of HTML, a tenth of that compressed. The fastest level: most of the gain for a few
        // ms of CPU. Live tails (event streams), images and tiny answers are left as they are.
        .layer(
            tower_http::compression::CompressionLayer::new()
                .quality(tower_http::CompressionLevel::Fastest)
                // Agent binaries are streamed as they are, with their length.
                .compress_when(tower_http::compression::Predicate::and(
                    tower_http::compression::DefaultPredicate::new(),
                    tower_http::compression::predicate::NotForContentType::const_new(
                        "application/octet-stream",
                    ),
                )),
        )
        // A NUL in a URL is refused before any handler reads it (nul.rs).
        .layer(axum::middleware::from_fn(nul::refuse_in_url))
        .with_state(state)
}

pub(crate) async fn healthz(_: auth::Public) -> &'static str {
    "ok\n"
}

/// `GET /metrics`: the collector's own figures and what it watches ([`telemetry`]), in the
/// Prometheus text format.
pub(crate) async fn metrics(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    _: auth::Reader,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match state
        .metrics
        .render(state.store.as_ref(), crate::clock::now())
        .await
    {
        Ok(text) => (
            [(axum::http::header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
            text,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot answer a metrics scrape");
            axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

/// A started collector.
#[derive(Debug)]
pub struct Running {
    /// The address it listens on (useful with port 0).
    pub addr: SocketAddr,
    /// Cancel to stop it gracefully.
    pub shutdown: CancellationToken,
    /// The shared state (for reloads).
    pub state: Arc<AppState>,
    /// The served certificate, with `[server.tls]` (reloaded on SIGHUP too).
    pub tls: Option<Arc<server::tls::Tls>>,
    /// Finishes when it has stopped.
    pub task: JoinHandle<Result<(), CollectorError>>,
}

/// The shared state over an open store: the rule engine resumed from the stored alerts, and
/// the notification sender over the configured channels (not yet running).
pub async fn build_state(
    store: Arc<dyn store::Store>,
    config: CollectorConfig,
    local: Option<Credential>,
) -> Result<Arc<AppState>, store::StoreError> {
    let queued = Arc::new(tokio::sync::Notify::new());
    let rules = Arc::new(rules::Engine::load(store.clone(), &config, queued.clone()).await?);
    let metrics = Arc::new(telemetry::Metrics::default());
    let key = store
        .shared_key(notify::link::KEY_NAME, &sessions::fresh_key())
        .await?;
    let notifier = Arc::new(
        notify::Worker::new(
            store.clone(),
            notify::senders(&config.channels),
            config.alerting.give_up_after,
            queued,
            metrics.clone(),
        )
        .with_links(notify::link::AckLinks::new(
            notify::link::LinkKey::from_bytes(&key),
            &config,
        )),
    );
    let leadership = if store.shared() {
        leadership::Leadership::contender()
    } else {
        leadership::Leadership::always(clock::now())
    };
    let state = AppState::new(store, config, local, rules, notifier, metrics, leadership);
    state.enrolled.reload(state.store.as_ref()).await?;
    state.rules.use_enrolled(state.enrolled.clone());
    Ok(Arc::new(state))
}

/// Opens the store, binds the listener and starts serving (and the local agent, if configured).
pub async fn start(mut config: CollectorConfig) -> Result<Running, CollectorError> {
    let made_admin_token = admin_token::apply(&mut config)?;
    // The files first: a bad certificate stops the start before anything is opened.
    let tls_files = match &config.server.tls {
        Some(files) => Some((files.clone(), server::tls::load(files)?)),
        None => None,
    };
    // The CA install.sh hands to agents: read again for each script, checked once here.
    if let Some(ca) = &config.install.agent_ca {
        api::install::agent_ca(ca).map_err(CollectorError::AgentCa)?;
    }
    let scheme = if tls_files.is_some() { "https" } else { "http" };
    if tls_files.is_none() && !config.server.listen.ip().is_loopback() {
        tracing::warn!(
            listen = %config.server.listen,
            "listening beyond loopback without [server.tls]: agent tokens, assignments (with \
             the database passwords in their checks), the admin and read tokens and admin \
             login sessions cross the network in clear; set [server.tls] or put a TLS proxy \
             in front"
        );
    }
    let url = config.storage.resolved_url(&config.server.data_dir);
    let store = store::open(&url, &config.storage).await?;
    let listener = server::bind(config.server.listen).map_err(|source| CollectorError::Bind {
        addr: config.server.listen,
        source,
    })?;
    let addr = listener.local_addr().map_err(CollectorError::Serve)?;
    server::raise_open_files(config.server.max_open_connections);
    let connection_limits = server::ConnectionLimits::new(&config.server);

    if let (Some(path), Some(token)) = (&made_admin_token, &config.server.admin_token) {
        // Once, on the first start, where the person who started it looks; never in the logs.
        println!(
            "Lookout made an admin token (kept in {}): {}  Log in at {scheme}://{}/login",
            path.display(),
            token.expose(),
            loopback_for(addr)
        );
    }
    // The local agent's token is made at each start and never leaves the process.
    let local_token =
        lookout_config::Token::new(admin_token::random_hex(32).map_err(CollectorError::Random)?);
    let local = config
        .local_agent
        .as_ref()
        .map(|l| Credential::new(l.name.clone(), vec![local_token.digest()], l.labels.clone()));
    for a in &config.agents {
        store.upsert_agent(&a.name, &a.labels, None, None).await?;
    }
    let tls = match tls_files {
        Some((files, (pair, client_roots))) => {
            Some(server::tls::Tls::new(files, pair, client_roots)?)
        }
        None => None,
    };
    let local_agent = match (&config.local_agent, &local) {
        (Some(l), Some(_)) => {
            store
                .upsert_agent(&l.name, &l.labels, None, Some(env!("CARGO_PKG_VERSION")))
                .await?;
            let client_tls = match &tls {
                Some(t) => CollectorTls::Preconfigured(Box::new(
                    t.loopback_client().map_err(CollectorError::LocalTls)?,
                )),
                None => CollectorTls::System,
            };
            Some(LocalAgent::new(
                l,
                format!("{scheme}://{}", loopback_for(addr)),
                local_token.expose().to_string(),
                client_tls,
                &config.server.data_dir,
            ))
        }
        _ => None,
    };
    let retention = store::Retention::from(&config.storage);
    let public = config
        .server
        .public_url
        .clone()
        .unwrap_or_else(|| format!("{scheme}://{addr}"));
    let state = build_state(store.clone(), config, local).await?;
    if let Some(t) = &tls {
        t.count_in(state.metrics.clone());
    }
    let _ = state.me.set(cluster::Me::new(public, addr.port()));
    let notifier = state.notifier.clone();
    let shutdown = CancellationToken::new();
    let upkeep_stop = CancellationToken::new();
    // The background work: it stops after the local agent's last delivery, before the server.
    let upkeep = tasks::Tasks::new();
    if store.shared() {
        upkeep.spawn(
            "campaign",
            cluster::campaign(url.clone(), state.leadership.clone(), upkeep_stop.clone()),
        );
        upkeep.spawn(
            "evaluate_queue",
            state.evaluator.clone().run_queue(upkeep_stop.clone()),
        );
    }
    if let Some(me) = state.me.get() {
        upkeep.spawn(
            "announce",
            cluster::announce(
                store.clone(),
                me.clone(),
                state.leadership.clone(),
                upkeep_stop.clone(),
            ),
        );
    }
    upkeep.watch(
        "maintenance",
        state.writer_thread.spawn(maintenance::run(
            store,
            retention,
            state.leadership.clone(),
            upkeep_stop.clone(),
        )),
    );
    upkeep.spawn("notifier", notifier.run(upkeep_stop.clone()));
    upkeep.spawn(
        "enrolled_agents",
        enrolment::follow(
            state.enrolled.clone(),
            state.store.clone(),
            upkeep_stop.clone(),
        ),
    );
    upkeep.spawn(
        "rule_ticks",
        state.evaluator.clone().run_ticks(upkeep_stop.clone()),
    );
    if let (Some(cfg), Some(me)) = (state.config().watchdog.clone(), state.me.get()) {
        let health = watchdog::Health {
            store: state.store.clone(),
            evaluator: state.evaluator.clone(),
            leadership: state.leadership.clone(),
            me: me.clone(),
            max_notification_delay: cfg.max_notification_delay,
        };
        let dog = watchdog::Watchdog::new(cfg, health, state.metrics.clone())?;
        upkeep.spawn("watchdog", dog.run(upkeep_stop.clone()));
    }
    if let Some(t) = &tls {
        let watch = server::tls::watch::spawn(t.clone(), upkeep_stop.clone())?;
        upkeep.watch("tls_watch", watch);
    }
    let server_stop = CancellationToken::new();
    let app = router(state.clone());
    let server = tokio::spawn({
        let stop = server_stop.clone();
        let tls = tls.clone();
        async move {
            server::serve(listener, app, connection_limits, tls, stop).await;
            Ok::<(), CollectorError>(())
        }
    });
    tracing::info!(%addr, scheme, storage = %store::redact(&url), "collector listening");

    let agent_stop = CancellationToken::new();
    let agent = tasks::Tasks::new();
    if let Some(a) = local_agent {
        agent.spawn("local_agent", a.run(agent_stop.clone()));
    }

    let task = tokio::spawn({
        let shutdown = shutdown.clone();
        let store = state.store.clone();
        async move {
            shutdown.cancelled().await;
            // The local agent goes first: its last delivery still needs the server.
            agent_stop.cancel();
            agent.stop(STOP_DEADLINE).await;
            upkeep_stop.cancel();
            upkeep.stop(STOP_DEADLINE).await;
            server_stop.cancel();
            let served = match tokio::time::timeout(STOP_DEADLINE, server).await {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => Err(CollectorError::Serve(std::io::Error::other(e))),
                Err(_) => {
                    tracing::warn!("requests still running at the stop deadline were cut off");
                    Ok(())
                }
            };
            // Last: SQLite folds its WAL into the file, so the stopped database is one file.
            if tokio::time::timeout(STOP_DEADLINE, store.close())
                .await
                .is_err()
            {
                tracing::warn!("the store's connections were still in use at the stop deadline");
            }
            served
        }
    });
    Ok(Running {
        addr,
        shutdown,
        state,
        tls,
        task,
    })
}

/// Re-reads the configuration file and puts its checks, agents and tokens in force; on a
/// problem the running configuration stays and every problem is logged.
pub fn reload(state: &AppState, path: &std::path::Path) {
    match CollectorConfig::load(path) {
        Ok(mut new) => {
            if let Err(e) = admin_token::apply(&mut new) {
                tracing::error!(problem = %e, "configuration not reloaded");
                return;
            }
            let old = state.config();
            if new.server != old.server
                || new.storage != old.storage
                || new.local_agent != old.local_agent
                || new.watchdog != old.watchdog
            {
                tracing::warn!(
                    "[server], [storage], [local_agent] and [watchdog] changes take effect at the next restart"
                );
            }
            let checks = new.checks.len();
            state.rules.reload(&new);
            state
                .notifier
                .replace_senders(notify::senders(&new.channels));
            let key = state.notifier.links().key().clone();
            state
                .notifier
                .replace_links(notify::link::AckLinks::new(key, &new));
            state.replace_config(new);
            tracing::info!(path = %path.display(), checks, "configuration reloaded");
        }
        Err(errors) => {
            for e in &errors.0 {
                tracing::error!(problem = %e, "configuration not reloaded");
            }
        }
    }
}

/// Where the local agent reaches a server bound to `addr`: the same address, or loopback when
/// bound to every address.
pub(crate) fn loopback_for(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    }
}

/// Runs a collector from a configuration file until `shutdown`, reloading on `reload` events.
pub async fn run(
    config: CollectorConfig,
    config_path: PathBuf,
    shutdown: CancellationToken,
    mut reloads: tokio::sync::mpsc::Receiver<()>,
) -> Result<(), CollectorError> {
    let running = start(config).await?;
    let state = running.state.clone();
    let stop = running.shutdown.clone();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            Some(()) = reloads.recv() => {
                reload(&state, &config_path);
                if let Some(tls) = &running.tls {
                    tls.reload("SIGHUP");
                }
            }
        }
    }
    stop.cancel();
    running
        .task
        .await
        .map_err(|e| CollectorError::Serve(std::io::Error::other(e)))?
}
