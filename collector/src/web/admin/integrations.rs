//! The host page's integration sections: for each `[[integrations]]` entry an agent reads
//! (known from its `lookout.integration.up` series), a heading saying whether its last read
//! worked and the key charts of its type, drawn from the same minute rollups as the host's own
//! charts. Which charts a type gets is the table [`charts_of`]; a chart with no data in the
//! window (a replica's lag on a primary) is left out.

use std::collections::{BTreeMap, HashMap};

use maud::{Markup, html};

use super::charts::{Series, line_chart, means_by, rates_by};
use crate::store::{MetricRollup, MetricRow};

/// The gauge every integration read gives (the agent's `integrations::UP_METRIC`).
const UP_METRIC: &str = "lookout.integration.up";

/// One integration an agent reads, from its latest up sample.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Integration {
    /// The `integration` label: the entry's `name`.
    pub name: String,
    /// The `type` label: `redis`, `postgresql`, ...
    pub kind: String,
    /// Whether the latest read worked.
    pub up: bool,
}

/// The integrations among an agent's latest samples, by name.
pub(super) fn integrations(latest: &[MetricRow]) -> Vec<Integration> {
    let mut found: Vec<Integration> = latest
        .iter()
        .filter(|m| m.name == UP_METRIC)
        .filter_map(|m| {
            Some(Integration {
                name: m.labels.get("integration")?.clone(),
                kind: m.labels.get("type")?.clone(),
                up: m.value >= 1.0,
            })
        })
        .collect();
    found.sort_by(|a, b| a.name.cmp(&b.name));
    found.dedup_by(|a, b| a.name == b.name);
    found
}

/// How a chart's series come from its metric's rollups.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// The minute's mean, times the factor (100 for a ratio shown in percent).
    Mean(f64),
    /// The per-second increase of a counter.
    Rate,
}

