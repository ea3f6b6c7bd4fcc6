//! Which channels a note goes to: `[[routes]]` matched in order by the alert's labels (first
//! match, or on with `continue`), each giving its channels, its group and its wait. With no
//! routes configured, every alert goes to every channel in one group.
//!
//! A note becomes one outbox row per channel, keyed `fingerprint/kind/time` so that one
//! transition queues one message per channel even if it is recorded twice.
//!
//! A route that names an `[[escalations]]` policy instead of channels turns a firing note into
//! one row per step and channel, all queued at once, each due when its step comes and keyed
//! `fingerprint/firing/time/stepN`, in a group of its own step (`routeI:stepN:...`); its
//! resolved and acknowledged notes go to every channel of the policy, and the store keeps
//! only those whose step was sent ([`Escalation::Follow`]).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lookout_config::escalation::EscalationConfig;
use lookout_config::{CollectorConfig, RouteConfig};

use super::message::{AlertNote, NoteKind};
use crate::store::alerting::{Escalation, NewNotification};

/// Routes and channels from the configuration.
#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<RouteConfig>,
    escalations: Vec<EscalationConfig>,
    public_url: Option<String>,
}

impl Router {
    /// The routing of a configuration.
    pub fn new(config: &CollectorConfig) -> Self {
        let routes = if config.routes.is_empty() && !config.channels.is_empty() {
            vec![RouteConfig {
                matchers: BTreeMap::new(),
                channels: config.channels.iter().map(|c| c.name.clone()).collect(),
                escalation: None,
                continue_matching: false,
                group_by: Vec::new(),
                group_wait: Duration::from_secs(2),
                repeat_interval: None,
            }]
        } else {
            config.routes.clone()
        };
        Self {
            routes,
            escalations: config.escalations.clone(),
            public_url: config
                .server
                .public_url
                .as_ref()
                .map(|u| u.trim_end_matches('/').to_string()),
        }
    }

