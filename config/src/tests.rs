use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

fn collector(text: &str) -> Result<CollectorConfig, ConfigErrors> {
    CollectorConfig::parse(Path::new("c.toml"), text, &no_env)
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

#[test]
fn every_example_loads_and_validates() {
    let mut seen = 0;
    for entry in std::fs::read_dir(examples()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let result = if name.starts_with("agent") {
            AgentConfig::parse(&path, &text, &no_env).map(|_| ())
        } else {
            CollectorConfig::parse(&path, &text, &no_env).map(|_| ())
        };
        if let Err(e) = result {
            panic!("{name} does not load:\n{e}");
        }
        seen += 1;
    }
    assert!(
        seen >= 3,
        "expected quickstart, collector and agent examples, found {seen}"
    );
}

#[test]
fn quickstart_has_a_local_agent_and_checks() {
    let path = examples().join("quickstart.toml");
    let c =
        CollectorConfig::parse(&path, &std::fs::read_to_string(&path).unwrap(), &no_env).unwrap();
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:7700");
    assert_eq!(c.local_agent.as_ref().unwrap().name, "local");
    assert!(c.checks.len() >= 2);
    assert_eq!(
        c.storage.resolved_url(&c.server.data_dir),
        "sqlite://./lookout-data/lookout.db"
    );
}

#[test]
fn defaults_apply() {
    let c = collector("").unwrap();
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:7700");
    assert!(c.local_agent.is_none());
    let c = collector("[[checks]]\nname = \"a\"\ntype = \"http\"\nurl = \"http://x/\"\n").unwrap();
    assert_eq!(c.checks[0].interval, Duration::from_secs(30));
    assert_eq!(c.checks[0].timeout, Duration::from_secs(10));
}

#[test]
fn every_problem_is_reported_with_line_column_and_key() {
    let text = r#"[server]
listen = "127.0.0.1:7700"
bogus = 1

[[checks]]
name = "a"
type = "http"
url = "http://x/"

[[checks]]
name = "b"
type = "http"
url = "http://x/"
interval = "5 parsecs"

[[checks]]
name = "c"
type = "ftp"

[[checks]]
name = "a"
type = "http"
url = "gopher://x/"
"#;
    let errs = collector(text).unwrap_err().0;
    let shown: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
    let all = shown.join("\n");
    assert_eq!(errs.len(), 5, "{all}");
    // Unknown key in [server], at its own line and column.
    assert!(
        all.contains("c.toml:3:1: server.bogus: unknown field `bogus`"),
        "{all}"
    );
    // A bad duration names the check's key.
    assert!(
        all.contains("c.toml:14:12: checks[1].interval: invalid duration"),
        "{all}"
    );
    // An unknown type names the expected ones.
    assert!(
        all.contains("c.toml:18:8: checks[2].type: unknown variant `ftp`"),
        "{all}"
    );
    assert!(all.contains("expected one of `http`, `tcp`"), "{all}");
    // Semantic problems in the last check: both of them.
    assert!(
        all.contains("c.toml:23:7: checks[3].url: scheme \"gopher\""),
        "{all}"
    );
    assert!(
        all.contains("c.toml:21:8: checks[3].name: duplicate check name \"a\""),
        "{all}"
    );
}

#[test]
fn syntax_errors_have_positions() {
    let errs = collector("[server]\nlisten = \n").unwrap_err().0;
    assert_eq!(errs[0].line, 2, "{:?}", errs);
    assert!(errs[0].message.starts_with("invalid TOML"), "{:?}", errs);
}

#[test]
fn unset_variable_is_an_error_that_names_it() {
    let errs = collector("[server]\nadmin_token = \"${LOOKOUT_TEST_UNSET_VAR}\"\n")
        .unwrap_err()
        .0;
    assert_eq!(errs.len(), 1);
    assert_eq!((errs[0].line, errs[0].column), (2, 15));
    assert_eq!(errs[0].key, "server.admin_token");
    assert!(
        errs[0].message.contains("LOOKOUT_TEST_UNSET_VAR"),
        "{}",
        errs[0]
    );
}

#[test]
fn variables_interpolate_into_values_only() {
    let env = |k: &str| (k == "TOKEN").then(|| "abcdefghijklmnop\"q".to_string());
    let c = CollectorConfig::parse(
        Path::new("c.toml"),
        "[[agents]]\nname = \"w\"\ntoken = \"${TOKEN}\"\n",
        &env,
    )
    .unwrap();
    // The quote stays part of the value: a secret cannot inject TOML.
    assert_eq!(c.agents[0].token, "abcdefghijklmnop\"q");
}

#[test]
fn agent_tokens_are_checked() {
    let text = r#"
[[agents]]
name = "a"
token = "short"
[[agents]]
name = "a"
token = "0123456789abcdef"
[[agents]]
name = "b"
token = "0123456789abcdef"
"#;
    let all = collector(text).unwrap_err().to_string();
    assert!(all.contains("agents[0].token: too short"), "{all}");
    assert!(
        all.contains("agents[1].name: duplicate agent name"),
        "{all}"
    );
    assert!(
        all.contains("agents[2].token: the same token as agents[1]"),
        "{all}"
    );
}

#[test]
fn agent_config_requires_identity_and_reports_sections() {
    let errs = AgentConfig::parse(Path::new("a.toml"), "name = \"x\"\n", &no_env)
        .unwrap_err()
        .to_string();
    assert!(errs.contains("missing field `collector`"), "{errs}");
    let text = r#"
name = "web-1"
collector = ["http://a:7700", "ftp://b"]
token = "t"
[host_metrics]
interval = "0s"
"#;
    let errs = AgentConfig::parse(Path::new("a.toml"), text, &no_env)
        .unwrap_err()
        .to_string();
    assert!(
        errs.contains("a.toml:3:31: collector[1]: scheme \"ftp\""),
        "{errs}"
    );
    assert!(
        errs.contains("host_metrics.interval: must be at least 1s"),
        "{errs}"
    );
}

#[test]
fn a_missing_file_is_a_clear_error() {
    let e = CollectorConfig::load(Path::new("/nonexistent/lookout.toml")).unwrap_err();
    assert!(
        e.to_string()
            .contains("/nonexistent/lookout.toml: cannot read the file"),
        "{e}"
    );
}

#[test]
fn checks_are_assigned_by_selector() {
    let text = r#"
[[checks]]
name = "all"
type = "http"
url = "http://x/"
[[checks]]
name = "web-only"
type = "http"
url = "http://x/"
run_on = ["role=web"]
"#;
    let c = collector(text).unwrap();
    let web = [("role".to_string(), "web".to_string())]
        .into_iter()
        .collect();
    let names = |v: Vec<CheckConfig>| v.into_iter().map(|c| c.name).collect::<Vec<_>>();
    assert_eq!(names(c.checks_for("w", &web)), ["all", "web-only"]);
    assert_eq!(names(c.checks_for("d", &Default::default())), ["all"]);
}

#[test]
fn host_metric_groups_are_checked() {
    let text = "name = \"a\"\ncollector = \"http://x:1\"\ntoken = \"t\"\n[host_metrics]\ngroups = [\"cpu\", \"gpu\"]\n";
    let errs = AgentConfig::parse(Path::new("a.toml"), text, &no_env)
        .unwrap_err()
        .to_string();
    assert!(
        errs.contains("a.toml:5:18: host_metrics.groups[1]: unknown group \"gpu\""),
        "{errs}"
    );
    let ok =
        AgentConfig::parse(Path::new("a.toml"), &text.replace(", \"gpu\"", ""), &no_env).unwrap();
    assert!(ok.host_metrics.collects("cpu") && !ok.host_metrics.collects("disk"));
    assert!(HostMetricsConfig::default().collects("disk"));
}

#[test]
fn tcp_states_need_the_connections_group() {
    let text = "name = \"a\"\ncollector = \"http://x:1\"\ntoken = \"t\"\n[host_metrics]\ngroups = [\"cpu\"]\ntcp_states = true\n";
    let errs = AgentConfig::parse(Path::new("a.toml"), text, &no_env)
        .unwrap_err()
        .to_string();
    assert!(
        errs.contains("a.toml:6:14: host_metrics.tcp_states: needs the \"connections\" group"),
        "{errs}"
    );
    let with = "name = \"a\"\ncollector = \"http://x:1\"\ntoken = \"t\"\n[host_metrics]\ngroups = [\"connections\"]\ntcp_states = true\n";
    let c = AgentConfig::parse(Path::new("a.toml"), with, &no_env).unwrap();
    assert!(c.host_metrics.tcp_states);
    let default = "name = \"a\"\ncollector = \"http://x:1\"\ntoken = \"t\"\n";
    let c = AgentConfig::parse(Path::new("a.toml"), default, &no_env).unwrap();
    assert!(!c.host_metrics.tcp_states, "off unless asked for");
}
