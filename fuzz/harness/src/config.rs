//! The configuration files of both daemons, as they load them: TOML, `${VAR}` and
//! `${VAR:-default}` from an environment, every section validated, every problem reported with
//! its place. A file that loads is then asked what the daemons ask of it at run time (which
//! checks an agent gets, when a maintenance window or a heartbeat is due).

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use lookout_config::{AgentConfig, CollectorConfig, ConfigErrors};

/// The environment the files see: a secret, an empty value and one with a newline (which must
/// not be able to add TOML lines).
fn env(name: &str) -> Option<String> {
    match name {
        "TOKEN" => Some("fuzz-token-0123456789abcdef0123456789".into()),
        "EMPTY" => Some(String::new()),
        "LINES" => Some("a\"\nb = 1".into()),
        "URL" => Some("http://127.0.0.1:9".into()),
        _ => None,
    }
}

/// A fixed time, so a run does not depend on the clock.
fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_795_000_000, 0).unwrap_or_default()
}

fn reported(errors: &ConfigErrors) {
    // Formatting an error reads the file's text at the problem's line and column.
    assert!(!errors.to_string().is_empty());
}

/// The agent's file (`agent.toml`).
pub fn agent(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let config = match AgentConfig::parse(Path::new("agent.toml"), text, &env) {
        Ok(c) => c,
        Err(e) => return reported(&e),
    };
    let _ = config.identity.collector.urls();
    for check in &config.checks {
        assert!(
            check.problems().is_empty(),
            "loaded with problems: {check:?}"
        );
        let _ = check.retry_interval();
    }
    let settings = lookout_agent::AgentSettings::from(config);
    assert!(!settings.name.is_empty());
}

/// The collector's file (`collector.toml`).
pub fn collector(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let config = match CollectorConfig::parse(Path::new("collector.toml"), text, &env) {
        Ok(c) => c,
        Err(e) => return reported(&e),
    };
    for agent in &config.agents {
        let _ = agent.digests();
    }
    let labels = BTreeMap::from([("role".to_string(), "web".to_string())]);
    for agent in config.agents.iter().map(|a| a.name.as_str()).chain(["?"]) {
        let _ = config.checks_for(agent, &labels);
        let _ = config.assigned(agent, &labels, Some(&labels));
    }
    let now = now();
    for window in &config.maintenance {
        let _ = window.active_at(now);
        if let Some((start, end)) = window.current_or_next(now) {
            assert!(start <= end, "{window:?}");
        }
        let _ = window.covers(&labels, now);
    }
    for heartbeat in &config.heartbeats {
        let _ = heartbeat.next_expected(now);
    }
    for rule in &config.rules {
        let _ = rule.threshold_text();
        let _ = rule.breached(0.0);
    }
    for route in &config.routes {
        let _ = route.matches(&labels);
    }
    let _ = config.storage.resolved_url(&config.server.data_dir);
}