    /// The routes an alert with these labels takes.
    fn matching<'a>(
        &'a self,
        labels: &'a BTreeMap<String, String>,
    ) -> impl Iterator<Item = (usize, &'a RouteConfig)> + 'a {
        let mut stop = false;
        self.routes.iter().enumerate().filter(move |(_, r)| {
            if stop || !r.matches(labels) {
                return false;
            }
            stop = !r.continue_matching;
            true
        })
    }

    /// The shortest `repeat_interval` of the routes an alert takes, if any has one.
    pub fn repeat_interval(&self, labels: &BTreeMap<String, String>) -> Option<Duration> {
        self.matching(labels)
            .filter_map(|(_, r)| r.repeat_interval)
            .min()
    }

    /// The reminder rows for a firing alert last notified at `last`: to each route whose own
    /// `repeat_interval` has come round since (counted from when the alert fired), so a route
    /// repeating daily is not reminded at another route's hourly pace.
    pub fn plan_reminder(
        &self,
        note: &AlertNote,
        last: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Vec<NewNotification> {
        let slot = |t: DateTime<Utc>, every: Duration| {
            let every = every.as_millis().max(1) as i64;
            (t - note.fired_at).num_milliseconds().max(0) / every
        };
        let due: Vec<usize> = self
            .matching(&note.labels)
            .filter(|(_, r)| {
                r.repeat_interval
                    .is_some_and(|e| slot(now, e) > slot(last, e))
            })
            .map(|(i, _)| i)
            .collect();
        self.rows(note, now, now, |i| due.contains(&i))
    }

    /// A link to what the alert is about, when the public URL is known.
    pub fn link(&self, labels: &BTreeMap<String, String>) -> Option<String> {
        let base = self.public_url.as_ref()?;
        Some(match labels.get("check") {
            Some(check) => format!("{base}/#{}", check_anchor(check)),
            None => format!("{base}/"),
        })
    }

    /// The outbox rows for `note`, queued at `now`. Reminders go only to routes with a
    /// `repeat_interval`.
    pub fn plan(
        &self,
        note: &AlertNote,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Vec<NewNotification> {
        let routes: Vec<bool> = self
            .routes
            .iter()
            .map(|r| note.kind != NoteKind::Reminder || r.repeat_interval.is_some())
            .collect();
        self.rows(note, at, now, |i| routes[i])
    }

    fn rows(
        &self,
        note: &AlertNote,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
        take: impl Fn(usize) -> bool,
    ) -> Vec<NewNotification> {
        let mut out: Vec<NewNotification> = Vec::new();
        let payload = serde_json::to_value(note).unwrap_or_default();
        for (i, route) in self.matching(&note.labels) {
            if !take(i) {
                continue;
            }
            let group: Vec<String> = route
                .group_by
                .iter()
                .map(|k| {
                    format!(
                        "{k}={}",
                        note.labels.get(k).map(String::as_str).unwrap_or("")
                    )
                })
                .collect();
            let group = group.join(",");
            let policy = route
                .escalation
                .as_ref()
                .and_then(|name| self.escalations.iter().find(|p| &p.name == name));
            if let Some(policy) = policy {
                escalation_rows(
                    &mut out,
                    policy,
                    note,
                    &payload,
                    at,
                    now,
                    (i, route, &group),
                );
                continue;
            }
            let group_key = format!("route{i}:{group}");
            let not_before = later(now, route.group_wait);
            for channel in &route.channels {
                if out.iter().any(|n| &n.channel == channel) {
                    continue;
                }
                out.push(NewNotification {
                    channel: channel.clone(),
                    dedup_key: format!(
                        "{}/{}/{}",
                        note.fingerprint,
                        note.kind.as_str(),
                        at.timestamp_millis()
                    ),
                    group_key: group_key.clone(),
                    payload: payload.clone(),
                    not_before,
                    escalation: None,
                });
            }
        }
        out
    }
}

/// `t` plus `d`, or `t` when that is out of range.
fn later(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(t)
}

/// The rows of `note` for a route (its index, itself and its group's label values) that names
/// the escalation `policy`: a firing note queues every step at once, each due its `after`
/// from `now` (plus the route's group wait), the last with the policy's repeat; a resolved or
/// acknowledged note goes to each channel of the policy once, if its step was sent. A
/// reminder queues nothing: the policy's repeat is the reminder.
fn escalation_rows(
    out: &mut Vec<NewNotification>,
    policy: &EscalationConfig,
    note: &AlertNote,
    payload: &serde_json::Value,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
    (i, route, group): (usize, &RouteConfig, &str),
) {
    let key = format!(
        "{}/{}/{}",
        note.fingerprint,
        note.kind.as_str(),
        at.timestamp_millis()
    );
    match note.kind {
        NoteKind::Reminder => {}
        NoteKind::Firing => {
            let last = policy.steps.len().saturating_sub(1);
            for (s, step) in policy.steps.iter().enumerate() {
                let due = later(now, step.after);
                let dedup_key = format!("{key}/step{s}");
                for channel in &step.channels {
                    if out
                        .iter()
                        .any(|n| &n.channel == channel && n.dedup_key == dedup_key)
                    {
                        continue;
                    }
                    out.push(NewNotification {
                        channel: channel.clone(),
                        dedup_key: dedup_key.clone(),
                        group_key: format!("route{i}:step{s}:{group}"),
                        payload: payload.clone(),
                        not_before: later(due, route.group_wait),
                        escalation: Some(Escalation::Step {
                            index: s as u32,
                            due,
                            repeat: policy.repeat.filter(|_| s == last),
                        }),
                    });
                }
            }
        }
        NoteKind::Resolved | NoteKind::Acknowledged => {
            for channel in policy.steps.iter().flat_map(|s| &s.channels) {
                if out.iter().any(|n| &n.channel == channel) {
                    continue;
                }
                out.push(NewNotification {
                    channel: channel.clone(),
                    dedup_key: key.clone(),
                    group_key: format!("route{i}:{group}"),
                    payload: payload.clone(),
                    not_before: later(now, route.group_wait),
                    escalation: Some(Escalation::Follow {
                        since: note.fired_at,
                    }),
                });
            }
        }
    }
}

/// The id of a check's row on the status page, which notification links point at.
pub fn check_anchor(check: &str) -> String {
    format!("check-{}", url_fragment(check))
}

/// A name made safe for a URL fragment.
fn url_fragment(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn router(toml: &str) -> Router {
        let config = CollectorConfig::parse(Path::new("t.toml"), toml, &|_| None).unwrap();
        Router::new(&config)
    }

    fn note(labels: &[(&str, &str)], kind: NoteKind) -> AlertNote {
        AlertNote {
            fingerprint: "uptime/api".into(),
            rule: "uptime".into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            kind,
            summary: "api down".into(),
            fired_at: crate::clock::now(),
            resolved_at: None,
            link: None,
            acked_by: None,
            ack_link: None,
            detail: None,
        }
    }

    const CHANNELS: &str = r#"
        [[channels]]
        name = "mail"
        type = "email"
        url = "smtp://127.0.0.1:25"
        from = "l@example.com"
        to = ["ops@example.com"]
        [[channels]]
        name = "hook"
        type = "webhook"
        url = "http://127.0.0.1:9/"
    "#;

    #[test]
    fn without_routes_every_alert_goes_to_every_channel() {
        let r = router(CHANNELS);
        let now = crate::clock::now();
        let rows = r.plan(
            &note(&[("severity", "warning")], NoteKind::Firing),
            now,
            now,
        );
        let names: Vec<&str> = rows.iter().map(|n| n.channel.as_str()).collect();
        assert_eq!(names, ["mail", "hook"]);
        assert!(
            rows.iter()
                .all(|n| n.not_before == now + chrono::Duration::seconds(2))
        );
    }

    #[test]
    fn first_match_wins_unless_continue() {
        let r = router(&format!(
            r#"{CHANNELS}
            [[routes]]
            match = {{ severity = "critical" }}
            channels = ["mail"]
            continue = true
            group_by = ["check"]
            group_wait = "0s"
            [[routes]]
            match = {{ severity = "critical" }}
            channels = ["hook"]
            [[routes]]
            channels = ["mail"]
            repeat_interval = "1h"
            "#
        ));
        let now = crate::clock::now();
        let crit = r.plan(
            &note(
                &[("severity", "critical"), ("check", "api")],
                NoteKind::Firing,
            ),
            now,
            now,
        );
        let names: Vec<(&str, &str)> = crit
            .iter()
            .map(|n| (n.channel.as_str(), n.group_key.as_str()))
            .collect();
        assert_eq!(names, [("mail", "route0:check=api"), ("hook", "route1:")]);
        assert_eq!(crit[0].not_before, now);
        assert_eq!(
            crit[0].dedup_key,
            format!("uptime/api/firing/{}", now.timestamp_millis())
        );
        let warn = r.plan(
            &note(&[("severity", "warning")], NoteKind::Firing),
            now,
            now,
        );
        assert_eq!(warn.len(), 1);
        assert_eq!(warn[0].group_key, "route2:");
        // Reminders only where a repeat interval is set.
        assert!(
            r.plan(
                &note(&[("severity", "critical")], NoteKind::Reminder),
                now,
                now
            )
            .is_empty()
        );
        assert_eq!(
            r.plan(
                &note(&[("severity", "warning")], NoteKind::Reminder),
                now,
                now
            )
            .len(),
            1
        );
        assert_eq!(
            r.repeat_interval(&note(&[("severity", "warning")], NoteKind::Firing).labels),
            Some(Duration::from_secs(3600))
        );
    }

    #[test]
    fn links_point_at_the_checks_row_on_the_status_page() {
        let r = router("[server]\npublic_url = \"https://status.example.com/\"\n");
        let api: BTreeMap<String, String> = [("check".to_string(), "api v2".to_string())].into();
        let agent: BTreeMap<String, String> = [("agent".to_string(), "edge".to_string())].into();
        assert_eq!(
            r.link(&api).as_deref(),
            Some("https://status.example.com/#check-api-v2")
        );
        assert_eq!(
            r.link(&agent).as_deref(),
            Some("https://status.example.com/")
        );
        assert_eq!(router("").link(&api), None);
    }

    #[test]
    fn each_route_is_reminded_at_its_own_interval() {
        let r = router(&format!(
            r#"{CHANNELS}
            [[routes]]
            channels = ["mail"]
            repeat_interval = "1h"
            continue = true
            [[routes]]
            channels = ["hook"]
            repeat_interval = "24h"
            "#
        ));
        let n = note(&[("severity", "critical")], NoteKind::Reminder);
        let fired = n.fired_at;
        let h = |hours: i64| fired + chrono::Duration::hours(hours);
        let to =
            |rows: Vec<NewNotification>| rows.into_iter().map(|r| r.channel).collect::<Vec<_>>();
        assert_eq!(to(r.plan_reminder(&n, fired, h(1))), ["mail"]);
        assert_eq!(to(r.plan_reminder(&n, h(22), h(23))), ["mail"]);
        assert_eq!(to(r.plan_reminder(&n, h(23), h(24))), ["mail", "hook"]);
        let soon = h(24) + chrono::Duration::minutes(30);
        assert!(r.plan_reminder(&n, h(24), soon).is_empty());
    }
}
