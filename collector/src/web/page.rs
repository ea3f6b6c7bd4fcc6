//! The public status page (`GET /`), server-rendered from [`crate::views::StatusModel`] by
//! maud templates (see `web/layout.rs`). It needs no JavaScript: a small script
//! (`/assets/status.js`) only keeps the states current.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::response::{Html, IntoResponse};
use chrono::{DateTime, Utc};
use maud::{Escaper, Markup, Render, html};

use super::layout::{DOCTYPE, Reserve, head_tags};
use crate::auth::Public;
use crate::error::AppError;
use crate::notify::route::check_anchor;
use crate::state::AppState;
use crate::views::CheckStatus;
use crate::views::status::{CheckModel, DayModel, IncidentModel, StatusModel, model};

/// `GET /`, with the time it took in `Server-Timing`.
pub async fn index(
    State(state): State<Arc<AppState>>,
    _: Public,
) -> Result<impl IntoResponse, AppError> {
    let started = Instant::now();
    let m = model(&state.store, &state.config(), &state.status_history).await?;
    let html = render(&m).into_string();
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

fn render(m: &StatusModel) -> Markup {
    let checks: usize = m.groups.iter().map(|g| g.checks.len()).sum();
    // One template for the whole page, so that its one buffer, reserved at once, is the
    // answer: the page can be 11 MB (docs/performance.md).
    html! {
        // About 4 kB a check: 90 day bars with their titles, and the chart.
        (Reserve(4096 + checks * 4500))
        (DOCTYPE)
        html lang="en" {
            head {
                (head_tags(&m.title, Some("/assets/status.js")))
                noscript { meta http-equiv="refresh" content="60"; }
            }
            body {
                header {
                    h1 { (m.title) }
                    p id="overall" class={ "banner s-" (m.overall) } role="status" { (banner(m.overall)) }
                }
                main {
                    @if !m.maintenance.is_empty() {
                        section aria-labelledby="maint" {
                            h2 id="maint" { "Maintenance" }
                            @for w in &m.maintenance {
                                p class="notice maintenance" {
                                    strong { (if w.active { "In progress" } else { "Scheduled" }) ":" }
                                    " " (w.name) ", " (when(w.starts)) " to " (when(w.ends))
                                }
                            }
                        }
                    }
                    @if !m.open_incidents.is_empty() {
                        section aria-labelledby="open" {
                            h2 id="open" { "Current incidents" }
                            @for i in &m.open_incidents { (incident(i)) }
                        }
                    }
                    @if m.groups.is_empty() {
                        p { "No checks yet: add " code { "[[checks]]" } " to the configuration." }
                    }
                    @for (gi, g) in m.groups.iter().enumerate() {
                        section class="group" aria-labelledby={ "g" (gi) } {
                            h2 id={ "g" (gi) } { (g.name) }
                            @for c in &g.checks { (check(c, m.generated)) }
                        }
                    }
                    section aria-labelledby="recent" {
                        h2 id="recent" { "Recent incidents" }
                        @if m.recent_incidents.is_empty() {
                            p class="muted" { "No incidents in the last 14 days." }
                        }
                        @for i in &m.recent_incidents { (incident(i)) }
                    }
                }
                footer {
                    "Updated " (when(m.generated))
                    " · uptime from results of every agent that runs a check · "
                    a href="/api/v1/status" { "JSON" } " · " a href="/admin" { "Admin" }
                }
            }
        }
    }
}

fn incident(i: &IncidentModel) -> Markup {
    html! {
        p class="notice incident" {
            strong { (i.check) } ": " (i.summary) br;
            span class="muted" {
                (when(i.started)) " – "
                @match i.ended {
                    Some(t) => { (when(t)) }
                    None => { "ongoing" }
                }
            }
        }
    }
}

fn check(c: &CheckModel, now: DateTime<Utc>) -> Markup {
    let windows = [
        ("24 h", c.uptime.h24),
        ("7 d", c.uptime.d7),
        ("30 d", c.uptime.d30),
        ("90 d", c.uptime.d90),
    ];
    html! {
        (Reserve(c.days.len() * 128 + 1024))
        article class={ "check s-" (c.status.as_str()) } id=(check_anchor(&c.name)) data-check=(c.name) {
            div class="head" {
                h3 { (c.name) }
                span class="state" data-state { (state_words(c.status)) }
            }
            dl class="uptime" {
                @for (label, value) in windows {
                    div { dt { (label) } dd { (percent(value)) } }
                }
            }
            @if let Some(e) = &c.error {
                p class="error" { (e) }
            }
            (bars(&c.days, c.uptime.d90))
            div class="axis" aria-hidden="true" { span { "90 days ago" } span { "today" } }
            (chart(c, now))
        }
    }
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

/// One rectangle of the bar: the days it stands for (at least one), the first at `x`.
struct Run<'a> {
    x: usize,
    days: &'a [DayModel],
}

/// The rectangles of the bar: a day with something to say alone, plain days of a kind
/// together.
fn runs(days: &[DayModel]) -> Vec<Run<'_>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < days.len() {
        let mut n = 1;
        if let Some(kind) = plain(&days[i]) {
            while i + n < days.len() && plain(&days[i + n]) == Some(kind) {
                n += 1;
            }
        }
        out.push(Run {
            x: i,
            days: &days[i..i + n],
        });
        i += n;
    }
    out
}

