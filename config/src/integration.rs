//! `[[integrations]]`: metric sources the agent reads from the services on its server (Redis's
//! `INFO`, PostgreSQL's statistics views), each on its own interval, shipped as metrics beside
//! the host's. They exist so that a service's own figures (memory, evictions, replication) are data with alerts on them,
//! from the agent already on the server, without an exporter per service (docs/integrations.md).
//!
//! An entry names its `type` and its peer (`url`); `name` tells two of one type apart (the
//! `integration` label of every sample). Only implemented types are accepted: a type the
//! project plans but does not have yet is refused with the list of those it has.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::document::{Document, KeyPath};
use crate::logs::LogSourceConfig;

/// The integration types the agent has.
pub const IMPLEMENTED: &[&str] = &["redis", "nginx", "prometheus", "postgresql", "containers"];

/// Types planned but not in this agent yet.
const PLANNED: &[&str] = &[];

/// The `containers` integration's default `url`: the Docker Engine API's socket.
pub const DEFAULT_CONTAINERS_URL: &str = "unix:///var/run/docker.sock";

/// Shortest `interval`.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Longest `interval`.
pub const MAX_INTERVAL: Duration = Duration::from_secs(3600);
/// The default `interval`.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15);
/// The longest default `timeout` (it is also at most half the interval).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Most extra `labels` on one integration.
pub const MAX_LABELS: usize = 32;
/// Longest label key or value, in bytes.
pub const MAX_LABEL_BYTES: usize = 256;

/// Label keys the agent sets itself, which `labels` may not hold.
pub const RESERVED_LABELS: &[&str] = &[
    "agent",
    "integration",
    "type",
    "db",
    "replica",
    "state",
    "operation",
    "container",
    "image",
    "compose_project",
    "compose_service",
    "status",
    "direction",
];

/// Which integration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IntegrationType {
    /// nginx, through its `stub_status` page (`url = "http://127.0.0.1/status"`).
    Nginx,
    /// PostgreSQL, through its statistics views
    /// (`url = "postgres://user:pass@host:port/db?sslmode=..."`).
    Postgresql,
    /// Redis, through `INFO` (`url = "redis://[:password@]host:port"`).
    Redis,
    /// A Prometheus text or OpenMetrics endpoint (`url = "http://127.0.0.1:9100/metrics"`).
    Prometheus,
    /// Containers, through the Docker Engine API on a unix socket
    /// (`url = "unix:///var/run/docker.sock"`, the default; podman's serves the same API).
    Containers,
}

impl IntegrationType {
    /// The name in the configuration (`type = "redis"`).
    pub fn as_str(self) -> &'static str {
        match self {
            IntegrationType::Nginx => "nginx",
            IntegrationType::Postgresql => "postgresql",
            IntegrationType::Redis => "redis",
            IntegrationType::Prometheus => "prometheus",
            IntegrationType::Containers => "containers",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "nginx" => Some(IntegrationType::Nginx),
            "postgresql" => Some(IntegrationType::Postgresql),
            "redis" => Some(IntegrationType::Redis),
            "prometheus" => Some(IntegrationType::Prometheus),
            "containers" => Some(IntegrationType::Containers),
            _ => None,
        }
    }

    fn schemes(self) -> &'static [&'static str] {
        match self {
            IntegrationType::Nginx => &["http", "https"],
            IntegrationType::Postgresql => &["postgres", "postgresql"],
            // No `rediss`: the agent's Redis client is built without TLS.
            IntegrationType::Redis => &["redis"],
            IntegrationType::Prometheus => &["http", "https"],
            IntegrationType::Containers => &["unix"],
        }
    }
}

impl fmt::Display for IntegrationType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `[[integrations]]` entry as written.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIntegration {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default, with = "crate::duration::option")]
    interval: Option<Duration>,
    #[serde(default, with = "crate::duration::option")]
    timeout: Option<Duration>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    keep: Option<String>,
    #[serde(default)]
    drop: Option<String>,
    #[serde(default)]
    max_body_bytes: Option<usize>,
    #[serde(default)]
    max_series: Option<usize>,
    #[serde(default)]
    access_log: Option<String>,
    #[serde(default)]
    log_format: Option<String>,
    #[serde(default)]
    logs: Option<bool>,
}

