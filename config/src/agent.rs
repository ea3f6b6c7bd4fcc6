//! The agent's configuration (`lookout-agent --config agent.toml`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::check::CheckConfig;
use crate::document::{Document, EnvLookup, KeyPath};
use crate::error::ConfigErrors;
use crate::logs::{JournaldConfig, LogSourceConfig};
use crate::telemetry::{Daemon, TelemetryConfig};
use crate::token::Token;

/// Everything an agent needs to run.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    /// The agent's identity: its name, where it ships to, its token and labels.
    pub identity: AgentIdentity,
    /// Host metrics collection.
    pub host_metrics: HostMetricsConfig,
    /// Batching and retry of what the agent ships.
    pub shipping: ShippingConfig,
    /// The durable spool.
    pub spool: SpoolSettings,
    /// Checks defined on this agent (run in addition to those the collector assigns).
    pub checks: Vec<CheckConfig>,
    /// Log files to tail and ship (`[[logs]]`).
    pub logs: Vec<LogSourceConfig>,
    /// The systemd journal as a log source (`[journald]`).
    pub journald: JournaldConfig,
    /// The agent's own telemetry: spans, Sentry, `/metrics` (`[telemetry]`).
    pub telemetry: TelemetryConfig,
    /// `[fallback]`: a message of the agent's own when no collector acknowledges its batches.
    /// None: off.
    pub fallback: Option<crate::watch::FallbackConfig>,
    /// `[[integrations]]`: services on this server whose metrics the agent reads (Redis, ...).
    pub integrations: Vec<crate::integration::IntegrationConfig>,
    /// `[otlp]`: the OpenTelemetry receiver for the server's apps. None (no section): off.
    pub otlp: Option<crate::otlp::OtlpConfig>,
}

/// The top-level keys of an agent's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentIdentity {
    /// The agent's name, as the collector knows it (`[[agents]] name`). Required.
    pub name: String,
    /// The collector's base URL, or a list of them tried in order (failover). Required.
    pub collector: CollectorUrls,
    /// The bearer token that the collector's `[[agents]]` entry has for this agent; write
    /// `"${LOOKOUT_AGENT_TOKEN}"` to keep it out of the file. Required unless the agent
    /// enrols (`enroll_token`); default none.
    #[serde(default)]
    pub token: Token,
    /// The fleet's enrolment token (the collector's `[enrollment] token`), used only when the
    /// agent has no credential of its own: no `token` here and no `credential` file in
    /// `data_dir`. The agent then enrols under its `name` and keeps the credential it is given
    /// in `<data_dir>/credential` (mode 0600) from then on. Default none; an empty string (an
    /// unset `"${LOOKOUT_ENROLL_TOKEN:-}"`) is none too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enroll_token: Option<Token>,
    /// What this server is, asked for at enrolment (only with `enroll_token`): `"permanent"`
    /// (its silence pages) or `"ephemeral"` (an autoscaled server, retired without a page).
    /// Default none: the collector's `[enrollment] lifecycle` decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<crate::collector::Lifecycle>,
    /// Where the agent keeps its state. Default `"/var/lib/lookout-agent"`.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Labels that central checks select on (`run_on = ["role=web"]`): a table, or one string
    /// `"key=value,key=value"` (for `"${LOOKOUT_AGENT_LABELS:-}"`; [`crate::labels`]). Default
    /// none. The collector's `[[agents]] labels`, where set, take precedence.
    #[serde(default, deserialize_with = "crate::labels::deserialize")]
    pub labels: BTreeMap<String, String>,
    /// Most probes running at once; more wait their turn (their timeout starts when they run).
    /// Default 256.
    #[serde(default = "default_max_concurrent_probes")]
    pub max_concurrent_probes: usize,
    /// A PEM bundle of the CAs that sign the collector's certificate (a private CA), trusted
    /// for `https://` collectors *instead of* the system's roots. Default none: the system's
    /// roots. An `https://` collector is always verified; nothing turns that off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    /// The agent's client certificate chain (PEM), for a collector with `[server.tls]
    /// client_ca`: its DNS subjectAltName (or, without one, its common name) must be this
    /// agent's `name`. Set with `key`. Default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// The private key of `cert` (PEM: PKCS#8, RSA or SEC1). Default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
}

/// The default of `max_concurrent_probes`.
pub fn default_max_concurrent_probes() -> usize {
    256
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/lookout-agent")
}

