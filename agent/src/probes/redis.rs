//! The `redis` probe: connect with the check's URL (`redis://[:password@]host:port[/db]`; a
//! password in it is sent with AUTH) and expect `PONG` to `PING`.

use std::time::Instant;

use lookout_config::CheckConfig;

use super::Outcome;
use super::net::ms_since;

/// Runs one probe of `check`, filling `out` (its timeout is enforced by the caller).
pub async fn probe(check: &CheckConfig, out: &mut Outcome) -> Result<(), String> {
    let url = check.url.as_deref().unwrap_or_default();
    // redis' errors name the problem, not the URL (which may hold a password).
    let client = redis::Client::open(url).map_err(|e| format!("invalid Redis url: {e}"))?;
    let cfg = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(check.timeout))
        .set_response_timeout(Some(check.timeout));
    let started = Instant::now();
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&cfg)
        .await
        .map_err(|e| format!("connecting: {e}"))?;
    out.timings.connect_ms = Some(ms_since(started));
    out.seen.connected = true;
    let sent = Instant::now();
    let answer: String = redis::cmd("PING")
        .query_async(&mut conn)
        .await
        .map_err(|e| format!("PING: {e}"))?;
    out.timings.ttfb_ms = Some(ms_since(sent));
    out.seen.body = Some(answer.clone().into_bytes());
    if answer != "PONG" {
        return Err(format!("PING answered {answer:?}, expected \"PONG\""));
    }
    Ok(())
}
