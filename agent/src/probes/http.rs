//! The `http` probe: a request over a new connection, each phase timed (DNS, connect, TLS, time
//! to the first byte), redirects followed by hand so each hop is timed too, the certificate chain
//! of an `https` URL read and verified.
//!
//! A redirect's target is chosen by the server, so the check's configured headers (where its
//! secrets are: `Authorization`, `Cookie`, an API key under any name) go only to the origin the
//! check names. Once a redirect leaves the first URL's origin (scheme, host and port, so an
//! `https` to `http` downgrade on the same host leaves it too), no configured header is sent on
//! that hop or any later one, even one that comes back. The config cannot say which headers are
//! secret, so all of them are dropped; browsers drop `Authorization` the same way.

use std::collections::BTreeMap;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue};
use hyper_util::rt::TokioIo;
use lookout_config::CheckConfig;
use lookout_config::condition::Placeholder;

use tracing::Instrument as _;

use super::Outcome;
use super::net::{self, Io, Tls, ms_since};

/// Most bytes of a body kept for conditions; the rest is read and dropped.
pub const MAX_BODY: usize = 1 << 20;

/// The `User-Agent` of HTTP probes, naming the agent when known.
pub fn user_agent(agent: Option<&str>) -> String {
    let version = env!("CARGO_PKG_VERSION");
    match agent {
        // Header values must be visible ASCII; an odd name is left out rather than mangled.
        Some(a) if a.chars().all(|c| c.is_ascii_graphic()) => {
            format!("lookout-agent/{version} (probe; agent={a})")
        }
        _ => format!("lookout-agent/{version} (probe)"),
    }
}

/// Runs one probe of `check`, filling `out` (its timeout is enforced by the caller).
pub async fn probe(
    tls: &Tls,
    user_agent: &str,
    check: &CheckConfig,
    out: &mut Outcome,
) -> Result<(), String> {
    let url = check.url.as_deref().ok_or("no url configured")?;
    let mut url = url::Url::parse(url).map_err(|e| format!("invalid url: {e}"))?;
    let mut method = check
        .method
        .as_deref()
        .unwrap_or("GET")
        .parse::<hyper::Method>()
        .map_err(|_| "invalid method".to_string())?;
    let mut body = check.body.clone().map(Bytes::from).unwrap_or_default();
    let keep_body = check.conditions.iter().any(|c| c.needs_body());
    let client = Client {
        tls,
        user_agent,
        keep_body,
    };
    let origin = url.origin();
    let mut headers = &check.headers;
    let mut hops = 0u8;
    loop {
        let status = hop(&client, check, &url, &method, body.clone(), headers, out).await?;
        let location = out
            .seen
            .headers
            .iter()
            .find(|(n, _)| n == "location")
            .map(|(_, v)| v.clone());
        if check.follow_redirects
            && matches!(status, 301 | 302 | 303 | 307 | 308)
            && let Some(location) = location
        {
            if hops >= check.max_redirects {
                return Err(format!(
                    "more than {} redirects (last to {location})",
                    check.max_redirects
                ));
            }
            url = match url.join(&location) {
                Ok(next) if matches!(next.scheme(), "http" | "https") => next,
                _ => return Err(format!("redirect to an unusable location {location:?}")),
            };
            // Left the check's origin: no configured header from here on (see the module doc).
            if url.origin() != origin {
                headers = &NO_HEADERS;
            }
            // As browsers do: 303 always, and 301/302 after a POST, go on as GET without a body.
            if status == 303 || (matches!(status, 301 | 302) && method == hyper::Method::POST) {
                method = hyper::Method::GET;
                body = Bytes::new();
            }
            hops += 1;
            continue;
        }
        break;
    }
    let status = out.status_code.unwrap_or(0);
    let tests_status = check
        .conditions
        .iter()
        .any(|c| c.placeholder() == Placeholder::Status);
    let expected = if check.expected_status.is_empty() {
        tests_status || (200..300).contains(&status)
    } else {
        check.expected_status.contains(&status)
    };
    if !expected {
        let want = if check.expected_status.is_empty() {
            "2xx".to_string()
        } else {
            check
                .expected_status
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(" or ")
        };
        return Err(format!("status {status}, expected {want}"));
    }
    Ok(())
}

