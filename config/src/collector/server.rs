//! `[server]`: where the collector listens and how much it takes from whom. Its limits on
//! connections, requests and what agents send are many keys with ranges of their own, so they
//! live here, beside their defaults and their validation, and collector.rs holds the rest.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::document::{Document, KeyPath};
use crate::token::Token;

use super::tls::ServerTlsConfig;

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
    /// heartbeat pings (`max_ping_body_bytes`), in bytes: logins and silences are a few
    /// hundred bytes. Larger gets 413 before the body is read. Default 65536; 1024 to 1 GiB.
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
    /// Largest request body of a heartbeat ping (`/v1/ping/...`: a job's output, of which
    /// 10 KB is kept), in bytes; larger gets 413 before the body is read. Default 102400
    /// (100 KiB); 1024 to 1 GiB.
    #[serde(default = "default_max_ping_body")]
    pub max_ping_body_bytes: usize,
    /// Most steps in the window of a metrics or uptime query (`/api/v1/metrics`,
    /// `/api/v1/checks/{name}/uptime`); more is 400. Default 20,000; 1 to 1,000,000.
    #[serde(default = "default_max_query_steps")]
    pub max_query_steps: usize,
    /// Longest window of a metrics query read from raw samples (a step under a minute); longer
    /// is 400. Default `"6h"`; 1 min to 3660 d.
    #[serde(default = "default_max_raw_query_window", with = "crate::duration")]
    pub max_raw_query_window: Duration,
    /// Longest window of a metrics query read from per-minute rollups (a step under an hour);
    /// longer is 400. Default `"31d"` (44,640 rows a series); 1 min to 3660 d.
    #[serde(default = "default_max_minute_query_window", with = "crate::duration")]
    pub max_minute_query_window: Duration,
    /// Longest step of a metrics query (the shortest is 1 s); longer is 400. Default
    /// `"366d"`; 1 s to 3660 d.
    #[serde(default = "default_max_query_step", with = "crate::duration")]
    pub max_query_step: Duration,
    /// Most points (series × steps) in the answer of a metrics query; more is 400. Default
    /// 500,000; 1 to 100,000,000.
    #[serde(default = "default_max_query_points")]
    pub max_query_points: usize,
    /// `[server.tls]`: serve HTTPS with this certificate. Default none: plain HTTP (keep
    /// `listen` on loopback, or put a TLS proxy in front).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ServerTlsConfig>,
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
            max_ping_body_bytes: default_max_ping_body(),
            max_query_steps: default_max_query_steps(),
            max_raw_query_window: default_max_raw_query_window(),
            max_minute_query_window: default_max_minute_query_window(),
            max_query_step: default_max_query_step(),
            max_query_points: default_max_query_points(),
            tls: None,
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
fn default_max_ping_body() -> usize {
    100 << 10
}
fn default_max_query_steps() -> usize {
    20_000
}
fn default_max_raw_query_window() -> Duration {
    Duration::from_secs(6 * 3600)
}
fn default_max_minute_query_window() -> Duration {
    Duration::from_secs(31 * 86_400)
}
fn default_max_query_step() -> Duration {
    Duration::from_secs(366 * 86_400)
}
fn default_max_query_points() -> usize {
    500_000
}

/// The `[server]` limits on connections and requests: each within its range, an idle
/// connection waiting at least as long as a request's headers may take.
pub(super) fn validate_server_limits(doc: &mut Document<'_>, server: &ServerConfig) {
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
        (
            "max_raw_query_window",
            server.max_raw_query_window,
            secs(60),
            secs(3660 * 86_400),
        ),
        (
            "max_minute_query_window",
            server.max_minute_query_window,
            secs(60),
            secs(3660 * 86_400),
        ),
        (
            "max_query_step",
            server.max_query_step,
            secs(1),
            secs(3660 * 86_400),
        ),
    ];
    for (key, value, min, max) in durations {
        if value < min || value > max {
            doc.error_at(
                &at.child(key),
                format!(
                    "must be between {} and {}",
                    crate::duration::short(&min),
                    crate::duration::short(&max)
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
        (
            "max_ping_body_bytes",
            server.max_ping_body_bytes,
            1024,
            1 << 30,
        ),
        ("max_query_steps", server.max_query_steps, 1, 1_000_000),
        ("max_query_points", server.max_query_points, 1, 100_000_000),
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

/// What an agent may send, each bound between a floor that real agents never hit and a
/// ceiling past which the bound would not bound anything.
pub(super) fn validate_ingest_limits(doc: &mut Document<'_>, server: &ServerConfig) {
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

#[cfg(test)]
mod tests;
