//! `[[checks]]`: what to probe, how often, and on which agents. The same schema serves the
//! collector's central checks, an agent's local checks and the wire form of assignments.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::condition::Condition;
pub use crate::selector::Selector;

/// The kind of probe a check runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckType {
    /// An HTTP(S) request; up when the status is one of `expected_status` (default 2xx).
    Http,
    /// A TCP connection to `address`; optionally `send` something and `expect` an answer.
    Tcp,
    /// A TLS handshake with `address`: the chain, its earliest expiry, the name.
    Tls,
    /// A DNS query for `query` of type `record`.
    Dns,
    /// An ICMP echo to `host`, through an unprivileged ICMP socket.
    Icmp,
    /// A PostgreSQL connection (`url`) running `query` (default `SELECT 1`).
    Postgres,
    /// A Redis connection (`url`, with the password in it for AUTH) answering `PING`.
    Redis,
    /// An SMTP server at `address`: banner, EHLO, optionally STARTTLS.
    Smtp,
    /// gRPC's health checking protocol at `url` (`grpc://` or `grpcs://`): up when the
    /// `service` is `SERVING`.
    Grpc,
    /// A WebSocket at `url` (`ws://` or `wss://`); optionally `send` a message and test the reply.
    Websocket,
    /// A domain's registration expiry, from its registry's RDAP service.
    Domain,
    /// A container (`container`, or `compose_service`) running, and healthy when it has a
    /// health check, through the Docker Engine API (`url`, default the Docker socket).
    Container,
}

impl CheckType {
    /// Every type, in the order the docs list them.
    pub const ALL: [CheckType; 12] = [
        CheckType::Http,
        CheckType::Tcp,
        CheckType::Tls,
        CheckType::Dns,
        CheckType::Icmp,
        CheckType::Postgres,
        CheckType::Redis,
        CheckType::Smtp,
        CheckType::Grpc,
        CheckType::Websocket,
        CheckType::Domain,
        CheckType::Container,
    ];

    /// The name used in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckType::Http => "http",
            CheckType::Tcp => "tcp",
            CheckType::Tls => "tls",
            CheckType::Dns => "dns",
            CheckType::Icmp => "icmp",
            CheckType::Postgres => "postgres",
            CheckType::Redis => "redis",
            CheckType::Smtp => "smtp",
            CheckType::Grpc => "grpc",
            CheckType::Websocket => "websocket",
            CheckType::Domain => "domain",
            CheckType::Container => "container",
        }
    }
}

impl fmt::Display for CheckType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which address family to connect over.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum IpVersion {
    /// The system resolver's order (getaddrinfo, so `/etc/gai.conf` applies), trying each
    /// address in turn.
    #[default]
    #[serde(rename = "any")]
    Any,
    /// IPv4 addresses only.
    #[serde(rename = "4")]
    V4,
    /// IPv6 addresses only.
    #[serde(rename = "6")]
    V6,
}

/// DNS record types a `dns` check can ask for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RecordType {
    /// IPv4 address.
    #[default]
    A,
    /// IPv6 address.
    Aaaa,
    /// Canonical name.
    Cname,
    /// Mail exchanger.
    Mx,
    /// Text.
    Txt,
    /// Name server.
    Ns,
}