/// How an nginx access log's lines are written (`log_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessLogFormat {
    /// nginx's `combined`, optionally with `$request_time` appended after a space.
    Combined,
    /// One JSON object a line, as docs/integrations.md's `log_format lookout escape=json`.
    Json,
}

/// An nginx integration's access log: which file, written how.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessLog {
    /// The file's path, as a `[[logs]]` entry tails it.
    pub path: String,
    /// How its lines are written.
    pub format: AccessLogFormat,
}

/// One `[[integrations]]` entry, validated, with its defaults filled in.
#[derive(Clone, PartialEq)]
pub struct IntegrationConfig {
    /// `type`: what is read. Required; one of [`IMPLEMENTED`].
    pub kind: IntegrationType,
    /// `name`: the `integration` label of its samples; unique among the agent's integrations.
    /// Default: the type (`"redis"`).
    pub name: String,
    /// `url`: where the peer is. For `nginx`, its `stub_status` page (`http(s)://...`). For `redis`, `redis://[:password@]host:port[/db]` (no TLS:
    /// `rediss://` is refused); a password in it is sent with AUTH and never logged. Required.
    /// `url`: where the peer is. For `redis`, `redis://[:password@]host:port[/db]` (no TLS:
    /// `rediss://` is refused); a password in it is sent with AUTH and never logged. For
    /// `postgresql`, `postgres://user:password@host:port/db?sslmode=...` (TLS as `sslmode`
    /// says); the password is never logged. Required.
    pub url: String,
    /// `interval`: time between two reads. Default `"15s"`; 1 s to 1 h.
    pub interval: Duration,
    /// `timeout`: longest one read may take (connecting included). Default 5 s or half the
    /// interval, whichever is shorter; more than 0 and less than `interval`.
    pub timeout: Duration,
    /// `labels`: extra labels on every sample of this integration. Default none; at most 32,
    /// keys and values at most 256 bytes, keys not empty and none of [`RESERVED_LABELS`].
    pub labels: BTreeMap<String, String>,
    /// `keep` (`prometheus` only): a regex a metric's name must match, whole, to be kept.
    /// Default: every name.
    pub keep: Option<String>,
    /// `drop` (`prometheus` only): a regex; a metric whose name matches it, whole, is dropped
    /// (after `keep`). Default: none.
    pub drop: Option<String>,
    /// `max_body_bytes` (`prometheus` only): the largest answer read; a larger one is a failed
    /// read. Default [`DEFAULT_MAX_BODY_BYTES`], at most [`MAX_MAX_BODY_BYTES`].
    pub max_body_bytes: usize,
    /// `max_series` (`prometheus` only): most series kept from one scrape; the rest are counted
    /// and left. Default [`DEFAULT_MAX_SERIES`], at most [`MAX_MAX_SERIES`].
    pub max_series: usize,
    /// `access_log` and `log_format` (`nginx` only): the access log whose lines a `[[logs]]`
    /// entry tails, counted by status class, bytes and `$request_time`. `log_format` is
    /// `"combined"` (the default) or `"json"`. Default none.
    pub access_log: Option<AccessLog>,
    /// `logs` (`containers` only): ship every container's output (stdout and stderr) as log
    /// lines, resumed after restarts without loss or duplicates. Default false.
    pub logs: bool,
}

/// Default `max_body_bytes`: 8 MiB (node_exporter's page is about 100 KiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 << 20;
/// Largest `max_body_bytes`: 64 MiB.
pub const MAX_MAX_BODY_BYTES: usize = 64 << 20;
/// Default `max_series`.
pub const DEFAULT_MAX_SERIES: usize = 10_000;
/// Largest `max_series`.
pub const MAX_MAX_SERIES: usize = 100_000;

/// Shows the URL with its password hidden.
impl fmt::Debug for IntegrationConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntegrationConfig")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("url", &crate::redact::url(&self.url))
            .field("interval", &self.interval)
            .field("timeout", &self.timeout)
            .field("labels", &self.labels)
            .field("keep", &self.keep)
            .field("drop", &self.drop)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_series", &self.max_series)
            .field("access_log", &self.access_log)
            .field("logs", &self.logs)
            .finish()
    }
}

