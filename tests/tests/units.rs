//! The systemd units in deploy/ as `systemd-analyze` judges them: `verify` finds nothing to
//! say, and `security --offline` puts each unit's exposure at 2.5 or lower (the figures in
//! docs/deployment.md "Hardened systemd units"). Nothing here starts the units: no systemd
//! runs as PID 1 on the test machines. Needs `systemd-analyze` (scripts/lib/deploy.sh
//! `install_deploy_peers`).
//!
//! `verify` refuses a unit whose `ExecStart=` binary is missing, and looks up the targets the
//! unit names, so it runs on a scratch root (`--root`) that holds the unit where the install
//! puts it, a stand-in executable where the binary goes, `kill` for `ExecReload=`, and this
//! machine's own systemd units for the targets.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The most exposure either unit may have (issue #30).
const MAX_EXPOSURE: f64 = 2.5;

fn unit_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(name)
}

fn systemd_analyze() -> Command {
    let found = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("systemd-analyze is installed (scripts/lib/deploy.sh install_deploy_peers)");
    Command::new(found)
}

/// A root with `unit` installed as /etc/systemd/system/`name` and its binary (a stand-in).
fn scratch_root(name: &str, unit: &str, binary: &str) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    for dir in [
        "etc/systemd/system",
        "usr/bin",
        "usr/local/bin",
        "usr/lib/systemd/system",
    ] {
        std::fs::create_dir_all(r.join(dir)).unwrap();
    }
    std::os::unix::fs::symlink("usr/bin", r.join("bin")).unwrap();
    std::fs::copy("/usr/bin/kill", r.join("usr/bin/kill")).expect("kill is in /usr/bin");
    for entry in std::fs::read_dir("/usr/lib/systemd/system").unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(
                entry.path(),
                r.join("usr/lib/systemd/system").join(entry.file_name()),
            )
            .unwrap();
        }
    }
    let bin = r.join("usr/local/bin").join(binary);
    std::fs::write(&bin, "#!/bin/sh\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(r.join("etc/systemd/system").join(name), unit).unwrap();
    root
}

/// `systemd-analyze verify` of `unit` installed as `name`: its exit code and what it said.
fn verify(name: &str, unit: &str, binary: &str) -> (Option<i32>, String) {
    let root = scratch_root(name, unit, binary);
    let out = systemd_analyze()
        .arg("verify")
        .arg(format!("--root={}", root.path().display()))
        .arg(name)
        .output()
        .unwrap();
    let said = lookout_tests::deploy::said(&out);
    (out.status.code(), said)
}

