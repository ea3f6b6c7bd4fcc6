//! The host page's charts: series from the metric rollups (CPU busy, memory and disk used,
//! network rates from counters) drawn as SVG line charts, with their latest values in words.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use maud::{Markup, html};

use crate::store::MetricRollup;

/// Hours of host metrics the host page charts.
pub(super) const CHART_HOURS: i64 = 6;

/// Named series of `(Unix seconds, value)` points.
pub(super) type Series = Vec<(String, Vec<(i64, f64)>)>;

/// The per-minute mean of each series, as a percentage, split by the label `label` (a memory
/// state, a mount point).
pub(super) fn percent_by(rows: &[MetricRollup], label: &str) -> Series {
    means_by(
        rows,
        |l| Some(l.get(label).cloned().unwrap_or_default()),
        100.0,
    )
}

/// The per-minute mean of each row, times `scale`, in series named by `key` (rows it gives
/// `None` are left out; rows with the same key in one minute are added up, as the backends of
/// several states or databases make one total).
pub(super) fn means_by(
    rows: &[MetricRollup],
    key: impl Fn(&BTreeMap<String, String>) -> Option<String>,
    scale: f64,
) -> Series {
    let mut series: BTreeMap<String, BTreeMap<i64, f64>> = BTreeMap::new();
    for r in rows {
        let Some(name) = key(&r.labels) else {
            continue;
        };
        *series
            .entry(name)
            .or_default()
            .entry(r.bucket.timestamp())
            .or_default() += scale * r.sum / r.count.max(1) as f64;
    }
    series
        .into_iter()
        .map(|(k, m)| (k, m.into_iter().collect()))
        .collect()
}

/// CPU busy per minute, in percent: 100 less the idle share of all CPUs.
pub(super) fn cpu_busy(rows: &[MetricRollup]) -> Series {
    let busy = rows
        .iter()
        .filter(|r| {
            r.labels.get("cpu").map(String::as_str) == Some("all")
                && r.labels.get("state").map(String::as_str) == Some("idle")
        })
        .map(|r| {
            (
                r.bucket.timestamp(),
                100.0 * (1.0 - r.sum / r.count.max(1) as f64),
            )
        })
        .collect();
    vec![("all".into(), busy)]
}

/// Bytes per second per direction, all devices but loopback, from the counters' last value in
/// each minute; a counter that went back (a restart) gives no rate for that minute.
pub(super) fn network_rates(rows: &[MetricRollup]) -> Series {
    rates_by(rows, |l| {
        (l.get("device").map(String::as_str) != Some("lo"))
            .then(|| l.get("direction").cloned().unwrap_or_default())
    })
}

/// Per-second rates of counters, from each series' last value in each minute, added up in
/// series named by `key` (rows it gives `None` are left out). A counter that went back (a
/// restart) gives no rate for that minute.
pub(super) fn rates_by(
    rows: &[MetricRollup],
    key: impl Fn(&BTreeMap<String, String>) -> Option<String>,
) -> Series {
    // Each series (label set): its chart series' name and its points.
    type Points = (String, Vec<(i64, f64)>);
    let mut by_series: BTreeMap<&BTreeMap<String, String>, Points> = BTreeMap::new();
    for r in rows {
        let Some(name) = key(&r.labels) else {
            continue;
        };
        by_series
            .entry(&r.labels)
            .or_insert_with(|| (name, Vec::new()))
            .1
            .push((r.bucket.timestamp(), r.last));
    }
    let mut by_key: BTreeMap<String, BTreeMap<i64, f64>> = BTreeMap::new();
    for (_, (name, mut points)) in by_series {
        points.sort_by_key(|p| p.0);
        let sums = by_key.entry(name).or_default();
        for w in points.windows(2) {
            let (dt, dv) = (w[1].0 - w[0].0, w[1].1 - w[0].1);
            if dt > 0 && dv >= 0.0 {
                *sums.entry(w[1].0).or_default() += dv / dt as f64;
            }
        }
    }
    by_key
        .into_iter()
        .map(|(k, m)| (k, m.into_iter().collect()))
        .collect()
}

