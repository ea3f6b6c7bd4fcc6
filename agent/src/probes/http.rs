//! The `http` probe: one request, up when the status is expected.

use std::time::Instant;

use lookout_config::CheckConfig;
use reqwest::Method;

use super::Outcome;
use crate::client::error_chain;

/// Sends HTTP probes.
#[derive(Debug, Clone)]
pub struct HttpProber {
    client: reqwest::Client,
}

impl HttpProber {
    /// A client that opens a new connection for every probe, so each probe measures (and can
    /// fail at) connecting, as a user's browser would after a while.
    pub fn new() -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .user_agent(concat!(
                "lookout-agent/",
                env!("CARGO_PKG_VERSION"),
                " (probe)"
            ))
            .redirect(reqwest::redirect::Policy::limited(10))
            .build()?;
        Ok(Self { client })
    }

    /// Runs one probe of `check` (its timeout is enforced by the caller).
    pub async fn probe(&self, check: &CheckConfig) -> Outcome {
        let Some(url) = check.url.as_deref() else {
            return Outcome::failed("no url configured");
        };
        let method = match check
            .method
            .as_deref()
            .map(|m| Method::from_bytes(m.as_bytes()))
        {
            None => Method::GET,
            Some(Ok(m)) => m,
            Some(Err(_)) => return Outcome::failed("invalid method"),
        };
        let started = Instant::now();
        let resp = match self
            .client
            .request(method, url)
            .timeout(check.timeout)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => return Outcome::failed(error_chain(&e)),
        };
        let ttfb_ms = started.elapsed().as_secs_f64() * 1000.0;
        let status = resp.status().as_u16();
        // Read the body so the time covers the whole answer and the connection ends cleanly.
        let body = resp.bytes().await;
        let mut outcome = Outcome {
            status_code: Some(status),
            ..Outcome::default()
        };
        outcome.timings.ttfb_ms = Some(ttfb_ms);
        let expected = if check.expected_status.is_empty() {
            (200..300).contains(&status)
        } else {
            check.expected_status.contains(&status)
        };
        if let Err(e) = body {
            outcome.error = Some(format!("reading the body: {}", error_chain(&e)));
        } else if !expected {
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
            outcome.error = Some(format!("status {status}, expected {want}"));
        }
        outcome
    }
}
