//! The collector's configuration (`lookout-collector --config collector.toml`).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::agent::{HostMetricsConfig, SpoolSettings, validate_host_metrics, validate_spool};
use crate::check::CheckConfig;
use crate::document::{Document, EnvLookup, KeyPath};
use crate::error::ConfigErrors;
use crate::heartbeat::HeartbeatConfig;
use crate::log_rule::LogRuleConfig;
use crate::notify::{AlertingSettings, ChannelConfig, MaintenanceConfig, RouteConfig};
use crate::rule::RuleConfig;
use crate::telemetry::{Daemon, TelemetryConfig};
use crate::token::{Token, TokenDigest};

/// Everything the collector needs to run.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectorConfig {
    /// `[server]`: where it listens and keeps its data.
    pub server: ServerConfig,
    /// `[storage]`: the database.
    pub storage: StorageConfig,
    /// `[[agents]]`: the agents allowed to ship, with their tokens and labels.
    pub agents: Vec<AgentEntry>,
    /// `[local_agent]`: an agent inside the collector process, when present and enabled.
    pub local_agent: Option<LocalAgentConfig>,
    /// `[[checks]]`: central checks, assigned to agents by their `run_on` selectors.
    pub checks: Vec<CheckConfig>,
    /// `[alerting]`: agent timeout and delivery settings.
    pub alerting: AlertingSettings,
    /// `[[channels]]`: where notifications go.
    pub channels: Vec<ChannelConfig>,
    /// `[[routes]]`: which alerts go to which channels. None: every alert to every channel.
    pub routes: Vec<RouteConfig>,
    /// `[[maintenance]]`: windows when matching alerts are recorded but not sent.
    pub maintenance: Vec<MaintenanceConfig>,
    /// `[[heartbeats]]`: push monitors pinged by cron jobs.
    pub heartbeats: Vec<HeartbeatConfig>,
    /// `[[rules]]`: metric thresholds.
    pub rules: Vec<RuleConfig>,
    /// `[[log_rules]]`: alerts on log lines.
    pub log_rules: Vec<LogRuleConfig>,
    /// `[telemetry]`: spans, Sentry, and forwarding what arrives as OTLP.
    pub telemetry: TelemetryConfig,
    /// `[status_page]`: the public page's title and who may read the admin pages.
    pub status_page: StatusPageConfig,
}

/// `[status_page]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusPageConfig {
    /// The page's heading and title. Default `"Status"`.
    #[serde(default = "default_status_title")]
    pub title: String,
    /// When true, the admin pages' read-only views (hosts, checks, logs, alerts) need no
    /// login; acknowledging and silencing still need the admin token. Default false.
    #[serde(default)]
    pub public_admin: bool,
    /// Origins that may embed the status page in a frame (`["https://intranet.example.com"]`).
    /// Default none: no site may frame any page.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub frame_ancestors: Vec<String>,
}

impl Default for StatusPageConfig {
    fn default() -> Self {
        Self {
            title: default_status_title(),
            public_admin: false,
            frame_ancestors: Vec::new(),
        }
    }
}