/// An SVG line chart of up to four series over `[from, to]` (Unix seconds), with the latest
/// values in words below it. `fixed_max` is the top of the chart (100 for percentages);
/// without it the top is the highest value.
pub(super) fn line_chart(
    title: &str,
    unit: &str,
    series: &Series,
    from: i64,
    to: i64,
    fixed_max: Option<f64>,
) -> Markup {
    let shown: Vec<&(String, Vec<(i64, f64)>)> = series
        .iter()
        .filter(|(_, p)| !p.is_empty())
        .take(4)
        .collect();
    let max = fixed_max.unwrap_or_else(|| {
        shown
            .iter()
            .flat_map(|(_, p)| p.iter().map(|v| v.1))
            .fold(0.0, f64::max)
            .max(1.0)
    });
    let span = (to - from).max(1) as f64;
    let strokes = ["var(--link)", "var(--warn)", "var(--up)", "var(--down)"];
    let lines = shown.iter().enumerate().map(|(i, (_, points))| {
        let mut xy = String::with_capacity(points.len() * 12);
        for (t, v) in points {
            let x = (t - from) as f64 / span * 300.0;
            let y = 78.0 - (v / max).clamp(0.0, 1.0) * 70.0;
            let _ = write!(xy, "{x:.1},{y:.1} ");
        }
        (strokes[i % strokes.len()], xy)
    });
    let latest: Vec<String> = shown
        .iter()
        .filter_map(|(name, p)| {
            let v = p.last()?.1;
            Some(if name.is_empty() {
                human(v, unit)
            } else {
                format!("{name} {}", human(v, unit))
            })
        })
        .collect();
    html! {
        figure {
            svg class="chart" viewBox="0 0 300 80" preserveAspectRatio="none" role="img" aria-label=(title) {
                title { (title) ", last " (CHART_HOURS) " hours" }
                @for (stroke, xy) in lines {
                    polyline style={ "stroke:" (stroke) } points=(xy) {}
                }
            }
            figcaption {
                strong { (title) } " (top of chart " (human(max, unit)) "): "
                @if shown.is_empty() { "no data" }
                (latest.join(", "))
            }
        }
    }
}

/// A value with its unit, as the charts' captions say it: `42.0%`, `1.3 MB/s`.
fn human(v: f64, unit: &str) -> String {
    match unit {
        "B/s" | "B" if v >= 1e9 => format!("{:.1} G{unit}", v / 1e9),
        "B/s" | "B" if v >= 1e6 => format!("{:.1} M{unit}", v / 1e6),
        "B/s" | "B" if v >= 1e3 => format!("{:.1} k{unit}", v / 1e3),
        "%" => format!("{v:.1}%"),
        // Rates and seconds are often below 10: a whole number would say 0.
        _ if v.abs() < 10.0 && v.fract() != 0.0 => format!("{v:.2} {unit}").trim_end().into(),
        _ => format!("{v:.0} {unit}").trim_end().into(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::*;

    #[test]
    fn network_rates_come_from_counter_differences_without_loopback() {
        let row = |device: &str, direction: &str, t: i64, last: f64| MetricRollup {
            labels: [
                ("device".to_string(), device.to_string()),
                ("direction".to_string(), direction.to_string()),
            ]
            .into(),
            bucket: DateTime::from_timestamp(t, 0).unwrap(),
            count: 1,
            sum: last,
            min: last,
            max: last,
            last,
        };
        let rates = network_rates(&[
            row("eth0", "receive", 0, 1000.0),
            row("eth0", "receive", 60, 7000.0),
            row("eth1", "receive", 0, 0.0),
            row("eth1", "receive", 60, 600.0),
            row("lo", "receive", 0, 0.0),
            row("lo", "receive", 60, 1e9),
            // A restart: the counter went back; no rate for that minute.
            row("eth0", "transmit", 0, 5000.0),
            row("eth0", "transmit", 60, 10.0),
        ]);
        assert_eq!(
            rates,
            [
                ("receive".to_string(), vec![(60, 110.0)]),
                ("transmit".to_string(), vec![])
            ]
        );
    }
}
