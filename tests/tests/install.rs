//! One command per server, end to end: a collector (the debug binary, with `[enrollment]`) on
//! loopback, and a copy of a Debian bookworm root (`LOOKOUT_DEBIAN_ROOT`, made by
//! scripts/lib/deploy.sh) in which the documented command runs under chroot, which shares the
//! host's loopback:
//!
//! `curl -fsSL http://127.0.0.1:PORT/install.sh | sh -s -- --enroll-token TOKEN --name web-1 --labels role=web,zone=a`
//!
//! - a collector without the binary, and a wrong token, stop it with a sentence and leave
//!   nothing installed (no file, no enrolment);
//! - then it installs: the files with their modes and owners, the unit byte for byte as
//!   deploy/lookout-agent.service, the token only in the 0600 environment file, the credential
//!   0600, and, with no systemd running, the dry run of the start;
//! - the agent started as the unit would start it (its `ExecStart`, with its
//!   `EnvironmentFile`) is up in the hosts API within 10 s of the command finishing (measured,
//!   printed; docs/deployment.md quotes it), and listed on the admin pages' `/admin/hosts`;
//! - run again against a collector serving a new binary, it upgrades in place: the binary is
//!   the new one, the configuration, credential and spool are as they were, and the agent
//!   ships again under the same name.
//!
//! With a private CA (`[server.tls]` and `[install] agent_ca`), the script carries the CA:
//! it is written to /etc/lookout/ca.pem, the agent's `ca` names it, and the agent, started as
//! the unit would, ships over TLS verified against it.
//!
//! The oracles: the files in the root (read by the test, not by the script), the unit file in
//! the repository, the agent binary in target/, the CA the test made, and the collector's hosts
//! API.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lookout_tests::deploy::{self, copy_root, debian_root};
use lookout_tests::{Daemon, READ_TOKEN, bin, eventually, get_json};

const ENROL: &str = "install-fleet-enrol-token-0123456789";
const ADMIN: &str = "install-admin-token-0123456789abcdef";
const WAIT: Duration = Duration::from_secs(30);
const UNIT: &str = include_str!("../../deploy/lookout-agent.service");

/// The collector's configuration; `install` is its `[install]` section's body, if any.
fn collector_config(dir: &Path, port: u16, install: Option<&str>) -> String {
    let mut c = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\nread_tokens = [\"{READ_TOKEN}\"]\n\
         admin_token = \"{ADMIN}\"\n[enrollment]\ntoken = \"{ENROL}\"\n",
        dir.join("data").display()
    );
    if let Some(body) = install {
        c.push_str(&format!("[install]\n{body}\n"));
    }
    c
}

/// Runs `command` with `/bin/sh -c` in the root, with a clean environment as a login shell has.
fn in_root(root: &Path, command: &str) -> std::process::Output {
    deploy::in_root(root, &["/bin/sh", "-c", command])
}

