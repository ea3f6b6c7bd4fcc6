//! The public status page (`GET /`), server-rendered from [`crate::views::StatusModel`]. It
//! needs no JavaScript: a small script (`/assets/status.js`) only keeps the states current.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::response::{Html, IntoResponse};
use chrono::{DateTime, Utc};

use super::escape;
use crate::auth::Reader;
use crate::error::AppError;
use crate::state::AppState;
use crate::views::CheckStatus;
use crate::views::status::{CheckModel, DayModel, IncidentModel, StatusModel, model};

/// `GET /`, with the time it took in `Server-Timing`.
pub async fn index(
    State(state): State<Arc<AppState>>,
    _: Reader,
) -> Result<impl IntoResponse, AppError> {
    let started = Instant::now();
    let m = model(&state.store, &state.config(), &state.status_history).await?;
    let html = render(&m);
    Ok((crate::telemetry::server_timing(started), Html(html)))
}

/// The state as a word with a symbol, so it does not rest on colour.
pub fn state_words(s: CheckStatus) -> &'static str {
    match s {
        CheckStatus::Up => "✓ Up",
        CheckStatus::Down => "✕ Down",
        CheckStatus::Pending => "… Pending",
        CheckStatus::Unknown => "? Unknown",
    }
}

fn banner(overall: &str) -> &'static str {
    match overall {
        "up" => "All systems operational",
        "down" => "Some systems are down",
        _ => "Some systems have no recent results",
    }
}

/// A page's head and opening, shared with the admin pages.
pub fn head(out: &mut String, title: &str, script: Option<&str>) {
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{title}</title><link rel=\"stylesheet\" href=\"/assets/lookout.css\">",
        title = escape(title)
    );
    if let Some(src) = script {
        let _ = write!(out, "<script src=\"{src}\" defer></script>");
    }
}

fn render(m: &StatusModel) -> String {
    let checks: usize = m.groups.iter().map(|g| g.checks.len()).sum();
    // About 4 kB a check: 90 day bars with their titles, and the chart.
    let mut out = String::with_capacity(4096 + checks * 4500);
    head(&mut out, &m.title, Some("/assets/status.js"));
    let _ = write!(
        out,
        "<noscript><meta http-equiv=\"refresh\" content=\"60\"></noscript></head><body>\
         <header><h1>{title}</h1><p id=\"overall\" class=\"banner s-{overall}\" role=\"status\">{banner}</p></header><main>",
        title = escape(&m.title),
        overall = m.overall,
        banner = banner(m.overall),
    );
    if !m.maintenance.is_empty() {
        out.push_str("<section aria-labelledby=\"maint\"><h2 id=\"maint\">Maintenance</h2>");
        for w in &m.maintenance {
            let _ = write!(
                out,
                "<p class=\"notice maintenance\"><strong>{when}:</strong> {name}, {from} to {to}</p>",
                when = if w.active { "In progress" } else { "Scheduled" },
                name = escape(&w.name),
                from = when(w.starts),
                to = when(w.ends),
            );
        }
        out.push_str("</section>");
    }
    if !m.open_incidents.is_empty() {
        out.push_str("<section aria-labelledby=\"open\"><h2 id=\"open\">Current incidents</h2>");
        for i in &m.open_incidents {
            incident(&mut out, i);
        }
        out.push_str("</section>");
    }
    if m.groups.is_empty() {
        out.push_str("<p>No checks yet: add <code>[[checks]]</code> to the configuration.</p>");
    }
    for (gi, g) in m.groups.iter().enumerate() {
        let _ = write!(
            out,
            "<section class=\"group\" aria-labelledby=\"g{gi}\"><h2 id=\"g{gi}\">{name}</h2>",
            name = escape(&g.name)
        );
        for c in &g.checks {
            check(&mut out, c, m.generated);
        }
        out.push_str("</section>");
    }
    out.push_str("<section aria-labelledby=\"recent\"><h2 id=\"recent\">Recent incidents</h2>");
    if m.recent_incidents.is_empty() {
        out.push_str("<p class=\"muted\">No incidents in the last 14 days.</p>");
    }
    for i in &m.recent_incidents {
        incident(&mut out, i);
    }
    let _ = write!(
        out,
        "</section></main><footer>Updated {at} · uptime from results of every agent that runs a \
         check · <a href=\"/api/v1/status\">JSON</a> · <a href=\"/admin\">Admin</a></footer></body></html>",
        at = when(m.generated)
    );
    out
}

fn incident(out: &mut String, i: &IncidentModel) {
    let _ = write!(
        out,
        "<p class=\"notice incident\"><strong>{check}</strong>: {summary}<br><span class=\"muted\">\
         {from} – {to}</span></p>",
        check = escape(&i.check),
        summary = escape(&i.summary),
        from = when(i.started),
        to = i.ended.map_or_else(|| "ongoing".to_string(), when),
    );
}

fn check(out: &mut String, c: &CheckModel, now: DateTime<Utc>) {
    let s = c.status.as_str();
    let _ = write!(
        out,
        "<article class=\"check s-{s}\" id=\"{anchor}\" data-check=\"{name}\"><div class=\"head\">\
         <h3>{name}</h3><span class=\"state\" data-state>{words}</span></div><dl class=\"uptime\">",
        anchor = crate::notify::route::check_anchor(&c.name),
        name = escape(&c.name),
        words = state_words(c.status),
    );
    for (label, value) in [
        ("24 h", c.uptime.h24),
        ("7 d", c.uptime.d7),
        ("30 d", c.uptime.d30),
        ("90 d", c.uptime.d90),
    ] {
        let _ = write!(
            out,
            "<div><dt>{label}</dt><dd>{}</dd></div>",
            percent(value)
        );
    }
    out.push_str("</dl>");
    if let Some(e) = &c.error {
        let _ = write!(out, "<p class=\"error\">{}</p>", escape(e));
    }
    bars(out, &c.days, c.uptime.d90);
    out.push_str(
        "<div class=\"axis\" aria-hidden=\"true\"><span>90 days ago</span><span>today</span></div>",
    );
    chart(out, c, now);
    out.push_str("</article>");
}

