//! `GET /api/v1/cluster`: the collectors that share this one's database, which one leads and
//! since when.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::auth::Reader;
use crate::error::AppError;
use crate::state::AppState;
use crate::store::cluster::CollectorRow;

/// One collector as the API shows it.
#[derive(Debug, Serialize)]
pub struct CollectorView {
    /// Unique to a run of the process.
    pub instance: String,
    /// Where it listens.
    pub address: String,
    /// Its version.
    pub version: String,
    /// When it started.
    pub started: DateTime<Utc>,
    /// When it last wrote its row.
    pub last_seen: DateTime<Utc>,
    /// True for the leader.
    pub leader: bool,
    /// Since when it leads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader_since: Option<DateTime<Utc>>,
    /// True for the collector that answers.
    pub this: bool,
}

/// The answer.
#[derive(Debug, Serialize)]
pub struct ClusterAnswer {
    /// The instance of the leader, if one is known.
    pub leader: Option<String>,
    /// Collectors seen within the last 15 s, the leader first.
    pub collectors: Vec<CollectorView>,
}

/// `GET /api/v1/cluster`.
pub async fn cluster(
    State(state): State<Arc<AppState>>,
    _: Reader,
) -> Result<Json<ClusterAnswer>, AppError> {
    let now = crate::clock::now();
    let since = now
        - chrono::Duration::from_std(crate::cluster::SEEN_WITHIN)
            .unwrap_or(chrono::Duration::zero());
    let rows = state.store.collectors(since).await?;
    Ok(Json(answer(
        rows,
        state.me.get().map(|m| m.instance.as_str()),
    )))
}

/// A dead leader's row says it leads until it ages out: the latest to take the lead is the one.
fn answer(rows: Vec<CollectorRow>, me: Option<&str>) -> ClusterAnswer {
    let leader = rows
        .iter()
        .filter(|r| r.leader_since.is_some())
        .max_by_key(|r| r.leader_since)
        .map(|r| r.instance.clone());
    let mut collectors: Vec<CollectorView> = rows
        .into_iter()
        .map(|r| CollectorView {
            leader: leader.as_deref() == Some(r.instance.as_str()),
            leader_since: r
                .leader_since
                .filter(|_| leader.as_deref() == Some(r.instance.as_str())),
            this: me == Some(r.instance.as_str()),
            instance: r.instance,
            address: r.address,
            version: r.version,
            started: r.started,
            last_seen: r.seen,
        })
        .collect();
    collectors.sort_by_key(|c| (!c.leader, c.started));
    ClusterAnswer { leader, collectors }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(instance: &str, leader_since: Option<&str>) -> CollectorRow {
        let t: DateTime<Utc> = "2026-11-26T12:00:00Z".parse().unwrap();
        CollectorRow {
            instance: instance.into(),
            address: format!("http://{instance}"),
            version: "0.1.0".into(),
            started: t,
            seen: t,
            leader_since: leader_since.map(|s| s.parse().unwrap()),
        }
    }

    #[test]
    fn the_latest_to_take_the_lead_leads_while_a_dead_leader_ages_out() {
        let a = answer(
            vec![
                row("a", Some("2026-11-26T12:00:00Z")),
                row("b", Some("2026-11-26T12:05:00Z")),
                row("c", None),
            ],
            Some("c"),
        );
        assert_eq!(a.leader.as_deref(), Some("b"));
        assert_eq!(a.collectors[0].instance, "b");
        assert!(a.collectors[0].leader && a.collectors[0].leader_since.is_some());
        let old = a.collectors.iter().find(|c| c.instance == "a").unwrap();
        assert!(!old.leader && old.leader_since.is_none());
        assert!(
            a.collectors
                .iter()
                .find(|c| c.instance == "c")
                .unwrap()
                .this
        );
    }
}
