//! The `tls` probe: a handshake with `address`, the chain read, its earliest expiry reported,
//! the chain and the name verified (unless `tls_verify = false`).

use lookout_config::CheckConfig;

use super::Outcome;
use super::net::{self, Alpn, Tls};

/// Runs one probe of `check`, filling `out` (its timeout is enforced by the caller).
pub async fn probe(tls: &Tls, check: &CheckConfig, out: &mut Outcome) -> Result<(), String> {
    let (host, port) =
        lookout_config::check::split_host_port(check.address.as_deref().unwrap_or_default())?;
    let name = check.server_name.as_deref().unwrap_or(&host);
    net::open(Some((tls, Alpn::Http1)), check, (&host, port), name, out)
        .await
        .map(drop)
}
