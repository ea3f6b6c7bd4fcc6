//! The plain status page at `/`: every check and its state, refreshed every 10 s. The full
//! status page replaces it.

pub mod badge;

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::response::Html;

use crate::api::check_views;
use crate::error::AppError;
use crate::state::AppState;

/// `GET /`.
pub async fn index(State(state): State<Arc<AppState>>) -> Result<Html<String>, AppError> {
    let checks = check_views(&state).await?;
    let mut rows = String::new();
    for c in &checks {
        let last = c.agents.iter().max_by_key(|a| a.time);
        let _ = write!(
            rows,
            "<tr id=\"{anchor}\" class=\"{status}\"><td>{name}</td><td>{kind}</td><td><b>{status}</b></td>\
             <td>{agents}</td><td>{latency}</td><td>{when}</td><td>{error}</td></tr>",
            status = c.status.as_str(),
            anchor = crate::notify::route::check_anchor(&c.name),
            name = escape(&c.name),
            kind = escape(&c.kind),
            agents = c.agents.len(),
            latency = last
                .map(|l| format!("{:.0} ms", l.latency_ms))
                .unwrap_or_default(),
            when = last
                .map(|l| l.time.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                .unwrap_or_default(),
            error = escape(
                c.agents
                    .iter()
                    .find_map(|a| a.error.as_deref())
                    .unwrap_or("")
            ),
        );
    }
    if checks.is_empty() {
        rows.push_str(
            "<tr><td colspan=\"7\">No checks yet: add [[checks]] to the configuration.</td></tr>",
        );
    }
    Ok(Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"10\"><title>Lookout</title><style>\
         body{{font-family:system-ui,sans-serif;margin:2rem}}table{{border-collapse:collapse}}\
         td,th{{padding:.3rem .8rem;border-bottom:1px solid #ddd;text-align:left}}\
         .up b{{color:#1a7f37}}.down b{{color:#cf222e}}.pending b,.unknown b{{color:#9a6700}}\
         </style></head><body><h1>Lookout</h1><table><thead><tr><th>Check</th><th>Type</th>\
         <th>Status</th><th>Agents</th><th>Latency</th><th>Last result</th><th>Error</th>\
         </tr></thead><tbody>{rows}</tbody></table>\
         <p><a href=\"/api/v1/checks\">/api/v1/checks</a> · <a href=\"/api/v1/hosts\">/api/v1/hosts</a></p>\
         </body></html>"
    )))
}

/// Escapes text for HTML element content and attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_markup() {
        assert_eq!(
            super::escape("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
    }
}
