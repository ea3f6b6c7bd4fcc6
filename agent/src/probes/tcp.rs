//! The `tcp` probe: connect; optionally send something and read until the expected text arrives.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use lookout_config::CheckConfig;

use super::Outcome;
use super::net;

/// Most bytes read while waiting for `expect`.
const MAX_READ: usize = 64 << 10;

/// Runs one probe of `check`, filling `out` (its timeout is enforced by the caller).
pub async fn probe(check: &CheckConfig, out: &mut Outcome) -> Result<(), String> {
    let (host, port) =
        lookout_config::check::split_host_port(check.address.as_deref().unwrap_or_default())?;
    let (addrs, dns_ms) = net::resolve(&host, port, check.ip_version).await?;
    out.timings.dns_ms = dns_ms;
    let (mut stream, addr, connect_ms) = net::connect(&addrs).await?;
    out.timings.connect_ms = Some(connect_ms);
    out.seen.connected = true;
    out.seen.ip = Some(addr.ip().to_string());
    if let Some(send) = &check.send {
        stream
            .write_all(send.as_bytes())
            .await
            .map_err(|e| format!("sending to {addr}: {e}"))?;
    }
    let Some(expect) = &check.expect else {
        return Ok(());
    };
    let started = std::time::Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if find(&got, expect.as_bytes()) {
            out.timings.ttfb_ms = Some(net::ms_since(started));
            out.seen.body = Some(got);
            return Ok(());
        }
        if got.len() >= MAX_READ {
            break;
        }
        match stream.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("reading from {addr}: {e}")),
        }
    }
    let shown = String::from_utf8_lossy(&got[..got.len().min(200)]).into_owned();
    out.seen.body = Some(got);
    Err(format!("expected {expect:?} in the answer, got {shown:?}"))
}

fn find(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}
