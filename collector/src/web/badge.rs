//! SVG badges for READMEs and wikis: `GET /badge/{check}/status` (up, down, pending, unknown)
//! and `GET /badge/{check}/uptime?window=24h|7d|30d|90d` (default 30d, from the hourly rollups).
//! Each says its state in words, not by colour alone, and carries a `<title>` for screen
//! readers. An unknown check is a 404 with a grey badge that says so.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Duration as ChronoDuration;
use maud::html;
use serde::Deserialize;

use crate::auth::Public;
use crate::error::AppError;
use crate::state::AppState;
use crate::store::{RollupQuery, Tier};
use crate::views::{check_exists, check_views};

const GREEN: &str = "#1a7f37";
const YELLOW: &str = "#9a6700";
const ORANGE: &str = "#bc4c00";
const RED: &str = "#cf222e";
const GREY: &str = "#57606a";

/// A two-part badge: `label` on grey, `value` on `colour`. Widths follow the text (about 7 px a
/// character at 11 px), as shields.io's flat style does. A maud template: the label and value
/// (a check's name) are escaped. Every element is closed with an end tag, since a badge is
/// served as XML (`image/svg+xml`).
pub fn svg(label: &str, value: &str, colour: &str) -> String {
    let w = |s: &str| 10 + 7 * s.chars().count();
    let (lw, vw) = (w(label), w(value));
    html! {
        svg xmlns="http://www.w3.org/2000/svg" width=(lw + vw) height="20" role="img"
            aria-label={ (label) ": " (value) } {
            title { (label) ": " (value) }
            rect width=(lw) height="20" fill="#555" {}
            rect x=(lw) width=(vw) height="20" fill=(colour) {}
            g fill="#fff" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11"
                text-anchor="middle" {
                text x=(lw / 2) y="14" { (label) }
                text x=(lw + vw / 2) y="14" { (value) }
            }
        }
    }
    .into_string()
}

fn answer(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "image/svg+xml; charset=utf-8"),
            // Badges are fetched through image proxies (GitHub's camo): keep them fresh.
            (header::CACHE_CONTROL, "no-cache, max-age=0"),
        ],
        body,
    )
        .into_response()
}

fn unknown_check() -> Response {
    answer(StatusCode::NOT_FOUND, svg("lookout", "no such check", GREY))
}

/// `GET /badge/{check}/status`.
pub async fn status(
    State(state): State<Arc<AppState>>,
    _: Public,
    Path(check): Path<String>,
) -> Result<Response, AppError> {
    let views = check_views(state.store.as_ref(), &state.config()).await?;
    let Some(view) = views.iter().find(|v| v.name == check) else {
        return Ok(unknown_check());
    };
    let s = view.status.as_str();
    let colour = match s {
        "up" => GREEN,
        "down" => RED,
        "pending" => YELLOW,
        _ => GREY,
    };
    Ok(answer(StatusCode::OK, svg(&check, s, colour)))
}

/// Query of the uptime badge.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UptimeParams {
    window: Option<String>,
}

/// `GET /badge/{check}/uptime?window=`.
pub async fn uptime(
    State(state): State<Arc<AppState>>,
    _: Public,
    Path(check): Path<String>,
    params: Result<Query<UptimeParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, AppError> {
    let Query(p) = params.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let window = p.window.unwrap_or_else(|| "30d".into());
    let span = match window.as_str() {
        "24h" => ChronoDuration::hours(24),
        "7d" => ChronoDuration::days(7),
        "30d" => ChronoDuration::days(30),
        "90d" => ChronoDuration::days(90),
        other => {
            return Err(AppError::BadRequest(format!(
                "window={other:?}: expected 24h, 7d, 30d or 90d"
            )));
        }
    };
    // A store that fails to say is answered as for an unknown check: a badge, not an error.
    if !matches!(
        check_exists(state.store.as_ref(), &state.config(), &check).await,
        Ok(true)
    ) {
        return Ok(unknown_check());
    }
    let to = crate::clock::now();
    let rows = state
        .store
        .check_rollups(&RollupQuery {
            name: check.clone(),
            agent: None,
            tier: Tier::Hour,
            from: to - span,
            to,
        })
        .await?;
    let (count, failures) = rows
        .iter()
        .fold((0u64, 0u64), |(c, f), r| (c + r.count, f + r.failures));
    let label = format!("uptime {window}");
    let body = if count == 0 {
        svg(&label, "no data", GREY)
    } else {
        let up = 100.0 * (count - failures) as f64 / count as f64;
        let colour = if up >= 99.9 {
            GREEN
        } else if up >= 99.0 {
            YELLOW
        } else if up >= 95.0 {
            ORANGE
        } else {
            RED
        };
        svg(&label, &format_percent(up), colour)
    };
    Ok(answer(StatusCode::OK, body))
}

/// 100%, 99.95%, 97.3%: two decimals, without trailing zeros, never rounded up to 100%.
fn format_percent(up: f64) -> String {
    let floored = (up * 100.0).floor() / 100.0;
    let text = format!("{floored:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}%")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_are_never_rounded_up_to_a_perfect_score() {
        assert_eq!(format_percent(100.0), "100%");
        assert_eq!(format_percent(99.999), "99.99%");
        assert_eq!(format_percent(99.95), "99.95%");
        assert_eq!(format_percent(97.3), "97.3%");
        assert_eq!(format_percent(75.0), "75%");
    }

    #[test]
    fn a_badge_says_its_state_in_words_and_escapes_names() {
        let s = svg("<api>", "down", RED);
        assert!(s.contains("<title>&lt;api&gt;: down</title>"), "{s}");
        assert!(s.contains("aria-label=\"&lt;api&gt;: down\""), "{s}");
        assert!(!s.contains("<api>"));
    }
}
