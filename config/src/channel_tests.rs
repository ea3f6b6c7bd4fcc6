//! `[[channels]]` of the alert-API and chat kinds: their keys, secrets from the environment, and
//! each mistake said at its key without repeating a secret.

use std::path::Path;

use super::*;

fn collector(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<CollectorConfig, String> {
    CollectorConfig::parse(Path::new("c.toml"), text, env).map_err(|e| e.to_string())
}

fn no_env(_: &str) -> Option<String> {
    None
}

/// Every one of `want` is in the errors of `text`, and `secret` is not.
fn refused(text: &str, want: &[&str], secret: &str) {
    let all = collector(text, &no_env).unwrap_err();
    for w in want {
        assert!(all.contains(w), "{w:?} not in {all}");
    }
    assert!(!all.contains(secret), "{all}");
}

#[test]
fn an_opsgenie_channel_takes_its_key_from_the_environment_and_a_region() {
    let text = r#"
[[channels]]
name = "og"
type = "opsgenie"
api_key = "${OPSGENIE_API_KEY}"
region = "eu"
responders = ["team:ops", "user:alice@example.com", "escalation:night", "schedule:weekend"]

[[channels]]
name = "og-proxy"
type = "opsgenie"
api_key = "${OPSGENIE_API_KEY}"
url = "https://proxy.example/opsgenie"
"#;
    let key = "eb243592-faa2-4ba2-a551-1afdf565c889";
    let env = |k: &str| (k == "OPSGENIE_API_KEY").then(|| key.to_string());
    let c = collector(text, &env).unwrap();
    assert_eq!(c.channels[0].kind, ChannelType::Opsgenie);
    assert_eq!(c.channels[0].api_key.as_deref(), Some(key));
    assert_eq!(c.channels[0].region.as_deref(), Some("eu"));
    assert_eq!(c.channels[0].responders.len(), 4);
    assert_eq!(c.channels[1].region, None);
    assert!(!format!("{c:?}").contains("eb243592"));
    let err = collector(text, &no_env).unwrap_err();
    assert!(err.contains("OPSGENIE_API_KEY"), "{err}");
    refused(
        r#"
[[channels]]
name = "a"
type = "opsgenie"

[[channels]]
name = "b"
type = "opsgenie"
api_key = ""
region = "asia"

[[channels]]
name = "c"
type = "opsgenie"
api_key = "not a key; SECRETISH"
url = "ftp://x"
responders = ["ops", "team:", "group:x"]

[[channels]]
name = "d"
type = "opsgenie"
api_key = "abc"
routing_key = "abc"
"#,
        &[
            "channels[0].api_key: required",
            "channels[1].api_key: is empty",
            "channels[1].region: \"asia\": expected \"us\" or \"eu\"",
            "channels[2].api_key: expected an API integration's key",
            "channels[2].url: expected an http:// or https:// URL",
            "channels[2].responders: \"ops\": expected team:NAME",
            "channels[2].responders: \"team:\": expected",
            "channels[2].responders: \"group:x\": expected",
            "channels[3].routing_key: not a setting of opsgenie channels",
        ],
        "SECRETISH",
    );
}