/// The headers sent once a redirect has left the check's origin.
static NO_HEADERS: BTreeMap<String, String> = BTreeMap::new();

/// What every hop of one probe shares.
struct Client<'a> {
    tls: &'a Tls,
    user_agent: &'a str,
    /// Whether a condition reads the body, so it is kept.
    keep_body: bool,
}

/// One request over a new connection, with `headers` besides the probe's own; fills `out`
/// (timings added to earlier hops') and returns the status.
async fn hop(
    client: &Client<'_>,
    check: &CheckConfig,
    url: &url::Url,
    method: &hyper::Method,
    body: Bytes,
    headers: &BTreeMap<String, String>,
    out: &mut Outcome,
) -> Result<u16, String> {
    let host = url.host_str().ok_or("the url has no host")?.to_string();
    let https = url.scheme() == "https";
    let port = url
        .port_or_known_default()
        .unwrap_or(if https { 443 } else { 80 });
    let (addrs, dns_ms) = net::resolve(&host, port, check.ip_version)
        .instrument(tracing::debug_span!("dns", host = %host))
        .await?;
    add(&mut out.timings.dns_ms, dns_ms);
    let (stream, addr, connect_ms) = net::connect(&addrs)
        .instrument(tracing::debug_span!("connect"))
        .await?;
    out.seen.connected = true;
    out.seen.ip = Some(addr.ip().to_string());
    add(&mut out.timings.connect_ms, Some(connect_ms));
    let io: Box<dyn Io> = if https {
        let (stream, facts) = client
            .tls
            .handshake(stream, &host, check.ca.as_deref(), check.tls_verify)
            .instrument(tracing::debug_span!("tls"))
            .await?;
        add(&mut out.timings.tls_ms, Some(facts.handshake_ms));
        out.seen.certificate_expiration = facts.time_left();
        out.cert_expiry = facts.earliest_expiry;
        if let Some(e) = facts.verify_error {
            return Err(e);
        }
        Box::new(stream)
    } else {
        Box::new(stream)
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    let driver = tokio::spawn(conn);
    let target = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    let mut request = hyper::Request::builder()
        .method(method.clone())
        .uri(target)
        .header(hyper::header::HOST, host_header(url))
        .header(hyper::header::USER_AGENT, client.user_agent)
        .header(hyper::header::CONNECTION, "close");
    for (name, value) in headers {
        let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) else {
            driver.abort();
            return Err(format!("header {name:?} is not a valid HTTP header"));
        };
        request = request.header(n, v);
    }
    let request = request
        .body(Full::new(body))
        .map_err(|e| format!("building the request: {e}"))?;
    let sent = Instant::now();
    let response = sender
        .send_request(request)
        .instrument(tracing::debug_span!("ttfb"))
        .await;
    let response = match response {
        Ok(r) => r,
        Err(e) => {
            driver.abort();
            return Err(format!("HTTP: {}", lookout_runtime::error_chain(&e)));
        }
    };
    add(&mut out.timings.ttfb_ms, Some(ms_since(sent)));
    let status = response.status().as_u16();
    out.status_code = Some(status);
    out.seen.status = Some(status);
    out.seen.headers = net::header_pairs(response.headers());
    // Read the whole answer, so the time covers it and the connection ends cleanly; keep at most
    // MAX_BODY of it, and only when a condition looks at it.
    let mut body = response.into_body();
    let mut kept = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("reading the body: {e}"))?;
        if let (true, Some(data)) = (client.keep_body, frame.data_ref())
            && kept.len() < MAX_BODY
        {
            let room = MAX_BODY - kept.len();
            kept.extend_from_slice(&data[..data.len().min(room)]);
        }
    }
    if client.keep_body {
        out.seen.body = Some(kept);
    }
    driver.abort();
    Ok(status)
}

fn host_header(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

fn add(slot: &mut Option<f64>, ms: Option<f64>) {
    if let Some(ms) = ms {
        *slot = Some(slot.unwrap_or(0.0) + ms);
    }
}
