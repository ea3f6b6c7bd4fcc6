//! The `prometheus` integration: scrapes a `/metrics` endpoint (an app's, an exporter's) on the
//! agent's host in the Prometheus text format or OpenMetrics, so an app's own metrics have a way
//! into Lookout without a Prometheus server. Names are kept as the endpoint gives them, with its
//! labels plus the integration's; docs/integrations.md says how each type is stored.
//!
//! The answer is read to at most `max_body_bytes` (a larger one is a failed read, said in the
//! error); the parser ([`parse`]) bounds lines, labels per series and series, and what it leaves
//! out is shipped as `prometheus.scrape.skipped` by reason, so a cut scrape is a series, not a
//! surprise.

pub mod parse;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use lookout_config::IntegrationConfig;
use lookout_protocol::{MetricSample, MetricType};

use super::ReadError;
pub use parse::{Filter, Limits, Scrape, Series, Skipped};

/// What is asked for, as Prometheus asks: OpenMetrics first, then the text format 0.0.4.
pub const ACCEPT: &str = "application/openmetrics-text;version=1.0.0;q=0.75,\
                          text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// The count of what a scrape left out, labelled `reason`.
pub const SKIPPED_METRIC: &str = "prometheus.scrape.skipped";
/// The count of series a scrape kept.
pub const SERIES_METRIC: &str = "prometheus.scrape.series";

/// One endpoint's scraper.
pub struct Source {
    client: reqwest::Client,
    url: String,
    filter: Filter,
    limits: Limits,
    max_body_bytes: usize,
}

impl Source {
    /// The scraper of `c`'s `url`, with its `keep`/`drop` and limits.
    pub fn new(c: &IntegrationConfig) -> Result<Self, ReadError> {
        let filter = Filter::new(c.keep.as_deref(), c.drop.as_deref())
            .map_err(|e| ReadError::Config(format!("keep/drop: {e}")))?;
        let client = reqwest::Client::builder()
            .timeout(c.timeout)
            .connect_timeout(c.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ReadError::Config(format!("HTTP client: {e}")))?;
        Ok(Source {
            client,
            url: c.url.clone(),
            filter,
            limits: Limits {
                max_line_bytes: parse::MAX_LINE_BYTES,
                max_series: c.max_series,
                max_labels: parse::MAX_LABELS,
            },
            max_body_bytes: c.max_body_bytes,
        })
    }

    /// One scrape, read.
    pub async fn scrape(&self) -> Result<Scrape, ReadError> {
        let text = self.body().await?;
        Ok(parse::parse(&text, &self.filter, &self.limits))
    }

    /// The endpoint's answer, at most `max_body_bytes`.
    async fn body(&self) -> Result<String, ReadError> {
        let mut response = self
            .client
            .get(&self.url)
            .header(reqwest::header::ACCEPT, ACCEPT)
            .send()
            .await
            .map_err(|e| ReadError::Connect(without_url(&e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(ReadError::Command(format!(
                "the endpoint answered {status}"
            )));
        }
        let too_big = || {
            ReadError::Command(format!(
                "the answer is over max_body_bytes ({} bytes): raise it or drop series at the \
                 endpoint",
                self.max_body_bytes
            ))
        };
        if response
            .content_length()
            .is_some_and(|n| n > self.max_body_bytes as u64)
        {
            return Err(too_big());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| ReadError::Command(format!("reading the answer: {}", without_url(&e))))?
        {
            if body.len() + chunk.len() > self.max_body_bytes {
                return Err(too_big());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(String::from_utf8_lossy(&body).into_owned())
    }
}

/// An HTTP error without its URL (which may hold a password).
fn without_url(e: &reqwest::Error) -> String {
    let mut e = e.to_string();
    if let Some(at) = e.find(" for url (") {
        e.truncate(at);
    }
    e
}

/// A scrape's samples: each series with its labels and `labels` (the integration's, which win:
/// a scraped label of the same key is kept as `exported_<key>`), values not finite left out and
/// counted; then the series count and the skipped counts by reason.
pub fn samples(
    scrape: &Scrape,
    time: DateTime<Utc>,
    labels: &BTreeMap<String, String>,
) -> Vec<MetricSample> {
    let mut out = Vec::with_capacity(scrape.series.len() + 8);
    let mut not_finite = 0usize;
    for s in &scrape.series {
        if !s.value.is_finite() {
            not_finite += 1;
            continue;
        }
        let mut l = labels.clone();
        for (k, v) in &s.labels {
            if labels.contains_key(k) {
                l.insert(format!("exported_{k}"), v.clone());
            } else {
                l.insert(k.clone(), v.clone());
            }
        }
        out.push(MetricSample {
            name: s.name.clone(),
            labels: l,
            time,
            value: s.value,
            metric_type: s.metric_type,
        });
    }
    let sk = &scrape.skipped;
    let gauge = |name: &str, extra: Option<&str>, value: usize| {
        let mut l = labels.clone();
        if let Some(reason) = extra {
            l.insert("reason".into(), reason.into());
        }
        MetricSample {
            name: name.into(),
            labels: l,
            time,
            value: value as f64,
            metric_type: MetricType::Gauge,
        }
    };
    let kept = out.len();
    out.push(gauge(SERIES_METRIC, None, kept));
    for (reason, n) in [
        ("line_too_long", sk.long_lines),
        ("unreadable", sk.bad_lines),
        ("too_many_labels", sk.too_many_labels),
        ("max_series", sk.over_series),
        ("not_finite", not_finite),
        ("filtered", sk.filtered),
    ] {
        out.push(gauge(SKIPPED_METRIC, Some(reason), n));
    }
    out
}

#[cfg(test)]
mod tests;
