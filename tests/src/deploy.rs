//! What the deployment tests (tests/tests/units.rs, compose.rs, terraform.rs, install.rs) share:
//! the tools scripts/lib/deploy.sh installs in a virtual environment of their own
//! (podman-compose, python-hcl2), the Debian root it makes, and the paths of deploy/.

use std::path::{Path, PathBuf};

/// The repository's `deploy/` folder.
pub fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// A program of the deployment tools' virtual environment: `$LOOKOUT_DEPLOY_VENV/bin/NAME`,
/// else `~/.cache/lookout/deploy/bin/NAME`. Panics, saying how to install it, when missing.
pub fn venv_bin(name: &str) -> PathBuf {
    let venv = std::env::var_os("LOOKOUT_DEPLOY_VENV")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/lookout/deploy")))
        .expect("LOOKOUT_DEPLOY_VENV or HOME is set");
    let bin = venv.join("bin").join(name);
    assert!(
        bin.exists(),
        "{} is missing: run scripts/lib/deploy.sh's install_deploy_venv (scripts/test does)",
        bin.display()
    );
    bin
}

/// Runs `script` with the virtual environment's Python, `input` on its standard input;
/// returns what it printed, or panics with what it said.
pub fn python(script: &str, args: &[&str], input: &[u8]) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new(venv_bin("python3"))
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 of the deployment venv runs");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(input)
        .expect("python3 reads its input");
    let out = child.wait_with_output().expect("python3 ends");
    assert!(
        out.status.success(),
        "python3 -c {script:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// YAML text as JSON (PyYAML, which podman-compose brings).
pub fn yaml_to_json(yaml: &str) -> serde_json::Value {
    let json = python(
        "import sys, json, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)",
        &[],
        yaml.as_bytes(),
    );
    serde_json::from_str(&json).expect("PyYAML wrote JSON")
}

/// A random secret of `len` hexadecimal digits, as `openssl rand -hex` would make.
pub fn random_hex(len: usize) -> String {
    (0..len)
        .map(|_| char::from_digit(fastrand::u32(0..16), 16).unwrap_or('0'))
        .collect()
}

/// What a command printed: its standard output, then its standard error.
pub fn said(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The Debian root to copy, or `None` (with the reason printed) where this machine cannot run
/// the test: not root, or no root made and none asked for. `LOOKOUT_DEBIAN_ROOT` set (as
/// scripts/test sets it) makes either a failure, not a skip.
pub fn debian_root() -> Option<PathBuf> {
    let asked = std::env::var_os("LOOKOUT_DEBIAN_ROOT").map(PathBuf::from);
    let root = asked
        .clone()
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/deploy/bookworm"));
    let is_root = rustix::process::geteuid().is_root();
    let made = root.join(".lookout-complete").exists();
    if asked.is_some() {
        assert!(is_root, "chroot needs root; LOOKOUT_DEBIAN_ROOT is set");
        assert!(
            made,
            "LOOKOUT_DEBIAN_ROOT={} is not a finished Debian root (scripts/lib/deploy.sh \
             make_debian_root makes one)",
            root.display()
        );
    }
    if !(is_root && made) {
        eprintln!(
            "SKIPPED: this test needs root and a Debian root (source scripts/lib/deploy.sh; \
             make_debian_root; or set LOOKOUT_DEBIAN_ROOT)"
        );
        return None;
    }
    Some(root)
}

/// A copy of the Debian root `debian` in `dir` (as `dir/root`), for a test to write into.
pub fn copy_root(debian: &Path, dir: &Path) -> PathBuf {
    let root = dir.join("root");
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(debian)
        .arg(&root)
        .status()
        .expect("cp runs");
    assert!(copied.success(), "cp -a {}", debian.display());
    root
}

/// Runs `argv` in `root` under chroot, with a clean environment as a login shell has (root's
/// PATH and HOME only).
pub fn in_root(root: &Path, argv: &[&str]) -> std::process::Output {
    std::process::Command::new("chroot")
        .arg(root)
        .args(argv)
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("HOME", "/root")
        .output()
        .expect("chroot runs")
}