/// One collector URL or several, tried in order.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CollectorUrls {
    /// A single collector.
    One(String),
    /// Several collectors, tried in order.
    Many(Vec<String>),
}

/// Shows the URLs with any password hidden.
impl std::fmt::Debug for CollectorUrls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let urls: Vec<String> = self.urls().iter().map(|u| crate::redact::url(u)).collect();
        f.debug_list().entries(urls).finish()
    }
}

impl CollectorUrls {
    /// The URLs in order of preference.
    pub fn urls(&self) -> Vec<String> {
        match self {
            CollectorUrls::One(u) => vec![u.clone()],
            CollectorUrls::Many(v) => v.clone(),
        }
    }
}

/// `[host_metrics]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostMetricsConfig {
    /// Collect host metrics at all. Default `true`.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Time between two samples. Default `"10s"`; at least 1 s.
    #[serde(default = "default_metrics_interval", with = "crate::duration")]
    pub interval: Duration,
    /// Which groups to collect, from [`HOST_METRIC_GROUPS`]. Default (empty): all of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// TCP sockets counted by state (`system.network.connections`), from the kernel's socket
    /// table (`/proc/net/tcp`, `tcp6`), besides the `connections` group's counters. Default
    /// `false`: reading the table walks every bucket of the kernel's connection hash, which is
    /// sized by memory, not by sockets (about 1.5 ms a file on a 24 GiB host, each interval).
    /// Needs the `connections` group.
    #[serde(default)]
    pub tcp_states: bool,
}

/// The host metric groups: `cpu`, `load`, `memory`, `filesystem`, `disk`, `network`,
/// `pressure`, `connections`, `files`, `processes`, `uptime`.
pub const HOST_METRIC_GROUPS: &[&str] = &[
    "cpu",
    "load",
    "memory",
    "filesystem",
    "disk",
    "network",
    "pressure",
    "connections",
    "files",
    "processes",
    "uptime",
];

impl HostMetricsConfig {
    /// True when `group` is to be collected.
    pub fn collects(&self, group: &str) -> bool {
        self.groups.is_empty() || self.groups.iter().any(|g| g == group)
    }
}

impl Default for HostMetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: default_metrics_interval(),
            groups: Vec::new(),
            tcp_states: false,
        }
    }
}

fn yes() -> bool {
    true
}

fn default_metrics_interval() -> Duration {
    Duration::from_secs(10)
}

/// `[shipping]`: how records are batched and sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShippingConfig {
    /// Longest a record waits before its batch is sent, so records travel in batches, except a
    /// steady result (`steady_wait`). Default `"1s"`. A check result that changes the check's
    /// state (up to failing, failing to up) does not wait: it is sent at once.
    #[serde(default = "default_flush", with = "crate::duration")]
    pub flush_interval: Duration,
    /// Longest a steady result (a pass after passes, once `success_threshold` of them in a row
    /// have cleared any failure) waits for a batch: it says nothing new, so it rides with a
    /// later one. Never longer than its check's interval; when that is shorter than
    /// `flush_interval`, `flush_interval`. Default `"10s"`.
    #[serde(default = "default_steady_wait", with = "crate::duration")]
    pub steady_wait: Duration,
    /// Most records in one batch. Default 1000.
    #[serde(default = "default_batch_records")]
    pub max_batch_records: usize,
    /// Most bytes of records (as JSON, before compression) in one batch. Default 1 MiB; keep it
    /// well under the collector's `max_decoded_bytes`.
    #[serde(default = "default_batch_bytes")]
    pub max_batch_bytes: usize,
    /// How often assignments are fetched from the collector. Default `"15s"`.
    #[serde(default = "default_assignments_interval", with = "crate::duration")]
    pub assignments_interval: Duration,
    /// Longest wait between two retries of a failed send. Default `"30s"`.
    #[serde(default = "default_max_backoff", with = "crate::duration")]
    pub max_backoff: Duration,
    /// Time one request to the collector may take. Default `"10s"`.
    #[serde(default = "default_request_timeout", with = "crate::duration")]
    pub request_timeout: Duration,
    /// Largest answer from the collector read, in bytes (an assignments document; an error's
    /// text is read only to its first few KiB). A longer one is not read: the assignments
    /// stay as they were and the agent says why. Default 16 MiB; 1 KiB to 1 GiB.
    #[serde(default = "default_max_answer_bytes")]
    pub max_answer_bytes: usize,
}