fn default_status_title() -> String {
    "Status".into()
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address and port of the HTTP server (ingest, API, status page). Default
    /// `"127.0.0.1:7700"`; listening on other addresses must be asked for.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Folder for the database and other state. Default `"./lookout-data"`.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Bearer token for the API's writing endpoints. Default none: those endpoints refuse.
    #[serde(default)]
    pub admin_token: Option<Token>,
    /// With no `admin_token`: make one on the first start, keep it in `<data_dir>/admin_token`
    /// (mode 0600) and print it once with the login URL. Default false; the quickstart sets it.
    #[serde(default)]
    pub generate_admin_token: bool,
    /// Records dated further back than this are refused (the rest of their batch is stored):
    /// an agent cannot rewrite history. Default `"7d"`; at least 1 h.
    #[serde(default = "default_max_record_age", with = "crate::duration")]
    pub max_record_age: Duration,
    /// Records dated further ahead of the collector's clock than this are refused: an agent
    /// cannot pin a state into the future. Default `"5m"`; at least 1 s.
    #[serde(default = "default_max_record_ahead", with = "crate::duration")]
    pub max_record_ahead: Duration,
    /// How long a login to the admin pages lasts; the server refuses the cookie after it,
    /// whatever the browser keeps. Default `"12h"`; at least 1 s.
    #[serde(default = "default_session_lifetime", with = "crate::duration")]
    pub session_lifetime: Duration,
    /// Bearer tokens that may read the API and `/metrics` but change nothing (for Grafana,
    /// Prometheus, scripts). Default none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub read_tokens: Vec<Token>,
    /// `true` opens the read API and `/metrics` to anyone who reaches the collector, for a
    /// trusted network. Default false: reading needs a read token or the admin.
    #[serde(default)]
    pub public_read: bool,
    /// Largest ingest request body, compressed, in bytes. Default 8 MiB; larger gets 413.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Largest ingest batch after decompression, in bytes. Default 64 MiB; larger gets 413.
    #[serde(default = "default_max_decoded")]
    pub max_decoded_bytes: usize,
    /// Ingest requests handled at once (read, decoded, or queued for the store's group commit);
    /// beyond this the collector answers 429 with `Retry-After` (agents retry) instead of
    /// growing its memory. Default 128: 10,000 agents sending every 10 s keep about a hundred
    /// in flight on a 2-core machine (docs/performance.md); each holds its body and batch,
    /// which agents keep under 1 MiB by default (`max_batch_bytes`).
    #[serde(default = "default_concurrent_ingest")]
    pub max_concurrent_ingest: usize,
    /// Largest request body of every route but ingest (which has `max_body_bytes`) and the
    /// heartbeat pings (100 KiB), in bytes: logins and silences are a few hundred bytes. Larger
    /// gets 413 before the body is read. Default 65536; 1024 to 1 GiB.
    #[serde(default = "default_max_request_body")]
    pub max_request_body_bytes: usize,
    /// How long a client has to send a request's headers, from its connection's start (or the
    /// end of its previous answer) on; after it the connection is closed. Default `"10s"`;
    /// 1 s to 10 min.
    #[serde(default = "default_header_timeout", with = "crate::duration")]
    pub header_timeout: Duration,
    /// How long a kept-alive connection may wait, idle, for its next request; after it the
    /// connection is closed (a client opens another). Default `"60s"`; at least
    /// `header_timeout`, at most 1 h.
    #[serde(default = "default_idle_timeout", with = "crate::duration")]
    pub idle_timeout: Duration,
    /// How long a client has to send a request's body, from its headers on; after it the
    /// answer is 408 and the connection is closed. Default `"60s"`; 1 s to 1 h.
    #[serde(default = "default_body_timeout", with = "crate::duration")]
    pub body_timeout: Duration,
    /// How long the collector may take to answer a request of the API, the pages or
    /// `/metrics` (for a request with a body, counted after `body_timeout`); after it the
    /// answer is 503. Not the live tails (they stream for as long as
    /// the reader stays) nor ingest (which answers once its batch is stored). Default `"30s"`;
    /// 1 s to 1 h.
    #[serde(default = "default_request_timeout", with = "crate::duration")]
    pub request_timeout: Duration,
    /// Connections open at once; a connection beyond it is answered 503 and closed. Default
    /// 4096 (the collector raises its open-files limit to fit); 1 to 1,000,000.
    #[serde(default = "default_max_open_connections")]
    pub max_open_connections: usize,
    /// Live-tail readers (`/api/v1/logs/tail`) at once; beyond it 503. Default 64; 1 to 100,000.
    #[serde(default = "default_max_tail_subscribers")]
    pub max_tail_subscribers: usize,
    /// The address users reach this collector at (`https://status.example.com`), for links in
    /// notifications. Default none: messages carry no link.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Most records in one ingest batch; a batch with more is refused whole (413), found
    /// without parsing the records past it. Default 20,000 (agents send at most
    /// `max_batch_records`, 1,000 by default); 1 to 1,000,000.
    #[serde(default = "default_max_records_per_batch")]
    pub max_records_per_batch: usize,
    /// Most labels on one metric sample; a record with more is refused (`too_many_labels`).
    /// Default 64 (host metrics carry at most 4); 1 to 10,000.
    #[serde(default = "default_max_labels_per_record")]
    pub max_labels_per_record: usize,
    /// Longest label name or value, in bytes; a record with a longer one is refused
    /// (`label_too_long`). Default 1024; 16 to 65,536.
    #[serde(default = "default_max_label_bytes")]
    pub max_label_bytes: usize,
    /// Longest check name, metric name, log source or level, check type or read position,
    /// in bytes; a record with a longer one is refused (`string_too_long`). A check result's
    /// `error` is free text: cut to this, and marked, instead. Default 16384; 64 to 1 MiB.
    #[serde(default = "default_max_string_bytes")]
    pub max_string_bytes: usize,
    /// Longest log line stored, in bytes: a longer one is cut between characters and ends
    /// with `…[truncated N bytes]`, not refused. Default 1 MiB (agents cut at 32 KiB by
    /// default); 256 to 64 MiB.
    #[serde(default = "default_max_log_line_bytes")]
    pub max_log_line_bytes: usize,
    /// Most metric series (name and labels) an agent may start in a minute; samples of
    /// series past it are refused (`series_rate`) until the next minute. Series this
    /// collector has not seen since it started count as new. Default 10,000 (a host sends a
    /// few hundred); 1 to 10,000,000.
    #[serde(default = "default_max_new_series_per_minute")]
    pub max_new_series_per_minute: usize,
    /// Most distinct names of its own checks (ones the collector does not define) an agent may
    /// report results for since this collector started; results for names past it are
    /// refused (`too_many_checks`). Checks the collector defines are not counted. Default
    /// 1,000 (a real agent runs tens); 1 to 1,000,000.
    #[serde(default = "default_max_check_names")]
    pub max_check_names: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            data_dir: default_data_dir(),
            admin_token: None,
            generate_admin_token: false,
            session_lifetime: default_session_lifetime(),
            max_record_age: default_max_record_age(),
            max_record_ahead: default_max_record_ahead(),
            read_tokens: Vec::new(),
            public_read: false,
            max_body_bytes: default_max_body(),
            max_decoded_bytes: default_max_decoded(),
            max_concurrent_ingest: default_concurrent_ingest(),
            max_request_body_bytes: default_max_request_body(),
            header_timeout: default_header_timeout(),
            idle_timeout: default_idle_timeout(),
            body_timeout: default_body_timeout(),
            request_timeout: default_request_timeout(),
            max_open_connections: default_max_open_connections(),
            max_tail_subscribers: default_max_tail_subscribers(),
            public_url: None,
            max_records_per_batch: default_max_records_per_batch(),
            max_labels_per_record: default_max_labels_per_record(),
            max_label_bytes: default_max_label_bytes(),
            max_string_bytes: default_max_string_bytes(),
            max_log_line_bytes: default_max_log_line_bytes(),
            max_new_series_per_minute: default_max_new_series_per_minute(),
            max_check_names: default_max_check_names(),
        }
    }
}

