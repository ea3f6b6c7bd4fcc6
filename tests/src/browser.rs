//! Running the browser test scripts (`tests/browser/*.mjs`): headless Chromium (Debian's
//! `chromium` package) driven by playwright-core from npm, both installed by `scripts/test`.
//!
//! A script runs as `node tests/browser/<script>.mjs <base url> <artifacts dir>`, with what to
//! expect in environment variables; its assertions fail the test, with its output. It prints
//! `@@ <event>` lines for the test to act on. Screenshots, named after what they show, land in
//! `target/browser-artifacts/`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use crate::Daemon;

/// Debian's Chromium, which the scripts launch.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Longest a script may run, browser start included.
pub const SCRIPT_TIMEOUT: Duration = Duration::from_secs(50);

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the workspace")
}

/// `tests/browser/`, once Chromium and its node_modules are there; fails (never skips) when
/// they are not.
pub fn browser_dir() -> PathBuf {
    let dir = workspace().join("tests/browser");
    let mut missing = Vec::new();
    if !Path::new(CHROMIUM).exists() {
        missing.push(format!("{CHROMIUM} (Debian's chromium package)"));
    }
    if !dir
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        missing.push(format!(
            "{}/node_modules (npm ci --prefix tests/browser)",
            dir.display()
        ));
    }
    assert!(
        missing.is_empty(),
        "the browser tests need {}: run scripts/test, which installs them",
        missing.join(" and ")
    );
    dir
}

/// `target/browser-artifacts/`, created: the target directory is the one this test runs from
/// (`target/<profile>/deps/<test>`).
pub fn artifacts_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let target = exe
        .ancestors()
        .nth(3)
        .expect("the test runs from target/<profile>/deps");
    let dir = target.join("browser-artifacts");
    std::fs::create_dir_all(&dir).expect("creating target/browser-artifacts");
    dir
}

/// Runs `tests/browser/<script>` against `base`, with `env`, and calls `on_event` for each
/// `@@ <event>` line it prints. Returns what it printed; `Err` says how it failed (exit status
/// or timeout) with its stdout and stderr.
pub async fn run_script(
    script: &str,
    base: &str,
    env: &[(&str, String)],
    mut on_event: impl FnMut(&str),
) -> Result<String, String> {
    let dir = browser_dir();
    let mut child = tokio::process::Command::new("node")
        .arg(dir.join(script))
        .arg(base)
        .arg(artifacts_dir())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("starting node (Node 20, which scripts/test expects): {e}"))?;
    let mut stderr = child.stderr.take().expect("piped stderr");
    let errors = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let mut out = String::new();
    let finished = tokio::time::timeout(SCRIPT_TIMEOUT, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(e) = line.strip_prefix("@@ ") {
                on_event(e.trim());
            }
            out.push_str(&line);
            out.push('\n');
        }
        child.wait().await
    })
    .await;
    let failure = match finished {
        Ok(Ok(status)) if status.success() => None,
        Ok(Ok(status)) => Some(format!("{script} failed ({status})")),
        Ok(Err(e)) => Some(format!("{script}: waiting for node: {e}")),
        Err(_) => {
            let _ = child.kill().await;
            Some(format!("{script} still running after {SCRIPT_TIMEOUT:?}"))
        }
    };
    // A browser the script left behind could hold stderr open: do not wait for it long.
    let errors = tokio::time::timeout(Duration::from_secs(5), errors)
        .await
        .map_or_else(|_| "(stderr still open)".into(), Result::unwrap_or_default);
    match failure {
        None => {
            // Shown with --nocapture: how long things took.
            print!("{out}");
            Ok(out)
        }
        Some(why) => Err(format!("{why}\n--- stdout\n{out}--- stderr\n{errors}")),
    }
}

/// Panics with `e` and the end of the collector's log.
pub fn fail(e: impl std::fmt::Display, collector: &Daemon) -> ! {
    let log = collector.log_text();
    let tail: Vec<&str> = log.lines().rev().take(30).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    panic!("{e}\n--- collector log (end)\n{}", tail.join("\n"))
}