impl Default for ShippingConfig {
    fn default() -> Self {
        Self {
            flush_interval: default_flush(),
            steady_wait: default_steady_wait(),
            max_batch_records: default_batch_records(),
            max_batch_bytes: default_batch_bytes(),
            assignments_interval: default_assignments_interval(),
            max_backoff: default_max_backoff(),
            request_timeout: default_request_timeout(),
            max_answer_bytes: default_max_answer_bytes(),
        }
    }
}

fn default_flush() -> Duration {
    Duration::from_secs(1)
}
fn default_steady_wait() -> Duration {
    Duration::from_secs(10)
}
fn default_batch_records() -> usize {
    1000
}
fn default_batch_bytes() -> usize {
    1 << 20
}
fn default_assignments_interval() -> Duration {
    Duration::from_secs(15)
}
fn default_max_backoff() -> Duration {
    Duration::from_secs(30)
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_max_answer_bytes() -> usize {
    16 << 20
}

/// `[spool]`: every record is written here before it is shipped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolSettings {
    /// Most bytes on disk; when full, the oldest unsent records are dropped and counted.
    /// Default 1 GiB; at least 65536.
    #[serde(default = "default_spool_bytes")]
    pub max_bytes: u64,
    /// Size of one segment file. Default 8 MiB.
    #[serde(default = "default_segment_bytes")]
    pub segment_bytes: u64,
    /// When records are synced to disk: `"always"`, `"never"` (the OS decides), or a duration
    /// such as `"1s"` (the default): a power failure loses at most that much. A crash of the
    /// agent alone loses nothing under any setting.
    #[serde(default)]
    pub fsync: Fsync,
}

impl Default for SpoolSettings {
    fn default() -> Self {
        Self {
            max_bytes: default_spool_bytes(),
            segment_bytes: default_segment_bytes(),
            fsync: Fsync::default(),
        }
    }
}

fn default_spool_bytes() -> u64 {
    1 << 30
}
fn default_segment_bytes() -> u64 {
    8 << 20
}

/// The spool's sync policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// After every record.
    Always,
    /// At most this long after a write.
    Every(Duration),
    /// Left to the operating system.
    Never,
}

impl Default for Fsync {
    fn default() -> Self {
        // A second, not less: records arrive spread over time (each check on its own phase),
        // so a shorter window syncs once per record, and the batch bookkeeping once more. At
        // 100 ms that was a third of the agent's CPU (docs/host-metrics.md).
        Fsync::Every(Duration::from_secs(1))
    }
}

impl Serialize for Fsync {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Fsync::Always => s.serialize_str("always"),
            Fsync::Never => s.serialize_str("never"),
            Fsync::Every(d) => s.serialize_str(&crate::duration::format(d)),
        }
    }
}

impl<'de> Deserialize<'de> for Fsync {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "always" => Ok(Fsync::Always),
            "never" => Ok(Fsync::Never),
            other => crate::duration::parse(other)
                .map(Fsync::Every)
                .map_err(|e| {
                    serde::de::Error::custom(format!(
                        "expected \"always\", \"never\" or a duration: {e}"
                    ))
                }),
        }
    }
}

pub(crate) fn validate_spool(doc: &mut Document<'_>, s: &SpoolSettings, at: &KeyPath) {
    if s.max_bytes < 1 << 16 {
        doc.error_at(&at.child("max_bytes"), "must be at least 65536");
    }
    if s.segment_bytes < 4096 || s.segment_bytes > s.max_bytes / 2 {
        doc.error_at(
            &at.child("segment_bytes"),
            "must be at least 4096 and at most half of max_bytes",
        );
    }
    if s.fsync == Fsync::Every(Duration::ZERO) {
        doc.error_at(&at.child("fsync"), "a zero interval: write \"always\"");
    }
}

const SECTIONS: &[&str] = &[
    "host_metrics",
    "shipping",
    "spool",
    "checks",
    "logs",
    "journald",
    "telemetry",
    "fallback",
    "integrations",
    "otlp",
];