/// A path of the root, from its absolute path inside it.
fn at(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

/// Mode bits and owner of a file in the root.
fn mode_owner(root: &Path, path: &str) -> (u32, u32, u32) {
    let m = std::fs::metadata(at(root, path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    (m.permissions().mode() & 0o7777, m.uid(), m.gid())
}

/// Nothing of an install is in the root, and the collector has not enrolled `name`.
async fn nothing_installed(root: &Path, base: &str, name: &str) {
    for path in [
        "/usr/local/bin/lookout-agent",
        "/etc/lookout",
        "/etc/systemd/system/lookout-agent.service",
        "/var/lib/lookout-agent",
    ] {
        assert!(!at(root, path).exists(), "{path} was left behind");
    }
    let left: Vec<_> = std::fs::read_dir(at(root, "/tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left in /tmp: {left:?}");
    assert!(host(base, name).await.is_null(), "{name} was enrolled");
}

/// Agent `name` as `GET /api/v1/hosts` lists it, or `Null`.
async fn host(base: &str, name: &str) -> serde_json::Value {
    let j = get_json(&format!("{base}/api/v1/hosts")).await.unwrap();
    j["hosts"]
        .as_array()
        .and_then(|a| a.iter().find(|h| h["name"] == name).cloned())
        .unwrap_or(serde_json::Value::Null)
}

/// The admin pages' hosts list, as a person logged in with the admin token sees it.
async fn admin_hosts_page(base: &str) -> String {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = client
        .post(format!("{base}/login"))
        .header("origin", base)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={ADMIN}&next=%2Fadmin%2Fhosts"))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 303, "the admin login was refused");
    let cookie = login.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_string();
    let page = client
        .get(format!("{base}/admin/hosts"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    page.text().await.unwrap()
}

/// Starts the agent as systemd would start the installed unit: its `ExecStart`, with the
/// variables of its `EnvironmentFile`, in the root (with a /proc of its own, as a booted
/// system has, in a mount namespace that ends with the process).
fn start_as_the_unit(root: &Path) -> Daemon {
    let unit =
        std::fs::read_to_string(at(root, "/etc/systemd/system/lookout-agent.service")).unwrap();
    let exec: Vec<String> = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart")
        .split_whitespace()
        .map(String::from)
        .collect();
    let env_file = unit
        .lines()
        .find_map(|l| l.strip_prefix("EnvironmentFile="))
        .expect("EnvironmentFile")
        .trim_start_matches('-');
    let vars: Vec<(String, String)> = std::fs::read_to_string(at(root, env_file))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("KEY=value");
            (k.to_string(), v.to_string())
        })
        .collect();
    let mut args = vec![
        "--mount".to_string(),
        "--propagation".into(),
        "private".into(),
        "/bin/sh".into(),
        "-c".into(),
        r#"mount -t proc proc "$0/proc" && exec chroot "$0" "$@""#.into(),
        root.display().to_string(),
    ];
    args.extend(exec);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let env: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Daemon::start(Path::new("unshare"), &args, &env).unwrap()
}

/// Every file under `dir` with its bytes.
fn files_under(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// Stops the agent as systemd would (SIGTERM) and waits for it.
fn stop(mut agent: Daemon) {
    agent.signal("TERM").unwrap();
    agent.wait_exit(WAIT).unwrap();
}

#[tokio::test]
async fn one_command_installs_enrols_and_upgrades_an_agent_in_a_debian_root() {
    let Some(debian) = debian_root() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = copy_root(&debian, dir.path());
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let reserved = lookout_tests::free_port();
    let port = reserved.get();
    let config_path = dir.path().join("collector.toml");
    let write_config = |install: Option<&str>| {
        std::fs::write(&config_path, collector_config(dir.path(), port, install)).unwrap();
    };
    // At first the collector has no agent binary to serve.
    write_config(Some(&format!("binaries = \"{}\"", empty.display())));
    let collector = Daemon::start(
        &bin("lookout-collector"),
        &["--config", config_path.to_str().unwrap()],
        &[],
    )
    .unwrap();
    collector
        .wait_for_line("collector listening", Duration::from_secs(20))
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let command = format!(
        "curl -fsSL {base}/install.sh | sh -s -- --enroll-token {ENROL} --name web-1 --labels role=web,zone=a"
    );
    // The collector's own sentence for a binary it lacks.
    let out = in_root(&root, &command);
    let said = deploy::said(&out);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains(&format!(
            "lookout-install: error: GET {base}/downloads/lookout-agent-linux-x86_64.sha256: 404: \
             this collector has no agent for Linux x86_64: put the agent built for it at {}",
            empty.join("lookout-agent-linux-x86_64").display()
        )),
        "{said}"
    );
    nothing_installed(&root, &base, "web-1").await;

    // Its own folder, the default: target/debug holds lookout-agent beside it.
    write_config(None);
    collector.signal("HUP").unwrap();
    let sum_url = format!("{base}/downloads/lookout-agent-linux-x86_64.sha256");
    eventually("the binary served after the reload", WAIT, || async {
        Ok(reqwest::get(&sum_url)
            .await?
            .status()
            .is_success()
            .then_some(()))
    })
    .await
    .unwrap();
    let wrong = command.replace(ENROL, "not-the-fleet-token-0123456789");
    let out = in_root(&root, &wrong);
    let said = deploy::said(&out);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("the collector refused the enrolment token (401: wrong enrolment token")
            && said.contains("nothing was installed"),
        "{said}"
    );
    nothing_installed(&root, &base, "web-1").await;

    // The documented command.
    let out = in_root(&root, &command);
    let done = Instant::now();
    let agent = start_as_the_unit(&root);
    let said = deploy::said(&out);
    assert!(out.status.success(), "{said}");
    let up = eventually("web-1 up in the hosts API", WAIT, || async {
        let h = host(&base, "web-1").await;
        Ok((h["state"] == "up" && h["last_seen"].is_string()).then_some(h))
    })
    .await
    .unwrap();
    let appeared = done.elapsed();
    println!(
        "the agent was up in the hosts API {:.2} s after the install command finished",
        appeared.as_secs_f64()
    );
    assert!(
        appeared < Duration::from_secs(10),
        "{appeared:?}; agent log:\n{}",
        agent.log_text()
    );
    assert_eq!(up["origin"], "enrolled");
    // And where a person sees it: the admin pages' hosts list.
    let page = admin_hosts_page(&base).await;
    assert!(
        page.contains(">web-1<") && page.contains("enrolled"),
        "web-1 is not on /admin/hosts:\n{page}"
    );
    assert_eq!(up["claimed_labels"]["role"], "web");
    assert_eq!(up["claimed_labels"]["zone"], "a");

    // What it said: no systemd here, so a dry run of the start.
    for line in [
        "lookout-install: enrolling as 'web-1'",
        "lookout-install: systemd is not running here (a chroot or a container): lookout-agent is installed, not started",
        "lookout-install: dry run of the start:",
        "lookout-install: /etc/lookout/agent.toml: valid (0 local checks)",
        "lookout-install: systemd would start: /usr/local/bin/lookout-agent --config /etc/lookout/agent.toml",
    ] {
        assert!(said.lines().any(|l| l == line), "no {line:?} in:\n{said}");
    }
    // The files, their modes and owners.
    assert_eq!(
        mode_owner(&root, "/usr/local/bin/lookout-agent"),
        (0o755, 0, 0)
    );
    let agent_bytes = std::fs::read(bin("lookout-agent")).unwrap();
    assert!(
        std::fs::read(at(&root, "/usr/local/bin/lookout-agent")).unwrap() == agent_bytes,
        "the installed binary is target/debug/lookout-agent"
    );
    assert_eq!(mode_owner(&root, "/etc/lookout"), (0o755, 0, 0));
    assert_eq!(mode_owner(&root, "/etc/systemd/system"), (0o755, 0, 0));
    assert_eq!(mode_owner(&root, "/etc/lookout/agent.toml"), (0o644, 0, 0));
    assert_eq!(mode_owner(&root, "/etc/lookout/agent.env"), (0o600, 0, 0));
    assert_eq!(
        mode_owner(&root, "/etc/systemd/system/lookout-agent.service"),
        (0o644, 0, 0)
    );
    assert_eq!(mode_owner(&root, "/var/lib/lookout-agent"), (0o700, 0, 0));
    assert_eq!(
        mode_owner(&root, "/var/lib/lookout-agent/credential"),
        (0o600, 0, 0)
    );
    assert_eq!(
        std::fs::read_to_string(at(&root, "/etc/systemd/system/lookout-agent.service")).unwrap(),
        UNIT,
        "the unit is deploy/lookout-agent.service byte for byte"
    );
    let toml = std::fs::read_to_string(at(&root, "/etc/lookout/agent.toml")).unwrap();
    for line in [
        "name = \"web-1\"".to_string(),
        format!("collector = \"{base}\""),
        "enroll_token = \"${LOOKOUT_ENROLL_TOKEN}\"".into(),
        "data_dir = \"/var/lib/lookout-agent\"".into(),
        "labels = { role = \"web\", zone = \"a\" }".into(),
    ] {
        assert!(toml.lines().any(|l| l == line), "no {line:?} in:\n{toml}");
    }
    assert!(
        !toml.contains(ENROL),
        "the token is in the world-readable config"
    );
    assert!(!toml.contains("ca ="), "no CA was served, so none is set");
    assert!(!at(&root, "/etc/lookout/ca.pem").exists());
    assert_eq!(
        std::fs::read_to_string(at(&root, "/etc/lookout/agent.env")).unwrap(),
        format!("LOOKOUT_ENROLL_TOKEN={ENROL}\n")
    );
    let credential = std::fs::read(at(&root, "/var/lib/lookout-agent/credential")).unwrap();
    assert!(credential.starts_with(b"lkc_"), "{credential:?}");
    let left: Vec<_> = std::fs::read_dir(at(&root, "/tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left in /tmp: {left:?}");

    // The agent stops as systemd stops it; its spool is what the upgrade must keep.
    let seen_before = up["last_seen"].as_str().unwrap().to_string();
    stop(agent);
    let data = at(&root, "/var/lib/lookout-agent");
    let kept = files_under(&data);
    assert!(
        kept.keys().any(|p| p.starts_with(data.join("spool"))),
        "a spool: {:?}",
        kept.keys()
    );
    let toml_before = std::fs::read(at(&root, "/etc/lookout/agent.toml")).unwrap();
    let env_before = std::fs::read(at(&root, "/etc/lookout/agent.env")).unwrap();

    // A new release on the collector: a binary that differs (bytes after the ELF's end, which
    // the loader ignores).
    let bins = dir.path().join("bins");
    std::fs::create_dir(&bins).unwrap();
    let mut new_bytes = agent_bytes.clone();
    new_bytes.extend_from_slice(b"\nlookout install test: the next release\n");
    let new_path = bins.join("lookout-agent-linux-x86_64");
    std::fs::write(&new_path, &new_bytes).unwrap();
    std::fs::set_permissions(&new_path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let old_sum = reqwest::get(&sum_url).await.unwrap().text().await.unwrap();
    write_config(Some(&format!("binaries = \"{}\"", bins.display())));
    collector.signal("HUP").unwrap();
    eventually("the new binary served", WAIT, || async {
        let now = reqwest::get(&sum_url).await?.text().await?;
        Ok((now != old_sum && now.ends_with("  lookout-agent-linux-x86_64\n")).then_some(()))
    })
    .await
    .unwrap();

    let out = in_root(&root, &command);
    let said = deploy::said(&out);
    assert!(out.status.success(), "{said}");
    for needle in [
        "lookout-install: upgrading /usr/local/bin/lookout-agent",
        "lookout-install: keeping /etc/lookout/agent.toml (agent 'web-1')",
        "lookout-install: keeping the credential in /var/lib/lookout-agent/credential and the spool",
        "lookout-install: dry run of the start:",
    ] {
        assert!(said.contains(needle), "no {needle:?} in:\n{said}");
    }
    assert!(!said.contains("enrolling"), "{said}");
    assert!(
        std::fs::read(at(&root, "/usr/local/bin/lookout-agent")).unwrap() == new_bytes,
        "the binary is the new one"
    );
    assert_eq!(
        mode_owner(&root, "/usr/local/bin/lookout-agent"),
        (0o755, 0, 0)
    );
    assert!(
        files_under(&data) == kept,
        "the credential and the spool are as they were"
    );
    assert_eq!(
        std::fs::read(at(&root, "/etc/lookout/agent.toml")).unwrap(),
        toml_before
    );
    assert_eq!(
        std::fs::read(at(&root, "/etc/lookout/agent.env")).unwrap(),
        env_before
    );
    assert_eq!(
        std::fs::read_to_string(at(&root, "/etc/systemd/system/lookout-agent.service")).unwrap(),
        UNIT
    );

    // The upgraded agent ships under the same name, on the same credential.
    let agent = start_as_the_unit(&root);
    eventually("web-1 seen again after the upgrade", WAIT, || async {
        let h = host(&base, "web-1").await;
        Ok(h["last_seen"]
            .as_str()
            .is_some_and(|s| s > seen_before.as_str())
            .then_some(()))
    })
    .await
    .unwrap();
    let hosts = get_json(&format!("{base}/api/v1/hosts")).await.unwrap();
    let names: Vec<&str> = hosts["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["name"].as_str())
        .collect();
    assert_eq!(names, ["web-1"], "one agent, the same");
    assert!(
        !agent.log_text().contains("enrol"),
        "the upgraded agent enrolled again:\n{}",
        agent.log_text()
    );
    stop(agent);
    drop(collector);
}

#[tokio::test]
async fn with_a_private_ca_the_script_carries_it_and_the_agent_ships_over_tls() {
    use lookout_tests::tls::{Ca, read_json, tls_collector};
    let Some(debian) = debian_root() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = copy_root(&debian, dir.path());
    let ca = Ca::new("Lookout install test CA");
    let (cert, key) = ca
        .leaf(&["localhost", "127.0.0.1"], 1, 2099)
        .write(dir.path(), "collector");
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, &ca.pem).unwrap();
    let (_collector, base) = tls_collector(
        dir.path(),
        &cert,
        &key,
        "",
        &format!(
            "[enrollment]\ntoken = \"{ENROL}\"\n[install]\nagent_ca = \"{}\"\n",
            ca_path.display()
        ),
    );
    assert!(base.starts_with("https://127.0.0.1:"), "{base}");
    // The operator has the CA where the command runs; the first curl needs it.
    std::fs::write(at(&root, "/root/ca.pem"), &ca.pem).unwrap();
    let command = format!(
        "curl -fsSL --cacert /root/ca.pem {base}/install.sh | sh -s -- --enroll-token {ENROL} --name web-tls"
    );
    let out = in_root(&root, &command);
    let said = deploy::said(&out);
    assert!(out.status.success(), "{said}");
    assert_eq!(
        std::fs::read_to_string(at(&root, "/etc/lookout/ca.pem")).unwrap(),
        ca.pem,
        "the CA, as the collector has it"
    );
    assert_eq!(mode_owner(&root, "/etc/lookout/ca.pem"), (0o644, 0, 0));
    let toml = std::fs::read_to_string(at(&root, "/etc/lookout/agent.toml")).unwrap();
    for line in [
        format!("collector = \"{base}\""),
        "ca = \"/etc/lookout/ca.pem\"".to_string(),
    ] {
        assert!(toml.lines().any(|l| l == line), "no {line:?} in:\n{toml}");
    }
    assert!(
        said.lines()
            .any(|l| l == "lookout-install: /etc/lookout/agent.toml: valid (0 local checks)"),
        "{said}"
    );
    let agent = start_as_the_unit(&root);
    eventually("web-tls up over TLS", WAIT, || async {
        let j = read_json(&ca, &format!("{base}/api/v1/hosts")).await?;
        Ok(j["hosts"]
            .as_array()
            .and_then(|a| a.iter().find(|h| h["name"] == "web-tls"))
            .filter(|h| h["state"] == "up")
            .map(|_| ()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\nagent:\n{}", agent.log_text()));
    stop(agent);
}
