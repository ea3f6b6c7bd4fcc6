//! A real SMTP server for the end-to-end tests: aiosmtpd, run by the collector's tests'
//! `smtp_sink.py` as a child process killed when the [`SmtpSink`] is dropped. Each message it
//! accepts is a file in a folder (`N.eml`, then `N.json` once both are whole), so a test polls
//! the folder; the same script reads a message back with Python's email package, a MIME reader
//! independent of the collector's.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};

use crate::{Port, free_port};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../collector/tests/support/smtp_sink.py")
}

/// aiosmtpd listening on `127.0.0.1:port`, without authentication or TLS.
pub struct SmtpSink {
    /// Its port, reserved while it runs.
    pub port: Port,
    dir: tempfile::TempDir,
    child: Child,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SmtpSink {
    /// Starts it on a reserved port, once it listens (within 10 s). Fails saying what to
    /// install when python3 or aiosmtpd is missing.
    pub fn start() -> Result<SmtpSink> {
        let port = free_port();
        let dir = tempfile::tempdir()?;
        let mut child = Command::new("python3")
            .arg(script())
            .args(["serve", "--port", &port.to_string(), "--dir"])
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting python3 (with aiosmtpd: scripts/test installs it)")?;
        // Its first line is "ready" once it listens; read on a thread, to bound the wait.
        let stdout = child.stdout.take().context("piped stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(10)).unwrap_or_default();
        if line.trim() != "ready" {
            let _ = child.kill();
            let mut err = String::new();
            if let Some(mut stderr) = child.stderr.take() {
                let _ = stderr.read_to_string(&mut err);
            }
            let _ = child.wait();
            bail!("smtp_sink.py did not start (python3 with aiosmtpd is needed): {err}");
        }
        Ok(SmtpSink { port, dir, child })
    }

    /// How many whole messages it holds.
    pub fn count(&self) -> usize {
        std::fs::read_dir(self.dir.path())
            .map(|d| {
                d.filter(|e| {
                    e.as_ref()
                        .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "json"))
                })
                .count()
            })
            .unwrap_or(0)
    }

    /// The `n`th message received (from 1), read by Python's email package: `subject`, `from`,
    /// `to`, `content_type`, `parts` (each `content_type` and decoded `text`). An error when it
    /// has not arrived.
    pub fn parsed(&self, n: usize) -> Result<serde_json::Value> {
        ensure!(n >= 1 && n <= self.count(), "message {n} has not arrived");
        let out = Command::new("python3")
            .arg(script())
            .arg("parse")
            .arg(self.dir.path().join(format!("{n}.eml")))
            .output()?;
        ensure!(
            out.status.success(),
            "smtp_sink.py parse: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(serde_json::from_slice(&out.stdout)?)
    }
}
