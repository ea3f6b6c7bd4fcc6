//! The `icmp` probe: one echo request to `host`, through an unprivileged ICMP socket
//! (`SOCK_DGRAM`) where the kernel allows it (`net.ipv4.ping_group_range` includes the agent's
//! group); as root a raw socket serves too. Where neither is allowed, the result says how to
//! allow it.

use std::net::IpAddr;
use std::time::Instant;

use lookout_config::CheckConfig;
use surge_ping::{Client, Config, ICMP, PingIdentifier, PingSequence, SurgeError};

use super::Outcome;
use super::net::{self, ms_since};

/// What to do when the kernel refuses the socket.
pub const HOW_TO_ALLOW: &str = "the kernel refuses ICMP sockets to this user: allow the agent's group with `sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"` (or a range holding its group id; persist it in /etc/sysctl.d/), or give the agent CAP_NET_RAW";

/// Runs one probe of `check`, filling `out` (its timeout is enforced by the caller).
pub async fn probe(check: &CheckConfig, out: &mut Outcome) -> Result<(), String> {
    let host = check.host.as_deref().unwrap_or_default();
    let (addrs, dns_ms) = net::resolve(host, 0, check.ip_version).await?;
    out.timings.dns_ms = dns_ms;
    let ip: IpAddr = addrs[0].ip();
    let kind = match ip {
        IpAddr::V4(_) => ICMP::V4,
        IpAddr::V6(_) => ICMP::V6,
    };
    let config = Config::builder()
        .kind(kind)
        .sock_type_hint(socket2::Type::DGRAM)
        .build();
    let client = Client::new(&config).map_err(|e| match e.kind() {
        std::io::ErrorKind::PermissionDenied => HOW_TO_ALLOW.to_string(),
        _ => format!("opening an ICMP socket: {e}"),
    })?;
    let mut pinger = client.pinger(ip, PingIdentifier(fastrand::u16(..))).await;
    pinger.timeout(check.timeout);
    let started = Instant::now();
    match pinger.ping(PingSequence(0), &[0u8; 16]).await {
        Ok((_, rtt)) => {
            out.seen.connected = true;
            out.seen.ip = Some(ip.to_string());
            out.timings.ttfb_ms = Some(rtt.as_secs_f64() * 1000.0);
            Ok(())
        }
        Err(SurgeError::Timeout { .. }) => Err(format!(
            "no echo reply from {ip} within {:.0} ms",
            ms_since(started)
        )),
        Err(SurgeError::IOError(e)) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            Err(HOW_TO_ALLOW.to_string())
        }
        Err(e) => Err(format!("ping {ip}: {e}")),
    }
}