/// The 90-day bar as one SVG: a rectangle per day with something to say, one per run of
/// plain days, each with its title (shown on hover, read by screen readers). A run of 80
/// perfect days is one element, which keeps a page of 1,000 checks small.
fn bars(days: &[DayModel], total: Option<f64>) -> Markup {
    html! {
        (Reserve(days.len() * 128))
        svg class="bars" viewBox={ "0 0 " (days.len()) " 10" } preserveAspectRatio="none"
            role="img" aria-label={ "Daily uptime, last " (days.len()) " days: " (percent(total)) " overall" } {
            @for run in runs(days) {
                @let d = &run.days[0];
                rect x=(run.x) width=(run.days.len() as f64 - 0.15) height="10"
                    class={ (look(d)) @if d.incidents > 0 { " x" } } {
                    title { (RunTitle(&run)) }
                }
            }
        }
    }
}

/// What a rectangle of the bar says: `2026-11-01: 99.50% up, 2 of 400 failed, 1 incident` for
/// a day, `2026-11-02 to 2026-11-20: 100% up, nothing failed` (or `no data`) for plain days.
///
/// Written by its own [`Render`] rather than through `Display`, which a template escapes byte
/// by byte: a page of 1,000 checks has up to 90,000 of these, and escaping text that is digits
/// and fixed words costs time on the page measured in docs/performance.md. The dates, the only text
/// here that comes from elsewhere, are still escaped.
struct RunTitle<'a>(&'a Run<'a>);

impl Render for RunTitle<'_> {
    fn render_to(&self, out: &mut String) {
        let d = &self.0.days[0];
        let _ = Escaper::new(out).write_str(&d.date);
        if let [_, .., last] = self.0.days {
            out.push_str(" to ");
            let _ = Escaper::new(out).write_str(&last.date);
            out.push_str(if d.count > 0 {
                ": 100% up, nothing failed"
            } else {
                ": no data"
            });
            return;
        }
        out.push_str(": ");
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
}

/// The last 24 hours' mean response time per hour, each hour a step, the current hour at the
/// right; its figures in words beside it (an SVG stretched to the width would stretch text).
fn chart(c: &CheckModel, now: DateTime<Utc>) -> Markup {
    if c.response_ms.is_empty() {
        return html! {};
    }
    let max = c
        .response_ms
        .iter()
        .map(|p| p.avg_ms)
        .fold(0.0_f64, f64::max);
    let scale = if max > 0.0 { 36.0 / max } else { 0.0 };
    let mean = c.response_ms.iter().map(|p| p.avg_ms).sum::<f64>() / c.response_ms.len() as f64;
    let this_hour = now.timestamp().div_euclid(3600) * 3600;
    let mut points = String::with_capacity(c.response_ms.len() * 24);
    for p in &c.response_ms {
        let hours_back = (this_hour - p.time.timestamp()) / 3600;
        let x = 240.0 - (hours_back as f64 + 1.0) * 10.0;
        let y = 44.0 - p.avg_ms * scale;
        let _ = write!(points, "{x:.0},{y:.1} {:.0},{y:.1} ", x + 10.0);
    }
    html! {
        svg class="chart" viewBox="0 0 240 48" preserveAspectRatio="none" aria-hidden="true" {
            polyline points=(points) {}
        }
        p class="chart-label" {
            "Response time, last 24 h: mean " (format_args!("{mean:.0}")) " ms, highest hour "
            (format_args!("{max:.0}")) " ms"
        }
    }
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