/// `systemd-analyze security --offline` of the file at `path`, with the threshold at
/// [`MAX_EXPOSURE`]: the exposure it prints and whether it passed the threshold.
fn exposure(path: &Path) -> (f64, bool) {
    let out = systemd_analyze()
        .args(["security", "--offline=true", "--no-pager"])
        .arg(format!("--threshold={}", (MAX_EXPOSURE * 10.0) as u32))
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| {
            panic!(
                "no overall exposure in:\n{text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let figure = line
        .split(':')
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no figure in {line:?}"));
    (figure, out.status.success())
}

fn check_unit(name: &str, binary: &str) {
    let path = unit_path(name);
    let unit = std::fs::read_to_string(&path).unwrap();
    let (code, said) = verify(name, &unit, binary);
    assert_eq!(code, Some(0), "systemd-analyze verify {name}:\n{said}");
    assert!(
        said.trim().is_empty(),
        "systemd-analyze verify {name} warns:\n{said}"
    );
    let (figure, passed) = exposure(&path);
    assert!(
        figure <= MAX_EXPOSURE && passed,
        "{name}: exposure {figure}, above {MAX_EXPOSURE}"
    );
}

#[test]
fn the_agent_unit_verifies_and_is_hardened() {
    check_unit("lookout-agent.service", "lookout-agent");
    // What the agent needs from its sandbox is still granted (docs/deployment.md).
    let unit = std::fs::read_to_string(unit_path("lookout-agent.service")).unwrap();
    for needed in [
        "AmbientCapabilities=CAP_NET_RAW",
        "SupplementaryGroups=adm systemd-journal",
        "EnvironmentFile=-/etc/lookout/agent.env",
        "StateDirectory=lookout-agent",
        "UMask=0077",
    ] {
        assert!(
            unit.lines().any(|l| l == needed),
            "no {needed:?} in the unit"
        );
    }
    // /proc stays whole: host metrics read its system-wide files.
    assert!(!unit.contains("ProcSubset=pid"));
}

#[test]
fn the_collector_unit_verifies_and_is_hardened() {
    check_unit("lookout-collector.service", "lookout-collector");
}

/// The checks can fail: a unit with no hardening is far above the threshold, and `verify`
/// refuses a unit whose binary is missing or that has a misspelt setting.
#[test]
fn the_checks_refuse_an_unhardened_or_broken_unit() {
    let dir = tempfile::tempdir().unwrap();
    let bare = "[Service]\nExecStart=/usr/local/bin/lookout-agent\n";
    let path = dir.path().join("bare.service");
    std::fs::write(&path, bare).unwrap();
    let (figure, passed) = exposure(&path);
    assert!(figure > MAX_EXPOSURE && !passed, "bare unit: {figure}");

    let (code, said) = verify("bare.service", bare, "other-binary");
    assert_ne!(code, Some(0), "{said}");
    assert!(said.contains("lookout-agent"), "{said}");

    let typo = "[Service]\nExecStart=/usr/local/bin/lookout-agent\nProtectSystm=strict\n";
    let (_, said) = verify("typo.service", typo, "lookout-agent");
    assert!(said.contains("ProtectSystm"), "{said}");
}

/// The values of `key=` in `unit`, split on whitespace (all its lines).
fn settings<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .flat_map(str::split_whitespace)
        .collect()
}

/// What the agent's unit grants is what the agent needs, run the closest way there is without
/// systemd as PID 1: `setpriv` gives a fresh user the unit's supplementary groups, its
/// ambient capabilities and bounding set and no new privileges; then an `icmp` check pings in a
/// network namespace where `net.ipv4.ping_group_range` allows nobody (so only CAP_NET_RAW
/// lets it), and a log file of group adm, mode 0640, is readable. The namespaces, seccomp
/// filter and read-only mounts of the unit are not applied here (docs/deployment.md).
#[test]
fn the_agent_units_privileges_are_enough_for_icmp_and_adm_logs() {
    let unit = std::fs::read_to_string(unit_path("lookout-agent.service")).unwrap();
    let caps: Vec<String> = settings(&unit, "AmbientCapabilities")
        .iter()
        .map(|c| c.trim_start_matches("CAP_").to_lowercase())
        .collect();
    let bounding: Vec<String> = settings(&unit, "CapabilityBoundingSet")
        .iter()
        .map(|c| c.trim_start_matches("CAP_").to_lowercase())
        .collect();
    let groups = settings(&unit, "SupplementaryGroups").join(",");
    assert_eq!(caps, ["net_raw"]);
    assert_eq!(bounding, ["net_raw"]);
    let plus = |v: &[String]| {
        format!(
            "-all,{}",
            v.iter()
                .map(|c| format!("+{c}"))
                .collect::<Vec<_>>()
                .join(",")
        )
    };

    let dir = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        "name = \"a\"\ncollector = \"http://127.0.0.1:9\"\ntoken = \"agent-token-0123456789abcdef\"\n\
         [[checks]]\nname = \"gateway\"\ntype = \"icmp\"\nhost = \"127.0.0.1\"\ntimeout = \"2s\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let log = dir.path().join("app.log");
    std::fs::write(&log, "a line only adm reads\n").unwrap();
    let chown = Command::new("chown")
        .arg("root:adm")
        .arg(&log)
        .status()
        .unwrap();
    assert!(
        chown.success(),
        "chown root:adm (the test runs as root, as scripts/test does)"
    );
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o640)).unwrap();

    // An unused uid, as DynamicUser= picks one.
    let as_unit = format!(
        "setpriv --reuid=61234 --regid=61234 --groups={groups} --inh-caps={c} --ambient-caps={c} \
         --bounding-set={b} --no-new-privs --",
        c = plus(&caps),
        b = plus(&bounding),
    );
    let script = format!(
        "ip link set lo up && echo '1 0' > /proc/sys/net/ipv4/ping_group_range && \
         {as_unit} cat {log} && {as_unit} {agent} probe --config {config}",
        log = log.display(),
        agent = lookout_tests::bin("lookout-agent").display(),
        config = config.display(),
    );
    let out = Command::new("unshare")
        .args(["--net", "--", "sh", "-c", &script])
        .output()
        .expect("unshare runs (root, util-linux)");
    let text = String::from_utf8_lossy(&out.stdout);
    let said = format!("{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("a line only adm reads"), "{said}");
    let row = text
        .lines()
        .find(|l| l.starts_with("gateway"))
        .unwrap_or_else(|| panic!("{said}"));
    assert!(row.contains(" ok "), "{said}");
    assert_eq!(out.status.code(), Some(0), "{said}");
}

