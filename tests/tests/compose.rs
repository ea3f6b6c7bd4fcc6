//! deploy/compose/ as a user brings it up: `cp .env.example .env`, a secret of their own in
//! place of each placeholder, then `podman-compose config` (the compose file as compose reads
//! it, every `${VAR}` filled from that env file) accepts it; and the collector's and the agent's
//! configurations, at the paths the file mounts them from, pass `validate` with exactly the
//! environment compose gives their containers. No container starts here: the images are
//! built and run by the container image's own test (docs/deployment.md).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use lookout_tests::bin;
use lookout_tests::deploy::{deploy_dir, random_hex, said, venv_bin, yaml_to_json};
use serde_json::Value;

/// An env file holding `env`, in a folder of its own.
fn env_file(env: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), env).unwrap();
    dir
}

/// The compose project's folder, deploy/compose/.
fn project() -> std::path::PathBuf {
    deploy_dir().join("compose")
}

/// `podman-compose config` of deploy/compose/compose.yaml with the `.env` in `env` (given as
/// `--env-file`, so a real deploy/compose/.env is not read): the file as compose reads it, or
/// what it said.
fn compose_config(env: &Path) -> Result<Value, String> {
    let out = Command::new(venv_bin("podman-compose"))
        .arg("-f")
        .arg(project().join("compose.yaml"))
        .arg("--env-file")
        .arg(env.join(".env"))
        .arg("config")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(yaml_to_json(&stdout))
}

