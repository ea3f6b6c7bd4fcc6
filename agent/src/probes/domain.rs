//! The `domain` probe: a domain's registration expiry, from its registry's RDAP service.
//!
//! 1. The RDAP bootstrap registry (RFC 9224) is read from `rdap_bootstrap` (a URL, or a file
//!    path; default IANA's `https://data.iana.org/rdap/dns.json`) and kept a day per location.
//!    Its `services` is a list of `[[labels...], [base URLs...]]`; the entry whose label is the
//!    longest suffix of the domain's (`example.co.uk` tries `co.uk`, then `uk`) gives the base,
//!    an `https` one where it lists several.
//! 2. `GET <base>domain/<name>` (RFC 9082 §3.1.3), `Accept: application/rdap+json`; the answer
//!    (RFC 9083 §5.3, a domain object) has an `events` array whose `eventAction` `expiration`
//!    carries the `eventDate` (RFC 3339).
//!
//! `[DOMAIN_EXPIRATION]` is the time left until then (zero once passed), and `[BODY]` the RDAP
//! answer (so `[BODY].status` and the rest can be tested). Up when the answer has an expiration
//! in the future. The registry file is at most [`MAX_BOOTSTRAP`] bytes and an answer at most
//! [`MAX_ANSWER`]: more is an error, as is anything that is not the JSON these RFCs describe.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use lookout_config::CheckConfig;
use lookout_config::check_kinds::{DEFAULT_RDAP_BOOTSTRAP, domain_ascii};
use std::time::Instant;
use tokio::io::AsyncReadExt;

use super::Outcome;
use super::net::ms_since;

/// Most bytes of a bootstrap registry file (IANA's is about 40 KB).
pub const MAX_BOOTSTRAP: usize = 4 << 20;
/// Most bytes of an RDAP answer (a registry's are a few KB).
pub const MAX_ANSWER: usize = 1 << 20;
/// How long a bootstrap registry read is used before it is read again.
pub const BOOTSTRAP_TTL: Duration = Duration::from_secs(24 * 3600);

/// The RDAP client the `domain` checks share, with the bootstrap registries read so far.
#[derive(Debug, Clone, Default)]
pub struct Rdap {
    client: Arc<OnceLock<Result<reqwest::Client, String>>>,
    /// By location: when it was read, and what it said.
    bootstraps: Arc<Mutex<HashMap<String, Read>>>,
}

/// A bootstrap registry read at a time.
type Read = (Instant, Arc<Services>);

/// A bootstrap registry's services: (labels, base URLs) pairs, labels in lower case.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Services(Vec<(Vec<String>, Vec<String>)>);

impl Rdap {
    fn client(&self) -> Result<reqwest::Client, String> {
        self.client
            .get_or_init(|| {
                reqwest::Client::builder()
                    .user_agent(super::http::user_agent(None))
                    .redirect(reqwest::redirect::Policy::limited(5))
                    .build()
                    .map_err(|e| format!("building the HTTP client: {e}"))
            })
            .clone()
    }

    /// Runs one probe of `check`, filling `out` (its timeout is enforced by the caller).
    pub async fn probe(&self, check: &CheckConfig, out: &mut Outcome) -> Result<(), String> {
        let domain = domain_ascii(check.domain.as_deref().unwrap_or_default())?;
        let location = check
            .rdap_bootstrap
            .as_deref()
            .unwrap_or(DEFAULT_RDAP_BOOTSTRAP);
        let services = self.services(location, Instant::now()).await?;
        let base = services.base_for(&domain).ok_or_else(|| {
            format!("the RDAP bootstrap registry ({location}) lists no RDAP service for {domain}")
        })?;
        let url = format!("{}/domain/{domain}", base.trim_end_matches('/'));
        let started = std::time::Instant::now();
        let (status, answer) = self.get(&url, MAX_ANSWER, "application/rdap+json").await?;
        out.timings.ttfb_ms = Some(ms_since(started));
        out.seen.connected = true;
        out.status_code = Some(status);
        out.seen.status = Some(status);
        match status {
            200 => {}
            404 => return Err(format!("{url} answered 404: the registry has no {domain}")),
            s => return Err(format!("{url} answered {s}, expected 200")),
        }
        let expires = expiration(&answer).map_err(|e| format!("{url}: {e}"))?;
        out.seen.body = Some(answer);
        let left = (expires - Utc::now()).to_std().unwrap_or_default();
        out.seen.domain_expiration = Some(left);
        if left.is_zero() {
            return Err(format!(
                "the registration of {domain} expired on {}",
                expires.to_rfc3339()
            ));
        }
        Ok(())
    }

    /// The registry at `location`, read again once a day (`now` is the time it is asked for);
    /// when reading fails, the last one read (if any) goes on serving.
    async fn services(&self, location: &str, now: Instant) -> Result<Arc<Services>, String> {
        let cached = self
            .bootstraps
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(location)
            .cloned();
        if let Some((read, s)) = &cached
            && now.saturating_duration_since(*read) < BOOTSTRAP_TTL
        {
            return Ok(s.clone());
        }
        let read = self.read_bootstrap(location).await.and_then(|bytes| {
            parse_bootstrap(&bytes)
                .map_err(|e| format!("the RDAP bootstrap registry ({location}): {e}"))
        });
        match (read, cached) {
            (Ok(s), _) => {
                let s = Arc::new(s);
                self.bootstraps
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(location.to_string(), (now, s.clone()));
                Ok(s)
            }
            (Err(e), Some((_, stale))) => {
                tracing::warn!(location, error = %e, "RDAP bootstrap not refreshed; the last one read is used");
                Ok(stale)
            }
            (Err(e), None) => Err(e),
        }
    }