/// A state folder in `parent` as `StateDirectory=` makes it: owned by `uid`, mode 0700.
fn state_dir(parent: &Path, uid: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let state = parent.join("state");
    std::fs::create_dir(&state).unwrap();
    std::os::unix::fs::chown(&state, Some(uid), Some(uid)).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    state
}

/// Runs the shell `script` as PID 1 of a PID and mount namespace of its own, with `env` added,
/// its stderr collected. The script must stay PID 1 and start the daemon as its child (not
/// `exec` it): `--kill-child` kills PID 1 when the test drops `unshare`, and the kernel then
/// kills every process of the namespace; an `exec`'d daemon would outlive the test, as
/// `setpriv`'s change of user clears the death signal `--kill-child` set.
fn sandboxed(script: &str, env: &[(&str, &str)]) -> lookout_tests::Daemon {
    lookout_tests::Daemon::start(
        Path::new("/usr/bin/unshare"),
        &[
            "--mount",
            "--pid",
            "--fork",
            "--kill-child",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            script,
        ],
        env,
    )
    .unwrap()
}

/// Everything under `dir` (at least one file) is owned by `uid` with no access for others
/// (`UMask=0077`).
fn assert_private(dir: &Path, uid: u32) {
    use std::os::unix::fs::MetadataExt;
    let mut seen = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            assert_eq!(meta.uid(), uid, "{}", entry.path().display());
            assert_eq!(
                meta.mode() & 0o077,
                0,
                "{} is {:o}",
                entry.path().display(),
                meta.mode()
            );
            seen += 1;
            if meta.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    assert!(seen > 0, "nothing was written in {}", dir.display());
}