impl AgentConfig {
    /// Reads and validates an agent configuration file, with `${VAR}` taken from the process
    /// environment.
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        let text = crate::read(path)?;
        Self::parse(path, &text, &|k| std::env::var(k).ok())
    }

    /// Parses and validates an agent configuration from text; `path` is used in errors.
    pub fn parse(path: &Path, text: &str, env: EnvLookup<'_>) -> Result<Self, ConfigErrors> {
        let mut doc = Document::parse(path, text, env)?;
        let mut identity = doc.rest::<AgentIdentity>(SECTIONS);
        if let Some(id) = identity.as_mut() {
            // Empty is unset: one file serves agents with a token and agents that enrol (the
            // container image's, configured by variables).
            id.enroll_token = id.enroll_token.take().filter(|t| !t.is_empty());
        }
        let host_metrics = doc.section("host_metrics").unwrap_or_default();
        let shipping = doc.section("shipping").unwrap_or_default();
        let spool: SpoolSettings = doc.section("spool").unwrap_or_default();
        let journald: JournaldConfig = doc.section("journald").unwrap_or_default();
        let telemetry: TelemetryConfig = doc.section("telemetry").unwrap_or_default();
        crate::telemetry::validate(&mut doc, &telemetry, Daemon::Agent);
        validate_spool(&mut doc, &spool, &KeyPath::key("spool"));
        let checks = crate::validate_checks(&mut doc, "checks");
        let logs: Vec<LogSourceConfig> = doc
            .array_section("logs")
            .into_iter()
            .map(|(i, l)| {
                crate::logs::validate(&mut doc, i, &l);
                l
            })
            .collect();
        if let Some(id) = &identity {
            validate_identity(&mut doc, id);
        }
        validate_host_metrics(&mut doc, &host_metrics, &KeyPath::key("host_metrics"));
        validate_shipping(&mut doc, &shipping);
        let fallback = crate::watch::read_fallback(&mut doc);
        let integrations = crate::integration::read(&mut doc, &logs);
        let otlp = crate::otlp::read(&mut doc);
        let Some(identity) = identity else {
            return Err(doc.into_errors());
        };
        doc.finish(AgentConfig {
            identity,
            host_metrics,
            shipping,
            spool,
            checks,
            logs,
            journald,
            telemetry,
            fallback,
            integrations,
            otlp,
        })
    }
}

fn validate_identity(doc: &mut Document<'_>, id: &AgentIdentity) {
    if id.name.trim().is_empty() {
        doc.error_at(&KeyPath::key("name"), "must not be empty");
    }
    match &id.enroll_token {
        _ if !id.token.is_empty() => {
            if let Err(problem) = id.token.check_strength() {
                doc.error_at(&KeyPath::key("token"), problem);
            }
        }
        None => doc.error_at(&KeyPath::key("token"), "required: token (or enroll_token)"),
        Some(_) => {}
    }
    if let Some(t) = &id.enroll_token
        && let Err(problem) = t.check_strength()
    {
        doc.error_at(&KeyPath::key("enroll_token"), problem);
    }
    if id.lifecycle.is_some() && id.enroll_token.is_none() {
        doc.error_at(
            &KeyPath::key("lifecycle"),
            "is asked for at enrolment, so it needs enroll_token; an agent with a token of its \
             own has its lifecycle in the collector's [[agents]] entry",
        );
    }
    let urls = id.collector.urls();
    if urls.is_empty() {
        doc.error_at(&KeyPath::key("collector"), "expected at least one URL");
    }
    match (&id.cert, &id.key) {
        (Some(_), None) => doc.error_at(
            &KeyPath::key("cert"),
            "needs `key`, the certificate's private key",
        ),
        (None, Some(_)) => {
            doc.error_at(&KeyPath::key("key"), "needs `cert`, the client certificate")
        }
        _ => {}
    }
    for (key, path) in [("ca", &id.ca), ("cert", &id.cert), ("key", &id.key)] {
        if path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            doc.error_at(&KeyPath::key(key), "must be a file's path, not empty");
        }
    }
    for (i, u) in urls.iter().enumerate() {
        let path = match id.collector {
            CollectorUrls::One(_) => KeyPath::key("collector"),
            CollectorUrls::Many(_) => KeyPath::key("collector").index(i),
        };
        match url::Url::parse(u) {
            Ok(p) if matches!(p.scheme(), "http" | "https") => {}
            Ok(p) => doc.error_at(
                &path,
                format!("scheme {:?}: expected http or https", p.scheme()),
            ),
            Err(e) => doc.error_at(&path, format!("{u:?} is not a valid URL: {e}")),
        }
    }
}

