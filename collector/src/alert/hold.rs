//! Why a firing alert is not notified now: a maintenance window (`[[maintenance]]`) or a
//! silence covers its labels, or every agent whose data made it fire is down, or sent that data
//! before it came back from an outage (a backlog arriving after the outage is old news). The
//! reason is logged; the alert is recorded as firing all the same and notified when the reason
//! ends, if it still fires ([`super::Desk::release_and_remind`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use lookout_config::{CollectorConfig, MaintenanceConfig};

use super::Vantage;
use super::book::{Book, Memo};
use crate::store::alerting::Silence;

/// The holds the configuration sets: its maintenance windows. Silences are the store's.
#[derive(Debug, Clone, Default)]
pub struct Holds {
    maintenance: Vec<MaintenanceConfig>,
}

impl Holds {
    /// The maintenance windows of a configuration.
    pub fn new(config: &CollectorConfig) -> Self {
        Self {
            maintenance: config.maintenance.clone(),
        }
    }

    /// The maintenance window covering an alert with these labels at `now`, if any.
    pub fn maintenance(
        &self,
        labels: &BTreeMap<String, String>,
        now: DateTime<Utc>,
    ) -> Option<&str> {
        self.maintenance
            .iter()
            .find(|m| m.covers(labels, now))
            .map(|m| m.name.as_str())
    }

    /// Why the alert `memo`, decided on data from `at`, is not to be notified at `now`, if it is
    /// not.
    pub(super) fn why(
        &self,
        book: &Book,
        vantage: &dyn Vantage,
        silences: &[Silence],
        memo: &Memo,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<String> {
        if let Some(m) = self.maintenance(&memo.labels, now) {
            return Some(format!("maintenance window {m:?}"));
        }
        if let Some(s) = silences.iter().find(|s| s.silences(&memo.labels, now)) {
            return Some(format!("silence {} by {}", s.id, s.created_by));
        }
        // The agents it depends on: as decided, or (after a restart, which does not keep them)
        // from the check's failing agents or the alert's own agent label.
        let check = memo.labels.get("check").map(String::as_str);
        let failing = check.and_then(|c| vantage.failing_agents(c));
        let known_check = failing.is_some();
        let depends_on: Vec<String> = if !memo.depends_on.is_empty() {
            memo.depends_on.clone()
        } else if let Some(agents) = failing {
            agents
        } else {
            memo.labels.get("agent").cloned().into_iter().collect()
        };
        // Held while every agent it depends on is down, or its data is from before that
        // agent came back (a backlog arriving after an outage).
        let waiting = |agent: &String| {
            book.agent_down(agent)
                || vantage
                    .returned(agent, check.filter(|_| known_check))
                    .is_some_and(|(back, latest)| latest.unwrap_or(at) < back)
        };
        if !depends_on.is_empty() && depends_on.iter().all(waiting) {
            return Some(format!("agent down: {}", depends_on.join(", ")));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn maintenance_windows_cover_matching_alerts_while_open() {
        let config = CollectorConfig::parse(
            Path::new("t.toml"),
            r#"
            [[maintenance]]
            name = "db upgrade"
            match = { check = "db" }
            starts = "2026-01-01T00:00:00Z"
            ends = "2026-01-01T02:00:00Z"
            [[maintenance]]
            name = "sunday reboot"
            schedule = "0 3 * * SUN"
            duration = "30m"
            "#,
            &|_| None,
        )
        .unwrap();
        let h = Holds::new(&config);
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let db: BTreeMap<String, String> = [("check".to_string(), "db".to_string())].into();
        let api: BTreeMap<String, String> = [("check".to_string(), "api".to_string())].into();
        assert_eq!(
            h.maintenance(&db, at("2026-01-01T01:00:00Z")),
            Some("db upgrade")
        );
        assert_eq!(h.maintenance(&api, at("2026-01-01T01:00:00Z")), None);
        assert_eq!(h.maintenance(&db, at("2026-01-01T02:00:00Z")), None);
        // 2026-11-29 is a Sunday.
        assert_eq!(
            h.maintenance(&api, at("2026-11-29T03:10:00Z")),
            Some("sunday reboot")
        );
        assert_eq!(h.maintenance(&api, at("2026-11-29T03:30:00Z")), None);
        assert_eq!(h.maintenance(&api, at("2026-11-28T03:10:00Z")), None);
    }
}
