//! The `smtp` probe: the server's banner, EHLO, and with `starttls = true` the STARTTLS
//! upgrade (failing when the server does not offer it), through lettre. With `tls_verify`
//! (the default) the upgraded connection's certificate is verified.

use std::time::Instant;

use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, Tokio1Executor};
use lookout_config::CheckConfig;

use super::Outcome;
use super::net::ms_since;

/// Runs one probe of `check`, filling `out` (its timeout is enforced by the caller).
pub async fn probe(check: &CheckConfig, out: &mut Outcome) -> Result<(), String> {
    let (host, port) =
        lookout_config::check::split_host_port(check.address.as_deref().unwrap_or_default())?;
    let tls = if check.starttls {
        let mut params = TlsParameters::builder(host.clone())
            .dangerous_accept_invalid_certs(!check.tls_verify)
            .dangerous_accept_invalid_hostnames(!check.tls_verify);
        if let Some(path) = &check.ca {
            let pem = std::fs::read(path).map_err(|e| format!("ca {path}: {e}"))?;
            let cert = lettre::transport::smtp::client::Certificate::from_pem(&pem)
                .map_err(|e| format!("ca {path}: {e}"))?;
            params = params.add_root_certificate(cert);
        }
        Tls::Required(
            params
                .build_rustls()
                .map_err(|e| format!("TLS settings: {e}"))?,
        )
    } else {
        Tls::None
    };
    let transport: AsyncSmtpTransport<Tokio1Executor> =
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host)
            .port(port)
            .tls(tls)
            .timeout(Some(check.timeout))
            .build();
    let started = Instant::now();
    match transport.test_connection().await {
        Ok(true) => {
            out.seen.connected = true;
            out.timings.ttfb_ms = Some(ms_since(started));
            Ok(())
        }
        Ok(false) => Err("the server did not answer NOOP with 250".to_string()),
        Err(e) => Err(lookout_runtime::error_chain(&e)),
    }
}