/// The agent as a daemon under as much of its unit's sandbox as runs without systemd: the
/// unit's user setup as above (`setpriv`), `umask 077`, and its `ProtectProc=invisible` (a
/// /proc of its own, mounted `hidepid=invisible`, in a PID and mount namespace); it ships to a
/// collector started here. Host metrics (read from /proc) arrive, a log file of group adm is
/// tailed and its line stored, an `icmp` check is up (where `ping_group_range` is the
/// kernel's default `1 0`, as on the test machines, only CAP_NET_RAW lets it ping; the test
/// above holds that in a namespace of its own), and what it writes in its state folder is the
/// user's alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_ships_host_metrics_logs_and_icmp_under_its_units_privileges() {
    use lookout_tests::{check_json, collector_toml, eventually, free_port, get_json};
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;
    const TOKEN: &str = "sandboxed-agent-token-0123456789abcdef";
    const UID: u32 = 61234;
    let wait = Duration::from_secs(30);

    let unit = std::fs::read_to_string(unit_path("lookout-agent.service")).unwrap();
    assert!(unit.lines().any(|l| l == "ProtectProc=invisible"));
    assert!(unit.lines().any(|l| l == "UMask=0077"));
    let groups = settings(&unit, "SupplementaryGroups").join(",");
    let caps = settings(&unit, "AmbientCapabilities")
        .iter()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect::<Vec<_>>()
        .join(",");

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (collector, base) = lookout_tests::start_collector(
        dir.path(),
        &collector_toml(dir.path(), port.get(), "sandboxed", TOKEN, ""),
    )
    .unwrap();

    // The agent's files: its config world-readable (no secret in it), its state folder its
    // own (StateDirectory=), the log root:adm 0640 as Debian's /var/log files are.
    let agent_dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(agent_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = state_dir(agent_dir.path(), UID);
    let log = agent_dir.path().join("app.log");
    std::fs::write(&log, "sandboxed agent tails this adm line\n").unwrap();
    let chown = Command::new("chown")
        .arg("root:adm")
        .arg(&log)
        .status()
        .unwrap();
    assert!(chown.success());
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o640)).unwrap();
    let config = agent_dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "name = \"sandboxed\"\ncollector = \"{base}\"\ntoken = \"${{LOOKOUT_AGENT_TOKEN}}\"\n\
             data_dir = \"{}\"\n[host_metrics]\ninterval = \"1s\"\n\
             [[checks]]\nname = \"gateway\"\ntype = \"icmp\"\nhost = \"127.0.0.1\"\ninterval = \"2s\"\ntimeout = \"1s\"\n\
             [[logs]]\npaths = [\"{}\"]\nread_from = \"beginning\"\n",
            state.display(),
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();

    let script = format!(
        "mount -t proc -o hidepid=invisible proc /proc && umask 077 && \
         {{ setpriv --reuid={UID} --regid={UID} --groups={groups} --inh-caps=-all,{caps} \
         --ambient-caps=-all,{caps} --bounding-set=-all,{caps} --no-new-privs -- {agent} --config {config} & \
         wait; }}",
        agent = lookout_tests::bin("lookout-agent").display(),
        config = config.display(),
    );
    // The secret comes from the environment, as EnvironmentFile= gives it.
    let agent = sandboxed(&script, &[("LOOKOUT_AGENT_TOKEN", TOKEN)]);
    let logs = || {
        format!(
            "agent:\n{}\ncollector:\n{}",
            agent.log_text(),
            collector.log_text()
        )
    };

    let metrics = eventually("host metrics", wait, || async {
        let j = get_json(&format!("{base}/api/v1/hosts")).await?;
        let host = j["hosts"]
            .as_array()
            .and_then(|h| h.iter().find(|h| h["name"] == "sandboxed").cloned());
        Ok(host.and_then(|h| {
            let m = h["metrics"].as_array().cloned().unwrap_or_default();
            (m.iter().any(|x| x["name"] == "system.cpu.utilization")).then_some(m)
        }))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", logs()));
    for name in [
        "system.memory.usage",
        "system.cpu.load_average.1m",
        "system.network.io",
    ] {
        assert!(
            metrics.iter().any(|m| m["name"] == name),
            "{name} missing: {metrics:?}"
        );
    }
    eventually("the adm log line", wait, || async {
        let j = get_json(&format!("{base}/api/v1/logs?agent=sandboxed&q=adm")).await?;
        Ok(j["lines"]
            .as_array()
            .is_some_and(|l| {
                l.iter()
                    .any(|r| r.to_string().contains("tails this adm line"))
            })
            .then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", logs()));
    eventually("the icmp check up", wait, || async {
        let c = check_json(&base, "gateway").await?;
        Ok((c["status"] == "up").then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", logs()));

    // UMask=0077: nothing it wrote is readable by others.
    assert_private(&state, UID);
}

/// The collector under as much of its unit as runs without systemd: a fresh uid with no
/// capability at all (`CapabilityBoundingSet=` empty), no new privileges, `umask 077`, a /proc
/// mounted `hidepid=invisible`. It serves, takes an agent's batches into SQLite in its state
/// folder, and what it writes there is its own alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_collector_serves_and_stores_under_its_units_privileges() {
    use lookout_tests::{collector_toml, eventually, free_port, get_json};
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;
    const TOKEN: &str = "collector-sandbox-token-0123456789abcdef";
    const UID: u32 = 61235;

    let unit = std::fs::read_to_string(unit_path("lookout-collector.service")).unwrap();
    assert!(unit.lines().any(|l| l == "CapabilityBoundingSet="));
    assert!(settings(&unit, "AmbientCapabilities").is_empty());

    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = state_dir(dir.path(), UID);
    let port = free_port();
    let config = dir.path().join("collector.toml");
    std::fs::write(&config, collector_toml(&state, port.get(), "a", TOKEN, "")).unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let script = format!(
        "mount -t proc -o hidepid=invisible proc /proc && umask 077 && cd {state} && \
         {{ setpriv --reuid={UID} --regid={UID} --clear-groups --inh-caps=-all \
         --ambient-caps=-all --bounding-set=-all --no-new-privs -- {bin} --config {config} & \
         wait; }}",
        state = state.display(),
        bin = lookout_tests::bin("lookout-collector").display(),
        config = config.display(),
    );
    let collector = sandboxed(&script, &[]);
    collector
        .wait_for_line("collector listening", Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}\n{}", collector.log_text()));
    let base = format!("http://127.0.0.1:{}", port.get());

    let agent_dir = tempfile::tempdir().unwrap();
    let agent_config = agent_dir.path().join("agent.toml");
    std::fs::write(
        &agent_config,
        format!(
            "name = \"a\"\ncollector = \"{base}\"\ntoken = \"{TOKEN}\"\ndata_dir = \"{}\"\n\
             [host_metrics]\ninterval = \"1s\"\n",
            agent_dir.path().display()
        ),
    )
    .unwrap();
    let agent = lookout_tests::start_agent(&agent_config).unwrap();
    eventually(
        "the agent's metrics stored",
        Duration::from_secs(30),
        || async {
            let j = get_json(&format!("{base}/api/v1/hosts")).await?;
            Ok(j["hosts"]
                .as_array()
                .is_some_and(|h| {
                    h.iter().any(|h| {
                        h["name"] == "a" && h["metrics"].as_array().is_some_and(|m| !m.is_empty())
                    })
                })
                .then_some(()))
        },
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e}\ncollector:\n{}\nagent:\n{}",
            collector.log_text(),
            agent.log_text()
        )
    });

    assert_private(&state, UID);
}