/// How a day looks: its class, which sets its colour and, the lower the uptime, a shorter bar
/// (lookout.css), so that bad days stand out without colour too.
fn look(d: &DayModel) -> &'static str {
    match d.uptime {
        None => "",
        Some(u) if u >= 0.999 => "u4",
        Some(u) if u >= 0.99 => "u3",
        Some(u) if u >= 0.95 => "u2",
        Some(_) => "u1",
    }
}

/// A day that may share its bar with its neighbours: nothing failed and no incident, or no
/// data at all. Other days get a bar of their own.
fn plain(d: &DayModel) -> Option<bool> {
    (d.incidents == 0 && d.failures == 0).then_some(d.count > 0)
}

/// The 90-day bar as one SVG: a rectangle per day with something to say, one per run of
/// plain days, each with its title (shown on hover, read by screen readers). A run of 80
/// perfect days is one element, which keeps a page of 1,000 checks small.
fn bars(out: &mut String, days: &[DayModel], total: Option<f64>) {
    let _ = write!(
        out,
        "<svg class=\"bars\" viewBox=\"0 0 {n} 10\" preserveAspectRatio=\"none\" role=\"img\" \
         aria-label=\"Daily uptime, last {n} days: {total} overall\">",
        n = days.len(),
        total = percent(total),
    );
    let mut i = 0;
    while i < days.len() {
        let d = &days[i];
        let mut n = 1;
        if let Some(kind) = plain(d) {
            while i + n < days.len() && plain(&days[i + n]) == Some(kind) {
                n += 1;
            }
        }
        let class = look(d);
        let marked = if d.incidents > 0 { " x" } else { "" };
        let _ = write!(
            out,
            "<rect x=\"{i}\" width=\"{w}\" height=\"10\" class=\"{class}{marked}\"><title>",
            w = n as f64 - 0.15,
        );
        if n == 1 {
            day_title(out, d);
        } else {
            let last = &days[i + n - 1];
            let _ = write!(
                out,
                "{} to {}: {}",
                d.date,
                last.date,
                if d.count > 0 {
                    "100% up, nothing failed"
                } else {
                    "no data"
                }
            );
        }
        out.push_str("</title></rect>");
        i += n;
    }
    out.push_str("</svg>");
}

fn day_title(out: &mut String, d: &DayModel) {
    let _ = write!(out, "{}: ", d.date);
    match d.uptime {
        Some(u) => {
            let _ = write!(
                out,
                "{} up, {} of {} failed",
                percent(Some(u)),
                d.failures,
                d.count
            );
        }
        None => out.push_str("no data"),
    }
    match d.incidents {
        0 => {}
        1 => out.push_str(", 1 incident"),
        n => {
            let _ = write!(out, ", {n} incidents");
        }
    }
}

/// The last 24 hours' mean response time per hour, each hour a step, the current hour at the
/// right; its figures in words beside it (an SVG stretched to the width would stretch text).
fn chart(out: &mut String, c: &CheckModel, now: DateTime<Utc>) {
    if c.response_ms.is_empty() {
        return;
    }
    let max = c
        .response_ms
        .iter()
        .map(|p| p.avg_ms)
        .fold(0.0_f64, f64::max);
    let scale = if max > 0.0 { 36.0 / max } else { 0.0 };
    let mean = c.response_ms.iter().map(|p| p.avg_ms).sum::<f64>() / c.response_ms.len() as f64;
    let this_hour = now.timestamp().div_euclid(3600) * 3600;
    let _ = write!(
        out,
        "<svg class=\"chart\" viewBox=\"0 0 240 48\" preserveAspectRatio=\"none\" aria-hidden=\"true\">\
         <polyline points=\""
    );
    for p in &c.response_ms {
        let hours_back = (this_hour - p.time.timestamp()) / 3600;
        let x = 240.0 - (hours_back as f64 + 1.0) * 10.0;
        let y = 44.0 - p.avg_ms * scale;
        let _ = write!(out, "{x:.0},{y:.1} {:.0},{y:.1} ", x + 10.0);
    }
    let _ = write!(
        out,
        "\"/></svg><p class=\"chart-label\">Response time, last 24 h: mean {mean:.0} ms, highest hour {max:.0} ms</p>"
    );
}

/// An uptime as a percentage, written straight into the page: two decimals, floored, so a
/// window with a failure never shows 100.00%.
struct Percent(Option<f64>);

impl std::fmt::Display for Percent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            None => f.write_str("–"),
            Some(u) if u < 1.0 => write!(f, "{:.2}%", (u * 10_000.0).floor() / 100.0),
            Some(_) => f.write_str("100%"),
        }
    }
}

fn percent(v: Option<f64>) -> Percent {
    Percent(v)
}

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

#[cfg(test)]
mod tests {
    use super::percent;

    #[test]
    fn percentages_round_down_so_a_failure_never_shows_as_100() {
        assert_eq!(percent(None).to_string(), "–");
        assert_eq!(percent(Some(1.0)).to_string(), "100%");
        assert_eq!(percent(Some(0.99999)).to_string(), "99.99%");
        assert_eq!(percent(Some(0.5)).to_string(), "50.00%");
    }
}