fn default_session_lifetime() -> Duration {
    Duration::from_secs(12 * 3600)
}
fn default_max_record_age() -> Duration {
    Duration::from_secs(7 * 86_400)
}
fn default_max_record_ahead() -> Duration {
    Duration::from_secs(300)
}
fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7700))
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("./lookout-data")
}
fn default_max_body() -> usize {
    8 << 20
}
fn default_max_decoded() -> usize {
    64 << 20
}
fn default_concurrent_ingest() -> usize {
    128
}
fn default_max_request_body() -> usize {
    64 << 10
}
fn default_header_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_body_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_max_open_connections() -> usize {
    4096
}
fn default_max_tail_subscribers() -> usize {
    64
}

/// The `[server]` limits on connections and requests: each within its range, an idle
/// connection waiting at least as long as a request's headers may take.
fn validate_server_limits(doc: &mut Document<'_>, server: &ServerConfig) {
    let at = KeyPath::key("server");
    let secs = Duration::from_secs;
    let durations = [
        ("header_timeout", server.header_timeout, secs(1), secs(600)),
        ("idle_timeout", server.idle_timeout, secs(1), secs(3600)),
        ("body_timeout", server.body_timeout, secs(1), secs(3600)),
        (
            "request_timeout",
            server.request_timeout,
            secs(1),
            secs(3600),
        ),
    ];
    for (key, value, min, max) in durations {
        if value < min || value > max {
            doc.error_at(
                &at.child(key),
                format!(
                    "must be between {} and {}",
                    crate::duration::format(&min),
                    crate::duration::format(&max)
                ),
            );
        }
    }
    if server.idle_timeout < server.header_timeout {
        doc.error_at(&at.child("idle_timeout"), "must be at least header_timeout");
    }
    let counts = [
        (
            "max_request_body_bytes",
            server.max_request_body_bytes,
            1024,
            1 << 30,
        ),
        (
            "max_open_connections",
            server.max_open_connections,
            1,
            1_000_000,
        ),
        (
            "max_tail_subscribers",
            server.max_tail_subscribers,
            1,
            100_000,
        ),
    ];
    for (key, value, min, max) in counts {
        if !(min..=max).contains(&value) {
            doc.error_at(&at.child(key), format!("must be between {min} and {max}"));
        }
    }
}
fn default_max_records_per_batch() -> usize {
    20_000
}
fn default_max_labels_per_record() -> usize {
    64
}
fn default_max_label_bytes() -> usize {
    1024
}
fn default_max_string_bytes() -> usize {
    16 * 1024
}
fn default_max_log_line_bytes() -> usize {
    1 << 20
}
fn default_max_new_series_per_minute() -> usize {
    10_000
}
fn default_max_check_names() -> usize {
    1_000
}

