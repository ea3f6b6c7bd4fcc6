//! nginx access log lines, counted: requests by status class, response body bytes, and
//! `$request_time` percentiles over each interval. The lines are those the log tailer reads
//! ([`crate::logs::tap`]); this module reads them.
//!
//! Two formats (`log_format` of the integration; docs/integrations.md has the nginx lines):
//!
//! - `combined`: `$remote_addr - $remote_user [$time_local] "$request" $status
//!   $body_bytes_sent "$http_referer" "$http_user_agent"`, optionally followed by a space and
//!   `$request_time`. The request is found between the first `"` after `]` and the `"` that is
//!   followed by a three-digit status, so a request holding a quote (nginx writes `\x22`, other
//!   writers may not) still reads.
//! - `json`: one object a line with `status`, `body_bytes_sent` and optionally `request_time`,
//!   numbers or strings of numbers (`escape=json` writes either, as the format is written).
//!
//! A line longer than [`MAX_LINE_BYTES`] (or one the tailer cut) is counted as too long and
//! skipped; one that does not read is counted as unparseable and skipped; never a panic.
//! Latencies are kept in a fixed histogram ([`Latencies`]), so an interval's memory does not
//! grow with its requests.

use std::sync::Mutex;

use serde::Deserialize;

use crate::logs::lines::Line;
use crate::logs::tap::LineTap;
use lookout_config::AccessLogFormat;

/// Longest access log line read; a longer one is counted and skipped.
pub const MAX_LINE_BYTES: usize = 16 * 1024;

/// What one line says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Request {
    /// `$status`.
    pub status: u16,
    /// `$body_bytes_sent`.
    pub bytes: u64,
    /// `$request_time`, in seconds, when the format has it.
    pub time: Option<f64>,
}

/// Reads one line of `format`; none when it does not read.
pub fn parse(line: &[u8], format: AccessLogFormat) -> Option<Request> {
    let text = std::str::from_utf8(line).ok()?;
    match format {
        AccessLogFormat::Combined => combined(text),
        AccessLogFormat::Json => json(text),
    }
}

fn combined(text: &str) -> Option<Request> {
    let after_time = &text[text.find("] \"")? + 3..];
    // The request's closing quote: the first `" ` followed by a three-digit status and a space.
    let mut from = 0;
    let rest = loop {
        let q = from + after_time[from..].find("\" ")?;
        let rest = &after_time[q + 2..];
        let b = rest.as_bytes();
        if b.len() >= 4 && b[..3].iter().all(u8::is_ascii_digit) && b[3] == b' ' {
            break rest;
        }
        from = q + 1;
    };
    let mut words = rest.splitn(3, ' ');
    let status = words.next()?.parse().ok()?;
    let bytes = match words.next()? {
        "-" => 0,
        b => b.parse().ok()?,
    };
    // After the two quoted fields (referer, user agent): `$request_time`, when appended.
    let tail = words.next().unwrap_or("");
    let time = match tail.rfind('"') {
        Some(i) => match tail[i + 1..].trim() {
            "" | "-" => None,
            t => Some(seconds(t)?),
        },
        None => None,
    };
    Some(Request {
        status,
        bytes,
        time,
    })
}

/// A number nginx wrote, bare or quoted.
#[derive(Deserialize)]
#[serde(untagged)]
enum Num {
    N(f64),
    S(String),
}

impl Num {
    fn value(&self) -> Option<f64> {
        match self {
            Num::N(v) => Some(*v),
            Num::S(s) if s == "-" || s.is_empty() => None,
            Num::S(s) => s.parse().ok(),
        }
        .filter(|v: &f64| v.is_finite() && *v >= 0.0)
    }
}

#[derive(Deserialize)]
struct JsonLine {
    status: Num,
    #[serde(default)]
    body_bytes_sent: Option<Num>,
    #[serde(default)]
    request_time: Option<Num>,
}

fn json(text: &str) -> Option<Request> {
    // serde reads a struct from an array too: an object only.
    if !text.trim_start().starts_with('{') {
        return None;
    }
    let l: JsonLine = serde_json::from_str(text).ok()?;
    let status = l.status.value()?;
    if !(100.0..1000.0).contains(&status) {
        return None;
    }
    Some(Request {
        status: status as u16,
        bytes: l.body_bytes_sent.and_then(|b| b.value()).unwrap_or(0.0) as u64,
        time: match l.request_time {
            Some(t) => Some(t.value()?),
            None => None,
        },
    })
}

fn seconds(t: &str) -> Option<f64> {
    t.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0)
}

