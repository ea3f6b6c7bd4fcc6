//! `/admin/hosts`: every agent with when it was last seen (and whether it stopped or was
//! retired), its version, labels, and its CPU and memory now; `/admin/hosts/{name}`: one
//! host's charts ([`super::charts`]) and those of each integration its agent reads
//! ([`super::integrations`]).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use chrono::Duration as ChronoDuration;
use maud::{Markup, html};

use super::charts::{CHART_HOURS, cpu_busy, line_chart, network_rates, percent_by};
use super::integrations::{integrations, metrics_charted, sections};
use super::{ago, labels_text, page, seen, url_escape};
use crate::auth::AdminPage;
use crate::enrolment::ops::{AgentListing, listings};
use crate::error::AppError;
use crate::state::AppState;
use crate::store::{AgentRow, RollupQuery, Tier};

/// A host's row of the hosts page: what its latest metrics say.
struct Now {
    /// CPU busy, in percent.
    cpu: Option<f64>,
    /// Memory used, in percent.
    memory: Option<f64>,
}

/// `GET /admin/hosts`.
pub async fn hosts(
    State(state): State<Arc<AppState>>,
    AdminPage(access): AdminPage,
) -> Result<Response, AppError> {
    let now = crate::clock::now();
    let stored = state.store.agents().await?;
    let origins = origins(&state);
    let mut latest = Vec::with_capacity(stored.len());
    for a in &stored {
        let metrics = state.store.latest_metrics(&a.name).await?;
        let cpu_idle = metrics.iter().find(|m| {
            m.name == "system.cpu.utilization"
                && m.labels.get("cpu").map(String::as_str) == Some("all")
                && m.labels.get("state").map(String::as_str) == Some("idle")
        });
        let memory = metrics
            .iter()
            .find(|m| m.name == "system.memory.utilization");
        latest.push(Now {
            cpu: cpu_idle.map(|m| (1.0 - m.value) * 100.0),
            memory: memory.map(|m| m.value * 100.0),
        });
    }
    let percent = |v: Option<f64>| v.map_or_else(|| "–".to_string(), |v| format!("{v:.1}%"));
    let main = html! {
        div class="table-wrap" {
            table {
                thead {
                    tr {
                        th { "Host" } th { "From" } th { "Last seen" } th { "Version" }
                        th { "Labels" } th { "CPU" } th { "Memory" }
                    }
                }
                tbody {
                    @if stored.is_empty() {
                        tr { td colspan="7" { "No agents yet." } }
                    }
                    @for (a, m) in stored.iter().zip(&latest) {
                        tr data-host=(a.name) {
                            td { a href={ "/admin/hosts/" (url_escape(&a.name)) } { (a.name) } }
                            td { (origin_text(origins.get(&a.name), now)) }
                            td {
                                (seen(a.last_seen, now))
                                @if let Some((presence, _)) = a.presence {
                                    " " span class="muted" { "(" (presence.as_str()) ")" }
                                }
                            }
                            td { (a.version.as_deref().unwrap_or("–")) }
                            td {
                                (labels_text(&a.labels))
                                (claims(a))
                            }
                            td { (percent(m.cpu)) }
                            td { (percent(m.memory)) }
                        }
                    }
                }
            }
        }
    };
    Ok(page("Hosts", access, None, main))
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
    let found = integrations(&state.store.latest_metrics(&name).await?);
    let mut integration_rollups = HashMap::new();
    for metric in metrics_charted(&found) {
        integration_rollups.insert(metric, state.store.metric_rollups(&rollups(metric)).await?);
    }
    let labels = match labels_text(&agent.labels) {
        l if l.is_empty() => "none".to_string(),
        l => l,
    };
    let (from_s, to_s) = (from.timestamp(), now.timestamp());
    let origin = origin_text(origins(&state).get(&name), now);
    let main = html! {
        p {
            "From " (origin)
            " · last seen " (seen(agent.last_seen, now))
            " · version " (agent.version.as_deref().unwrap_or("unknown"))
            " · labels " (labels)
            (claims(&agent))
        }
        div class="charts" {
            (line_chart("CPU busy", "%", &cpu_busy(&cpu), from_s, to_s, Some(100.0)))
            (line_chart("Memory used", "%", &percent_by(&mem, "state"), from_s, to_s, Some(100.0)))
            (line_chart("Disk used", "%", &percent_by(&disk, "mountpoint"), from_s, to_s, Some(100.0)))
            (line_chart("Network", "B/s", &network_rates(&net), from_s, to_s, None))
        }
        (sections(&found, &integration_rollups, from_s, to_s))
    };
    Ok(page(&format!("Host {name}"), access, None, main))
}

/// The labels an agent claimed that its configuration overrode, shown beside its labels so a
/// lie (or a stale agent config) is visible.
fn claims(agent: &AgentRow) -> Markup {
    let overridden = agent.overridden_claims();
    html! {
        @if !overridden.is_empty() {
            " " span class="muted" title="sent by the agent, overridden by [[agents]]" {
                "(claims " (labels_text(&overridden)) ")"
            }
        }
    }
}

/// Where each agent comes from, by name ([`crate::enrolment::ops::listings`]).
fn origins(state: &AppState) -> HashMap<String, AgentListing> {
    listings(&state.config(), &state.enrolled.rows())
        .into_iter()
        .map(|l| (l.name.clone(), l))
        .collect()
}

/// "configuration", "enrolled 3 days ago", "enrolled … (ephemeral), revoked 5 min ago", or
/// "–" for an agent the collector no longer knows.
fn origin_text(listing: Option<&AgentListing>, now: chrono::DateTime<chrono::Utc>) -> Markup {
    let Some(l) = listing else {
        return html! { "–" };
    };
    html! {
        @match l.enrolled_at {
            None => "configuration",
            Some(at) => { "enrolled " (ago(at, now)) },
        }
        @if l.lifecycle != "permanent" { " (" (l.lifecycle) ")" }
        @if let Some(at) = l.revoked_at { ", revoked " (ago(at, now)) }
    }
}