/// `[storage]`. Its `Debug` hides the URL's password.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Database URL. Default `sqlite://<data_dir>/lookout.db`; `postgres://user:pass@host/db`
    /// (add `?sslmode=require` for TLS) to share one database between collectors. A relative
    /// SQLite path is relative to the working directory.
    #[serde(default)]
    pub url: Option<String>,
    /// Most connections to PostgreSQL from this collector. Default 10.
    #[serde(default = "default_pool")]
    pub max_connections: u32,
    /// How long raw check results and metric samples are kept. Default `"7d"`.
    #[serde(default = "default_raw_retention", with = "crate::duration")]
    pub raw_retention: Duration,
    /// How long per-minute rollups are kept. Default `"30d"`.
    #[serde(default = "default_minute_retention", with = "crate::duration")]
    pub minute_rollup_retention: Duration,
    /// How long per-hour rollups are kept (the status page's 90-day bars, yearly SLA reports).
    /// Default `"730d"`.
    #[serde(default = "default_hour_retention", with = "crate::duration")]
    pub hour_rollup_retention: Duration,
    /// How long log records are kept. Default `"14d"`.
    #[serde(default = "default_log_retention", with = "crate::duration")]
    pub log_retention: Duration,
    /// Most bytes of log text kept; beyond it the oldest days go first. Default 1 GiB.
    #[serde(default = "default_log_max_bytes")]
    pub log_max_bytes: u64,
    /// PostgreSQL only: longest one statement may run before the server cancels it (set on
    /// every connection of the pool), so a costly query fails instead of holding a
    /// connection. Default `"30s"`; 1 s to 1 h. Schema migrations at start are not timed.
    #[serde(default = "default_statement_timeout", with = "crate::duration")]
    pub statement_timeout: Duration,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            url: None,
            max_connections: default_pool(),
            raw_retention: default_raw_retention(),
            minute_rollup_retention: default_minute_retention(),
            hour_rollup_retention: default_hour_retention(),
            log_retention: default_log_retention(),
            log_max_bytes: default_log_max_bytes(),
            statement_timeout: default_statement_timeout(),
        }
    }
}

fn default_pool() -> u32 {
    10
}
fn default_raw_retention() -> Duration {
    Duration::from_secs(7 * 86_400)
}
fn default_minute_retention() -> Duration {
    Duration::from_secs(30 * 86_400)
}
fn default_hour_retention() -> Duration {
    Duration::from_secs(730 * 86_400)
}
fn default_log_retention() -> Duration {
    Duration::from_secs(14 * 86_400)
}
fn default_log_max_bytes() -> u64 {
    1 << 30
}
fn default_statement_timeout() -> Duration {
    Duration::from_secs(30)
}

