//! The collector's configuration (`lookout-collector --config collector.toml`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::agent::{HostMetricsConfig, SpoolSettings, validate_host_metrics, validate_spool};
use crate::check::CheckConfig;
use crate::document::{Document, EnvLookup, KeyPath};
use crate::error::ConfigErrors;
use crate::escalation::EscalationConfig;
use crate::heartbeat::HeartbeatConfig;
use crate::log_rule::LogRuleConfig;
use crate::notify::{AlertingSettings, ChannelConfig, MaintenanceConfig, RouteConfig};
use crate::rule::RuleConfig;
use crate::telemetry::{Daemon, TelemetryConfig};
use crate::token::{Token, TokenDigest};

pub mod enrollment;
mod install;
pub use install::InstallConfig;
mod server;
pub use enrollment::{EnrollmentConfig, Lifecycle};
mod tls;
pub use server::ServerConfig;
use server::{validate_ingest_limits, validate_server_limits};
pub use tls::ServerTlsConfig;

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
    /// `[[escalations]]`: policies of steps that routes name instead of channels.
    pub escalations: Vec<EscalationConfig>,
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
    /// `[enrollment]`: agents that enrol themselves with a fleet token. None: enrolment is
    /// off.
    pub enrollment: Option<EnrollmentConfig>,
    /// `[install]`: the agent binaries and CA that `GET /install.sh` installs.
    pub install: InstallConfig,
    /// `[watchdog]`: an external heartbeat pinged while the collector is healthy. None: off.
    pub watchdog: Option<crate::watch::WatchdogConfig>,
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
    /// `permanent` (the default): silence past `agent_timeout` pages. `ephemeral`: a server an
    /// autoscaling group may remove; its silence never pages, and after `retire_after` it is
    /// retired (its checks count the agents that remain, its history stays).
    #[serde(default)]
    pub lifecycle: Lifecycle,
    /// How long an ephemeral agent may be silent before it is retired. Default 15 min; at
    /// least 5 s. Only for `lifecycle = "ephemeral"`.
    #[serde(default, with = "crate::duration::option")]
    pub retire_after: Option<Duration>,
}

/// How long an ephemeral agent is silent before it is retired, unless it says otherwise.
pub const DEFAULT_RETIRE_AFTER: Duration = Duration::from_secs(15 * 60);

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
    "enrollment",
    "local_agent",
    "checks",
    "alerting",
    "channels",
    "routes",
    "maintenance",
    "escalations",
    "heartbeats",
    "rules",
    "log_rules",
    "telemetry",
    "status_page",
    "install",
    "watchdog",
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
        // An empty token (an unset `"${LOOKOUT_ENROLL_TOKEN:-}"`) leaves enrolment off, as an
        // empty admin_token leaves the API's writes closed: the container image's one
        // configuration serves with and without it.
        let enrollment = doc
            .section::<EnrollmentConfig>("enrollment")
            .filter(|e| e.token_sha256.is_some() || !e.token.as_ref().is_some_and(Token::is_empty));
        if let Some(e) = &enrollment {
            enrollment::validate(&mut doc, e);
            if let Some(d) = e.digest()
                && let Some(i) = agents.iter().position(|(_, a)| a.digests().contains(&d))
            {
                doc.error_at(
                    &KeyPath::key("enrollment").child("token"),
                    format!("the same token as agents[{i}]: the enrolment token must be its own"),
                );
            }
        }
        let checks = crate::validate_checks(&mut doc, "checks");
        let alerting: AlertingSettings = doc.section("alerting").unwrap_or_default();
        let telemetry: TelemetryConfig = doc.section("telemetry").unwrap_or_default();
        crate::telemetry::validate(&mut doc, &telemetry, Daemon::Collector);
        let install: InstallConfig = doc.section("install").unwrap_or_default();
        install::validate(&mut doc, &install);
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
        let (channels, routes, maintenance, escalations) = crate::notify::read(&mut doc);
        let watchdog = crate::watch::read_watchdog(&mut doc);
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
        if alerting.ack_link_lifetime < Duration::from_secs(60)
            || alerting.ack_link_lifetime > Duration::from_secs(30 * 86_400)
        {
            doc.error_at(
                &KeyPath::key("alerting").child("ack_link_lifetime"),
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
        // GET /install.sh writes it into a shell variable and an agent's TOML string.
        if let Some(u) = &server.public_url
            && u.chars()
                .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\\' | '\''))
        {
            doc.error_at(
                &KeyPath::key("server").child("public_url"),
                format!("{u:?}: a URL holds no white space, quote or backslash"),
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
        if let Some(t) = &server.tls {
            tls::validate_tls(&mut doc, t);
        }
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
            if a.retire_after.is_some_and(|d| d < Duration::from_secs(5)) {
                doc.error_at(&at.child("retire_after"), "must be at least 5s");
            } else if a.retire_after.is_some() && a.lifecycle == Lifecycle::Permanent {
                doc.error_at(
                    &at.child("retire_after"),
                    "only an agent with lifecycle = \"ephemeral\" is retired: set lifecycle, \
                     or remove retire_after",
                );
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
            escalations,
            heartbeats: heartbeats.into_iter().map(|(_, h)| h).collect(),
            rules: rules.into_iter().map(|(_, r)| r).collect(),
            log_rules: log_rules.into_iter().map(|(_, r)| r).collect(),
            telemetry,
            status_page,
            enrollment,
            install,
            watchdog,
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