pub(crate) fn validate_host_metrics(doc: &mut Document<'_>, h: &HostMetricsConfig, at: &KeyPath) {
    for (i, g) in h.groups.iter().enumerate() {
        if !HOST_METRIC_GROUPS.contains(&g.as_str()) {
            doc.error_at(
                &at.child("groups").index(i),
                format!(
                    "unknown group {g:?}: expected one of {}",
                    HOST_METRIC_GROUPS.join(", ")
                ),
            );
        }
    }
    if h.interval < Duration::from_secs(1) {
        doc.error_at(&at.child("interval"), "must be at least 1s");
    }
    if h.tcp_states && !h.collects("connections") {
        doc.error_at(
            &at.child("tcp_states"),
            "needs the \"connections\" group, which `groups` leaves out",
        );
    }
}

fn validate_shipping(doc: &mut Document<'_>, s: &ShippingConfig) {
    let at = KeyPath::key("shipping");
    if s.max_batch_bytes < 1024 {
        doc.error_at(&at.child("max_batch_bytes"), "must be at least 1024");
    }
    if s.max_batch_records == 0 {
        doc.error_at(&at.child("max_batch_records"), "must be at least 1");
    }
    if s.assignments_interval < Duration::from_secs(1) {
        doc.error_at(&at.child("assignments_interval"), "must be at least 1s");
    }
    if s.request_timeout.is_zero() {
        doc.error_at(&at.child("request_timeout"), "must be more than 0s");
    }
    if !(1024..=1 << 30).contains(&s.max_answer_bytes) {
        doc.error_at(
            &at.child("max_answer_bytes"),
            "must be at least 1024 and at most 1073741824 (1 GiB)",
        );
    }
}

/// An agent's configuration of a name, a loopback collector and a token, then `extra`, parsed
/// from `a.toml`: the errors as text. For the tests of the sections.
#[cfg(test)]
pub(crate) fn parse_after_identity(extra: &str) -> Result<AgentConfig, String> {
    const BASE: &str = "name = \"a1\"\ncollector = \"http://127.0.0.1:7700\"\n\
                        token = \"a1b2c3d4e5f6a7b8c9d0e1f2a3b4\"\n";
    AgentConfig::parse(Path::new("a.toml"), &format!("{BASE}{extra}"), &|_| None)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tls_tests {
    use std::path::Path;

    use super::AgentConfig;

    const BASE: &str = "name = \"a1\"\ncollector = \"https://c.example:7700\"\n\
                        token = \"a1b2c3d4e5f6a7b8c9d0e1f2a3b4\"\n";

    fn parse(extra: &str) -> Result<AgentConfig, String> {
        AgentConfig::parse(Path::new("a.toml"), &format!("{BASE}{extra}"), &|_| None)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn ca_and_client_certificate_are_read_beside_the_collector() {
        let id = parse("").unwrap().identity;
        assert_eq!((id.ca, id.cert, id.key), (None, None, None));
        let id = parse("ca = \"/etc/lookout/ca.pem\"\ncert = \"a1.pem\"\nkey = \"a1.key\"\n")
            .unwrap()
            .identity;
        assert_eq!(id.ca.as_deref(), Some(Path::new("/etc/lookout/ca.pem")));
        assert_eq!(id.cert.as_deref(), Some(Path::new("a1.pem")));
        assert_eq!(id.key.as_deref(), Some(Path::new("a1.key")));
    }

    #[test]
    fn a_certificate_needs_its_key_and_verification_cannot_be_turned_off() {
        let errs = parse("cert = \"a1.pem\"\n").unwrap_err();
        assert!(errs.contains("a.toml:4:8: cert: needs `key`"), "{errs}");
        let errs = parse("key = \"a1.key\"\n").unwrap_err();
        assert!(errs.contains("key: needs `cert`"), "{errs}");
        let errs = parse("ca = \"\"\n").unwrap_err();
        assert!(
            errs.contains("ca: must be a file's path, not empty"),
            "{errs}"
        );
        for off in [
            "insecure = true\n",
            "tls_verify = false\n",
            "danger_accept_invalid_certs = true\n",
        ] {
            let errs = parse(off).unwrap_err();
            assert!(errs.contains("unknown field"), "{off}: {errs}");
        }
    }
}