/// One check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckConfig {
    /// Unique name of the check; it names the check in the API, the status page and alerts.
    pub name: String,
    /// The probe to run (`http`).
    #[serde(rename = "type")]
    pub kind: CheckType,
    /// Time between two probes. Default `"30s"`; at least 1 s.
    #[serde(default = "default_interval", with = "crate::duration")]
    pub interval: Duration,
    /// Time one probe may take before it counts as failed. Default `"10s"`; at most `interval`.
    #[serde(default = "default_timeout", with = "crate::duration")]
    pub timeout: Duration,
    /// The group the status page shows it in (`"API"`). Default none: the "Other" group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Agents that run this check: every selector (`"label=value"`, or `"name=<agent>"`) must
    /// match the agent's labels. Empty (the default): every agent. Ignored on an agent's local
    /// checks, which that agent always runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub run_on: Vec<Selector>,
    /// `http`: the URL to request (`http://` or `https://`). Required for `http`, and for
    /// `postgres`, `redis`, `grpc` (`grpc://host:port`, `grpcs://`) and `websocket` (`ws://`,
    /// `wss://`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `http`: the request method. Default `"GET"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// `http`: the statuses that count as up. Default: any 2xx, unless a condition tests
    /// `[STATUS]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expected_status: Vec<u16>,
    /// `http`, `websocket`: request headers, name to value. Sent only to the origin (scheme,
    /// host, port) of `url`: none after a redirect leaves it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// `http`: the request body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// `http`: follow redirects (default true), at most `max_redirects` (default 10).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub follow_redirects: bool,
    /// `http`: most redirects followed. Default 10.
    #[serde(default = "default_max_redirects")]
    pub max_redirects: u8,
    /// `http`, `tls`, `smtp`, `grpc`, `websocket`: verify the certificate chain and name
    /// (default true). When false, the chain is still read and its expiry reported.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub tls_verify: bool,
    /// `http`, `tls`, `smtp`, `grpc`, `websocket`: a PEM file of CA certificates trusted besides
    /// the system's (`ca_file` is accepted too).
    #[serde(default, alias = "ca_file", skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
    /// `http`, `tcp`, `tls`, `smtp`, `grpc`, `websocket`: `"any"` (default: the system's order), `"4"` or `"6"`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub ip_version: IpVersion,
    /// `tcp`, `tls`, `smtp`: `host:port` to connect to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// `tcp`: text sent once connected (`\n` and `\r` as escapes in TOML). `websocket`: a text
    /// message sent once connected; the first message back is `[BODY]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send: Option<String>,
    /// `tcp`: text the answer must contain (read until found, at most 64 KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<String>,
    /// `tls`: the name to ask for and verify. Default: the host of `address`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// `dns`: the record type. Default `"A"` (`record_type` is accepted too).
    #[serde(default, alias = "record_type", skip_serializing_if = "is_default")]
    pub record: RecordType,
    /// `dns`: the server to ask (`ip` or `ip:port`). Default: the system's (`/etc/resolv.conf`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolver: Option<String>,
    /// `dns`: values that must all be among the answers (`"10.0.0.1"`, `"10 mail.example.com."`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expected: Vec<String>,
    /// `dns`: the response code that counts as up. Default `"NOERROR"`, unless a condition
    /// tests `[DNS_RCODE]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rcode: Option<String>,
    /// `icmp`: the host to ping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// `dns`: the name to look up (required). `postgres`: the SQL to run (default `SELECT 1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// `smtp`: upgrade with STARTTLS after EHLO (and fail if the server does not offer it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub starttls: bool,
    /// `grpc`: the service whose health is asked for. Default `""`: the server as a whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// `domain`: the registered domain whose expiry is read (`example.com`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// `domain`: where the RDAP bootstrap registry (RFC 9224) is read, a URL or a file path.
    /// Default IANA's, `https://data.iana.org/rdap/dns.json`; kept a day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rdap_bootstrap: Option<String>,
    /// `container`: the container's name (`/` prefix or not). Either this or `compose_service`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// `container`: a Docker Compose service (its `com.docker.compose.service` label): up when
    /// one of its containers is running and healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compose_service: Option<String>,
    /// `container`: with `compose_service`, only the containers of this Compose project
    /// (`com.docker.compose.project`). Default: any project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compose_project: Option<String>,
    /// Conditions that must all hold (see [`crate::condition`]), on top of the type's own test.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Failures in a row that confirm the check down at one agent. Default 2.
    #[serde(default = "default_failure_threshold")]
    pub failure_threshold: u32,
    /// Successes in a row that confirm it up again at one agent. Default 1.
    #[serde(default = "default_success_threshold")]
    pub success_threshold: u32,
    /// Agents that must see the check down for it to be down. Default: a majority of those
    /// reporting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum: Option<u32>,
    /// The severity of its alert, for routing. Default `"critical"`.
    #[serde(default = "default_severity")]
    pub severity: String,
    /// After a failure, probe again this soon, so an outage is confirmed quickly and a blip is
    /// not taken for one. Default: a fifth of `interval`.
    #[serde(
        default,
        with = "crate::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub retry_interval: Option<Duration>,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

fn default_failure_threshold() -> u32 {
    2
}

fn default_success_threshold() -> u32 {
    1
}

pub(crate) fn default_severity() -> String {
    "critical".to_string()
}

fn default_max_redirects() -> u8 {
    10
}