impl std::fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageConfig")
            .field("url", &self.url.as_deref().map(crate::redact::url))
            .field("max_connections", &self.max_connections)
            .field("raw_retention", &self.raw_retention)
            .field("minute_rollup_retention", &self.minute_rollup_retention)
            .field("hour_rollup_retention", &self.hour_rollup_retention)
            .field("log_retention", &self.log_retention)
            .field("log_max_bytes", &self.log_max_bytes)
            .field("statement_timeout", &self.statement_timeout)
            .finish()
    }
}

impl StorageConfig {
    /// The database URL, with the default filled in.
    pub fn resolved_url(&self, data_dir: &Path) -> String {
        match &self.url {
            Some(u) => u.clone(),
            None => format!("sqlite://{}", data_dir.join("lookout.db").display()),
        }
    }
}

/// `[[agents]]`: one agent allowed to ship.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentEntry {
    /// The agent's name (its `name` setting). Required, unique.
    pub name: String,
    /// The agent's bearer token: at least 24 characters, unique. Write `"${VAR}"` to keep it
    /// out of the file, or give `token_sha256` instead. One of the two is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Token>,
    /// The token's SHA-256 (64 hex digits, `printf %s "$TOKEN" | sha256sum`), instead of
    /// `token`: the file then holds nothing an agent could present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_sha256: Option<TokenDigest>,
    /// While the agent's token is being replaced: the token it had (or `previous_token_sha256`,
    /// its digest), still accepted until removed from here. Default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_token: Option<Token>,
    /// The previous token's SHA-256, instead of `previous_token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_token_sha256: Option<TokenDigest>,
    /// Labels for check selection; these take precedence over the agent's own. Default none.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `true`: the labels the agent sends select checks too (under `labels`, which win).
    /// Default false: what an agent says of itself is shown, never trusted, so a stolen token
    /// cannot claim `role = "db"` to be given the database's checks. Checks that carry secrets
    /// (headers, a body, a password in the URL, a database query) go only to agents selected by
    /// `labels` either way.
    #[serde(default)]
    pub self_labels: bool,
    /// This agent is down when silent this long. Default `[alerting] agent_timeout`, or 3 × the
    /// agent's polling interval and at least 30 s.
    #[serde(default, with = "crate::duration::option")]
    pub agent_timeout: Option<Duration>,
}

impl AgentEntry {
    /// The digests of every token this agent may present: its token and, while it rotates,
    /// the previous one.
    pub fn digests(&self) -> Vec<TokenDigest> {
        let current = self.token.as_ref().map(Token::digest).or(self.token_sha256);
        let previous = self
            .previous_token
            .as_ref()
            .map(Token::digest)
            .or(self.previous_token_sha256);
        current.into_iter().chain(previous).collect()
    }
}

/// `[local_agent]`: an agent inside the collector process that ships through the same ingest
/// path as a remote one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalAgentConfig {
    /// Run the local agent. Default `true` when the section is present.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Its name. Default `"local"`.
    #[serde(default = "default_local_name")]
    pub name: String,
    /// Its labels for check selection. Default none.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Host metrics of the collector's machine.
    #[serde(default)]
    pub host_metrics: HostMetricsConfig,
    /// Its spool, in `<data_dir>/local-agent-spool`.
    #[serde(default)]
    pub spool: SpoolSettings,
}

fn yes() -> bool {
    true
}
fn default_local_name() -> String {
    "local".to_string()
}

const SECTIONS: &[&str] = &[
    "server",
    "storage",
    "agents",
    "local_agent",
    "checks",
    "alerting",
    "channels",
    "routes",
    "maintenance",
    "heartbeats",
    "rules",
    "log_rules",
    "telemetry",
    "status_page",
];

/// No top-level keys besides the sections; reading this reports any unknown one.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoOtherKeys {}

