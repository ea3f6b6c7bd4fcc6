//! The container image's configuration files (deploy/container/), which the image bakes in and
//! fills from the environment: with no variable the collector's is the quickstart, and every
//! variable docs/deployment.md lists lands where it says.

use std::collections::HashMap;
use std::path::Path;

use super::*;

const COLLECTOR: &str = include_str!("../../deploy/container/collector.toml");
const AGENT: &str = include_str!("../../deploy/container/agent.toml");

fn collector(vars: &[(&str, &str)]) -> Result<CollectorConfig, ConfigErrors> {
    let env: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    CollectorConfig::parse(Path::new("collector.toml"), COLLECTOR, &|k| {
        env.get(k).cloned()
    })
}

fn agent(vars: &[(&str, &str)]) -> Result<AgentConfig, ConfigErrors> {
    let env: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    AgentConfig::parse(Path::new("agent.toml"), AGENT, &|k| env.get(k).cloned())
}

#[test]
fn with_no_variable_the_collector_image_is_the_quickstart() {
    let c = collector(&[]).unwrap();
    assert_eq!(c.server.listen.to_string(), "0.0.0.0:7700");
    assert_eq!(c.server.admin_token, None);
    assert!(c.server.generate_admin_token);
    assert_eq!(
        c.enrollment, None,
        "enrolment is off until its token is set"
    );
    assert_eq!(
        c.storage.resolved_url(&c.server.data_dir),
        "sqlite:///var/lib/lookout/lookout.db"
    );
    assert_eq!(c.local_agent.as_ref().unwrap().name, "local");
    let me = &c.checks[0];
    assert_eq!(me.url.as_deref(), Some("http://127.0.0.1:7700/healthz"));
    // Only the local agent probes its own loopback.
    assert!(me.runs_on("local", &Default::default()));
    assert!(!me.runs_on("web-1", &Default::default()));
}

#[test]
fn the_collector_image_takes_its_settings_from_the_environment() {
    let c = collector(&[
        ("LOOKOUT_PORT", "7801"),
        ("LOOKOUT_LISTEN_ADDRESS", "127.0.0.1"),
        ("LOOKOUT_ADMIN_TOKEN", "admin-token-0123456789abcdef"),
        ("LOOKOUT_ENROLL_TOKEN", "fleet-enrolment-token-0123456789"),
        (
            "LOOKOUT_STORAGE_URL",
            "postgres://lookout:pw@db:5432/lookout",
        ),
        ("LOOKOUT_LOCAL_AGENT_NAME", "collector-1"),
    ])
    .unwrap();
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:7801");
    assert_eq!(
        c.server.admin_token.as_ref().map(Token::expose),
        Some("admin-token-0123456789abcdef")
    );
    let enrolment = c.enrollment.as_ref().unwrap();
    assert_eq!(
        enrolment.token.as_ref().map(Token::expose),
        Some("fleet-enrolment-token-0123456789")
    );
    assert_eq!(
        c.storage.resolved_url(&c.server.data_dir),
        "postgres://lookout:pw@db:5432/lookout"
    );
    assert_eq!(c.local_agent.as_ref().unwrap().name, "collector-1");
    let me = &c.checks[0];
    assert_eq!(me.url.as_deref(), Some("http://127.0.0.1:7801/healthz"));
    assert!(me.runs_on("collector-1", &Default::default()));

    // A weak token set is still refused, where it is written.
    let errs = collector(&[("LOOKOUT_ENROLL_TOKEN", "short")])
        .unwrap_err()
        .to_string();
    assert!(errs.contains("enrollment.token: too short"), "{errs}");
    let errs = collector(&[("LOOKOUT_PORT", "port")])
        .unwrap_err()
        .to_string();
    assert!(errs.contains("server.listen"), "{errs}");
}

#[test]
fn the_agent_image_is_configured_by_the_environment() {
    // Without its name and collector it says which variables to set.
    let errs = agent(&[]).unwrap_err().to_string();
    for var in ["LOOKOUT_AGENT_NAME", "LOOKOUT_COLLECTOR_URL"] {
        assert!(errs.contains(var), "{var}: {errs}");
    }
    let base = [
        ("LOOKOUT_AGENT_NAME", "web-7"),
        ("LOOKOUT_COLLECTOR_URL", "https://lookout.internal:7700"),
    ];
    // Neither token: the agent cannot authenticate, and says so.
    let errs = agent(&base).unwrap_err().to_string();
    assert!(
        errs.contains("token: required: token (or enroll_token)"),
        "{errs}"
    );

    let mut enrols = base.to_vec();
    enrols.push(("LOOKOUT_ENROLL_TOKEN", "fleet-enrolment-token-0123456789"));
    enrols.push(("LOOKOUT_AGENT_LABELS", "role=web, env=production"));
    let a = agent(&enrols).unwrap();
    assert_eq!(a.identity.name, "web-7");
    assert_eq!(
        a.identity.collector.urls(),
        vec!["https://lookout.internal:7700".to_string()]
    );
    assert!(a.identity.token.is_empty());
    assert_eq!(
        a.identity.enroll_token.as_ref().map(Token::expose),
        Some("fleet-enrolment-token-0123456789")
    );
    assert_eq!(a.identity.data_dir, Path::new("/var/lib/lookout"));
    let labels: Vec<_> = a.identity.labels.iter().collect();
    assert_eq!(
        labels,
        [
            (&"env".to_string(), &"production".to_string()),
            (&"role".to_string(), &"web".to_string())
        ]
    );

    let mut own = base.to_vec();
    own.push(("LOOKOUT_AGENT_TOKEN", "agent-token-0123456789abcdef"));
    let a = agent(&own).unwrap();
    assert_eq!(a.identity.token.expose(), "agent-token-0123456789abcdef");
    assert_eq!(a.identity.enroll_token, None);
    assert!(a.identity.labels.is_empty());

    let mut bad = own.clone();
    bad.push(("LOOKOUT_AGENT_LABELS", "role"));
    let errs = agent(&bad).unwrap_err().to_string();
    assert!(
        errs.contains("labels") && errs.contains("not key=value"),
        "{errs}"
    );
}