fn default_interval() -> Duration {
    Duration::from_secs(30)
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

impl CheckConfig {
    /// Problems with this check's values, each as (key, message). Empty when valid.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(g) = &self.group
            && (g.trim().is_empty() || g.len() > 100)
        {
            out.push(("group", format!("{g:?}: expected 1 to 100 characters")));
        }
        if self.name.trim().is_empty() {
            out.push(("name", "must not be empty".to_string()));
        } else if self.name.len() > 200 || self.name.contains(['/', '?', '#']) {
            out.push((
                "name",
                format!(
                    "{:?}: expected at most 200 characters and no '/', '?' or '#'",
                    self.name
                ),
            ));
        }
        if self.interval < Duration::from_secs(1) {
            out.push(("interval", "must be at least 1s".to_string()));
        }
        if self.timeout.is_zero() {
            out.push(("timeout", "must be more than 0s".to_string()));
        } else if self.timeout > self.interval {
            out.push((
                "timeout",
                format!(
                    "{} is longer than the interval ({}): expected at most the interval",
                    crate::duration::format(&self.timeout),
                    crate::duration::format(&self.interval)
                ),
            ));
        }
        for (key, v) in [
            ("failure_threshold", self.failure_threshold),
            ("success_threshold", self.success_threshold),
            ("quorum", self.quorum.unwrap_or(1)),
        ] {
            if v == 0 {
                out.push((key, "must be at least 1".to_string()));
            }
        }
        if self.severity.trim().is_empty() {
            out.push(("severity", "must not be empty".to_string()));
        }
        if let Some(r) = self.retry_interval
            && (r.is_zero() || r > self.interval)
        {
            out.push((
                "retry_interval",
                format!(
                    "{} must be more than 0s and at most the interval ({})",
                    crate::duration::format(&r),
                    crate::duration::format(&self.interval)
                ),
            ));
        }
        match self.kind {
            CheckType::Http => self.http_problems(&mut out),
            CheckType::Tcp | CheckType::Tls | CheckType::Smtp => {
                self.address_problems(&mut out);
            }
            CheckType::Dns => self.dns_problems(&mut out),
            CheckType::Icmp => {
                if self.host.as_deref().is_none_or(|h| h.trim().is_empty()) {
                    out.push(("host", "is required for type \"icmp\"".to_string()));
                }
            }
            CheckType::Postgres => self.url_problems(&mut out, &["postgres", "postgresql"]),
            CheckType::Redis => self.url_problems(&mut out, &["redis", "rediss"]),
            CheckType::Grpc => self.grpc_problems(&mut out),
            CheckType::Websocket => self.url_problems(&mut out, &["ws", "wss"]),
            CheckType::Domain => self.domain_problems(&mut out),
            CheckType::Container => {}
        }
        self.container_problems(&mut out);
        self.foreign_key_problems(&mut out);
        out
    }

    /// The time to the next probe after a failure.
    pub fn retry_interval(&self) -> Duration {
        self.retry_interval
            .unwrap_or(self.interval / 5)
            .max(Duration::from_millis(200))
            .min(self.interval)
    }

    /// Keys that belong to other types: a typo'd type or a key in the wrong check is said, not
    /// silently ignored.
    fn foreign_key_problems(&self, out: &mut Vec<(&'static str, String)>) {
        use CheckType::*;
        let set: [(&'static str, bool, &[CheckType]); 19] = [
            (
                "url",
                self.url.is_some(),
                &[Http, Postgres, Redis, Grpc, Websocket, Container],
            ),
            ("method", self.method.is_some(), &[Http]),
            ("expected_status", !self.expected_status.is_empty(), &[Http]),
            ("headers", !self.headers.is_empty(), &[Http, Websocket]),
            ("body", self.body.is_some(), &[Http]),
            ("follow_redirects", !self.follow_redirects, &[Http]),
            (
                "tls_verify",
                !self.tls_verify,
                &[Http, Tls, Smtp, Grpc, Websocket],
            ),
            ("ca", self.ca.is_some(), &[Http, Tls, Smtp, Grpc, Websocket]),
            ("address", self.address.is_some(), &[Tcp, Tls, Smtp]),
            ("send", self.send.is_some(), &[Tcp, Websocket]),
            ("expect", self.expect.is_some(), &[Tcp]),
            ("server_name", self.server_name.is_some(), &[Tls]),
            ("resolver", self.resolver.is_some(), &[Dns]),
            ("host", self.host.is_some(), &[Icmp]),
            ("query", self.query.is_some(), &[Dns, Postgres]),
            ("starttls", self.starttls, &[Smtp]),
            ("service", self.service.is_some(), &[Grpc]),
            ("domain", self.domain.is_some(), &[Domain]),
            ("rdap_bootstrap", self.rdap_bootstrap.is_some(), &[Domain]),
        ];
        for (key, given, types) in set {
            if given && !types.contains(&self.kind) {
                let names: Vec<&str> = types.iter().map(|t| t.as_str()).collect();
                out.push((
                    key,
                    format!(
                        "does not apply to type {:?}: it is for {}",
                        self.kind.as_str(),
                        names.join(", ")
                    ),
                ));
            }
        }
    }

    /// The `container` type's keys: one target, a unix socket, and none of them on other types.
    fn container_problems(&self, out: &mut Vec<(&'static str, String)>) {
        let keys = [
            ("container", &self.container),
            ("compose_service", &self.compose_service),
            ("compose_project", &self.compose_project),
        ];
        if self.kind != CheckType::Container {
            for (key, v) in keys {
                if v.is_some() {
                    out.push((
                        key,
                        format!(
                            "does not apply to type {:?}: it is for container",
                            self.kind.as_str()
                        ),
                    ));
                }
            }
            return;
        }
        for (key, v) in keys {
            if v.as_deref()
                .is_some_and(|v| v.trim().is_empty() || v.len() > 255)
            {
                out.push((key, "expected 1 to 255 characters".to_string()));
            }
        }
        match (&self.container, &self.compose_service) {
            (None, None) => out.push((
                "container",
                "is required for type \"container\" (or `compose_service`)".to_string(),
            )),
            (Some(_), Some(_)) => out.push((
                "compose_service",
                "is not used with `container`: give one of them".to_string(),
            )),
            _ => {}
        }
        if self.compose_project.is_some() && self.compose_service.is_none() {
            out.push((
                "compose_project",
                "is for `compose_service`, which is not set".to_string(),
            ));
        }
        if let Some(u) = &self.url {
            match url::Url::parse(u) {
                Ok(p) if p.scheme() == "unix" && p.path().starts_with('/') => {}
                _ => out.push((
                    "url",
                    format!(
                        "{u:?}: expected a unix socket's path, as \"unix:///var/run/docker.sock\""
                    ),
                )),
            }
        }
    }

    fn address_problems(&self, out: &mut Vec<(&'static str, String)>) {
        match &self.address {
            None => out.push((
                "address",
                format!("is required for type {:?}", self.kind.as_str()),
            )),
            Some(a) => {
                if let Err(e) = split_host_port(a) {
                    out.push(("address", e));
                }
            }
        }
    }

    fn dns_problems(&self, out: &mut Vec<(&'static str, String)>) {
        if self.query.as_deref().is_none_or(|n| n.trim().is_empty()) {
            out.push((
                "query",
                "is required for type \"dns\": the name to look up".to_string(),
            ));
        }
        if let Some(r) = &self.resolver
            && r.parse::<std::net::SocketAddr>().is_err()
            && r.parse::<std::net::IpAddr>().is_err()
        {
            out.push((
                "resolver",
                format!("{r:?}: expected an IP address, with an optional port (\"10.0.0.2\", \"127.0.0.1:5353\")"),
            ));
        }
        if let Some(c) = &self.rcode
            && !RCODES.contains(&c.as_str())
        {
            out.push((
                "rcode",
                format!("{c:?}: expected one of {}", RCODES.join(", ")),
            ));
        }
    }

    pub(crate) fn url_problems(&self, out: &mut Vec<(&'static str, String)>, schemes: &[&str]) {
        match &self.url {
            None => out.push((
                "url",
                format!("is required for type {:?}", self.kind.as_str()),
            )),
            Some(u) => match url::Url::parse(u) {
                Ok(p) if schemes.contains(&p.scheme()) => {}
                Ok(p) => out.push((
                    "url",
                    format!(
                        "scheme {:?} is not supported: expected {}",
                        p.scheme(),
                        schemes.join(" or ")
                    ),
                )),
                // The URL may hold a password: never echo it.
                Err(e) => out.push(("url", format!("is not a valid URL: {e}"))),
            },
        }
    }

    fn http_problems(&self, out: &mut Vec<(&'static str, String)>) {
        match &self.url {
            None => out.push(("url", "is required for type \"http\"".to_string())),
            Some(u) => match url::Url::parse(u) {
                Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => {}
                Ok(parsed) => out.push((
                    "url",
                    format!(
                        "scheme {:?} is not supported: expected http or https",
                        parsed.scheme()
                    ),
                )),
                Err(e) => out.push(("url", format!("{u:?} is not a valid URL: {e}"))),
            },
        }
        if let Some(m) = &self.method
            && !matches!(
                m.as_str(),
                "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS"
            )
        {
            out.push((
                "method",
                format!("{m:?}: expected GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS"),
            ));
        }
        if let Some(ca) = &self.ca
            && ca.trim().is_empty()
        {
            out.push(("ca", "must not be empty".to_string()));
        }
        if let Some(s) = self
            .expected_status
            .iter()
            .find(|s| !(100..=599).contains(*s))
        {
            out.push((
                "expected_status",
                format!("{s} is not an HTTP status: expected 100 to 599"),
            ));
        }
    }

    /// True when the check holds something that lets its holder in somewhere: request
    /// headers (`Authorization`, cookies, API keys), a request body, a URL with a user or
    /// password, or a database check (its address carries the credentials).
    pub fn has_secrets(&self) -> bool {
        let url_credentials = self
            .url
            .as_deref()
            .and_then(|u| url::Url::parse(u).ok())
            .is_some_and(|u| !u.username().is_empty() || u.password().is_some());
        !self.headers.is_empty()
            || self.body.is_some()
            || url_credentials
            || self.kind == CheckType::Postgres
            || self.kind == CheckType::Redis
            // A WebSocket's first message is where many APIs take their token.
            || (self.kind == CheckType::Websocket && self.send.is_some())
    }

    /// True when this check is to run on an agent with these labels and name.
    pub fn runs_on(&self, agent: &str, labels: &BTreeMap<String, String>) -> bool {
        self.run_on.iter().all(|s| s.matches(agent, labels))
    }
}

/// DNS response codes a `dns` check can expect.
pub const RCODES: [&str; 10] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET",
    "NXRRSET", "NOTAUTH",
];

/// Splits `host:port` (`[v6]:port` for IPv6 addresses); the error says what is wrong.
pub fn split_host_port(address: &str) -> Result<(String, u16), String> {
    let bad =
        || format!("{address:?}: expected host:port, e.g. \"db.internal:5432\" or \"[::1]:22\"");
    let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
    let host = match host.strip_prefix('[') {
        Some(h) => h.strip_suffix(']').ok_or_else(bad)?,
        None if host.contains(':') => return Err(bad()),
        None => host,
    };
    if host.is_empty() {
        return Err(bad());
    }
    let port: u16 = port.parse().map_err(|_| bad())?;
    if port == 0 {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(url: &str) -> CheckConfig {
        check(serde_json::json!({"name": "api", "type": "http", "url": url, "timeout": "5s"}))
    }

    fn check(v: serde_json::Value) -> CheckConfig {
        serde_json::from_value(v).unwrap()
    }

    fn keys(c: &CheckConfig) -> Vec<&'static str> {
        c.problems().into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn each_type_needs_its_target_and_refuses_keys_of_others() {
        use serde_json::json;
        for (v, expected) in [
            (
                json!({"name": "a", "type": "tcp", "address": "db:5432"}),
                vec![],
            ),
            (
                json!({"name": "a", "type": "tcp", "address": "[::1]:22", "expect": "SSH-"}),
                vec![],
            ),
            (json!({"name": "a", "type": "tcp"}), vec!["address"]),
            (
                json!({"name": "a", "type": "tcp", "address": "db"}),
                vec!["address"],
            ),
            (
                json!({"name": "a", "type": "tcp", "address": "::1:22"}),
                vec!["address"],
            ),
            (
                json!({"name": "a", "type": "tls", "address": "example.com:443", "server_name": "x"}),
                vec![],
            ),
            (
                json!({"name": "a", "type": "dns", "query": "example.com", "record": "MX", "resolver": "127.0.0.1:5353"}),
                vec![],
            ),
            (json!({"name": "a", "type": "dns"}), vec!["query"]),
            (
                json!({"name": "a", "type": "dns", "query": "x", "resolver": "dns.google", "rcode": "OK"}),
                vec!["resolver", "rcode"],
            ),
            (
                json!({"name": "a", "type": "icmp", "host": "10.0.0.1"}),
                vec![],
            ),
            (json!({"name": "a", "type": "icmp"}), vec!["host"]),
            (
                json!({"name": "a", "type": "postgres", "url": "postgres://u@db/app", "query": "SELECT 2"}),
                vec![],
            ),
            (
                json!({"name": "a", "type": "postgres", "url": "mysql://db/app"}),
                vec!["url"],
            ),
            (
                json!({"name": "a", "type": "redis", "url": "redis://:pw@cache:6379"}),
                vec![],
            ),
            (
                json!({"name": "a", "type": "smtp", "address": "mail:25", "starttls": true}),
                vec![],
            ),
            (
                json!({"name": "a", "type": "http", "url": "http://x/", "address": "x:1", "expect": "y"}),
                vec!["address", "expect"],
            ),
            (
                json!({"name": "a", "type": "tcp", "address": "x:1", "url": "http://x/"}),
                vec!["url"],
            ),
            (
                json!({"name": "a", "type": "http", "url": "http://x/", "retry_interval": "1m"}),
                vec!["retry_interval"],
            ),
        ] {
            assert_eq!(keys(&check(v.clone())), expected, "{v}");
        }
        let wrong =
            check(json!({"name": "a", "type": "http", "url": "http://x/", "query": "SELECT 1"}));
        assert_eq!(
            wrong.problems()[0].1,
            "does not apply to type \"http\": it is for dns, postgres"
        );
    }

    #[test]
    fn a_container_check_names_one_container_or_service_on_a_unix_socket() {
        use serde_json::json;
        for (v, expected) in [
            (
                json!({"name": "a", "type": "container", "container": "web"}),
                vec![],
            ),
            (
                json!({"name": "a", "type": "container", "compose_service": "web",
                       "compose_project": "shop", "url": "unix:///run/podman/podman.sock"}),
                vec![],
            ),
            (json!({"name": "a", "type": "container"}), vec!["container"]),
            (
                json!({"name": "a", "type": "container", "container": "a", "compose_service": "b"}),
                vec!["compose_service"],
            ),
            (
                json!({"name": "a", "type": "container", "container": "a", "compose_project": "p"}),
                vec!["compose_project"],
            ),
            (
                json!({"name": "a", "type": "container", "container": " "}),
                vec!["container"],
            ),
            (
                json!({"name": "a", "type": "container", "container": "a", "url": "http://h:2375"}),
                vec!["url"],
            ),
            (
                json!({"name": "a", "type": "tcp", "address": "h:1", "container": "web"}),
                vec!["container"],
            ),
        ] {
            assert_eq!(keys(&check(v.clone())), expected, "{v}");
        }
        let e = check(json!({"name": "a", "type": "container"})).problems();
        assert_eq!(
            e[0].1,
            "is required for type \"container\" (or `compose_service`)"
        );
    }

    #[test]
    fn a_password_in_a_bad_url_is_not_echoed() {
        let c =
            check(serde_json::json!({"name": "a", "type": "redis", "url": "redis://:s3cret@[bad"}));
        let p = c.problems();
        assert_eq!(p[0].0, "url");
        assert!(!p[0].1.contains("s3cret"), "{}", p[0].1);
    }

    #[test]
    fn retry_interval_defaults_to_a_fifth_of_the_interval() {
        let c = http("http://x/");
        assert_eq!(c.retry_interval(), Duration::from_secs(6));
        let c = check(
            serde_json::json!({"name": "a", "type": "http", "url": "http://x/", "retry_interval": "2s"}),
        );
        assert_eq!(c.retry_interval(), Duration::from_secs(2));
    }

    #[test]
    fn selectors_match_labels_and_name() {
        let mut labels = BTreeMap::new();
        labels.insert("role".to_string(), "web".to_string());
        let mut c = http("http://x/");
        assert!(c.runs_on("a", &labels), "no selector: every agent");
        c.run_on = vec!["role=web".parse().unwrap(), "name=a".parse().unwrap()];
        assert!(c.runs_on("a", &labels));
        assert!(!c.runs_on("b", &labels));
        c.run_on = vec!["role=db".parse().unwrap()];
        assert!(!c.runs_on("a", &labels));
        assert!("role".parse::<Selector>().is_err());
        assert!("=x".parse::<Selector>().is_err());
    }

    #[test]
    fn http_values_are_checked() {
        assert!(http("http://127.0.0.1:1/").problems().is_empty());
        let p = http("ftp://x/").problems();
        assert_eq!(p[0].0, "url");
        assert!(p[0].1.contains("ftp"));
        let mut c = http("http://x/");
        c.timeout = Duration::from_secs(60);
        c.expected_status = vec![200, 700];
        let keys: Vec<_> = c.problems().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["timeout", "expected_status"]);
    }

    #[test]
    fn json_round_trip_keeps_durations_readable() {
        let c = http("https://example.com/health");
        let json = serde_json::to_string(&c).unwrap();
        assert!(json.contains(r#""interval":"30s""#), "{json}");
        let back: CheckConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
    }
}