/// `$request_time`s of an interval, in milliseconds (nginx's resolution): exact below 1 s,
/// then in buckets of 10 ms to 10 s, 100 ms to 100 s, 1 s to 1,000 s, and one bucket above.
/// A percentile is its bucket's lower edge: exact below 1 s, within 1 % above.
#[derive(Debug, Clone)]
pub struct Latencies {
    counts: Vec<u64>,
    n: u64,
}

const EXACT_MS: u64 = 1000;
const BUCKETS: usize = 1000 + 3 * 900 + 1;

impl Default for Latencies {
    fn default() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            n: 0,
        }
    }
}

impl Latencies {
    fn bucket(ms: u64) -> usize {
        match ms {
            0..EXACT_MS => ms as usize,
            1000..10_000 => 1000 + ((ms - 1000) / 10) as usize,
            10_000..100_000 => 1900 + ((ms - 10_000) / 100) as usize,
            100_000..1_000_000 => 2800 + ((ms - 100_000) / 1000) as usize,
            _ => BUCKETS - 1,
        }
    }

    fn lower_ms(b: usize) -> u64 {
        let b = b as u64;
        match b {
            0..1000 => b,
            1000..1900 => 1000 + (b - 1000) * 10,
            1900..2800 => 10_000 + (b - 1900) * 100,
            _ => 100_000 + (b - 2800) * 1000,
        }
    }

    /// Adds one time, in seconds.
    pub fn add(&mut self, seconds: f64) {
        let ms = (seconds * 1000.0).round() as u64;
        self.counts[Self::bucket(ms)] += 1;
        self.n += 1;
    }

    /// How many times were added.
    pub fn len(&self) -> u64 {
        self.n
    }

    /// True when none was added.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The `q` quantile (0 < q ≤ 1) by nearest rank, in seconds; none when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.n == 0 {
            return None;
        }
        let rank = ((q * self.n as f64).ceil() as u64).clamp(1, self.n);
        let mut seen = 0;
        for (b, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(Self::lower_ms(b) as f64 / 1000.0);
            }
        }
        None
    }
}

/// Counts since the agent started, and the interval's latencies.
#[derive(Debug, Default)]
pub struct Totals {
    /// Requests by status class: 1xx at 0 to 5xx at 4 (other statuses are not counted).
    pub by_class: [u64; 5],
    /// Sum of `$body_bytes_sent`.
    pub bytes: u64,
    /// Lines skipped as longer than [`MAX_LINE_BYTES`] or cut by the tailer.
    pub too_long: u64,
    /// Lines skipped as unreadable in the format.
    pub unparseable: u64,
    /// `$request_time`s since the last [`AccessTap::take`].
    pub latencies: Latencies,
    /// Requests by status class since the last [`AccessTap::take`].
    pub interval: [u64; 5],
}

/// The integration's look at its access log's lines.
#[derive(Debug)]
pub struct AccessTap {
    format: AccessLogFormat,
    /// A std lock: taken by the tailer's thread and by the integration's read, briefly.
    totals: Mutex<Totals>,
}

impl AccessTap {
    /// A tap reading lines of `format`.
    pub fn new(format: AccessLogFormat) -> Self {
        Self {
            format,
            totals: Mutex::new(Totals::default()),
        }
    }

    /// The totals so far, with the interval's latencies (which start again empty).
    pub fn take(&self) -> Totals {
        match self.totals.lock() {
            Ok(mut t) => Totals {
                latencies: std::mem::take(&mut t.latencies),
                interval: std::mem::take(&mut t.interval),
                ..*t
            },
            Err(_) => Totals::default(),
        }
    }

    /// Counts one line into `t`.
    fn count(&self, t: &mut Totals, line: &Line) {
        if line.cut > 0 || line.bytes.len() > MAX_LINE_BYTES {
            t.too_long += 1;
            return;
        }
        let Some(r) = parse(&line.bytes, self.format) else {
            t.unparseable += 1;
            return;
        };
        if let Some(class) = (r.status / 100).checked_sub(1).filter(|c| *c < 5) {
            t.by_class[class as usize] += 1;
            t.interval[class as usize] += 1;
        }
        t.bytes = t.bytes.saturating_add(r.bytes);
        if let Some(time) = r.time {
            t.latencies.add(time);
        }
    }
}

impl LineTap for AccessTap {
    fn lines(&self, lines: &[Line]) {
        let Ok(mut t) = self.totals.lock() else {
            return;
        };
        for l in lines {
            if l.bytes.iter().all(u8::is_ascii_whitespace) && l.cut == 0 {
                continue;
            }
            self.count(&mut t, l);
        }
    }
}

#[cfg(test)]
mod tests;
