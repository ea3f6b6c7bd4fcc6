//! The Prometheus text format (0.0.4) and OpenMetrics 1.0, read line by line into series.
//!
//! Both formats are lines of `name{label="value",...} value [timestamp]` with `#` comments;
//! `# TYPE` names a family's type, which decides whether its series are counters or gauges.
//! OpenMetrics adds `# UNIT`, `# EOF` (the end: nothing after it is read), `_created` series and
//! exemplars after ` # ` (ignored). The parser is bounded by [`Limits`]: a line too long, a
//! series with too many labels, or a series past the most kept is skipped and counted in
//! [`Skipped`], as is a line it cannot read; it never panics.

use std::collections::HashMap;

use lookout_protocol::MetricType;
use regex::Regex;

/// The parser's bounds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest line read; a longer one is skipped.
    pub max_line_bytes: usize,
    /// Most series kept; the rest are counted.
    pub max_series: usize,
    /// Most labels on one series (as exposed); a series with more is skipped.
    pub max_labels: usize,
}

/// Longest line read by default.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// Most labels on one series.
pub const MAX_LABELS: usize = 64;

/// Which names are kept: those matching `keep` (whole), then not matching `drop` (whole).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    keep: Option<Regex>,
    drop: Option<Regex>,
}

impl Filter {
    /// The filter from the configuration's regexes, anchored at both ends.
    pub fn new(keep: Option<&str>, drop: Option<&str>) -> Result<Self, regex::Error> {
        let anchored = |r: Option<&str>| r.map(|r| Regex::new(&format!("^(?:{r})$"))).transpose();
        Ok(Filter {
            keep: anchored(keep)?,
            drop: anchored(drop)?,
        })
    }

    /// Whether a series named `name` is kept.
    pub fn keeps(&self, name: &str) -> bool {
        self.keep.as_ref().is_none_or(|k| k.is_match(name))
            && !self.drop.as_ref().is_some_and(|d| d.is_match(name))
    }
}

/// One series of a scrape.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Its name as exposed (`node_cpu_seconds_total`, `foo_bucket`).
    pub name: String,
    /// Its labels as exposed, unescaped.
    pub labels: Vec<(String, String)>,
    /// Its value (may be NaN or infinite).
    pub value: f64,
    /// Counter or gauge, from its family's `# TYPE`.
    pub metric_type: MetricType,
}

/// What a scrape left out, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Skipped {
    /// Lines longer than the limit.
    pub long_lines: usize,
    /// Lines that are not a comment, a blank or a readable series.
    pub bad_lines: usize,
    /// Series with more labels than the limit.
    pub too_many_labels: usize,
    /// Series past the most kept.
    pub over_series: usize,
    /// Series left out by `keep`/`drop`.
    pub filtered: usize,
}

/// A scrape, read.
#[derive(Debug, Default)]
pub struct Scrape {
    /// The series kept, in the order exposed.
    pub series: Vec<Series>,
    /// What was left out.
    pub skipped: Skipped,
    /// Whether `# EOF` was seen.
    pub eof: bool,
}

/// A family's declared type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Counter,
    Gauge,
    Histogram,
    GaugeHistogram,
    Summary,
    Other,
}

/// Suffixes a series adds to its family's name.
const SUFFIXES: &[&str] = &[
    "_total", "_bucket", "_count", "_sum", "_created", "_gcount", "_gsum", "_info",
];

/// How a series of a family is stored, by the suffix it adds to the family's name.
fn metric_type(family: Family, suffix: &str) -> MetricType {
    match (family, suffix) {
        (_, "_created") => MetricType::Gauge,
        (Family::Counter, _) => MetricType::Counter,
        (Family::Histogram | Family::Summary, "_bucket" | "_count" | "_sum") => MetricType::Counter,
        _ => MetricType::Gauge,
    }
}

