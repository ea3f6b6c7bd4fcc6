//! `[[escalations]]` and routes that name them, read and checked.

use std::path::Path;
use std::time::Duration;

use crate::CollectorConfig;
use crate::error::ConfigErrors;

fn collector(text: &str) -> Result<CollectorConfig, ConfigErrors> {
    CollectorConfig::parse(Path::new("c.toml"), text, &|_| None)
}

const ESCALATION_CHANNELS: &str = r#"
[[channels]]
name = "slack"
type = "webhook"
url = "http://127.0.0.1:9/slack"
[[channels]]
name = "pushover"
type = "webhook"
url = "http://127.0.0.1:9/pushover"
[[channels]]
name = "pd"
type = "webhook"
url = "http://127.0.0.1:9/pd"
"#;

#[test]
fn an_escalation_policy_is_read_and_a_route_names_it() {
    let c = collector(&format!(
        r#"{ESCALATION_CHANNELS}
[[escalations]]
name = "critical"
steps = [
  {{ after = "0s", channels = ["slack"] }},
  {{ after = "5m", channels = ["pushover"] }},
  {{ after = "15m", channels = ["pd", "slack"] }},
]
repeat = "30m"

[[routes]]
match = {{ severity = "critical" }}
escalation = "critical"
"#
    ))
    .unwrap();
    let p = &c.escalations[0];
    assert_eq!(p.name, "critical");
    let steps: Vec<(u64, Vec<&str>)> = p
        .steps
        .iter()
        .map(|s| {
            (
                s.after.as_secs(),
                s.channels.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            (0, vec!["slack"]),
            (300, vec!["pushover"]),
            (900, vec!["pd", "slack"])
        ]
    );
    assert_eq!(p.repeat, Some(Duration::from_secs(1800)));
    assert_eq!(c.routes[0].escalation.as_deref(), Some("critical"));
    assert!(c.routes[0].channels.is_empty());
}

#[test]
fn escalation_policies_report_what_is_wrong_where() {
    let steps = |n: usize| {
        (0..n)
            .map(|i| format!("{{ after = \"{i}m\", channels = [\"slack\"] }}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let text = format!(
        r#"{ESCALATION_CHANNELS}
[[escalations]]
name = "bad"
steps = [
  {{ after = "5m", channels = ["slack"] }},
  {{ after = "5m", channels = ["pager"] }},
  {{ after = "8d", channels = [] }},
]
repeat = "10s"

[[escalations]]
name = "empty"
steps = []
repeat = "31d"

[[escalations]]
name = "long"
steps = [{}]

[[escalations]]
name = "bad"
steps = [{{ after = "0s", channels = ["slack"] }}]

[[escalations]]
name = "typo"
steps = [{{ after = "0s", channel = ["slack"] }}]

[[routes]]
channels = ["slack"]
escalation = "bad"
repeat_interval = "1h"

[[routes]]
escalation = "nope"

[[routes]]
match = {{ severity = "warning" }}
"#,
        steps(11)
    );
    let all = collector(&text).unwrap_err().to_string();
    for expected in [
        r#"escalations[0].steps[1].after: must be later than the step before (5m)"#,
        r#"escalations[0].steps[1].channels: no channel named "pager" (channels: ["slack", "pushover", "pd"])"#,
        "escalations[0].steps[2].channels: must name at least one channel",
        "escalations[0].steps[2].after: must be at most 7d",
        "escalations[0].repeat: must be at least 1m",
        "escalations[1].steps: must have at least one step",
        "escalations[1].repeat: must be at most 30d",
        "escalations[2].steps: at most 10 steps (found 11)",
        r#"escalations[3].name: duplicate escalation name "bad" (first at escalations[0])"#,
        "escalations[4].steps: unknown field `channel`, expected `after` or `channels`",
        "routes[0].escalation: give channels or escalation, not both",
        "routes[0].repeat_interval: not with escalation",
        r#"routes[1].escalation: no escalation named "nope" (escalations: ["bad", "empty", "long", "bad"])"#,
        r#"routes[2].channels: must name at least one channel (or give escalation = "policy")"#,
    ] {
        assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
    }
}