impl CollectorConfig {
    /// Reads and validates a collector configuration file, with `${VAR}` taken from the process
    /// environment.
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        let text = crate::read(path)?;
        Self::parse(path, &text, &|k| std::env::var(k).ok())
    }

    /// Parses and validates a collector configuration from text; `path` is used in errors.
    pub fn parse(path: &Path, text: &str, env: EnvLookup<'_>) -> Result<Self, ConfigErrors> {
        let mut doc = Document::parse(path, text, env)?;
        doc.rest::<NoOtherKeys>(SECTIONS);
        let mut server: ServerConfig = doc.section("server").unwrap_or_default();
        server.admin_token = server.admin_token.filter(|t| !t.is_empty());
        let storage: StorageConfig = doc.section("storage").unwrap_or_default();
        let agents = doc.array_section::<AgentEntry>("agents");
        let local_agent: Option<LocalAgentConfig> = doc.section("local_agent");
        let checks = crate::validate_checks(&mut doc, "checks");
        let alerting: AlertingSettings = doc.section("alerting").unwrap_or_default();
        let telemetry: TelemetryConfig = doc.section("telemetry").unwrap_or_default();
        crate::telemetry::validate(&mut doc, &telemetry, Daemon::Collector);
        let status_page: StatusPageConfig = doc.section("status_page").unwrap_or_default();
        for (i, origin) in status_page.frame_ancestors.iter().enumerate() {
            if let Err(problem) = check_origin(origin) {
                doc.error_at(
                    &KeyPath::key("status_page")
                        .child("frame_ancestors")
                        .index(i),
                    problem,
                );
            }
        }
        if status_page.title.trim().is_empty() || status_page.title.len() > 200 {
            doc.error_at(
                &KeyPath::key("status_page").child("title"),
                "expected 1 to 200 characters",
            );
        }
        let (channels, routes, maintenance) = crate::notify::read(&mut doc);
        let rules = crate::read_named(
            &mut doc,
            "rules",
            "rule",
            |r: &RuleConfig| &r.name,
            RuleConfig::problems,
        );
        let log_rules = crate::read_named(
            &mut doc,
            "log_rules",
            "log rule",
            |r: &LogRuleConfig| &r.name,
            LogRuleConfig::problems,
        );
        for (i, r) in &log_rules {
            if let Some((first, _)) = rules.iter().find(|(_, m)| m.name == r.name) {
                doc.error_at(
                    &KeyPath::key("log_rules").index(*i).child("name"),
                    format!("{:?} is also the name of rules[{first}]", r.name),
                );
            }
        }
        let heartbeats = crate::read_named(
            &mut doc,
            "heartbeats",
            "heartbeat",
            |h: &HeartbeatConfig| &h.name,
            HeartbeatConfig::problems,
        );
        if alerting
            .agent_timeout
            .is_some_and(|t| t < Duration::from_secs(5) || t > Duration::from_secs(86_400))
        {
            doc.error_at(
                &KeyPath::key("alerting").child("agent_timeout"),
                "must be between 5s and 1d",
            );
        }
        if alerting.give_up_after < Duration::from_secs(60)
            || alerting.give_up_after > Duration::from_secs(30 * 86_400)
        {
            doc.error_at(
                &KeyPath::key("alerting").child("give_up_after"),
                "must be between 1m and 30d",
            );
        }
        if let Some(u) = &server.public_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            doc.error_at(
                &KeyPath::key("server").child("public_url"),
                format!("{u:?}: expected an http:// or https:// URL"),
            );
        }

        if let Some(u) = &storage.url
            && !(u.starts_with("sqlite:")
                || u.starts_with("postgres://")
                || u.starts_with("postgresql://"))
        {
            doc.error_at(
                &KeyPath::key("storage").child("url"),
                format!("{u:?}: expected sqlite://PATH or postgres://..."),
            );
        }
        let at = KeyPath::key("storage");
        if storage.max_connections == 0 {
            doc.error_at(&at.child("max_connections"), "must be at least 1");
        }
        if storage.raw_retention < Duration::from_secs(3600) {
            doc.error_at(&at.child("raw_retention"), "must be at least 1h");
        }
        if storage.minute_rollup_retention < storage.raw_retention {
            doc.error_at(
                &at.child("minute_rollup_retention"),
                "must be at least raw_retention",
            );
        }
        if !(Duration::from_secs(1)..=Duration::from_secs(3600))
            .contains(&storage.statement_timeout)
        {
            doc.error_at(&at.child("statement_timeout"), "must be 1s to 1h");
        }
        if storage.hour_rollup_retention < storage.minute_rollup_retention {
            doc.error_at(
                &at.child("hour_rollup_retention"),
                "must be at least minute_rollup_retention",
            );
        }
        if server.max_concurrent_ingest == 0 {
            doc.error_at(
                &KeyPath::key("server").child("max_concurrent_ingest"),
                "must be at least 1",
            );
        }
        validate_server_limits(&mut doc, &server);
        if server.max_body_bytes < 1024 {
            doc.error_at(
                &KeyPath::key("server").child("max_body_bytes"),
                "must be at least 1024",
            );
        }
        if let Some(t) = &server.admin_token
            && let Err(problem) = t.check_strength()
        {
            doc.error_at(&KeyPath::key("server").child("admin_token"), problem);
        }
        for (i, t) in server.read_tokens.iter().enumerate() {
            let at = KeyPath::key("server").child("read_tokens").index(i);
            if let Err(problem) = t.check_strength() {
                doc.error_at(&at, problem);
            } else if server.admin_token.as_ref() == Some(t) {
                doc.error_at(&at, "the same as admin_token: a read token must not write");
            }
        }
        if server.session_lifetime < Duration::from_secs(1) {
            doc.error_at(
                &KeyPath::key("server").child("session_lifetime"),
                "must be at least 1s",
            );
        }
        if server.max_record_age < Duration::from_secs(3600) {
            doc.error_at(
                &KeyPath::key("server").child("max_record_age"),
                "must be at least 1h",
            );
        }
        if server.max_record_ahead < Duration::from_secs(1) {
            doc.error_at(
                &KeyPath::key("server").child("max_record_ahead"),
                "must be at least 1s",
            );
        }
        validate_ingest_limits(&mut doc, &server);
        if server.max_decoded_bytes < server.max_body_bytes {
            doc.error_at(
                &KeyPath::key("server").child("max_decoded_bytes"),
                "must be at least max_body_bytes",
            );
        }
        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut tokens: HashMap<TokenDigest, usize> = HashMap::new();
        for (i, a) in &agents {
            let at = KeyPath::key("agents").index(*i);
            if a.name.trim().is_empty() {
                doc.error_at(&at.child("name"), "must not be empty");
            } else if let Some(first) = names.insert(&a.name, *i) {
                doc.error_at(
                    &at.child("name"),
                    format!(
                        "duplicate agent name {:?} (first at agents[{first}])",
                        a.name
                    ),
                );
            }
            if a.agent_timeout.is_some_and(|d| d < Duration::from_secs(5)) {
                doc.error_at(&at.child("agent_timeout"), "must be at least 5s");
            }
            validate_agent_tokens(&mut doc, &at, a, *i, &mut tokens);
        }
        if let Some(local) = &local_agent {
            let at = KeyPath::key("local_agent");
            if local.name.trim().is_empty() {
                doc.error_at(&at.child("name"), "must not be empty");
            } else if local.enabled && names.contains_key(local.name.as_str()) {
                doc.error_at(
                    &at.child("name"),
                    format!("{:?} is also the name of an [[agents]] entry", local.name),
                );
            }
            validate_host_metrics(&mut doc, &local.host_metrics, &at.child("host_metrics"));
            validate_spool(&mut doc, &local.spool, &at.child("spool"));
        }
        doc.finish(CollectorConfig {
            server,
            storage,
            agents: agents.into_iter().map(|(_, a)| a).collect(),
            local_agent: local_agent.filter(|l| l.enabled),
            checks,
            alerting,
            channels,
            routes,
            maintenance,
            heartbeats: heartbeats.into_iter().map(|(_, h)| h).collect(),
            rules: rules.into_iter().map(|(_, r)| r).collect(),
            log_rules: log_rules.into_iter().map(|(_, r)| r).collect(),
            telemetry,
            status_page,
        })
    }

    /// The checks assigned to an agent with this name and labels.
    /// The checks an agent is given: those its configured `labels` select and, when its
    /// `[[agents]]` entry has `self_labels` (the caller passes what it `claims` then), those
    /// its claims select too (under `labels`, which win) unless they carry secrets. In the
    /// configuration's order.
    pub fn assigned(
        &self,
        agent: &str,
        labels: &BTreeMap<String, String>,
        claims: Option<&BTreeMap<String, String>>,
    ) -> Vec<&CheckConfig> {
        let claimed = claims.map(|c| {
            let mut merged = c.clone();
            merged.extend(labels.clone());
            merged
        });
        self.checks
            .iter()
            .filter(|c| {
                c.runs_on(agent, labels)
                    || claimed
                        .as_ref()
                        .is_some_and(|m| !c.has_secrets() && c.runs_on(agent, m))
            })
            .collect()
    }

    /// The checks whose `run_on` selects an agent with these labels.
    pub fn checks_for(&self, agent: &str, labels: &BTreeMap<String, String>) -> Vec<CheckConfig> {
        self.checks
            .iter()
            .filter(|c| c.runs_on(agent, labels))
            .cloned()
            .collect()
    }
}