    async fn read_bootstrap(&self, location: &str) -> Result<Vec<u8>, String> {
        if location.starts_with("http://") || location.starts_with("https://") {
            let (status, bytes) = self
                .get(location, MAX_BOOTSTRAP, "application/json")
                .await?;
            if status != 200 {
                return Err(format!(
                    "the RDAP bootstrap registry ({location}) answered {status}"
                ));
            }
            return Ok(bytes);
        }
        let file = tokio::fs::File::open(location)
            .await
            .map_err(|e| format!("the RDAP bootstrap registry ({location}): {e}"))?;
        let mut bytes = Vec::new();
        file.take(MAX_BOOTSTRAP as u64 + 1)
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| format!("the RDAP bootstrap registry ({location}): {e}"))?;
        if bytes.len() > MAX_BOOTSTRAP {
            return Err(format!(
                "the RDAP bootstrap registry ({location}) is over {MAX_BOOTSTRAP} bytes"
            ));
        }
        Ok(bytes)
    }

    /// `GET url`: the status and at most `max` bytes of the body (more is an error).
    async fn get(&self, url: &str, max: usize, accept: &str) -> Result<(u16, Vec<u8>), String> {
        let mut response = self
            .client()?
            .get(url)
            .header(reqwest::header::ACCEPT, accept)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "{url}: {}",
                    lookout_runtime::request_failure(e.is_timeout(), e.is_connect(), &e)
                )
            })?;
        let status = response.status().as_u16();
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("{url}: reading the answer: {e}"))?
        {
            if body.len() + chunk.len() > max {
                return Err(format!("{url}: the answer is over {max} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, body))
    }
}

/// Reads an RFC 9224 bootstrap registry (`{"version", "services": [[[labels], [urls]], ...]}`).
pub fn parse_bootstrap(bytes: &[u8]) -> Result<Services, String> {
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let services = v
        .get("services")
        .and_then(|s| s.as_array())
        .ok_or("no \"services\" array (RFC 9224)")?;
    let strings = |v: &serde_json::Value| -> Option<Vec<String>> {
        v.as_array()?
            .iter()
            .map(|s| s.as_str().map(str::to_ascii_lowercase))
            .collect()
    };
    let mut out = Vec::with_capacity(services.len());
    for (i, entry) in services.iter().enumerate() {
        let pair = entry.as_array().filter(|p| p.len() == 2);
        let parsed = pair.and_then(|p| Some((strings(&p[0])?, strings(&p[1])?)));
        let Some((labels, urls)) = parsed else {
            return Err(format!(
                "services[{i}] is not [[labels...], [URLs...]] (RFC 9224)"
            ));
        };
        out.push((labels, urls));
    }
    Ok(Services(out))
}

impl Services {
    /// The RDAP base URL for `domain` (lower case ASCII): the entry with the longest matching
    /// label, its `https` URL first.
    pub fn base_for(&self, domain: &str) -> Option<&str> {
        let mut suffix = domain;
        loop {
            let found = self
                .0
                .iter()
                .find(|(labels, _)| labels.iter().any(|l| l == suffix));
            if let Some((_, urls)) = found {
                return urls
                    .iter()
                    .find(|u| u.starts_with("https://"))
                    .or_else(|| urls.iter().find(|u| u.starts_with("http://")))
                    .map(String::as_str);
            }
            suffix = suffix.split_once('.')?.1;
        }
    }
}

/// The `eventDate` of the `expiration` event of an RDAP domain answer (RFC 9083 §4.5, §5.3).
pub fn expiration(answer: &[u8]) -> Result<DateTime<Utc>, String> {
    let v: serde_json::Value =
        serde_json::from_slice(answer).map_err(|e| format!("the answer is not JSON: {e}"))?;
    if let Some(class) = v.get("objectClassName").and_then(|c| c.as_str())
        && class != "domain"
    {
        return Err(format!(
            "the answer is a {class:?} object, expected a domain"
        ));
    }
    let events = v
        .get("events")
        .and_then(|e| e.as_array())
        .ok_or("the answer has no \"events\" array, so no expiration date")?;
    let event = events
        .iter()
        .find(|e| {
            e.get("eventAction")
                .and_then(|a| a.as_str())
                .is_some_and(|a| a.eq_ignore_ascii_case("expiration"))
        })
        .ok_or("the answer has no \"expiration\" event: the registry does not publish one")?;
    let date = event
        .get("eventDate")
        .and_then(|d| d.as_str())
        .ok_or("the \"expiration\" event has no eventDate")?;
    DateTime::parse_from_rfc3339(date)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| {
            let shown: String = date.chars().take(60).collect();
            format!("the expiration date {shown:?} is not an RFC 3339 date: {e}")
        })
}

#[cfg(test)]
mod tests;