impl IntegrationConfig {
    /// The URL with any password hidden, for logs.
    pub fn redacted_url(&self) -> String {
        crate::redact::url(&self.url)
    }
}

/// Reads `[[integrations]]`, reporting each entry's problems at its key and names used twice.
pub(crate) fn read(doc: &mut Document<'_>, logs: &[LogSourceConfig]) -> Vec<IntegrationConfig> {
    let items = doc.array_section::<RawIntegration>("integrations");
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::new();
    for (i, raw) in items {
        let at = KeyPath::key("integrations").index(i);
        let (resolved, problems) = resolve(raw, logs);
        for (field, problem) in problems {
            doc.error_at(&at.child(field), problem);
        }
        let Some(c) = resolved else { continue };
        if let Some(first) = seen.insert(c.name.clone(), i) {
            doc.error_at(
                &at.child("name"),
                format!(
                    "duplicate integration name {:?} (first at integrations[{first}]): set \
                     `name` to tell them apart",
                    c.name
                ),
            );
        }
        out.push(c);
    }
    out
}

/// The entry with its defaults, or none when it cannot be used; its problems as (key,
/// sentence).
fn resolve(
    raw: RawIntegration,
    logs: &[LogSourceConfig],
) -> (Option<IntegrationConfig>, Vec<(&'static str, String)>) {
    let mut out = Vec::new();
    let kind = IntegrationType::parse(&raw.kind);
    if kind.is_none() {
        let known = if PLANNED.contains(&raw.kind.as_str()) {
            format!("type {:?} is not implemented yet", raw.kind)
        } else {
            format!("unknown type {:?}", raw.kind)
        };
        out.push((
            "type",
            format!("{known}: this agent has {}", IMPLEMENTED.join(", ")),
        ));
    }
    if let Some(n) = &raw.name
        && n.trim().is_empty()
    {
        out.push((
            "name",
            "must not be empty (leave it out for the type)".into(),
        ));
    }
    let url = match (raw.url.clone(), kind) {
        (None, Some(IntegrationType::Containers)) => Some(DEFAULT_CONTAINERS_URL.to_string()),
        (u, _) => u,
    };
    match (&url, kind) {
        (Some(u), Some(IntegrationType::Containers)) => match url::Url::parse(u) {
            Ok(p)
                if p.scheme() == "unix"
                    && p.path().starts_with('/')
                    && p.host_str().is_none_or(str::is_empty) => {}
            _ => out.push((
                "url",
                format!("{u:?}: expected a unix socket's path, as \"{DEFAULT_CONTAINERS_URL}\""),
            )),
        },
        (None, Some(k)) => out.push(("url", format!("is required for type {:?}", k.as_str()))),
        (Some(u), Some(k)) => match url::Url::parse(u) {
            Ok(p) if k.schemes().contains(&p.scheme()) => {}
            Ok(p) => out.push((
                "url",
                format!(
                    "scheme {:?} is not supported: expected {}",
                    p.scheme(),
                    k.schemes().join(" or ")
                ),
            )),
            // The URL may hold a password: never echo it.
            Err(e) => out.push(("url", format!("is not a valid URL: {e}"))),
        },
        (_, None) => {}
    }
    let interval = raw.interval.unwrap_or(DEFAULT_INTERVAL);
    if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&interval) {
        out.push(("interval", "must be 1s to 1h".into()));
    }
    let timeout = raw.timeout.unwrap_or(DEFAULT_TIMEOUT.min(interval / 2));
    if timeout.is_zero() {
        out.push(("timeout", "must be more than 0s".into()));
    } else if timeout >= interval {
        out.push((
            "timeout",
            format!(
                "{} is not less than the interval ({}): a read must end before the next starts",
                crate::duration::format(&timeout),
                crate::duration::format(&interval)
            ),
        ));
    }
    if raw.labels.len() > MAX_LABELS {
        out.push(("labels", format!("at most {MAX_LABELS} labels")));
    }
    for (k, v) in &raw.labels {
        if k.trim().is_empty() {
            out.push(("labels", "a label key must not be empty".into()));
        } else if RESERVED_LABELS.contains(&k.as_str()) {
            out.push((
                "labels",
                format!(
                    "{k:?} is set by the agent: pick another key (reserved: {})",
                    RESERVED_LABELS.join(", ")
                ),
            ));
        } else if k.len() > MAX_LABEL_BYTES || v.len() > MAX_LABEL_BYTES {
            out.push((
                "labels",
                format!("{k:?}: keys and values at most {MAX_LABEL_BYTES} bytes"),
            ));
        }
    }
    let prometheus = kind == Some(IntegrationType::Prometheus);
    for (key, re) in [("keep", &raw.keep), ("drop", &raw.drop)] {
        match re {
            Some(_) if !prometheus && kind.is_some() => {
                out.push((key, "is for type \"prometheus\" only".into()));
            }
            Some(re) => {
                if let Err(e) = regex::Regex::new(&format!("^(?:{re})$")) {
                    out.push((key, format!("is not a valid regex: {e}")));
                }
            }
            None => {}
        }
    }
    for (key, value, max) in [
        ("max_body_bytes", raw.max_body_bytes, MAX_MAX_BODY_BYTES),
        ("max_series", raw.max_series, MAX_MAX_SERIES),
    ] {
        match value {
            Some(_) if !prometheus && kind.is_some() => {
                out.push((key, "is for type \"prometheus\" only".into()));
            }
            Some(v) if v == 0 || v > max => {
                out.push((key, format!("must be 1 to {max}")));
            }
            _ => {}
        }
    }
    if raw.logs.is_some() && kind.is_some() && kind != Some(IntegrationType::Containers) {
        out.push(("logs", "is for type \"containers\" only".into()));
    }
    let access_log = access_log(&raw, kind, logs, &mut out);
    let resolved = match (kind, url) {
        (Some(kind), Some(url)) if out.is_empty() => Some(IntegrationConfig {
            kind,
            name: raw.name.unwrap_or_else(|| kind.as_str().to_string()),
            url,
            interval,
            timeout,
            labels: raw.labels,
            keep: raw.keep,
            drop: raw.drop,
            max_body_bytes: raw.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES),
            max_series: raw.max_series.unwrap_or(DEFAULT_MAX_SERIES),
            access_log,
            logs: raw.logs.unwrap_or(false),
        }),
        _ => None,
    };
    (resolved, out)
}

