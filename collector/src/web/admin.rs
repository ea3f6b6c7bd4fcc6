//! The admin pages under `/admin`: hosts (with charts of CPU, memory, disk and network), checks
//! (each agent's latest result, why it failed, where the time went), logs (search, and a live
//! tail), alerts (firing and recent, with acknowledge and silence buttons).
//!
//! They need a login with the admin token (`/login`, see [`crate::auth::session`]); with
//! `[status_page] public_admin = true` the read-only views are open to anyone and the buttons
//! still need the login ([`AdminPage`], [`AdminForm`]). Everything shown comes from the same store calls as `/api/v1/...`.
//! Forms post to the server and answer with a redirect, so the pages work without JavaScript;
//! only the live log tail needs it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use serde::Deserialize;

use super::escape;
use super::page::state_words;
use crate::auth::{Access, AdminForm, AdminPage, PageRefusal, session};
use crate::error::AppError;
use crate::state::AppState;
use crate::store::alerting::{AlertState, Silence};
use crate::store::{LogQuery, MetricRollup, RollupQuery, Tier};
use crate::views::check_views;

/// Hours of host metrics the host page charts.
const CHART_HOURS: i64 = 6;

/// A page's head and opening.
fn head(out: &mut String, title: &str, script: Option<&str>) {
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

fn url_escape(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// An admin page's refusal, as a page: where to log in, or what is missing.
impl IntoResponse for PageRefusal {
    fn into_response(self) -> Response {
        match self {
            PageRefusal::LoginFirst { next } => {
                Redirect::to(&format!("/login?next={}", url_escape(&next))).into_response()
            }
            PageRefusal::CrossSite => message(
                StatusCode::FORBIDDEN,
                "Refused",
                "This form was sent from another site's page.",
            ),
            PageRefusal::NotLoggedIn => message(
                StatusCode::UNAUTHORIZED,
                "Log in first",
                "Acknowledging and silencing need the admin login.",
            ),
        }
    }
}

fn message(status: StatusCode, title: &str, text: &str) -> Response {
    let mut out = String::new();
    head(&mut out, title, None);
    let _ = write!(
        out,
        "</head><body><header><h1>{}</h1></header><main><p>{}</p>\
         <p><a href=\"/admin\">Admin pages</a> · <a href=\"/login\">Log in</a></p></main></body></html>",
        escape(title),
        escape(text)
    );
    (status, Html(out)).into_response()
}

/// Opens an admin page: head, navigation, heading.
fn open(title: &str, access: Access, script: Option<&str>) -> String {
    let mut out = String::with_capacity(16 * 1024);
    head(&mut out, &format!("{title} · Lookout admin"), script);
    let _ = write!(
        out,
        "</head><body><header><nav class=\"admin\" aria-label=\"Admin pages\">\
         <a href=\"/admin/hosts\">Hosts</a><a href=\"/admin/checks\">Checks</a>\
         <a href=\"/admin/logs\">Logs</a><a href=\"/admin/alerts\">Alerts</a>\
         <a href=\"/\">Status page</a>{login}</nav><h1>{title}</h1></header><main>",
        title = escape(title),
        login = match access {
            Access::Write =>
                "<form class=\"inline\" method=\"post\" action=\"/logout\">\
                              <button type=\"submit\">Log out</button></form>",
            Access::Read => "<a href=\"/login\">Log in</a>",
        }
    );
    out
}

fn close(mut out: String) -> Html<String> {
    out.push_str("</main></body></html>");
    Html(out)
}

fn ago(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let s = (now - t).num_seconds().max(0);
    let text = match s {
        0..120 => format!("{s} s ago"),
        120..7200 => format!("{} min ago", s / 60),
        7200..172_800 => format!("{} h ago", s / 3600),
        _ => format!("{} days ago", s / 86_400),
    };
    format!(
        "<time datetime=\"{}\" title=\"{}\">{text}</time>",
        t.to_rfc3339(),
        t.format("%Y-%m-%d %H:%M:%S UTC")
    )
}

fn labels_text(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{}={}", escape(k), escape(v)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `GET /admin`.
pub async fn home() -> Redirect {
    Redirect::to("/admin/hosts")
}

/// Query of `/login`.
#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

/// Only paths on this site's admin pages: never a redirect elsewhere.
fn next_page(next: Option<&str>) -> &str {
    next.filter(|n| n.starts_with("/admin") && !n.starts_with("//") && !n.contains('\\'))
        .unwrap_or("/admin")
}

fn login_page(state: &AppState, next: &str, error: Option<&str>) -> String {
    let mut out = String::new();
    head(&mut out, "Log in · Lookout admin", None);
    out.push_str("</head><body><header><h1>Log in</h1></header><main>");
    if state.config().server.admin_token.is_none() {
        out.push_str(
            "<p>The admin pages need a login, and none is possible: set <code>[server] \
             admin_token</code> in the collector's configuration, or \
             <code>[status_page] public_admin = true</code> to show them read-only.</p>",
        );
    } else {
        if let Some(e) = error {
            let _ = write!(out, "<p class=\"error\" role=\"alert\">{}</p>", escape(e));
        }
        let _ = write!(
            out,
            "<form method=\"post\" action=\"/login\"><input type=\"hidden\" name=\"next\" value=\"{}\">\
             <p><label for=\"token\">Admin token</label><br><input id=\"token\" name=\"token\" \
             type=\"password\" autocomplete=\"current-password\" required></p>\
             <p><button type=\"submit\">Log in</button></p></form>",
            escape(next)
        );
    }
    out.push_str("<p><a href=\"/\">Status page</a></p></main></body></html>");
    out
}

/// `GET /login`.
pub async fn login_form(
    State(state): State<Arc<AppState>>,
    Query(q): Query<LoginQuery>,
) -> Html<String> {
    Html(login_page(&state, next_page(q.next.as_deref()), None))
}

/// Body of `POST /login`.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    token: String,
    next: Option<String>,
}

/// `POST /login`: the admin token for a session cookie.
pub async fn login(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    use subtle::ConstantTimeEq;
    let next = next_page(f.next.as_deref()).to_string();
    let config = state.config();
    let Some(expected) = config
        .server
        .admin_token
        .as_ref()
        .map(lookout_config::Token::expose)
    else {
        return (StatusCode::FORBIDDEN, Html(login_page(&state, &next, None))).into_response();
    };
    if !session::same_origin(&headers) {
        return message(
            StatusCode::FORBIDDEN,
            "Refused",
            "This form was sent from another site's page.",
        );
    }
    if !bool::from(f.token.trim().as_bytes().ct_eq(expected.as_bytes())) {
        return (
            StatusCode::UNAUTHORIZED,
            Html(login_page(&state, &next, Some("Wrong admin token."))),
        )
            .into_response();
    }
    (
        [(header::SET_COOKIE, session::set_cookie(expected))],
        Redirect::to(&next),
    )
        .into_response()
}

/// `POST /logout`.
pub async fn logout() -> Response {
    (
        [(header::SET_COOKIE, session::clear_cookie())],
        Redirect::to("/"),
    )
        .into_response()
}

/// `GET /admin/hosts`.
pub async fn hosts(
    State(state): State<Arc<AppState>>,
    AdminPage(access): AdminPage,
) -> Result<Response, AppError> {
    let now = crate::clock::now();
    let stored = state.store.agents().await?;
    let mut out = open("Hosts", access, None);
    out.push_str(
        "<div class=\"table-wrap\"><table><thead><tr><th>Host</th><th>Last seen</th><th>Version</th>\
         <th>Labels</th><th>CPU</th><th>Memory</th></tr></thead><tbody>",
    );
    if stored.is_empty() {
        out.push_str("<tr><td colspan=\"6\">No agents yet.</td></tr>");
    }
    for a in &stored {
        let latest = state.store.latest_metrics(&a.name).await?;
        let cpu_idle = latest.iter().find(|m| {
            m.name == "system.cpu.utilization"
                && m.labels.get("cpu").map(String::as_str) == Some("all")
                && m.labels.get("state").map(String::as_str) == Some("idle")
        });
        let mem = latest
            .iter()
            .find(|m| m.name == "system.memory.utilization");
        let _ = write!(
            out,
            "<tr data-host=\"{name}\"><td><a href=\"/admin/hosts/{link}\">{name}</a></td><td>{seen}</td>\
             <td>{version}</td><td>{labels}</td><td>{cpu}</td><td>{mem}</td></tr>",
            name = escape(&a.name),
            link = url_escape(&a.name),
            seen = a
                .last_seen
                .map_or_else(|| "never".to_string(), |t| ago(t, now)),
            version = escape(a.version.as_deref().unwrap_or("–")),
            labels = labels_text(&a.labels),
            cpu = cpu_idle.map_or_else(
                || "–".to_string(),
                |m| format!("{:.1}%", (1.0 - m.value) * 100.0)
            ),
            mem = mem.map_or_else(|| "–".to_string(), |m| format!("{:.1}%", m.value * 100.0)),
        );
    }
    out.push_str("</tbody></table></div>");
    Ok(close(out).into_response())
}

/// `GET /admin/hosts/{name}`: one host's charts over the last 6 hours, per minute.
pub async fn host(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    AdminPage(access): AdminPage,
) -> Result<Response, AppError> {
    let Some(agent) = state
        .store
        .agents()
        .await?
        .into_iter()
        .find(|a| a.name == name)
    else {
        return Err(AppError::NotFound(format!("no host named {name:?}")));
    };
    let now = crate::clock::now();
    let from = now - ChronoDuration::hours(CHART_HOURS);
    let rollups = |metric: &str| RollupQuery {
        name: metric.into(),
        agent: Some(name.clone()),
        tier: Tier::Minute,
        from,
        to: now,
    };
    let queries = [
        "system.cpu.utilization",
        "system.memory.utilization",
        "system.filesystem.utilization",
        "system.network.io",
    ]
    .map(rollups);
    let (cpu, mem, disk, net) = tokio::try_join!(
        state.store.metric_rollups(&queries[0]),
        state.store.metric_rollups(&queries[1]),
        state.store.metric_rollups(&queries[2]),
        state.store.metric_rollups(&queries[3]),
    )?;
    let mut out = open(&format!("Host {name}"), access, None);
    let _ = write!(
        out,
        "<p>Last seen {seen} · version {version} · labels {labels}</p><div class=\"charts\">",
        seen = agent
            .last_seen
            .map_or_else(|| "never".to_string(), |t| ago(t, now)),
        version = escape(agent.version.as_deref().unwrap_or("unknown")),
        labels = match labels_text(&agent.labels) {
            l if l.is_empty() => "none".to_string(),
            l => l,
        },
    );
    let busy: Vec<(i64, f64)> = cpu
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
    let percent = |rows: &[MetricRollup], label: &str| -> Vec<(String, Vec<(i64, f64)>)> {
        let mut series: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
        for r in rows {
            let key = r.labels.get(label).cloned().unwrap_or_default();
            series
                .entry(key)
                .or_default()
                .push((r.bucket.timestamp(), 100.0 * r.sum / r.count.max(1) as f64));
        }
        series.into_iter().collect()
    };
    let from_s = from.timestamp();
    let to_s = now.timestamp();
    line_chart(
        &mut out,
        "CPU busy",
        "%",
        &[("all".into(), busy)],
        from_s,
        to_s,
        Some(100.0),
    );
    line_chart(
        &mut out,
        "Memory used",
        "%",
        &percent(&mem, "state"),
        from_s,
        to_s,
        Some(100.0),
    );
    line_chart(
        &mut out,
        "Disk used",
        "%",
        &percent(&disk, "mountpoint"),
        from_s,
        to_s,
        Some(100.0),
    );
    line_chart(
        &mut out,
        "Network",
        "B/s",
        &network_rates(&net),
        from_s,
        to_s,
        None,
    );
    out.push_str("</div>");
    Ok(close(out).into_response())
}

/// Bytes per second per direction, all devices but loopback, from the counters' last value in
/// each minute; a counter that went back (a restart) gives no rate for that minute.
fn network_rates(rows: &[MetricRollup]) -> Vec<(String, Vec<(i64, f64)>)> {
    let mut by_series: BTreeMap<(String, String), Vec<(i64, f64)>> = BTreeMap::new();
    for r in rows {
        let device = r.labels.get("device").cloned().unwrap_or_default();
        if device == "lo" {
            continue;
        }
        let direction = r.labels.get("direction").cloned().unwrap_or_default();
        by_series
            .entry((direction, device))
            .or_default()
            .push((r.bucket.timestamp(), r.last));
    }
    let mut by_direction: BTreeMap<String, BTreeMap<i64, f64>> = BTreeMap::new();
    for ((direction, _), mut points) in by_series {
        points.sort_by_key(|p| p.0);
        let sums = by_direction.entry(direction).or_default();
        for w in points.windows(2) {
            let (dt, dv) = (w[1].0 - w[0].0, w[1].1 - w[0].1);
            if dt > 0 && dv >= 0.0 {
                *sums.entry(w[1].0).or_default() += dv / dt as f64;
            }
        }
    }
    by_direction
        .into_iter()
        .map(|(d, m)| (d, m.into_iter().collect()))
        .collect()
}

/// An SVG line chart of up to four series over `[from, to]` (Unix seconds), with the latest
/// values in words below it.
fn line_chart(
    out: &mut String,
    title: &str,
    unit: &str,
    series: &[(String, Vec<(i64, f64)>)],
    from: i64,
    to: i64,
    fixed_max: Option<f64>,
) {
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
    let _ = write!(
        out,
        "<figure><svg class=\"chart\" viewBox=\"0 0 300 80\" preserveAspectRatio=\"none\" role=\"img\" \
         aria-label=\"{t}\"><title>{t}, last {CHART_HOURS} hours</title>",
        t = escape(title)
    );
    let strokes = ["var(--link)", "var(--warn)", "var(--up)", "var(--down)"];
    for (i, (_, points)) in shown.iter().enumerate() {
        let _ = write!(
            out,
            "<polyline style=\"stroke:{}\" points=\"",
            strokes[i % strokes.len()]
        );
        for (t, v) in points {
            let x = (t - from) as f64 / span * 300.0;
            let y = 78.0 - (v / max).clamp(0.0, 1.0) * 70.0;
            let _ = write!(out, "{x:.1},{y:.1} ");
        }
        out.push_str("\"/>");
    }
    let _ = write!(
        out,
        "</svg><figcaption><strong>{}</strong> (top of chart {}): ",
        escape(title),
        human(max, unit),
    );
    if shown.is_empty() {
        out.push_str("no data");
    }
    let latest: Vec<String> = shown
        .iter()
        .filter_map(|(name, p)| {
            let v = p.last()?.1;
            Some(if name.is_empty() {
                human(v, unit)
            } else {
                format!("{} {}", escape(name), human(v, unit))
            })
        })
        .collect();
    out.push_str(&latest.join(", "));
    out.push_str("</figcaption></figure>");
}

fn human(v: f64, unit: &str) -> String {
    match unit {
        "B/s" if v >= 1e6 => format!("{:.1} MB/s", v / 1e6),
        "B/s" if v >= 1e3 => format!("{:.1} kB/s", v / 1e3),
        "%" => format!("{v:.1}%"),
        _ => format!("{v:.0} {unit}"),
    }
}

/// `GET /admin/checks`.
pub async fn checks(
    State(state): State<Arc<AppState>>,
    AdminPage(access): AdminPage,
) -> Result<Response, AppError> {
    let now = crate::clock::now();
    let views = check_views(state.store.as_ref(), &state.config()).await?;
    let mut out = open("Checks", access, None);
    if views.is_empty() {
        out.push_str("<p>No checks yet.</p>");
    }
    for c in &views {
        let _ = write!(
            out,
            "<section class=\"check s-{s}\" data-check=\"{name}\"><div class=\"head\"><h2 id=\"{anchor}\">{name}</h2>\
             <span class=\"state\">{words}</span></div><p class=\"muted\">{kind}, defined in {defined} · \
             <a href=\"/api/v1/checks/{link}/results\">results</a> · \
             <a href=\"/api/v1/checks/{link}/uptime\">uptime</a></p>",
            s = c.status.as_str(),
            name = escape(&c.name),
            anchor = crate::notify::route::check_anchor(&c.name),
            words = state_words(c.status),
            kind = escape(&c.kind),
            defined = c.defined_in,
            link = url_escape(&c.name),
        );
        if c.agents.is_empty() {
            out.push_str("<p>No result yet.</p></section>");
            continue;
        }
        out.push_str(
            "<div class=\"table-wrap\"><table><thead><tr><th>Agent</th><th>Result</th><th>When</th>\
             <th>Total</th><th>DNS</th><th>Connect</th><th>TLS</th><th>First byte</th><th>HTTP</th>\
             <th>Why it failed</th></tr></thead><tbody>",
        );
        for r in &c.agents {
            let ms = |v: Option<f64>| v.map_or_else(|| "–".to_string(), |v| format!("{v:.1} ms"));
            let _ = write!(
                out,
                "<tr data-agent=\"{agent}\"><td>{agent}</td><td>{result}</td><td>{when}</td><td>{total}</td>\
                 <td>{dns}</td><td>{connect}</td><td>{tls}</td><td>{ttfb}</td><td>{code}</td><td>{error}</td></tr>",
                agent = escape(&r.agent),
                result = if r.ok { "✓ ok" } else { "✕ failed" },
                when = ago(r.time, now),
                total = ms(Some(r.latency_ms)),
                dns = ms(r.timings.dns_ms),
                connect = ms(r.timings.connect_ms),
                tls = ms(r.timings.tls_ms),
                ttfb = ms(r.timings.ttfb_ms),
                code = r
                    .status_code
                    .map_or_else(|| "–".to_string(), |c| c.to_string()),
                error = escape(r.error.as_deref().unwrap_or("")),
            );
        }
        out.push_str("</tbody></table></div></section>");
    }
    Ok(close(out).into_response())
}

/// Query of `/admin/logs` and `/admin/logs/tail`.
#[derive(Debug, Default, Deserialize)]
pub struct LogsForm {
    #[serde(default)]
    q: String,
    #[serde(default)]
    agent: String,
    #[serde(default)]
    level: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    cursor: String,
}

impl LogsForm {
    fn filters(&self, out: &mut String, action: &str, button: &str) {
        let _ = write!(
            out,
            "<form method=\"get\" action=\"{action}\" class=\"logs-form\" role=\"search\">\
             <label>Words <input name=\"q\" value=\"{q}\" placeholder=\"timeout database\"></label> \
             <label>Agent <input name=\"agent\" value=\"{agent}\" size=\"10\"></label> \
             <label>Level <select name=\"level\">",
            q = escape(&self.q),
            agent = escape(&self.agent),
        );
        for l in ["", "error", "warn", "info", "debug", "trace"] {
            let _ = write!(
                out,
                "<option value=\"{l}\"{sel}>{text}</option>",
                sel = if self.level == l { " selected" } else { "" },
                text = if l.is_empty() { "any" } else { l },
            );
        }
        let _ = write!(
            out,
            "</select></label> <label>Source <input name=\"source\" value=\"{source}\" size=\"16\"></label> \
             <button type=\"submit\">{button}</button></form>",
            source = escape(&self.source),
        );
    }

    fn query_string(&self) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(
                [
                    ("q", &self.q),
                    ("agent", &self.agent),
                    ("level", &self.level),
                    ("source", &self.source),
                ]
                .into_iter()
                .filter(|(_, v)| !v.is_empty()),
            )
            .finish()
    }
}

fn non_empty(s: &str) -> Option<String> {
    Some(s.trim().to_string()).filter(|s| !s.is_empty())
}

/// `GET /admin/logs`: the search form and a page of matching lines, newest first.
pub async fn logs(
    State(state): State<Arc<AppState>>,
    AdminPage(access): AdminPage,
    form: Result<Query<LogsForm>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, AppError> {
    let Query(f) = form.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let before = match f.cursor.split_once('.') {
        Some((t, id)) => Some(
            t.parse()
                .ok()
                .zip(id.parse().ok())
                .ok_or_else(|| AppError::BadRequest(format!("cursor {:?}", f.cursor)))?,
        ),
        None if f.cursor.is_empty() => None,
        None => return Err(AppError::BadRequest(format!("cursor {:?}", f.cursor))),
    };
    const PAGE: u32 = 200;
    let mut lines = state
        .store
        .logs(&LogQuery {
            text: non_empty(&f.q),
            agent: non_empty(&f.agent),
            source: non_empty(&f.source),
            level: non_empty(&f.level).map(|l| l.to_ascii_lowercase()),
            before,
            from: DateTime::<Utc>::UNIX_EPOCH,
            to: crate::clock::now(),
            limit: PAGE + 1,
        })
        .await?;
    let more = lines.len() > PAGE as usize;
    lines.truncate(PAGE as usize);
    let mut out = open("Logs", access, None);
    f.filters(&mut out, "/admin/logs", "Search");
    let _ = write!(
        out,
        "<p><a href=\"/admin/logs/tail?{}\">Live tail with these filters</a></p>",
        escape(&f.query_string())
    );
    out.push_str(
        "<div class=\"table-wrap\"><table id=\"log-results\"><thead><tr><th>Time</th><th>Agent</th>\
         <th>Level</th><th>Source</th><th>Line</th></tr></thead><tbody>",
    );
    if lines.is_empty() {
        out.push_str("<tr><td colspan=\"5\">No matching lines.</td></tr>");
    }
    for l in &lines {
        let _ = write!(
            out,
            "<tr><td>{time}</td><td>{agent}</td><td>{level}</td><td>{source}</td><td class=\"logs\">{text}</td></tr>",
            time = l.time.format("%Y-%m-%d %H:%M:%S%.3f"),
            agent = escape(&l.agent),
            level = escape(l.level.as_deref().unwrap_or("")),
            source = escape(&l.source),
            text = escape(&l.text),
        );
    }
    out.push_str("</tbody></table></div>");
    if more && let Some(last) = lines.last() {
        let mut q = f.query_string();
        if !q.is_empty() {
            q.push('&');
        }
        let _ = write!(
            out,
            "<p><a href=\"/admin/logs?{}cursor={}.{}\">Older lines</a></p>",
            escape(&q),
            last.time.timestamp_millis(),
            last.id
        );
    }
    Ok(close(out).into_response())
}

/// `GET /admin/logs/tail`: lines as they arrive, through `/api/v1/logs/tail` (needs
/// JavaScript; the search page does not).
pub async fn logs_tail(Query(f): Query<LogsForm>, AdminPage(access): AdminPage) -> Response {
    let mut out = open("Live log tail", access, Some("/assets/tail.js"));
    f.filters(&mut out, "/admin/logs/tail", "Follow");
    let _ = write!(
        out,
        "<p id=\"tail-state\" role=\"status\">Connecting…</p><noscript><p>The live tail needs \
         JavaScript; <a href=\"/admin/logs\">search</a> works without it.</p></noscript>\
         <div id=\"tail\" class=\"logs\" data-source=\"/api/v1/logs/tail?{}\" aria-live=\"polite\"></div>",
        escape(&f.query_string())
    );
    close(out).into_response()
}

/// `GET /admin/alerts`.
pub async fn alerts(
    State(state): State<Arc<AppState>>,
    AdminPage(access): AdminPage,
) -> Result<Response, AppError> {
    let now = crate::clock::now();
    let all = state.store.alerts(&AlertState::ALL).await?;
    let silences = state.store.silences(now).await?;
    let mut out = open("Alerts", access, None);
    let write = access == Access::Write;
    for (heading, states, limit) in [
        ("Firing", &[AlertState::Firing][..], usize::MAX),
        ("Pending", &[AlertState::Pending][..], usize::MAX),
        ("Recently resolved", &[AlertState::Resolved][..], 50),
    ] {
        let rows: Vec<_> = all
            .iter()
            .filter(|a| states.contains(&a.state))
            .take(limit)
            .collect();
        let _ = write!(out, "<h2>{heading} ({})</h2>", rows.len());
        if rows.is_empty() {
            out.push_str("<p class=\"muted\">None.</p>");
            continue;
        }
        out.push_str(
            "<div class=\"table-wrap\"><table><thead><tr><th>Alert</th><th>Since</th><th>Labels</th>\
             <th>Summary</th><th></th></tr></thead><tbody>",
        );
        for a in rows {
            let _ = write!(
                out,
                "<tr data-alert=\"{id}\"><td>{rule}</td><td>{since}</td><td>{labels}</td><td>{summary}</td><td>",
                id = a.id,
                rule = escape(&a.rule),
                since = ago(a.since, now),
                labels = labels_text(&a.labels),
                summary = escape(&a.summary),
            );
            if a.state == AlertState::Firing {
                match (&a.acked_by, write) {
                    (Some(by), _) => {
                        let _ = write!(out, "acknowledged by {} ", escape(by));
                    }
                    (None, true) => {
                        let _ = write!(
                            out,
                            "<form class=\"inline\" method=\"post\" action=\"/admin/alerts/{}/ack\">\
                             <button type=\"submit\">Acknowledge</button></form> ",
                            a.id
                        );
                    }
                    (None, false) => {}
                }
            }
            if write && a.state != AlertState::Resolved {
                let _ = write!(
                    out,
                    "<form class=\"inline\" method=\"post\" action=\"/admin/silences\">\
                     <input type=\"hidden\" name=\"alert\" value=\"{}\">\
                     <select name=\"hours\" aria-label=\"Silence for\"><option value=\"1\">1 h</option>\
                     <option value=\"4\">4 h</option><option value=\"24\">24 h</option></select> \
                     <button type=\"submit\">Silence</button></form>",
                    a.id
                );
            }
            out.push_str("</td></tr>");
        }
        out.push_str("</tbody></table></div>");
    }
    let _ = write!(out, "<h2>Silences ({})</h2>", silences.len());
    if silences.is_empty() {
        out.push_str("<p class=\"muted\">None.</p>");
    }
    for s in &silences {
        let _ = write!(
            out,
            "<p class=\"notice\" data-silence=\"{id}\">{matchers} until {ends}, by {by}{comment} ",
            id = s.id,
            matchers = labels_text(&s.matchers),
            ends = s.ends.format("%Y-%m-%d %H:%M UTC"),
            by = escape(&s.created_by),
            comment = if s.comment.is_empty() {
                String::new()
            } else {
                format!(": {}", escape(&s.comment))
            },
        );
        if write {
            let _ = write!(
                out,
                "<form class=\"inline\" method=\"post\" action=\"/admin/silences/{}/expire\">\
                 <button type=\"submit\">End now</button></form>",
                s.id
            );
        }
        out.push_str("</p>");
    }
    Ok(close(out).into_response())
}

/// `POST /admin/alerts/{id}/ack`.
pub async fn ack(
    State(state): State<Arc<AppState>>,
    Path(id): Path<i64>,
    _: AdminForm,
) -> Result<Response, AppError> {
    if !state
        .store
        .ack_alert(id, "admin", crate::clock::now())
        .await?
    {
        return Err(AppError::NotFound(format!("no firing alert with id {id}")));
    }
    Ok(Redirect::to("/admin/alerts").into_response())
}

/// Body of `POST /admin/silences`.
#[derive(Debug, Deserialize)]
pub struct SilenceForm {
    alert: i64,
    hours: u32,
}

/// `POST /admin/silences`: silences one alert (all its labels) for some hours.
pub async fn silence(
    State(state): State<Arc<AppState>>,
    _: AdminForm,
    Form(f): Form<SilenceForm>,
) -> Result<Response, AppError> {
    if !(1..=168).contains(&f.hours) {
        return Err(AppError::BadRequest(format!(
            "hours={}: expected 1 to 168",
            f.hours
        )));
    }
    let Some(alert) = state
        .store
        .alerts(&AlertState::ALL)
        .await?
        .into_iter()
        .find(|a| a.id == f.alert)
    else {
        return Err(AppError::NotFound(format!("no alert with id {}", f.alert)));
    };
    let now = crate::clock::now();
    // All its labels: this alert, not its neighbours. A silence without matchers would
    // silence everything.
    let matchers = alert.labels.clone();
    if matchers.is_empty() {
        return Err(AppError::BadRequest(format!(
            "alert {} has no labels to silence it by",
            alert.id
        )));
    }
    let silence = Silence {
        id: 0,
        matchers,
        starts: now,
        ends: now + ChronoDuration::hours(i64::from(f.hours)),
        created_by: "admin".into(),
        comment: format!("from the alerts page: {}", alert.summary),
    };
    state.store.create_silence(&silence).await?;
    Ok(Redirect::to("/admin/alerts").into_response())
}

/// `POST /admin/silences/{id}/expire`.
pub async fn expire_silence(
    State(state): State<Arc<AppState>>,
    Path(id): Path<i64>,
    _: AdminForm,
) -> Result<Response, AppError> {
    if !state.store.expire_silence(id, crate::clock::now()).await? {
        return Err(AppError::NotFound(format!(
            "no active silence with id {id}"
        )));
    }
    Ok(Redirect::to("/admin/alerts").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_never_redirects_off_the_admin_pages() {
        assert_eq!(next_page(Some("/admin/logs?q=x")), "/admin/logs?q=x");
        assert_eq!(next_page(Some("https://evil.example/admin")), "/admin");
        assert_eq!(next_page(Some("//evil.example/admin")), "/admin");
        assert_eq!(next_page(None), "/admin");
    }

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
