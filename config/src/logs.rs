//! `[[logs]]` in the agent's configuration: files the agent tails and ships.
//!
//! ```toml
//! [[logs]]
//! paths = ["/var/log/app/*.log"]       # globs; files that appear later are picked up
//! exclude = ["/var/log/app/debug.log"] # globs; default none
//! read_from = "end"                     # or "beginning": files already there at first start
//! multiline_start = '^\d{4}-'           # a line matching this starts an event; others join it
//! multiline_timeout = "1s"              # the last event goes out after this much quiet
//! max_line_bytes = 32768                # longer lines are cut, with a marker
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::document::{Document, KeyPath};

/// Where tailing starts in a file seen for the first time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ReadFrom {
    /// From its first byte.
    Beginning,
    /// From its end at the agent's first start: only what is written from then on. Files that
    /// appear later, and files whose checkpoint the agent has, are read from where they begin or
    /// where it stopped, so a rotation or a restart loses nothing.
    #[default]
    End,
}

/// One `[[logs]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSourceConfig {
    /// Glob patterns of the files to tail (`*`, `?`, `[...]`, `**`). Absolute paths. Required.
    pub paths: Vec<String>,
    /// Glob patterns of files not to tail, even when `paths` match them. Default none.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Where to start in files already there when the agent first starts. Default `"end"`.
    #[serde(default)]
    pub read_from: ReadFrom,
    /// A regular expression that starts an event: lines that do not match join the event
    /// before them (stack traces). Default none: every line is an event.
    #[serde(default)]
    pub multiline_start: Option<String>,
    /// How long the agent waits for more continuation lines before it ships the last event of
    /// a file. Default `"1s"`.
    #[serde(default = "default_multiline_timeout", with = "crate::duration")]
    pub multiline_timeout: Duration,
    /// Longest line (or multiline event) shipped, in bytes; longer ones are cut to it and end
    /// with `…[truncated N bytes]`. Default 32768; at least 256.
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: usize,
}

/// `[journald]`: the systemd journal as a log source, read with `journalctl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournaldConfig {
    /// Ship journal entries. Default `false`.
    #[serde(default)]
    pub enabled: bool,
    /// Only these units' entries (`nginx.service`). Default: every entry.
    #[serde(default)]
    pub units: Vec<String>,
    /// Where to start the first time (later: where the agent stopped). Default `"end"`.
    #[serde(default)]
    pub read_from: ReadFrom,
    /// The `journalctl` to run. Default `"journalctl"` (from `PATH`).
    #[serde(default = "default_journalctl")]
    pub journalctl: std::path::PathBuf,
}

impl Default for JournaldConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            units: Vec::new(),
            read_from: ReadFrom::End,
            journalctl: default_journalctl(),
        }
    }
}

fn default_journalctl() -> std::path::PathBuf {
    "journalctl".into()
}

fn default_multiline_timeout() -> Duration {
    Duration::from_secs(1)
}

fn default_max_line_bytes() -> usize {
    32 * 1024
}

pub(crate) fn validate(doc: &mut Document<'_>, i: usize, l: &LogSourceConfig) {
    let at = KeyPath::key("logs").index(i);
    if l.paths.is_empty() {
        doc.error_at(&at.child("paths"), "expected at least one path or glob");
    }
    for (key, list) in [("paths", &l.paths), ("exclude", &l.exclude)] {
        for (j, p) in list.iter().enumerate() {
            let here = at.child(key).index(j);
            if !p.starts_with('/') {
                doc.error_at(&here, format!("{p:?} is not an absolute path"));
            } else if let Err(e) = glob::Pattern::new(p) {
                doc.error_at(&here, format!("{p:?} is not a valid glob: {e}"));
            }
        }
    }
    if let Some(re) = &l.multiline_start
        && let Err(e) = regex::Regex::new(re)
    {
        doc.error_at(
            &at.child("multiline_start"),
            format!("not a valid regular expression: {e}"),
        );
    }
    if l.max_line_bytes < 256 {
        doc.error_at(&at.child("max_line_bytes"), "must be at least 256");
    }
    if l.multiline_timeout.is_zero() {
        doc.error_at(&at.child("multiline_timeout"), "must be more than 0s");
    }
}
