use std::collections::BTreeMap;
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
    // The examples' tokens come from the environment; their defaults are placeholders. A
    // Telegram bot token has a shape of its own, which its example's default has.
    let tokens = |k: &str| {
        (k.contains("TOKEN") && k != "LOOKOUT_ADMIN_TOKEN" && k != "TG_BOT_TOKEN")
            .then(|| format!("{}-a1b2c3d4e5f6a7b8c9d0", k.to_lowercase()))
    };
    let mut seen = 0;
    for entry in std::fs::read_dir(examples()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let result = if name.starts_with("agent") {
            AgentConfig::parse(&path, &text, &tokens).map(|_| ())
        } else {
            CollectorConfig::parse(&path, &text, &tokens).map(|_| ())
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
    let env = |k: &str| (k == "TOKEN").then(|| "abcdefghijklmnop0123456\"q".to_string());
    let c = CollectorConfig::parse(
        Path::new("c.toml"),
        "[[agents]]\nname = \"w\"\ntoken = \"${TOKEN}\"\n",
        &env,
    )
    .unwrap();
    // The quote stays part of the value: a secret cannot inject TOML.
    assert_eq!(
        c.agents[0].token.as_ref().unwrap().expose(),
        "abcdefghijklmnop0123456\"q"
    );
}

#[test]
fn a_token_never_shows_in_debug_and_a_short_one_is_reported_where_it_is() {
    let secret = "s3cret-agent-token-0123456789abcdef";
    let text = format!(
        "[server]\nadmin_token = \"admin-{secret}\"\n[[agents]]\nname = \"w\"\ntoken = \"{secret}\"\n\
         [[heartbeats]]\nname = \"nightly\"\ntoken = \"beat-{secret}\"\nperiod = \"1d\"\n"
    );
    let c = collector(&text).unwrap();
    let shown = format!("{c:?}");
    assert!(!shown.contains(secret), "{shown}");
    assert!(shown.contains("Token(****)"), "{shown}");
    assert_eq!(c.agents[0].token.as_ref().unwrap().expose(), secret);
    let agent = AgentConfig::parse(
        Path::new("a.toml"),
        &format!("name = \"w\"\ncollector = \"http://x:1\"\ntoken = \"{secret}\"\n"),
        &no_env,
    )
    .unwrap();
    let shown = format!("{agent:?}");
    assert!(!shown.contains(secret), "{shown}");
    // Too short: the error names file, line, column and key, as it always has.
    let errs = collector("[[agents]]\nname = \"w\"\ntoken = \"short\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        errs.contains("c.toml:3:9: agents[0].token: too short: expected at least 24 characters"),
        "{errs}"
    );
}

#[test]
fn agent_tokens_are_checked() {
    let text = r#"
[[agents]]
name = "a"
token = "short"
[[agents]]
name = "a"
token = "0123456789abcdef01234567"
[[agents]]
name = "b"
token = "0123456789abcdef01234567"
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
fn the_examples_placeholder_tokens_are_refused() {
    for (name, keys) in [
        (
            "collector.toml",
            &[
                "agents[0].token",
                "agents[1].token",
                "agents[2].token",
                "heartbeats[0].token",
            ][..],
        ),
        ("agent.toml", &["token"][..]),
    ] {
        let path = examples().join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        let errs = if name == "agent.toml" {
            AgentConfig::parse(&path, &text, &no_env).unwrap_err()
        } else {
            CollectorConfig::parse(&path, &text, &no_env).unwrap_err()
        }
        .to_string();
        for key in keys {
            assert!(
                errs.contains(&format!("{key}: the example's placeholder")),
                "{name}: {key} not refused:\n{errs}"
            );
        }
    }
    // A token copied from the examples, under another key, is refused too.
    let errs = collector(
        "[server]\nadmin_token = \"change-me-web-1-token\"\n\
         [[agents]]\nname = \"w\"\ntoken = \"aaaaaaaaaaaaaaaaaaaaaaaaaaaa\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        errs.contains("server.admin_token: the example's placeholder"),
        "{errs}"
    );
    assert!(
        errs.contains("agents[0].token: one character repeated"),
        "{errs}"
    );
}

#[test]
fn an_agent_token_may_be_a_digest_and_two_are_valid_while_it_rotates() {
    // printf %s 0123456789abcdef01234567 | sha256sum
    let hex = "8865fea8edb697169ac2b4f5e6339e16439381033640eeb4f55edbad9bdc2d3d";
    let c = collector(&format!(
        "[[agents]]\nname = \"a\"\ntoken_sha256 = \"{hex}\"\n\
         previous_token = \"old-token-of-agent-a-0123\"\n\
         [[agents]]\nname = \"b\"\ntoken = \"token-of-agent-b-01234567\"\n"
    ))
    .unwrap();
    let a = c.agents[0].digests();
    assert_eq!(a.len(), 2);
    assert!(a.contains(&Token::from("0123456789abcdef01234567").digest()));
    assert!(a.contains(&Token::from("old-token-of-agent-a-0123").digest()));
    assert_eq!(
        c.agents[1].digests(),
        vec![Token::from("token-of-agent-b-01234567").digest()]
    );
    assert!(
        !format!("{c:?}").contains(hex),
        "a digest is not logged either"
    );
    // Neither, both, a bad digest, and one agent's token as another's digest.
    let errs = collector(&format!(
        "[[agents]]\nname = \"a\"\n\
         [[agents]]\nname = \"b\"\ntoken = \"0123456789abcdef01234567\"\ntoken_sha256 = \"{hex}\"\n\
         [[agents]]\nname = \"c\"\ntoken_sha256 = \"{}\"\n\
         [[agents]]\nname = \"d\"\ntoken = \"0123456789abcdef01234567\"\n\
         [[agents]]\nname = \"e\"\ntoken_sha256 = \"{hex}\"\n",
        &hex[1..]
    ))
    .unwrap_err()
    .to_string();
    assert!(
        errs.contains("agents[0].token: required: token (or token_sha256)"),
        "{errs}"
    );
    assert!(
        errs.contains("agents[1].token_sha256: give token or token_sha256, not both"),
        "{errs}"
    );
    assert!(
        errs.contains("agents[2].token_sha256") && errs.contains("64 hexadecimal digits"),
        "{errs}"
    );
    assert!(
        errs.contains("agents[4].token_sha256: the same token as agents[3]"),
        "{errs}"
    );
}

#[test]
fn read_tokens_are_strong_and_not_the_admin_token() {
    let c = collector(
        "[server]\npublic_read = true\nread_tokens = [\"grafana-read-token-0123456789abcdef\"]\n",
    )
    .unwrap();
    assert!(c.server.public_read);
    assert_eq!(c.server.read_tokens.len(), 1);
    assert!(
        !collector("").unwrap().server.public_read,
        "closed by default"
    );
    let errs = collector(
        "[server]\nadmin_token = \"admin-token-0123456789abcdef\"\n\
         read_tokens = [\"short\", \"admin-token-0123456789abcdef\"]\n",
    )
    .unwrap_err()
    .to_string();
    assert!(errs.contains("server.read_tokens[0]: too short"), "{errs}");
    assert!(
        errs.contains("server.read_tokens[1]: the same as admin_token"),
        "{errs}"
    );
}

#[test]
fn frame_ancestors_are_origins() {
    let c = collector(
        "[status_page]\nframe_ancestors = [\"https://intranet.example.com\", \"http://10.0.0.2:8080\"]\n",
    )
    .unwrap();
    assert_eq!(c.status_page.frame_ancestors.len(), 2);
    assert!(
        collector("")
            .unwrap()
            .status_page
            .frame_ancestors
            .is_empty()
    );
    for bad in [
        "*",
        "intranet.example.com",
        "https://intranet.example.com/",
        "https://intranet.example.com/page",
        "https://a.example; script-src *",
        "javascript:alert(1)",
    ] {
        let errs = collector(&format!("[status_page]\nframe_ancestors = [{bad:?}]\n"))
            .unwrap_err()
            .to_string();
        assert!(
            errs.contains("status_page.frame_ancestors[0]") && errs.contains("expected an origin"),
            "{bad}: {errs}"
        );
    }
}

#[test]
fn claimed_labels_select_checks_only_where_allowed_and_never_secret_ones() {
    let c = collector(
        r#"
[[agents]]
name = "trusted"
token = "trusted-token-0123456789abcdef"
labels = { role = "web" }
[[agents]]
name = "open"
token = "open-token-0123456789abcdef"
labels = { role = "web" }
self_labels = true
[[checks]]
name = "web"
type = "http"
url = "http://web/"
run_on = ["role=web"]
[[checks]]
name = "gpu"
type = "http"
url = "http://gpu/"
run_on = ["gpu=yes"]
[[checks]]
name = "db"
type = "http"
url = "http://db/"
headers = { Authorization = "Bearer x" }
run_on = ["role=db"]
[[checks]]
name = "db-url"
type = "http"
url = "http://user:pw@db/"
run_on = ["gpu=yes"]
"#,
    )
    .unwrap();
    let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    // What each entry says: its labels, and whether what it claims counts.
    let entry = |name: &str| c.agents.iter().find(|a| a.name == name).unwrap();
    let claims = map(&[("role", "db"), ("gpu", "yes")]);
    let names = |agent: &str| {
        let e = entry(agent);
        let mut n: Vec<String> = c
            .assigned(agent, &e.labels, e.self_labels.then_some(&claims))
            .into_iter()
            .map(|c| c.name.clone())
            .collect();
        n.sort();
        n
    };
    // Not allowed to speak for itself: its configured labels only.
    assert_eq!(names("trusted"), ["web"]);
    // Allowed: its claims add checks, but its configured role wins and no secret goes by claim.
    assert_eq!(names("open"), ["gpu", "web"]);
    // The local agent: the labels of [local_agent], no claims.
    let local: Vec<&str> = c
        .assigned("local", &map(&[("role", "web")]), None)
        .into_iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(local, ["web"]);
}

#[test]
fn debug_of_the_configuration_shows_no_password_or_channel_secret() {
    let c = collector(
        r#"
[storage]
url = "postgres://lookout:PGSECRET1@db/lookout?sslpassword=PGSECRET2&sslmode=require"
[[channels]]
name = "mail"
type = "email"
url = "smtp://alerts:SMTPSECRET@mail:587"
from = "lookout@example.com"
to = ["ops@example.com"]
[[channels]]
name = "slack"
type = "slack"
webhook_url = "https://hooks.slack.com/services/T0/B0/SLACKSECRET"
[[channels]]
name = "hook"
type = "webhook"
url = "https://hook.example/in?token=HOOKSECRET"
secret = "HMACSECRET"
headers = { Authorization = "Bearer HEADERSECRET" }
"#,
    )
    .unwrap();
    let shown = format!("{c:?}");
    for secret in [
        "PGSECRET1",
        "PGSECRET2",
        "SMTPSECRET",
        "SLACKSECRET",
        "HOOKSECRET",
        "HMACSECRET",
        "HEADERSECRET",
    ] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    assert!(shown.contains("postgres://***@db/lookout"), "{shown}");
    let agent = AgentConfig::parse(
        Path::new("a.toml"),
        "name = \"a\"\ncollector = \"http://a:AGENTURLSECRET@c:7700\"\ntoken = \"agent-token-0123456789abcdef\"\n",
        &no_env,
    )
    .unwrap();
    assert!(!format!("{agent:?}").contains("AGENTURLSECRET"));
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
    let text = "name = \"a\"\ncollector = \"http://x:1\"\ntoken = \"agent-token-0123456789abcdef\"\n[host_metrics]\ngroups = [\"cpu\", \"gpu\"]\n";
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
    let text = "name = \"a\"\ncollector = \"http://x:1\"\ntoken = \"agent-token-0123456789abcdef\"\n[host_metrics]\ngroups = [\"cpu\"]\ntcp_states = true\n";
    let errs = AgentConfig::parse(Path::new("a.toml"), text, &no_env)
        .unwrap_err()
        .to_string();
    assert!(
        errs.contains("a.toml:6:14: host_metrics.tcp_states: needs the \"connections\" group"),
        "{errs}"
    );
    let with = "name = \"a\"\ncollector = \"http://x:1\"\ntoken = \"agent-token-0123456789abcdef\"\n[host_metrics]\ngroups = [\"connections\"]\ntcp_states = true\n";
    let c = AgentConfig::parse(Path::new("a.toml"), with, &no_env).unwrap();
    assert!(c.host_metrics.tcp_states);
    let default =
        "name = \"a\"\ncollector = \"http://x:1\"\ntoken = \"agent-token-0123456789abcdef\"\n";
    let c = AgentConfig::parse(Path::new("a.toml"), default, &no_env).unwrap();
    assert!(!c.host_metrics.tcp_states, "off unless asked for");
}

#[test]
fn a_bad_condition_is_a_config_error_with_its_position() {
    let text = r#"
[[checks]]
name = "api"
type = "http"
url = "http://x/"
conditions = ["[STATUS] == 200", "[BODY].status = ok"]
"#;
    let errs = collector(text).unwrap_err();
    let all = errs.to_string();
    assert_eq!(errs.0.len(), 1, "{all}");
    assert!(all.contains("c.toml:6:"), "{all}");
    assert!(all.contains("checks[0].conditions"), "{all}");
    assert!(
        all.contains("\"[BODY].status = ok\": expected `placeholder OPERATOR value`"),
        "{all}"
    );
    let ok = collector(&text.replace("status = ok", "status == ok")).unwrap();
    assert_eq!(ok.checks[0].conditions.len(), 2);
    assert_eq!(
        ok.checks[0].conditions[1].to_string(),
        "[BODY].status == ok"
    );
}

#[test]
fn the_probe_contract_loads_as_written() {
    let path = examples().join("checks-contract.toml");
    let c =
        CollectorConfig::parse(&path, &std::fs::read_to_string(&path).unwrap(), &no_env).unwrap();
    let by_name = |n: &str| c.checks.iter().find(|k| k.name == n).unwrap();
    assert_eq!(c.checks.len(), 8);
    assert_eq!(
        by_name("cert").ca.as_deref(),
        Some("/etc/ssl/internal-ca.pem")
    );
    assert_eq!(by_name("resolver").query.as_deref(), Some("example.com"));
    assert_eq!(by_name("resolver").record, RecordType::A);
    assert_eq!(by_name("ssh").expect.as_deref(), Some("SSH-"));
    assert!(by_name("mail").starttls);
    assert_eq!(by_name("gateway").host.as_deref(), Some("10.0.0.1"));
}

#[test]
fn alerting_sections_report_what_is_wrong_where() {
    let text = r#"[[channels]]
name = "mail"
type = "email"
url = "https://smtp.example.com"
to = ["ops@example.com"]
webhook_url = "https://x/"

[[channels]]
name = "hook"
type = "webhook"
url = "http://127.0.0.1:9/hook"
secret = ""

[[routes]]
channels = ["hook", "pager"]
repeat_interval = "10s"

[[maintenance]]
name = "patching"
schedule = "every sunday"
duration = "1h"

[[maintenance]]
name = "upgrade"
starts = "2026-01-02T00:00:00Z"
ends = "2026-01-01T00:00:00Z"

[[heartbeats]]
name = "nightly backup"
token = "short"
period = "1h"
schedule = "0 3 * * *"

[[rules]]
name = "uptime"
metric = "system.cpu.utilization"
above = 0.9
below = 0.1
"#;
    let errs = collector(text).unwrap_err().0;
    let all: String = errs.iter().map(|e| format!("{e}\n")).collect();
    for expected in [
        "channels[0].url: expected smtp://... or smtps://...",
        "channels[0].from: required: the sender's address",
        "channels[0].webhook_url: not a setting of email channels",
        "channels[1].secret: is empty (an unset ${VAR}?)",
        r#"routes[0].channels: no channel named "pager" (channels: ["mail", "hook"])"#,
        "routes[0].repeat_interval: must be at least 1m",
        r#"maintenance[0].schedule: invalid cron expression "every sunday""#,
        "maintenance[1].ends: must be after starts",
        r#"heartbeats[0].name: "nightly backup": use letters, digits"#,
        "heartbeats[0].token: too short",
        "heartbeats[0].schedule: give period or schedule, not both",
        r#"rules[0].name: "uptime" is the name of a built-in rule"#,
        "rules[0].below: give above or below, not both",
    ] {
        assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
    }
    // The channel URL, which may hold a token, is not repeated in an error.
    assert!(!all.contains("smtp.example.com"), "{all}");
    assert_eq!(errs.len(), 13, "{all}");
}

#[test]
fn the_notification_contract_loads_as_written() {
    // The shape from the notifications issue, verbatim.
    let text = r#"
[[channels]]
name = "ops-mail"
type = "email"
url = "smtp://alerts:${SMTP_PASSWORD}@smtp.example.com:587?tls=required"  # lettre's URL form:
from = "Lookout <lookout@example.com>"                                      # smtps:// implicit TLS,
to = ["ops@example.com"]                                                    # plain smtp:// for a local relay

[[channels]]
name = "ops-slack"
type = "slack"
webhook_url = "${SLACK_WEBHOOK_URL}"

[[channels]]
name = "pager"
type = "webhook"
url = "https://hooks.example.com/lookout"
secret = "${WEBHOOK_SECRET}"

[[routes]]
match = { severity = "critical" }
channels = ["ops-mail", "ops-slack"]
group_wait = "2s"
"#;
    let env = |k: &str| match k {
        "SMTP_PASSWORD" => Some("pw".to_string()),
        "SLACK_WEBHOOK_URL" => Some("https://hooks.slack.com/services/T0/B0/X".to_string()),
        "WEBHOOK_SECRET" => Some("s3cret".to_string()),
        _ => None,
    };
    let c = CollectorConfig::parse(Path::new("c.toml"), text, &env).unwrap();
    assert_eq!(c.channels.len(), 3);
    assert_eq!(
        c.channels[0].url.as_deref(),
        Some("smtp://alerts:pw@smtp.example.com:587?tls=required")
    );
    assert_eq!(c.channels[2].secret.as_deref(), Some("s3cret"));
    assert_eq!(c.routes[0].channels, ["ops-mail", "ops-slack"]);
    assert_eq!(c.routes[0].group_wait, Duration::from_secs(2));
    assert_eq!(c.routes[0].matchers["severity"], "critical");
    // An unset secret is an error that names the variable.
    let err = CollectorConfig::parse(Path::new("c.toml"), text, &no_env).unwrap_err();
    assert!(err.to_string().contains("SMTP_PASSWORD"), "{err}");
}

#[test]
fn log_rules_are_checked() {
    let text = r#"
[[rules]]
name = "disk"
metric = "system.filesystem.utilization"
above = 0.9

[[log_rules]]
name = "disk"
pattern = "panic(("

[[log_rules]]
name = "oom"
pattern = "Out of memory"
agents = ["role"]
"#;
    let all = collector(text).unwrap_err().to_string();
    assert!(
        all.contains("log_rules[0].pattern: invalid regular expression"),
        "{all}"
    );
    assert!(
        all.contains(r#"log_rules[0].name: "disk" is also the name of rules[0]"#),
        "{all}"
    );
    assert!(all.contains("log_rules[1].agents"), "{all}");
    assert!(all.contains("expected \"label=value\""), "{all}");
    let ok = collector(
        "[[log_rules]]\nname = \"oom\"\npattern = \"Out of memory\"\nagents = [\"role=web\"]\nthreshold = 3\n",
    )
    .unwrap();
    assert_eq!(ok.log_rules[0].threshold, 3);
    assert_eq!(ok.log_rules[0].window, Duration::from_secs(300));
}

#[test]
fn log_sources_are_checked_and_defaulted() {
    let head =
        "name = \"a\"\ncollector = \"http://x:1\"\ntoken = \"agent-token-0123456789abcdef\"\n";
    let text = format!(
        "{head}[[logs]]\npaths = [\"var/log/*.log\", \"/var/log/[a.log\"]\nmultiline_start = '^(\\d'\nmax_line_bytes = 10\nextra = 1\n[[logs]]\npaths = []\n"
    );
    let errs = AgentConfig::parse(Path::new("a.toml"), &text, &no_env)
        .unwrap_err()
        .to_string();
    assert!(errs.contains("unknown field `extra`"), "{errs}");
    let text = text.replace("extra = 1\n", "");
    let errs = AgentConfig::parse(Path::new("a.toml"), &text, &no_env)
        .unwrap_err()
        .to_string();
    for want in [
        "logs[0].paths[0]: \"var/log/*.log\" is not an absolute path",
        "logs[0].paths[1]: \"/var/log/[a.log\" is not a valid glob",
        "logs[0].multiline_start: not a valid regular expression",
        "logs[0].max_line_bytes: must be at least 256",
        "logs[1].paths: expected at least one path or glob",
    ] {
        assert!(errs.contains(want), "{want} not in {errs}");
    }
    let ok = AgentConfig::parse(
        Path::new("a.toml"),
        &format!("{head}[[logs]]\npaths = [\"/var/log/app/*.log\"]\n"),
        &no_env,
    )
    .unwrap();
    let l = &ok.logs[0];
    assert_eq!(l.read_from, crate::logs::ReadFrom::End);
    assert_eq!(l.max_line_bytes, 32 * 1024);
    assert_eq!(l.multiline_timeout, std::time::Duration::from_secs(1));
}

#[test]
fn the_status_page_section_and_check_groups_are_read_and_checked() {
    let c = collector(
        "[status_page]\ntitle = \"Acme\"\npublic_admin = true\n\n\
         [[checks]]\nname = \"a\"\ntype = \"http\"\nurl = \"http://x/\"\ngroup = \"API\"\n",
    )
    .unwrap();
    assert_eq!(c.status_page.title, "Acme");
    assert!(c.status_page.public_admin);
    assert_eq!(c.checks[0].group.as_deref(), Some("API"));
    assert_eq!(collector("").unwrap().status_page.title, "Status");
    let err = collector(
        "[status_page]\ntitle = \"\"\n\n\
         [[checks]]\nname = \"a\"\ntype = \"http\"\nurl = \"http://x/\"\ngroup = \" \"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("status_page.title"), "{err}");
    assert!(err.contains("checks[0].group"), "{err}");
    let err = collector("[status_page]\nbogus = 1\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("status_page.bogus"), "{err}");
}

#[test]
fn a_maintenance_window_open_now_or_the_next_one() {
    use chrono::TimeZone;
    let at = |d: u32, h: u32| chrono::Utc.with_ymd_and_hms(2026, 11, d, h, 0, 0).unwrap();
    let weekly = crate::notify::MaintenanceConfig {
        name: "w".into(),
        matchers: Default::default(),
        starts: None,
        ends: None,
        // Sundays 02:00 for two hours; 2026-11-29 is a Sunday.
        schedule: Some("0 2 * * SUN".into()),
        duration: Some(Duration::from_secs(7200)),
    };
    assert_eq!(
        weekly.current_or_next(at(29, 3)),
        Some((at(29, 2), at(29, 4)))
    );
    assert_eq!(
        weekly.current_or_next(at(26, 12)),
        Some((at(29, 2), at(29, 4)))
    );
    let once = crate::notify::MaintenanceConfig {
        schedule: None,
        duration: None,
        starts: Some(at(20, 0)),
        ends: Some(at(21, 0)),
        ..weekly
    };
    assert_eq!(
        once.current_or_next(at(20, 12)),
        Some((at(20, 0), at(21, 0)))
    );
    assert_eq!(once.current_or_next(at(22, 0)), None);
}

#[test]
fn steady_wait_defaults_to_ten_seconds_and_a_bad_one_names_its_key() {
    let base =
        "name = \"web-1\"\ncollector = \"http://a:7700\"\ntoken = \"tok-0123456789abcdef0123\"\n";
    let c = AgentConfig::parse(Path::new("a.toml"), base, &no_env).unwrap();
    assert_eq!(c.shipping.steady_wait, std::time::Duration::from_secs(10));
    let set = format!("{base}[shipping]\nsteady_wait = \"30s\"\n");
    let c = AgentConfig::parse(Path::new("a.toml"), &set, &no_env).unwrap();
    assert_eq!(c.shipping.steady_wait, std::time::Duration::from_secs(30));
    let bad = format!("{base}[shipping]\nsteady_wait = \"soon\"\n");
    let errs = AgentConfig::parse(Path::new("a.toml"), &bad, &no_env)
        .unwrap_err()
        .to_string();
    assert!(
        errs.contains("a.toml:5:15: shipping.steady_wait: invalid duration \"soon\""),
        "{errs}"
    );
}

#[test]
fn the_server_limits_default_and_refuse_zero_or_absurd_values() {
    let s = collector("").unwrap().server;
    assert_eq!(s.max_request_body_bytes, 65536);
    assert_eq!(s.header_timeout, Duration::from_secs(10));
    assert_eq!(s.idle_timeout, Duration::from_secs(60));
    assert_eq!(s.body_timeout, Duration::from_secs(60));
    assert_eq!(s.request_timeout, Duration::from_secs(30));
    assert_eq!(s.max_open_connections, 4096);
    assert_eq!(s.max_tail_subscribers, 64);
    let s = collector(
        "[server]\nheader_timeout = \"3s\"\nbody_timeout = \"3s\"\nmax_open_connections = 3000\n",
    )
    .unwrap()
    .server;
    assert_eq!(s.header_timeout, Duration::from_secs(3));
    assert_eq!(s.max_open_connections, 3000);

    let errs = collector(
        "[server]\nmax_request_body_bytes = 0\nheader_timeout = \"0s\"\nidle_timeout = \"2h\"\n\
         body_timeout = \"10ms\"\nrequest_timeout = \"1000d\"\nmax_open_connections = 0\n\
         max_tail_subscribers = 1000000000\n",
    )
    .unwrap_err()
    .to_string();
    for want in [
        "server.max_request_body_bytes: must be between 1024 and 1073741824",
        "server.header_timeout: must be between 1s and 10m",
        "server.idle_timeout: must be between 1s and 1h",
        "server.body_timeout: must be between 1s and 1h",
        "server.request_timeout: must be between 1s and 1h",
        "server.max_open_connections: must be between 1 and 1000000",
        "server.max_tail_subscribers: must be between 1 and 100000",
    ] {
        assert!(errs.contains(want), "{want} not in {errs}");
    }
    let errs = collector("[server]\nheader_timeout = \"30s\"\nidle_timeout = \"20s\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        errs.contains("server.idle_timeout: must be at least header_timeout"),
        "{errs}"
    );
}

/// Issue #28: each bound on what an agent may send refuses zero and absurd values, by key.
#[test]
fn ingest_limits_refuse_zero_and_absurd_values() {
    let c = collector("").unwrap();
    assert_eq!(c.server.max_records_per_batch, 20_000);
    assert_eq!(c.server.max_log_line_bytes, 1 << 20);
    let text = r#"[server]
max_records_per_batch = 0
max_labels_per_record = 0
max_label_bytes = 1
max_string_bytes = 2000000
max_log_line_bytes = 100000000
max_new_series_per_minute = 0
max_check_names = 0
[storage]
statement_timeout = "0s"
"#;
    let errs = collector(text).unwrap_err().0;
    let all: String = errs.iter().map(|e| format!("{e}\n")).collect();
    for expected in [
        "server.max_records_per_batch: must be between 1 and 1000000",
        "server.max_labels_per_record: must be between 1 and 10000",
        "server.max_label_bytes: must be between 16 and 65536",
        "server.max_string_bytes: must be between 64 and 1048576",
        "server.max_log_line_bytes: must be between 256 and 67108864",
        "server.max_new_series_per_minute: must be between 1 and 10000000",
        "server.max_check_names: must be between 1 and 1000000",
        "storage.statement_timeout: must be 1s to 1h",
    ] {
        assert!(all.contains(expected), "{expected} not in:\n{all}");
    }
}

#[test]
fn enrolment_is_off_without_its_section_and_checked_with_it() {
    assert_eq!(collector("").unwrap().enrollment, None);
    let env = |k: &str| (k == "ENROLL").then(|| "fleet-enrolment-token-0123456789".to_string());
    let c = CollectorConfig::parse(
        Path::new("c.toml"),
        "[enrollment]\ntoken = \"${ENROLL}\"\nallowed_names = \"web-*\"\nlifecycle = \"ephemeral\"\n\
         rotation_grace = \"5s\"\n[enrollment.labels]\nrole = \"web\"\n",
        &env,
    )
    .unwrap();
    let e = c.enrollment.clone().unwrap();
    assert_eq!(
        e.token.as_ref().unwrap().expose(),
        "fleet-enrolment-token-0123456789"
    );
    assert_eq!(e.lifecycle, crate::collector::Lifecycle::Ephemeral);
    assert_eq!(e.rotation_grace, std::time::Duration::from_secs(5));
    assert_eq!(e.reenroll_window, std::time::Duration::from_secs(3600));
    assert_eq!(e.labels.get("role").map(String::as_str), Some("web"));
    assert!(!format!("{c:?}").contains("fleet-enrolment-token"));
    let errs = collector(
        "[[agents]]\nname = \"a\"\ntoken = \"0123456789abcdef01234567\"\n\
         [enrollment]\ntoken = \"0123456789abcdef01234567\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        errs.contains("enrollment.token: the same token as agents[0]"),
        "{errs}"
    );
    let errs = collector("[enrollment]\ntoken_sha256 = \"00\"\nlifecycle = \"sometimes\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        errs.contains("enrollment.lifecycle") && errs.contains("sometimes"),
        "{errs}"
    );
    let errs = collector("[enrollment]\nallowed_names = \"\"\nrotation_grace = \"0s\"\n")
        .unwrap_err()
        .to_string();
    for key in [
        "enrollment.token: required",
        "enrollment.allowed_names",
        "enrollment.rotation_grace: must be 1s to 30d",
    ] {
        assert!(errs.contains(key), "{key}: {errs}");
    }
    let errs = collector("[enrollment]\ntoken = \"short\"\n")
        .unwrap_err()
        .to_string();
    assert!(errs.contains("enrollment.token: too short"), "{errs}");
}

#[test]
fn an_agent_needs_a_token_or_an_enrolment_token() {
    let parse = |text: &str| AgentConfig::parse(Path::new("a.toml"), text, &no_env);
    let c = parse("name = \"w\"\ncollector = \"http://x:1\"\nenroll_token = \"fleet-enrolment-token-0123456789\"\n")
        .unwrap();
    assert!(c.identity.token.is_empty());
    assert!(!format!("{c:?}").contains("fleet-enrolment-token"));
    let errs = parse("name = \"w\"\ncollector = \"http://x:1\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        errs.contains("token: required: token (or enroll_token)"),
        "{errs}"
    );
    let errs = parse("name = \"w\"\ncollector = \"http://x:1\"\nenroll_token = \"short\"\n")
        .unwrap_err()
        .to_string();
    assert!(errs.contains("enroll_token: too short"), "{errs}");
}

#[test]
fn an_agent_asks_for_its_lifecycle_only_when_it_enrols() {
    let parse = |text: &str| AgentConfig::parse(Path::new("a.toml"), text, &no_env);
    let c = parse(
        "name = \"w\"\ncollector = \"http://x:1\"\nenroll_token = \"fleet-enrolment-token-0123456789\"\nlifecycle = \"ephemeral\"\n",
    )
    .unwrap();
    assert_eq!(
        c.identity.lifecycle,
        Some(crate::collector::Lifecycle::Ephemeral)
    );
    let errs = parse(
        "name = \"w\"\ncollector = \"http://x:1\"\ntoken = \"agent-own-token-0123456789ab\"\nlifecycle = \"ephemeral\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        errs.contains("lifecycle: is asked for at enrolment"),
        "{errs}"
    );
    let errs = parse(
        "name = \"w\"\ncollector = \"http://x:1\"\nenroll_token = \"fleet-enrolment-token-0123456789\"\nlifecycle = \"forever\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(errs.contains("lifecycle"), "{errs}");
}

#[test]
fn a_pagerduty_channel_takes_its_routing_key_from_the_environment() {
    let text = r#"
[[channels]]
name = "pd"
type = "pagerduty"
routing_key = "${PD_ROUTING_KEY}"

[[channels]]
name = "pd-eu"
type = "pagerduty"
routing_key = "${PD_ROUTING_KEY}"
url = "https://events.eu.pagerduty.com/v2/enqueue"
"#;
    let env =
        |k: &str| (k == "PD_ROUTING_KEY").then(|| "R0123456789abcdef0123456789abcde".to_string());
    let c = CollectorConfig::parse(Path::new("c.toml"), text, &env).unwrap();
    assert_eq!(c.channels[0].kind, crate::ChannelType::Pagerduty);
    assert_eq!(
        c.channels[0].routing_key.as_deref(),
        Some("R0123456789abcdef0123456789abcde")
    );
    assert_eq!(c.channels[0].url, None);
    assert!(!format!("{c:?}").contains("R0123456789abcdef"));
    // Unset, empty, malformed, or a key of another type: each said where it is.
    let err = CollectorConfig::parse(Path::new("c.toml"), text, &no_env).unwrap_err();
    assert!(err.to_string().contains("PD_ROUTING_KEY"), "{err}");
    let bad = r#"
[[channels]]
name = "a"
type = "pagerduty"

[[channels]]
name = "b"
type = "pagerduty"
routing_key = ""

[[channels]]
name = "c"
type = "pagerduty"
routing_key = "not a key; SECRETISH"
url = "ftp://x"

[[channels]]
name = "d"
type = "pagerduty"
routing_key = "abc"
webhook_url = "https://x/"
"#;
    let all = collector(bad).unwrap_err().to_string();
    for want in [
        "channels[0].routing_key: required",
        "channels[1].routing_key: is empty",
        "channels[2].routing_key: expected an integration key",
        "channels[2].url: expected an http:// or https:// URL",
        "channels[3].webhook_url: not a setting of pagerduty channels",
    ] {
        assert!(all.contains(want), "{want:?} not in {all}");
    }
    assert!(!all.contains("SECRETISH"), "{all}");
}

#[test]
fn a_telegram_channel_takes_its_token_from_the_environment_and_a_chat_id_as_number_or_name() {
    let text = r#"
[[channels]]
name = "tg"
type = "telegram"
bot_token = "${TG_BOT_TOKEN}"
chat_id = -1001234567890

[[channels]]
name = "tg-channel"
type = "telegram"
bot_token = "${TG_BOT_TOKEN}"
chat_id = "@ops_alerts"
url = "http://127.0.0.1:8081"
"#;
    let env = |k: &str| {
        (k == "TG_BOT_TOKEN").then(|| "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0".to_string())
    };
    let c = CollectorConfig::parse(Path::new("c.toml"), text, &env).unwrap();
    assert_eq!(c.channels[0].kind, crate::ChannelType::Telegram);
    assert_eq!(c.channels[0].chat_id.as_deref(), Some("-1001234567890"));
    assert_eq!(c.channels[1].chat_id.as_deref(), Some("@ops_alerts"));
    assert!(!format!("{c:?}").contains("AAHdqTcv"));
    let err = CollectorConfig::parse(Path::new("c.toml"), text, &no_env).unwrap_err();
    assert!(err.to_string().contains("TG_BOT_TOKEN"), "{err}");
    let bad = r#"
[[channels]]
name = "a"
type = "telegram"

[[channels]]
name = "b"
type = "telegram"
bot_token = ""
chat_id = "ops"

[[channels]]
name = "c"
type = "telegram"
bot_token = "123:SECRETISH/../x"
chat_id = 1
url = "ftp://x"

[[channels]]
name = "d"
type = "telegram"
bot_token = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0"
chat_id = 1
routing_key = "x"
"#;
    let all = collector(bad).unwrap_err().to_string();
    for want in [
        "channels[0].bot_token: required",
        "channels[0].chat_id: required",
        "channels[1].bot_token: is empty",
        "channels[1].chat_id: \"ops\" is neither a numeric chat id nor a channel's @username",
        "channels[2].bot_token: expected a bot token",
        "channels[2].url: expected an http:// or https:// URL",
        "channels[3].routing_key: not a setting of telegram channels",
    ] {
        assert!(all.contains(want), "{want:?} not in {all}");
    }
    assert!(!all.contains("SECRETISH"), "{all}");
}

#[test]
fn an_ntfy_channel_is_a_topic_url_and_an_optional_token() {
    let text = r#"
[[channels]]
name = "phone"
type = "ntfy"
url = "https://ntfy.example.com/lookout-ops"
token = "${NTFY_TOKEN}"

[[channels]]
name = "public"
type = "ntfy"
url = "https://ntfy.sh/lookout-7f3a"
"#;
    let env = |k: &str| (k == "NTFY_TOKEN").then(|| "tk_AgQdq7mVBoFD37zQVN29RhuMzNIz2".to_string());
    let c = CollectorConfig::parse(Path::new("c.toml"), text, &env).unwrap();
    assert_eq!(c.channels[0].kind, crate::ChannelType::Ntfy);
    assert_eq!(c.channels[1].token, None);
    assert!(!format!("{c:?}").contains("tk_AgQdq"));
    let bad = r#"
[[channels]]
name = "a"
type = "ntfy"

[[channels]]
name = "b"
type = "ntfy"
url = "https://ntfy.sh/"
token = ""

[[channels]]
name = "c"
type = "ntfy"
url = "https://ntfy.sh/a.b"
token = "tk_SECRETISH x"

[[channels]]
name = "d"
type = "ntfy"
url = "ftp://ntfy.sh/t"
bot_token = "x"
"#;
    let all = collector(bad).unwrap_err().to_string();
    for want in [
        "channels[0].url: required: the topic's URL",
        "channels[1].url: expected the topic's URL",
        "channels[1].token: is empty",
        "channels[2].url: expected the topic's URL",
        "channels[2].token: must not hold spaces",
        "channels[3].url: expected an http:// or https:// URL",
        "channels[3].bot_token: not a setting of ntfy channels",
    ] {
        assert!(all.contains(want), "{want:?} not in {all}");
    }
    assert!(!all.contains("SECRETISH"), "{all}");
}

#[test]
fn a_pushover_channel_takes_its_keys_from_the_environment_and_bounds_its_emergencies() {
    let text = r#"
[[channels]]
name = "po"
type = "pushover"
token = "${PUSHOVER_APP}"
user = "${PUSHOVER_USER}"
retry = "30s"
expire = "3h"
"#;
    let env = |k: &str| match k {
        "PUSHOVER_APP" => Some("azGDORePK8gMaC0QOYAMyEEuzJnyUi".to_string()),
        "PUSHOVER_USER" => Some("uQiRzpo4DXghDmr9QzzfQu27cmVRsG".to_string()),
        _ => None,
    };
    let c = CollectorConfig::parse(Path::new("c.toml"), text, &env).unwrap();
    assert_eq!(c.channels[0].kind, crate::ChannelType::Pushover);
    assert_eq!(c.channels[0].expire, Some(Duration::from_secs(10_800)));
    let debug = format!("{c:?}");
    assert!(
        !debug.contains("azGDORe") && !debug.contains("uQiRzpo"),
        "{debug}"
    );
    let bad = r#"
[[channels]]
name = "a"
type = "pushover"

[[channels]]
name = "b"
type = "pushover"
token = ""
user = "SECRETISH-not-a-key"
retry = "10s"
expire = "4h"

[[channels]]
name = "c"
type = "pushover"
token = "azGDORePK8gMaC0QOYAMyEEuzJnyUi"
user = "uQiRzpo4DXghDmr9QzzfQu27cmVRsG"
retry = "5m"
expire = "1m"
chat_id = 1
"#;
    let all = collector(bad).unwrap_err().to_string();
    for want in [
        "channels[0].token: required: the application's API token",
        "channels[0].user: required: a user or group key",
        "channels[1].token: is empty",
        "channels[1].user: expected a user or group key: 30 letters and digits",
        "channels[1].retry: must be at least 30s",
        "channels[1].expire: must be at most 3h",
        "channels[2].expire: must be at least retry",
        "channels[2].chat_id: not a setting of pushover channels",
    ] {
        assert!(all.contains(want), "{want:?} not in {all}");
    }
    assert!(!all.contains("SECRETISH"), "{all}");
}

#[test]
fn a_matrix_channel_takes_a_room_id_and_refuses_an_alias() {
    let text = r#"
[[channels]]
name = "mx"
type = "matrix"
homeserver = "https://matrix.example.org"
room = "!OGEhHVWSdvArJzumhm:example.org"
access_token = "${MATRIX_TOKEN}"
"#;
    let env = |k: &str| (k == "MATRIX_TOKEN").then(|| "syt_SECRETISH_token".to_string());
    let c = CollectorConfig::parse(Path::new("c.toml"), text, &env).unwrap();
    assert_eq!(c.channels[0].kind, crate::ChannelType::Matrix);
    assert!(!format!("{c:?}").contains("syt_SECRETISH"));
    let bad = r##"
[[channels]]
name = "a"
type = "matrix"

[[channels]]
name = "b"
type = "matrix"
homeserver = "matrix.example.org"
room = "#ops:example.org"
access_token = ""

[[channels]]
name = "c"
type = "matrix"
homeserver = "https://matrix.example.org"
room = "ops"
access_token = "syt_SECRETISH token"
url = "https://x/"
"##;
    let all = collector(bad).unwrap_err().to_string();
    for want in [
        "channels[0].homeserver: required",
        "channels[0].room: required: the room's id",
        "channels[0].access_token: required",
        "channels[1].homeserver: not a valid URL",
        "channels[1].room: \"#ops:example.org\" is an alias",
        "channels[1].access_token: is empty",
        "channels[2].room: \"ops\" is not a room id",
        "channels[2].access_token: must not hold spaces",
        "channels[2].url: not a setting of matrix channels",
    ] {
        assert!(all.contains(want), "{want:?} not in {all}");
    }
    assert!(!all.contains("SECRETISH"), "{all}");
}

#[test]
fn a_discord_channel_is_a_webhook_url_kept_secret() {
    let text = r#"
[[channels]]
name = "chat"
type = "discord"
url = "${DISCORD_WEBHOOK_URL}"
"#;
    let env = |k: &str| {
        (k == "DISCORD_WEBHOOK_URL")
            .then(|| "https://discord.com/api/webhooks/1192837465/SECRETISHtok3n".to_string())
    };
    let c = CollectorConfig::parse(Path::new("c.toml"), text, &env).unwrap();
    assert_eq!(c.channels[0].kind, crate::ChannelType::Discord);
    let shown = format!("{c:?}");
    assert!(
        !shown.contains("SECRETISH") && !shown.contains("1192837465"),
        "{shown}"
    );
    assert!(shown.contains("https://discord.com/***"), "{shown}");
    let bad = r#"
[[channels]]
name = "a"
type = "discord"

[[channels]]
name = "b"
type = "discord"
url = ""

[[channels]]
name = "c"
type = "discord"
url = "ftp://discord.com/api/webhooks/1/SECRETISH"

[[channels]]
name = "d"
type = "discord"
url = "discord.com/api/webhooks/1/SECRETISH"
token = "x"
"#;
    let all = collector(bad).unwrap_err().to_string();
    for want in [
        "channels[0].url: required: the incoming webhook's URL",
        "channels[1].url: is empty",
        "channels[2].url: expected an http:// or https:// URL",
        "channels[3].url: not a valid URL",
        "channels[3].token: not a setting of discord channels",
    ] {
        assert!(all.contains(want), "{want:?} not in {all}");
    }
    assert!(!all.contains("SECRETISH"), "{all}");
}

#[test]
fn a_teams_channel_is_a_workflows_url_kept_secret_in_full() {
    let sig = "Xq7SECRETsig_4nB2vKpL9mQw3rTz8YcH1uJd6fGe0aS";
    let url = format!(
        "https://prod-12.westeurope.logic.azure.com:443/workflows/0b5e3c1d/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={sig}"
    );
    let text = r#"
[[channels]]
name = "teams"
type = "teams"
url = "${TEAMS_WEBHOOK_URL}"
timeout = "5s"
"#;
    let env = |k: &str| (k == "TEAMS_WEBHOOK_URL").then(|| url.clone());
    let c = CollectorConfig::parse(Path::new("c.toml"), text, &env).unwrap();
    assert_eq!(c.channels[0].kind, crate::ChannelType::Teams);
    assert_eq!(c.channels[0].url.as_deref(), Some(url.as_str()));
    let shown = format!("{c:?}");
    assert!(
        !shown.contains(sig) && !shown.contains("0b5e3c1d"),
        "{shown}"
    );
    assert!(
        shown.contains("https://prod-12.westeurope.logic.azure.com/***"),
        "{shown}"
    );
    let bad = r#"
[[channels]]
name = "a"
type = "teams"

[[channels]]
name = "b"
type = "teams"
url = ""

[[channels]]
name = "c"
type = "teams"
url = "ftp://example.com/x?sig=SECRETISH"

[[channels]]
name = "d"
type = "teams"
url = "https://contoso.webhook.office.com/webhookb2/SECRETISH/IncomingWebhook/x/y"
token = "x"

[[channels]]
name = "e"
type = "teams"
url = "not a url SECRETISH"
"#;
    let all = collector(bad).unwrap_err().to_string();
    for want in [
        "channels[0].url: required: the incoming webhook's URL",
        "channels[1].url: is empty",
        "channels[2].url: expected an http:// or https:// URL",
        "channels[3].url: an Office 365 connector's webhook, which Microsoft retired",
        "channels[3].token: not a setting of teams channels",
        "channels[4].url: not a valid URL",
    ] {
        assert!(all.contains(want), "{want:?} not in {all}");
    }
    assert!(!all.contains("SECRETISH"), "{all}");
}

#[test]
fn mattermost_and_rocketchat_channels_are_webhook_urls_kept_secret() {
    let text = r#"
[[channels]]
name = "mm"
type = "mattermost"
url = "https://mm.example.com/hooks/SECRETISHxq7nh3gd5fbm8c4y"

[[channels]]
name = "rc"
type = "rocketchat"
url = "https://rc.example.com/hooks/6a1b2c3d/SECRETISHtok3n"
"#;
    let c = collector(text).unwrap();
    assert_eq!(c.channels[0].kind, crate::ChannelType::Mattermost);
    assert_eq!(c.channels[1].kind, crate::ChannelType::Rocketchat);
    let shown = format!("{c:?}");
    assert!(!shown.contains("SECRETISH"), "{shown}");
    assert!(
        shown.contains("https://mm.example.com/***")
            && shown.contains("https://rc.example.com/***"),
        "{shown}"
    );
    let bad = r#"
[[channels]]
name = "a"
type = "mattermost"

[[channels]]
name = "b"
type = "rocketchat"
url = ""

[[channels]]
name = "c"
type = "mattermost"
url = "ftp://mm.example.com/hooks/SECRETISH"
webhook_url = "https://mm.example.com/hooks/SECRETISH"

[[channels]]
name = "d"
type = "rocketchat"
url = "rc.example.com/hooks/1/SECRETISH"
"#;
    let all = collector(bad).unwrap_err().to_string();
    for want in [
        "channels[0].url: required: the incoming webhook's URL",
        "channels[1].url: is empty",
        "channels[2].url: expected an http:// or https:// URL",
        "channels[2].webhook_url: not a setting of mattermost channels",
        "channels[3].url: not a valid URL",
    ] {
        assert!(all.contains(want), "{want:?} not in {all}");
    }
    assert!(!all.contains("SECRETISH"), "{all}");
}

#[test]
fn a_google_chat_channel_is_a_webhook_url_kept_secret_in_full() {
    let url = "https://chat.googleapis.com/v1/spaces/AAAAx7Yb2cQ/messages?key=AIzaSyDdI0hCZtE6vySjMm-WEfRq3CPzqKqqsHI&token=SECRETISHtok3n%3D";
    let text = r#"
[[channels]]
name = "chat"
type = "google_chat"
url = "${GCHAT_WEBHOOK_URL}"
"#;
    let env = |k: &str| (k == "GCHAT_WEBHOOK_URL").then(|| url.to_string());
    let c = CollectorConfig::parse(Path::new("c.toml"), text, &env).unwrap();
    assert_eq!(c.channels[0].kind, crate::ChannelType::GoogleChat);
    let shown = format!("{c:?}");
    assert!(
        !shown.contains("SECRETISH") && !shown.contains("AIzaSy") && !shown.contains("AAAAx7"),
        "{shown}"
    );
    assert!(shown.contains("https://chat.googleapis.com/***"), "{shown}");
    // A proxy or a test server may have any path.
    let proxied = text.replace("${GCHAT_WEBHOOK_URL}", "http://127.0.0.1:9/chat");
    assert!(collector(&proxied).is_ok());
    let bad = r#"
[[channels]]
name = "a"
type = "google_chat"

[[channels]]
name = "b"
type = "google_chat"
url = "https://chat.googleapis.com/v1/spaces/AAAA/messages?key=k"

[[channels]]
name = "c"
type = "google_chat"
url = "https://chat.googleapis.com/v1/spaces/AAAA?key=k&token=SECRETISH"

[[channels]]
name = "d"
type = "google_chat"
url = "ftp://chat.googleapis.com/x?token=SECRETISH"
room = "x"
"#;
    let all = collector(bad).unwrap_err().to_string();
    for want in [
        "channels[0].url: required",
        "channels[1].url: expected the webhook's URL as Google Chat gives it",
        "channels[2].url: expected the webhook's URL as Google Chat gives it",
        "channels[3].url: expected an http:// or https:// URL",
        "channels[3].room: not a setting of google_chat channels",
    ] {
        assert!(all.contains(want), "{want:?} not in {all}");
    }
    assert!(!all.contains("SECRETISH"), "{all}");
}