/// Reads `text` (see the module doc), keeping the names `filter` keeps.
pub fn parse(text: &str, filter: &Filter, limits: &Limits) -> Scrape {
    let mut out = Scrape::default();
    let mut families: HashMap<&str, Family> = HashMap::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.len() > limits.max_line_bytes {
            out.skipped.long_lines += 1;
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some("EOF"), None, _) => {
                    out.eof = true;
                    break;
                }
                (Some("TYPE"), Some(name), Some(kind)) => {
                    let family = match kind {
                        "counter" => Family::Counter,
                        "gauge" => Family::Gauge,
                        "histogram" => Family::Histogram,
                        "gaugehistogram" => Family::GaugeHistogram,
                        "summary" => Family::Summary,
                        _ => Family::Other,
                    };
                    families.insert(name, family);
                }
                // HELP, UNIT and other comments carry nothing stored.
                _ => {}
            }
            continue;
        }
        let Some((name, labels, value)) = series(line) else {
            out.skipped.bad_lines += 1;
            continue;
        };
        if labels.len() > limits.max_labels {
            out.skipped.too_many_labels += 1;
            continue;
        }
        if !filter.keeps(name) {
            out.skipped.filtered += 1;
            continue;
        }
        if out.series.len() >= limits.max_series {
            out.skipped.over_series += 1;
            continue;
        }
        let metric_type = match families.get(name) {
            Some(f) => metric_type(*f, ""),
            None => SUFFIXES
                .iter()
                .find_map(|s| {
                    let base = name.strip_suffix(s)?;
                    families.get(base).map(|f| metric_type(*f, s))
                })
                .unwrap_or(MetricType::Gauge),
        };
        out.series.push(Series {
            name: name.to_string(),
            labels,
            value,
            metric_type,
        });
    }
    out
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// A series line read: its name, labels and value.
type Line<'a> = (&'a str, Vec<(String, String)>, f64);

/// A series line's name, labels and value; none when it cannot be read.
fn series(line: &str) -> Option<Line<'_>> {
    let end = line.find(|c: char| !is_name_char(c)).unwrap_or(line.len());
    let name = &line[..end];
    if !name.starts_with(is_name_start) {
        return None;
    }
    let mut rest = &line[end..];
    let mut labels = Vec::new();
    if let Some(inside) = rest.strip_prefix('{') {
        rest = label_set(inside, &mut labels)?;
    }
    // The value, an optional timestamp, then an optional exemplar after `#`.
    let mut words = rest.split_whitespace();
    if !rest.starts_with([' ', '\t']) {
        return None;
    }
    let value = number(words.next()?)?;
    match words.next() {
        None | Some("#") => {}
        Some(ts) => {
            number(ts).filter(|t| t.is_finite())?;
            if !matches!(words.next(), None | Some("#")) {
                return None;
            }
        }
    }
    Some((name, labels, value))
}

/// Reads `name="value",...}` into `labels`; the text after `}`.
fn label_set<'a>(mut s: &'a str, labels: &mut Vec<(String, String)>) -> Option<&'a str> {
    loop {
        s = s.trim_start();
        if let Some(rest) = s.strip_prefix('}') {
            return Some(rest);
        }
        let end = s.find(|c: char| !is_name_char(c))?;
        let key = &s[..end];
        if !key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
            return None;
        }
        s = s[end..].trim_start().strip_prefix('=')?.trim_start();
        s = s.strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let close = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    other => {
                        value.push('\\');
                        value.push(other);
                    }
                },
                (_, c) => value.push(c),
            }
        };
        labels.push((key.to_string(), value));
        s = s[close + 1..].trim_start();
        if let Some(rest) = s.strip_prefix(',') {
            s = rest;
        } else if !s.starts_with('}') {
            return None;
        }
    }
}

/// A value or timestamp: a float, `NaN`, `+Inf` or `-Inf`.
fn number(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        // Rust's parser also takes "inf", "infinity" and "nan" in any case: the formats do not.
        _ if s
            .bytes()
            .any(|b| b.is_ascii_alphabetic() && b != b'e' && b != b'E') =>
        {
            None
        }
        _ => s.parse().ok(),
    }
}
