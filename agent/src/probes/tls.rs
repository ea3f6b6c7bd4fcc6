//! The `tls` probe: a handshake with `address`, the chain read, its earliest expiry reported,
//! the chain and the name verified (unless `tls_verify = false`).

use lookout_config::CheckConfig;

use super::Outcome;
use super::net::{self, Tls};

/// Runs one probe of `check`, filling `out` (its timeout is enforced by the caller).
pub async fn probe(tls: &Tls, check: &CheckConfig, out: &mut Outcome) -> Result<(), String> {
    let (host, port) =
        lookout_config::check::split_host_port(check.address.as_deref().unwrap_or_default())?;
    let (addrs, dns_ms) = net::resolve(&host, port, check.ip_version).await?;
    out.timings.dns_ms = dns_ms;
    let (stream, addr, connect_ms) = net::connect(&addrs).await?;
    out.timings.connect_ms = Some(connect_ms);
    out.seen.connected = true;
    out.seen.ip = Some(addr.ip().to_string());
    let name = check.server_name.as_deref().unwrap_or(&host);
    let (_stream, facts) = tls
        .handshake(stream, name, check.ca.as_deref(), check.tls_verify)
        .await?;
    out.timings.tls_ms = Some(facts.handshake_ms);
    out.seen.certificate_expiration = facts.time_left();
    out.cert_expiry = facts.earliest_expiry;
    match facts.verify_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
