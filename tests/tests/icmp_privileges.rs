//! The `icmp` check where the kernel refuses ICMP sockets to the agent's user, and where
//! `net.ipv4.ping_group_range` allows them: `lookout-agent probe` run as an unprivileged user
//! (nobody), in a network namespace of its own so the setting can be changed without touching
//! the machine's. Needs root (as the test command runs), `unshare`, `setpriv` and `ip`.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use lookout_tests::bin;

/// Runs `lookout-agent probe` on an `icmp` check of 127.0.0.1 as nobody, in a new network
/// namespace whose `ping_group_range` is `range`; returns the check's row and the exit code.
fn probe_as_nobody(range: &str) -> (String, Option<i32>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        "name = \"a\"\ncollector = \"http://127.0.0.1:9\"\ntoken = \"agent-token-0123456789abcdef\"\n\
         [[checks]]\nname = \"gateway\"\ntype = \"icmp\"\nhost = \"127.0.0.1\"\ntimeout = \"2s\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let script = format!(
        "ip link set lo up && echo '{range}' > /proc/sys/net/ipv4/ping_group_range && \
         exec setpriv --reuid=65534 --regid=65534 --clear-groups -- {agent} probe --config {config}",
        agent = bin("lookout-agent").display(),
        config = config.display()
    );
    let out = Command::new("unshare")
        .args(["--net", "--", "sh", "-c", &script])
        .output()
        .expect("unshare runs (root, util-linux)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let row = text
        .lines()
        .find(|l| l.starts_with("gateway"))
        .unwrap_or_else(|| {
            panic!(
                "no row for the check:\n{text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
        .to_string();
    (row, out.status.code())
}

#[test]
fn refused_icmp_says_how_to_allow_it_and_allowed_icmp_pings() {
    assert!(
        is_root(),
        "this test runs as root (scripts/test does): it makes a network namespace"
    );
    // No group may open ICMP sockets ("1 0" is the kernel's default): a clear failure.
    let (row, code) = probe_as_nobody("1 0");
    assert!(row.contains("FAIL"), "{row}");
    assert!(
        row.contains("net.ipv4.ping_group_range") && row.contains("CAP_NET_RAW"),
        "{row}"
    );
    assert_eq!(code, Some(1));
    // Every group may: the unprivileged socket is used and the echo comes back.
    let (row, code) = probe_as_nobody("0 2147483647");
    assert!(row.contains(" ok "), "{row}");
    assert_eq!(code, Some(0), "{row}");
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}