/// .env.example with each placeholder (`change-me...`) replaced by a secret of 32 hex digits.
fn env_with_secrets() -> String {
    let example = std::fs::read_to_string(deploy_dir().join("compose/.env.example")).unwrap();
    example
        .lines()
        .map(|line| match line.split_once('=') {
            Some((key, value)) if !line.starts_with('#') && value.contains("change-me") => {
                format!("{key}={}", random_hex(32))
            }
            _ => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A service's environment as compose gives it.
fn environment(service: &Value) -> BTreeMap<String, String> {
    match &service["environment"] {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect(),
        Value::Array(list) => list
            .iter()
            .filter_map(|kv| kv.as_str()?.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        other => panic!("environment: {other}"),
    }
}

/// The host file that `service` mounts at `target`.
fn mounted_from(dir: &Path, service: &Value, target: &str) -> std::path::PathBuf {
    let volumes = service["volumes"].as_array().expect("volumes");
    let source = volumes
        .iter()
        .find_map(|v| match v {
            Value::String(s) => {
                let mut parts = s.split(':');
                let (source, at) = (parts.next()?, parts.next()?);
                (at == target).then(|| source.to_string())
            }
            Value::Object(m) => (m.get("target")?.as_str()? == target)
                .then(|| m.get("source")?.as_str().map(str::to_string))
                .flatten(),
            _ => None,
        })
        .unwrap_or_else(|| panic!("nothing mounted at {target}: {volumes:?}"));
    let path = dir.join(source);
    assert!(path.is_file(), "{} is not a file", path.display());
    path
}

/// `BINARY validate` on what `service` mounts at its config path (the variable `config_var`
/// of its environment), with only its environment: exit code and output.
fn validate(dir: &Path, service: &Value, binary: &str, config_var: &str) -> (bool, String) {
    let env = environment(service);
    let target = env
        .get(config_var)
        .unwrap_or_else(|| panic!("{config_var} not in {env:?}"));
    let config = mounted_from(dir, service, target);
    let out = Command::new(bin(binary))
        .env_clear()
        .envs(&env)
        .arg("validate")
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let said = said(&out);
    (out.status.success(), said)
}

#[test]
fn compose_accepts_the_stack_and_its_configs_validate_with_its_environment() {
    let env = env_file(&env_with_secrets());
    let dir = project();
    let config = compose_config(env.path()).unwrap_or_else(|e| panic!("{e}"));
    let services = config["services"].as_object().expect("services");
    for name in [
        "collector",
        "lookout-db",
        "agent",
        "app",
        "app-db",
        "redis",
        "nginx",
    ] {
        assert!(services.contains_key(name), "no service {name}");
    }
    let collector = &services["collector"];
    let ports: Vec<String> = collector["ports"]
        .as_array()
        .expect("the collector's port is published")
        .iter()
        .map(|p| p.as_str().map_or_else(|| p.to_string(), str::to_string))
        .collect();
    assert_eq!(ports, ["7700:7700"]);
    // Both images are built from the repository's Containerfile, at the stage of their name.
    let root = deploy_dir().join("..").canonicalize().unwrap();
    for target in ["collector", "agent"] {
        let build = &services[target]["build"];
        let context = Path::new(build["context"].as_str().expect("a build context"));
        assert_eq!(context.canonicalize().unwrap(), root, "{target}: {build}");
        let file = context.join(build["dockerfile"].as_str().expect("a dockerfile"));
        let containerfile = std::fs::read_to_string(&file).unwrap();
        assert_eq!(build["target"], target, "{target}: {build}");
        assert!(
            containerfile
                .lines()
                .any(|l| l.starts_with("FROM ") && l.ends_with(&format!(" AS {target}"))),
            "no stage {target} in {}",
            file.display()
        );
    }

    // The secrets reached the containers from .env.
    let env = std::fs::read_to_string(env.path().join(".env")).unwrap();
    let admin = env
        .lines()
        .find_map(|l| l.strip_prefix("LOOKOUT_ADMIN_TOKEN="))
        .unwrap();
    assert_eq!(environment(collector)["LOOKOUT_ADMIN_TOKEN"], admin);

    let (ok, said) = validate(&dir, collector, "lookout-collector", "LOOKOUT_CONFIG");
    assert!(ok, "{said}");
    let (ok, said) = validate(
        &dir,
        &services["agent"],
        "lookout-agent",
        "LOOKOUT_AGENT_CONFIG",
    );
    assert!(ok, "{said}");
    assert!(said.contains("4 local checks"), "{said}");

    // The agent's spool and credential outlive its container: data_dir is a volume's target.
    let agent_toml_text = std::fs::read_to_string(dir.join("agent.toml")).unwrap();
    let data_dir = agent_toml_text
        .lines()
        .find_map(|l| l.strip_prefix("data_dir = "))
        .map(|v| v.trim_matches('"'))
        .expect("agent.toml sets data_dir");
    let volumes = services["agent"]["volumes"].as_array().unwrap();
    assert!(
        volumes.iter().any(|v| v
            .as_str()
            .is_some_and(|v| v.split(':').nth(1) == Some(data_dir))),
        "no volume at {data_dir}: {volumes:?}"
    );

    // The agent checks the app, nginx, PostgreSQL and Redis, by the names compose gives them.
    let agent_toml = std::fs::read_to_string(mounted_from(
        &dir,
        &services["agent"],
        "/etc/lookout/agent.toml",
    ))
    .unwrap();
    for (kind, target) in [
        ("http", "http://app:8080/"),
        ("http", "http://nginx:80/"),
        ("postgres", "@app-db:5432/"),
        ("redis", "@redis:6379"),
    ] {
        assert!(agent_toml.contains(&format!("type = \"{kind}\"")), "{kind}");
        assert!(agent_toml.contains(target), "no check of {target}");
    }
}

/// Left as they are, the example's placeholders are refused (by the collector, which knows
/// them), and a missing secret stops compose with the variable's name.
#[test]
fn placeholders_and_missing_secrets_are_refused() {
    let example = std::fs::read_to_string(deploy_dir().join("compose/.env.example")).unwrap();
    let env = env_file(&example);
    let dir = project();
    let config = compose_config(env.path()).unwrap_or_else(|e| panic!("{e}"));
    let (ok, said) = validate(
        &dir,
        &config["services"]["collector"],
        "lookout-collector",
        "LOOKOUT_CONFIG",
    );
    assert!(!ok && said.contains("placeholder"), "{said}");

    let without: String = env_with_secrets()
        .lines()
        .filter(|l| !l.starts_with("REDIS_PASSWORD="))
        .collect::<Vec<_>>()
        .join("\n");
    let env = env_file(&without);
    let said = compose_config(env.path()).expect_err("compose refuses a missing secret");
    assert!(said.contains("REDIS_PASSWORD"), "{said}");
}

#[test]
fn git_ignores_the_real_env_file() {
    let ignore = std::fs::read_to_string(deploy_dir().join("compose/.gitignore")).unwrap();
    assert!(ignore.lines().any(|l| l.trim() == ".env"), "{ignore}");
}
