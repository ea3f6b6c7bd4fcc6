//! What the fallback remembers across a restart: `<data_dir>/fallback.json`, beside the spool.
//!
//! ```json
//! {"version":1,"since":"2026-12-07T03:12:00Z","unreachable_sent":true}
//! ```
//!
//! - `since`: when the outage began (the first batch not acknowledged after one that was);
//!   absent when none is known.
//! - `unreachable_sent`: the "collector unreachable" message went out for that outage (or was
//!   given up after its retries): it is not sent again, and the "reachable again" message is
//!   owed.
//!
//! The file is written (to a temporary file, then renamed over it) only when one of these
//! changes: at the start and the end of an outage, and when its message went out. It is read
//! once, at start, at most [`MAX_BYTES`] of it. A file that is too large or does not parse is
//! reported and replaced by "no outage known": the agent may then send "unreachable" a second
//! time for an outage in progress, which is better than never sending it.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The file's name in the data directory.
pub const FILE: &str = "fallback.json";

/// The most of the file read; a valid one is under 100 bytes.
pub const MAX_BYTES: u64 = 4096;

/// The format's version.
const VERSION: u32 = 1;

/// An outage as remembered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Remembered {
    /// When the outage began; none when none is known.
    pub since: Option<DateTime<Utc>>,
    /// The "unreachable" message went out (or was given up) for it.
    pub unreachable_sent: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OnDisk {
    version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    since: Option<DateTime<Utc>>,
    #[serde(default)]
    unreachable_sent: bool,
}

/// Why the file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Larger than [`MAX_BYTES`]: not a file this agent wrote.
    #[error("{path}: more than {MAX_BYTES} bytes, not a fallback state file")]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// Not the format above.
    #[error("{path}: not a fallback state file ({reason})")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// Reads the file at `path`; no file is no outage known.
pub fn load(path: &Path) -> Result<Remembered, StateError> {
    let io = |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Remembered::default()),
        Err(e) => return Err(io(e)),
    };
    let mut text = Vec::new();
    file.take(MAX_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(io)?;
    if text.len() as u64 > MAX_BYTES {
        return Err(StateError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    let damaged = |reason: String| StateError::Damaged {
        path: path.to_path_buf(),
        reason,
    };
    let disk: OnDisk = serde_json::from_slice(&text).map_err(|e| damaged(e.to_string()))?;
    if disk.version != VERSION {
        return Err(damaged(format!(
            "version {}, expected {VERSION}",
            disk.version
        )));
    }
    Ok(Remembered {
        since: disk.since,
        unreachable_sent: disk.unreachable_sent,
    })
}

/// Writes `state` to `path`: a temporary file beside it, renamed over it.
pub fn save(path: &Path, state: &Remembered) -> Result<(), StateError> {
    let io = |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    };
    let text = serde_json::to_vec(&OnDisk {
        version: VERSION,
        since: state.since,
        unreachable_sent: state.unreachable_sent,
    })
    .map_err(|e| io(std::io::Error::other(e)))?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_round_trips_and_no_file_is_no_outage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        assert_eq!(load(&path).unwrap(), Remembered::default());
        let s = Remembered {
            since: DateTime::from_timestamp(1_800_000_000, 0),
            unreachable_sent: true,
        };
        save(&path, &s).unwrap();
        assert_eq!(load(&path).unwrap(), s);
        assert!(!dir.path().join("fallback.json.tmp").exists());
    }

    #[test]
    fn damaged_and_oversized_files_are_errors_that_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        for (text, want) in [
            ("{\"version\":1,\"since\":", "not a fallback state file"),
            ("{\"version\":2}", "version 2"),
            (
                "{\"version\":1,\"extra\":true}",
                "not a fallback state file",
            ),
            ("\u{0}\u{1}binary", "not a fallback state file"),
        ] {
            std::fs::write(&path, text).unwrap();
            let e = load(&path).unwrap_err().to_string();
            assert!(
                e.contains(want) && e.contains("fallback.json"),
                "{text}: {e}"
            );
        }
        std::fs::write(&path, vec![b' '; MAX_BYTES as usize + 1]).unwrap();
        assert!(matches!(load(&path), Err(StateError::TooLarge { .. })));
    }
}