/// `access_log` and `log_format`, checked: nginx only, and the file tailed by a `[[logs]]`
/// entry without `multiline_start` (the integration counts the lines the tailer reads).
fn access_log(
    raw: &RawIntegration,
    kind: Option<IntegrationType>,
    logs: &[LogSourceConfig],
    out: &mut Vec<(&'static str, String)>,
) -> Option<AccessLog> {
    let nginx = kind == Some(IntegrationType::Nginx);
    let format = match raw.log_format.as_deref() {
        None | Some("combined") => AccessLogFormat::Combined,
        Some("json") => AccessLogFormat::Json,
        Some(other) => {
            out.push((
                "log_format",
                format!("unknown format {other:?}: expected \"combined\" or \"json\""),
            ));
            return None;
        }
    };
    let Some(path) = &raw.access_log else {
        if raw.log_format.is_some() {
            out.push(("log_format", "is for `access_log`, which is not set".into()));
        }
        return None;
    };
    if !nginx {
        out.push(("access_log", "is for type \"nginx\" only".into()));
        return None;
    }
    let tailing = logs.iter().find(|l| {
        l.paths
            .iter()
            .any(|p| p == path || glob::Pattern::new(p).is_ok_and(|g| g.matches(path)))
    });
    match tailing {
        None => out.push((
            "access_log",
            format!(
                "no [[logs]] entry tails {path:?}: add one with `paths = [{path:?}]` (the \
                 integration counts the lines the agent tails)"
            ),
        )),
        Some(l) if l.multiline_start.is_some() => out.push((
            "access_log",
            format!(
                "the [[logs]] entry tailing {path:?} has `multiline_start`: an access log has \
                 one request a line"
            ),
        )),
        Some(_) => {}
    }
    Some(AccessLog {
        path: path.clone(),
        format,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::agent::parse_after_identity as parse;

    fn err(extra: &str) -> String {
        parse(extra).expect_err(extra)
    }

    #[test]
    fn a_redis_integration_takes_its_defaults() {
        let c = parse("[[integrations]]\ntype = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\n")
            .unwrap();
        let i = &c.integrations[0];
        assert_eq!(i.name, "redis");
        assert_eq!(i.interval, Duration::from_secs(15));
        assert_eq!(i.timeout, Duration::from_secs(5));
        assert!(i.labels.is_empty());
        // A short interval shortens the default timeout to half of it.
        let c = parse(
            "[[integrations]]\ntype = \"redis\"\nurl = \"redis://h:1\"\ninterval = \"2s\"\n\
             labels = { env = \"prod\" }\nname = \"cache\"\n",
        )
        .unwrap();
        let i = &c.integrations[0];
        assert_eq!(
            (i.name.as_str(), i.timeout),
            ("cache", Duration::from_secs(1))
        );
        assert_eq!(i.labels["env"], "prod");
        assert!(parse("").unwrap().integrations.is_empty());
    }

    #[test]
    fn types_not_implemented_are_refused_with_the_implemented_ones() {
        let e = err("[[integrations]]\ntype = \"memcached\"\nurl = \"x://h\"\n");
        assert!(
            e.contains(
                "type: unknown type \"memcached\": this agent has redis, nginx, prometheus, \
                 postgresql, containers"
            ),
            "{e}"
        );
        let e = err("[[integrations]]\nurl = \"redis://h:1\"\n");
        assert!(e.contains("missing field `type`"), "{e}");
        let e = err("[[integrations]]\ntype = \"redis\"\nurl = \"redis://h:1\"\nport = 1\n");
        assert!(e.contains("unknown field `port`"), "{e}");
    }

    #[test]
    fn url_is_required_checked_and_its_password_never_shown() {
        let e = err("[[integrations]]\ntype = \"redis\"\n");
        assert!(
            e.contains("integrations[0].url: is required for type \"redis\""),
            "{e}"
        );
        let e = err("[[integrations]]\ntype = \"redis\"\nurl = \"http://h:1\"\n");
        assert!(
            e.contains("url: scheme \"http\" is not supported: expected redis"),
            "{e}"
        );
        let e = err("[[integrations]]\ntype = \"redis\"\nurl = \"rediss://h:1\"\n");
        assert!(
            e.contains("url: scheme \"rediss\" is not supported: expected redis"),
            "{e}"
        );
        let e = err("[[integrations]]\ntype = \"redis\"\nurl = \"redis://:s3cret@[bad\"\n");
        assert!(e.contains("url: is not a valid URL"), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
        let c = parse("[[integrations]]\ntype = \"redis\"\nurl = \"redis://:s3cret@h:6379\"\n")
            .unwrap();
        let shown = format!("{:?} {}", c, c.integrations[0].redacted_url());
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("redis://***@h:6379"), "{shown}");
    }

    #[test]
    fn an_nginx_integration_takes_its_status_page_over_http() {
        let c =
            parse("[[integrations]]\ntype = \"nginx\"\nurl = \"http://127.0.0.1:8080/status\"\n")
                .unwrap();
        let i = &c.integrations[0];
        assert_eq!(
            (i.name.as_str(), i.url.as_str()),
            ("nginx", "http://127.0.0.1:8080/status")
        );
        assert!(parse("[[integrations]]\ntype = \"nginx\"\nurl = \"https://h/status\"\n").is_ok());
        let e = err("[[integrations]]\ntype = \"nginx\"\nurl = \"redis://h:1\"\n");
        assert!(
            e.contains("url: scheme \"redis\" is not supported: expected http or https"),
            "{e}"
        );
        let e = err("[[integrations]]\ntype = \"nginx\"\n");
        assert!(e.contains("url: is required for type \"nginx\""), "{e}");
    }

    #[test]
    fn a_postgresql_integration_takes_both_schemes_and_hides_its_password() {
        for scheme in ["postgres", "postgresql"] {
            let c = parse(&format!(
                "[[integrations]]\ntype = \"postgresql\"\n\
                 url = \"{scheme}://mon:pw-9f2e@127.0.0.1:5432/app?sslmode=require\"\n"
            ))
            .unwrap();
            let i = &c.integrations[0];
            assert_eq!(i.name, "postgresql");
            let shown = format!("{c:?} {}", i.redacted_url());
            assert!(!shown.contains("pw-9f2e"), "{shown}");
        }
        let e = err("[[integrations]]\ntype = \"postgresql\"\nurl = \"mysql://h/db\"\n");
        assert!(
            e.contains("url: scheme \"mysql\" is not supported: expected postgres or postgresql"),
            "{e}"
        );
    }

    #[test]
    fn an_access_log_must_be_tailed_and_its_format_known() {
        let nginx = "[[integrations]]\ntype = \"nginx\"\nurl = \"http://h/status\"\n";
        let logs = "[[logs]]\npaths = [\"/var/log/nginx/*.log\"]\n";
        let c = parse(&format!(
            "{nginx}access_log = \"/var/log/nginx/access.log\"\nlog_format = \"json\"\n{logs}"
        ))
        .unwrap();
        assert_eq!(
            c.integrations[0].access_log,
            Some(super::AccessLog {
                path: "/var/log/nginx/access.log".into(),
                format: super::AccessLogFormat::Json
            })
        );
        let c = parse(&format!(
            "{nginx}access_log = \"/var/log/nginx/access.log\"\n{logs}"
        ))
        .unwrap();
        let a = c.integrations[0].access_log.as_ref().unwrap();
        assert_eq!(a.format, super::AccessLogFormat::Combined);
        let e = err(&format!("{nginx}access_log = \"/srv/a.log\"\n{logs}"));
        assert!(
            e.contains("integrations[0].access_log: no [[logs]] entry tails \"/srv/a.log\""),
            "{e}"
        );
        let e = err(&format!(
            "{nginx}access_log = \"/var/log/nginx/a.log\"\n{logs}multiline_start = \"^x\"\n"
        ));
        assert!(e.contains("has `multiline_start`"), "{e}");
        let e = err(&format!(
            "{nginx}access_log = \"/var/log/nginx/a.log\"\nlog_format = \"main\"\n{logs}"
        ));
        assert!(
            e.contains("log_format: unknown format \"main\": expected \"combined\" or \"json\""),
            "{e}"
        );
        let e = err(&format!("{nginx}log_format = \"json\"\n"));
        assert!(e.contains("log_format: is for `access_log`"), "{e}");
        let e = err(&format!(
            "[[integrations]]\ntype = \"redis\"\nurl = \"redis://h:1\"\n\
             access_log = \"/var/log/nginx/a.log\"\n{logs}"
        ));
        assert!(e.contains("access_log: is for type \"nginx\" only"), "{e}");
    }

    #[test]
    fn a_containers_integration_takes_the_docker_socket_by_default_and_logs_on_demand() {
        let c = parse("[[integrations]]\ntype = \"containers\"\n").unwrap();
        let i = &c.integrations[0];
        assert_eq!(
            (i.name.as_str(), i.url.as_str(), i.logs),
            ("containers", "unix:///var/run/docker.sock", false)
        );
        let c = parse(
            "[[integrations]]\ntype = \"containers\"\nurl = \"unix:///run/podman/podman.sock\"\n\
             logs = true\n",
        )
        .unwrap();
        assert_eq!(
            (c.integrations[0].url.as_str(), c.integrations[0].logs),
            ("unix:///run/podman/podman.sock", true)
        );
        for bad in ["http://h:2375", "unix://host/d.sock", "unix:d.sock"] {
            let e = err(&format!(
                "[[integrations]]\ntype = \"containers\"\nurl = \"{bad}\"\n"
            ));
            assert!(
                e.contains("integrations[0].url: ") && e.contains("expected a unix socket's path"),
                "{bad}: {e}"
            );
        }
        let e = err("[[integrations]]\ntype = \"redis\"\nurl = \"redis://h:1\"\nlogs = true\n");
        assert!(e.contains("logs: is for type \"containers\" only"), "{e}");
    }

    #[test]
    fn interval_and_timeout_are_bounded() {
        let one = |keys: &str| {
            err(&format!(
                "[[integrations]]\ntype = \"redis\"\nurl = \"redis://h:1\"\n{keys}\n"
            ))
        };
        assert!(
            one("interval = \"500ms\"").contains("interval: must be 1s to 1h"),
            "{}",
            one("interval = \"500ms\"")
        );
        assert!(one("interval = \"2h\"").contains("interval: must be 1s to 1h"));
        assert!(one("timeout = \"0s\"").contains("timeout: must be more than 0s"));
        let e = one("interval = \"10s\"\ntimeout = \"10s\"");
        assert!(
            e.contains("timeout: 10s is not less than the interval (10s)"),
            "{e}"
        );
    }

    #[test]
    fn names_are_unique_and_labels_bounded() {
        let e = err(
            "[[integrations]]\ntype = \"redis\"\nurl = \"redis://h:1\"\n\
             [[integrations]]\ntype = \"redis\"\nurl = \"redis://h:2\"\n",
        );
        assert!(
            e.contains(
                "integrations[1].name: duplicate integration name \"redis\" (first at \
                 integrations[0])"
            ),
            "{e}"
        );
        let e = err("[[integrations]]\ntype = \"redis\"\nurl = \"redis://h:1\"\nname = \" \"\n");
        assert!(e.contains("name: must not be empty"), "{e}");
        let e = err(
            "[[integrations]]\ntype = \"redis\"\nurl = \"redis://h:1\"\n\
             labels = { integration = \"x\" }\n",
        );
        assert!(
            e.contains("labels: \"integration\" is set by the agent"),
            "{e}"
        );
        let long = "v".repeat(257);
        let e = err(&format!(
            "[[integrations]]\ntype = \"redis\"\nurl = \"redis://h:1\"\nlabels = {{ k = \"{long}\" }}\n"
        ));
        assert!(e.contains("keys and values at most 256 bytes"), "{e}");
        let many: Vec<String> = (0..33).map(|i| format!("k{i} = \"v\"")).collect();
        let e = err(&format!(
            "[[integrations]]\ntype = \"redis\"\nurl = \"redis://h:1\"\nlabels = {{ {} }}\n",
            many.join(", ")
        ));
        assert!(e.contains("labels: at most 32 labels"), "{e}");
    }

    #[test]
    fn a_prometheus_integration_takes_http_a_keep_and_drop_regex_and_its_limits() {
        let c = parse(
            "[[integrations]]\ntype = \"prometheus\"\nurl = \"http://127.0.0.1:9100/metrics\"\n\
             keep = \"node_(memory|cpu)_.*\"\ndrop = \"node_cpu_guest.*\"\n",
        )
        .unwrap();
        let i = &c.integrations[0];
        assert_eq!(
            (i.name.as_str(), i.kind.as_str()),
            ("prometheus", "prometheus")
        );
        assert_eq!(i.keep.as_deref(), Some("node_(memory|cpu)_.*"));
        assert_eq!(i.drop.as_deref(), Some("node_cpu_guest.*"));
        assert_eq!(i.max_body_bytes, super::DEFAULT_MAX_BODY_BYTES);
        assert_eq!(i.max_series, super::DEFAULT_MAX_SERIES);
        let one = |keys: &str| {
            err(&format!(
                "[[integrations]]\ntype = \"prometheus\"\nurl = \"https://h/metrics\"\n{keys}\n"
            ))
        };
        let e = one("keep = \"node_(\"");
        assert!(
            e.contains("integrations[0].keep: is not a valid regex"),
            "{e}"
        );
        let e = one("max_series = 0");
        assert!(e.contains("max_series: must be 1 to 100000"), "{e}");
        let e = one("max_body_bytes = 67108865");
        assert!(e.contains("max_body_bytes: must be 1 to 67108864"), "{e}");
        let e = err("[[integrations]]\ntype = \"prometheus\"\nurl = \"redis://h:1\"\n");
        assert!(
            e.contains("url: scheme \"redis\" is not supported: expected http or https"),
            "{e}"
        );
        let e = err(
            "[[integrations]]\ntype = \"redis\"\nurl = \"redis://h:1\"\ndrop = \"x\"\nmax_series = 5\n",
        );
        assert!(e.contains("drop: is for type \"prometheus\" only"), "{e}");
        assert!(
            e.contains("max_series: is for type \"prometheus\" only"),
            "{e}"
        );
    }
}