/// Which series of a metric a chart takes, by a label.
#[derive(Debug, Clone, Copy)]
enum Only {
    All,
    /// Those with the label.
    Has(&'static str),
    /// Those without it.
    Lacks(&'static str),
    /// Those where it has this value.
    Is(&'static str, &'static str),
}

impl Only {
    fn takes(self, l: &BTreeMap<String, String>) -> bool {
        match self {
            Only::All => true,
            Only::Has(k) => l.contains_key(k),
            Only::Lacks(k) => !l.contains_key(k),
            Only::Is(k, v) => l.get(k).map(String::as_str) == Some(v),
        }
    }
}

/// One chart of an integration type.
#[derive(Debug, Clone, Copy)]
struct Chart {
    title: &'static str,
    metric: &'static str,
    unit: &'static str,
    shape: Shape,
    /// The label that names the series (one series when `None`).
    split: Option<&'static str>,
    /// Which of the metric's series the chart takes.
    only: Only,
    /// The top of the chart, when fixed.
    max: Option<f64>,
}

/// A chart of one series, with no filter and a free top.
const fn chart(
    title: &'static str,
    metric: &'static str,
    unit: &'static str,
    shape: Shape,
) -> Chart {
    Chart {
        title,
        metric,
        unit,
        shape,
        split: None,
        only: Only::All,
        max: None,
    }
}

const PERCENT: Shape = Shape::Mean(100.0);
const MEAN: Shape = Shape::Mean(1.0);

/// The key charts of each integration type (docs/integrations.md lists the metrics).
fn charts_of(kind: &str) -> Vec<Chart> {
    match kind {
        "redis" => vec![
            chart("Memory used", "redis.memory.used", "B", MEAN),
            chart("Clients", "redis.clients.connected", "clients", MEAN),
            chart("Commands", "redis.commands.processed", "cmd/s", Shape::Rate),
            chart("Evicted keys", "redis.keys.evicted", "keys/s", Shape::Rate),
        ],
        "postgresql" => vec![
            Chart {
                split: Some("state"),
                ..chart("Connections", "postgresql.backends", "conn", MEAN)
            },
            Chart {
                max: Some(100.0),
                ..chart(
                    "Connections of the limit",
                    "postgresql.connection.usage",
                    "%",
                    PERCENT,
                )
            },
            chart("Commits", "postgresql.commits", "tx/s", Shape::Rate),
            chart("Replica lag", "postgresql.replica.lag", "s", MEAN),
            Chart {
                split: Some("replica"),
                only: Only::Is("operation", "replay"),
                ..chart("Replication lag (replay)", "postgresql.wal.lag", "s", MEAN)
            },
        ],
        "nginx" => vec![
            Chart {
                only: Only::Lacks("status_class"),
                ..chart("Requests", "nginx.requests", "req/s", Shape::Rate)
            },
            Chart {
                split: Some("status_class"),
                only: Only::Has("status_class"),
                ..chart("Logged responses", "nginx.requests", "req/s", Shape::Rate)
            },
            Chart {
                split: Some("state"),
                ..chart("Connections", "nginx.connections_current", "conn", MEAN)
            },
            Chart {
                max: Some(100.0),
                ..chart(
                    "5xx of responses",
                    "nginx.requests.server_error_ratio",
                    "%",
                    PERCENT,
                )
            },
            Chart {
                split: Some("quantile"),
                ..chart("Request time", "nginx.request.duration", "s", MEAN)
            },
        ],
        "prometheus" => vec![chart(
            "Series scraped",
            "prometheus.scrape.series",
            "series",
            MEAN,
        )],
        "containers" => ["CPU", "Memory", "Restarts", "Running (1 yes, 0 no)"]
            .into_iter()
            .zip([
                ("container.cpu.usage", "cores"),
                ("container.memory.usage", "B"),
                ("container.restarts", "restarts"),
                ("container.running", ""),
            ])
            .map(|(title, (metric, unit))| Chart {
                split: Some("container"),
                ..chart(title, metric, unit, MEAN)
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The metric names the sections of `found` chart, each once.
pub(super) fn metrics_charted(found: &[Integration]) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = found
        .iter()
        .flat_map(|i| charts_of(&i.kind))
        .map(|c| c.metric)
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// One chart's series from the rollups of its metric, for the integration `name`.
fn series(c: &Chart, name: &str, rows: &[MetricRollup]) -> Series {
    let key = |l: &BTreeMap<String, String>| -> Option<String> {
        if l.get("integration").map(String::as_str) != Some(name) || !c.only.takes(l) {
            return None;
        }
        Some(c.split.and_then(|s| l.get(s).cloned()).unwrap_or_default())
    };
    match c.shape {
        Shape::Mean(scale) => means_by(rows, key, scale),
        Shape::Rate => rates_by(rows, key),
    }
}

/// The sections of the host page for `found`, from `rollups` (by metric name).
pub(super) fn sections(
    found: &[Integration],
    rollups: &HashMap<&str, Vec<MetricRollup>>,
    from: i64,
    to: i64,
) -> Markup {
    html! {
        @for i in found {
            section class="integration" data-integration=(i.name) {
                h2 {
                    (i.name) " "
                    span class="muted" {
                        "(" (i.kind) ", " (if i.up { "read" } else { "not read" }) " at the last try)"
                    }
                }
                @let charts: Vec<Markup> = charts_of(&i.kind)
                    .iter()
                    .filter_map(|c| {
                        let rows = rollups.get(c.metric).map_or(&[][..], Vec::as_slice);
                        let s = series(c, &i.name, rows);
                        s.iter().any(|(_, p)| !p.is_empty())
                            .then(|| line_chart(c.title, c.unit, &s, from, to, c.max))
                    })
                    .collect();
                @if charts.is_empty() {
                    p class="muted" { "No data charted for this integration in the window." }
                } @else {
                    div class="charts" { @for c in charts { (c) } }
                }
            }
        }
    }
}