/// What an agent may send, each bound between a floor that real agents never hit and a
/// ceiling past which the bound would not bound anything.
fn validate_ingest_limits(doc: &mut Document<'_>, server: &ServerConfig) {
    for (key, value, lo, hi) in [
        (
            "max_records_per_batch",
            server.max_records_per_batch,
            1,
            1_000_000,
        ),
        (
            "max_labels_per_record",
            server.max_labels_per_record,
            1,
            10_000,
        ),
        ("max_label_bytes", server.max_label_bytes, 16, 65_536),
        ("max_string_bytes", server.max_string_bytes, 64, 1 << 20),
        (
            "max_log_line_bytes",
            server.max_log_line_bytes,
            256,
            64 << 20,
        ),
        (
            "max_new_series_per_minute",
            server.max_new_series_per_minute,
            1,
            10_000_000,
        ),
        ("max_check_names", server.max_check_names, 1, 1_000_000),
    ] {
        if !(lo..=hi).contains(&value) {
            doc.error_at(
                &KeyPath::key("server").child(key),
                format!("must be between {lo} and {hi}"),
            );
        }
    }
}

/// An agent's tokens: one of `token` and `token_sha256` (and at most one of the previous pair),
/// each strong, none shared with another agent.
fn validate_agent_tokens(
    doc: &mut Document<'_>,
    at: &KeyPath,
    a: &AgentEntry,
    i: usize,
    seen: &mut HashMap<TokenDigest, usize>,
) {
    let pairs = [
        ("token", &a.token, "token_sha256", &a.token_sha256, true),
        (
            "previous_token",
            &a.previous_token,
            "previous_token_sha256",
            &a.previous_token_sha256,
            false,
        ),
    ];
    for (plain_key, plain, hashed_key, hashed, required) in pairs {
        let digest = match (plain, hashed) {
            (Some(_), Some(_)) => {
                doc.error_at(
                    &at.child(hashed_key),
                    format!("give {plain_key} or {hashed_key}, not both"),
                );
                continue;
            }
            (None, None) => {
                if required {
                    doc.error_at(
                        &at.child(plain_key),
                        format!("required: {plain_key} (or {hashed_key})"),
                    );
                }
                continue;
            }
            (Some(t), None) => {
                if let Err(problem) = t.check_strength() {
                    doc.error_at(&at.child(plain_key), problem);
                    continue;
                }
                t.digest()
            }
            (None, Some(d)) => *d,
        };
        let key = if plain.is_some() {
            plain_key
        } else {
            hashed_key
        };
        if let Some(first) = seen.insert(digest, i) {
            let whose = if first == i {
                "the same token as this agent's other one".to_string()
            } else {
                format!("the same token as agents[{first}]: each agent needs its own")
            };
            doc.error_at(&at.child(key), whose);
        }
    }
}

/// An origin as a Content-Security-Policy source: `https://host[:port]`, nothing after it.
fn check_origin(origin: &str) -> Result<(), String> {
    let bad = || {
        format!(
            "{origin:?}: expected an origin such as \"https://intranet.example.com\" (scheme, host, optional port)"
        )
    };
    let url = url::Url::parse(origin).map_err(|_| bad())?;
    let bare = url.path() == "/" && url.query().is_none() && url.fragment().is_none();
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none()
        || !url.username().is_empty()
        || !bare
        || origin.ends_with('/')
        || origin
            .chars()
            .any(|c| c.is_whitespace() || c == ';' || c == ',')
    {
        return Err(bad());
    }
    Ok(())
}
