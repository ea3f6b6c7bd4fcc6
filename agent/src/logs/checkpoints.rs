//! Where reading of each tailed file stands, by the file's fingerprint, kept in
//! `<data_dir>/logs/checkpoints.json` (replaced by rename; never half-written).
//!
//! A position is saved while the spool holds the lock of the records that reach it (see
//! [`crate::spool::Spool::push_all`]), so it is on disk before those records can be shipped,
//! acknowledged and deleted. A crash between the records' write and the position's leaves the
//! position behind; at start, the newest position found in the spool's own records wins
//! ([`Checkpoints::recover`]), so every line is shipped once.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::Utc;
use lookout_protocol::Record;
use serde::{Deserialize, Serialize};

use super::mark::Mark;
use crate::spool::Spool;

/// Positions are forgotten this long after their file was last seen (a rotated file that is
/// deleted leaves its entry behind).
const FORGET_AFTER_SECS: i64 = 7 * 24 * 3600;

/// One file's position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The byte offset reading resumes from.
    pub offset: u64,
    /// The path it was last read under (for people reading the file).
    pub path: String,
    /// When it was last read or seen, Unix seconds.
    pub seen: i64,
    /// For the journal: the cursor of the last entry shipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// The last bytes read before the position (or before an earlier one of the same file):
    /// a file that no longer holds them was truncated since, and is read from its start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark: Option<Mark>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct OnDisk {
    version: u32,
    files: HashMap<String, Entry>,
}

/// The positions, by fingerprint.
#[derive(Debug)]
pub struct Checkpoints {
    path: PathBuf,
    files: HashMap<String, Entry>,
    /// No checkpoint file existed: this is the agent's first start with logs.
    pub first_start: bool,
    dirty: bool,
}

impl Checkpoints {
    /// Reads the positions under `dir`; a missing or damaged file starts empty (damage is
    /// reported: files are then read as new, by `read_from`).
    pub fn open(dir: &Path) -> Self {
        if let Err(e) = fs::create_dir_all(dir) {
            tracing::error!(dir = %dir.display(), error = %e, "cannot create the log checkpoint folder");
        }
        let path = dir.join("checkpoints.json");
        let (files, first_start) = match fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<OnDisk>(&bytes) {
                Ok(d) => (d.files, false),
                Err(e) => {
                    tracing::error!(file = %path.display(), error = %e, "log checkpoints damaged; files are read as if new");
                    (HashMap::new(), false)
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (HashMap::new(), true),
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "cannot read the log checkpoints; files are read as if new");
                (HashMap::new(), false)
            }
        };
        Self {
            path,
            files,
            first_start,
            dirty: false,
        }
    }

    /// Moves positions forward to the newest ones the spool's records carry: those records
    /// were written, so their lines must not be read again.
    pub fn recover(&mut self, spool: &Spool) {
        let mut found = 0;
        spool.scan_records(b"\"position\"", |r| {
            if let Record::Log(l) = r
                && let Some(p) = l.position
            {
                found += 1;
                let e = self.files.entry(p.file).or_insert_with(|| Entry {
                    offset: 0,
                    path: l.source.clone(),
                    seen: Utc::now().timestamp(),
                    cursor: None,
                    mark: None,
                });
                if p.offset > e.offset {
                    e.offset = p.offset;
                    self.dirty = true;
                }
                // Records are read oldest first: the last cursor is the newest.
                if p.cursor.is_some() && p.cursor != e.cursor {
                    e.cursor = p.cursor;
                    self.dirty = true;
                }
            }
        });
        if self.dirty {
            tracing::info!(
                positions = found,
                "log positions taken forward from the spool"
            );
            self.save();
        }
    }

    /// The position of the file with fingerprint `key`.
    pub fn get(&self, key: &str) -> Option<u64> {
        self.files.get(key).map(|e| e.offset)
    }

    /// The mark saved with the position of `key`.
    pub fn mark(&self, key: &str) -> Option<Mark> {
        self.files.get(key).and_then(|e| e.mark)
    }

    /// Sets a position, with the mark of the bytes before it (saved by [`Checkpoints::save`]).
    pub fn set(&mut self, key: &str, offset: u64, mark: Option<Mark>, path: &str) {
        let seen = Utc::now().timestamp();
        match self.files.get_mut(key) {
            Some(e)
                if e.offset == offset
                    && e.mark == mark
                    && e.path == path
                    && seen.saturating_sub(e.seen) < 60 => {}
            Some(e) => {
                e.offset = offset;
                e.mark = mark;
                e.seen = seen;
                if e.path != path {
                    e.path = path.to_string();
                }
                self.dirty = true;
            }
            None => {
                self.files.insert(
                    key.to_string(),
                    Entry {
                        offset,
                        path: path.to_string(),
                        seen,
                        cursor: None,
                        mark,
                    },
                );
                self.dirty = true;
            }
        }
    }

    /// The journal cursor saved under `key`.
    pub fn cursor(&self, key: &str) -> Option<String> {
        self.files.get(key).and_then(|e| e.cursor.clone())
    }

    /// Sets a journal cursor (saved by [`Checkpoints::save`]).
    pub fn set_cursor(&mut self, key: &str, cursor: &str) {
        let e = self.files.entry(key.to_string()).or_insert_with(|| Entry {
            offset: 0,
            path: key.to_string(),
            seen: 0,
            cursor: None,
            mark: None,
        });
        e.cursor = Some(cursor.to_string());
        e.seen = Utc::now().timestamp();
        self.dirty = true;
    }

    /// Writes the positions if any changed. A failure is logged; the next save tries again.
    pub fn save(&mut self) {
        if !self.dirty {
            return;
        }
        let now = Utc::now().timestamp();
        // `seen` is read from the file: any number may be there.
        self.files
            .retain(|_, e| now.saturating_sub(e.seen) < FORGET_AFTER_SECS);
        let disk = OnDisk {
            version: 1,
            files: std::mem::take(&mut self.files),
        };
        let result = serde_json::to_vec(&disk)
            .map_err(std::io::Error::other)
            .and_then(|bytes| {
                let tmp = self.path.with_extension("json.tmp");
                let mut f = fs::File::create(&tmp)?;
                f.write_all(&bytes)?;
                fs::rename(&tmp, &self.path)
            });
        self.files = disk.files;
        match result {
            Ok(()) => self.dirty = false,
            Err(e) => {
                tracing::warn!(file = %self.path.display(), error = %e, "cannot save the log checkpoints")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_with_any_seen_time_opens_sets_and_saves() {
        // `seen` from the file at both ends of i64: the ages computed from it must not overflow.
        let dir = tempfile::tempdir().unwrap();
        let entry = |seen: i64| format!(r#"{{"offset":7,"path":"/var/log/x.log","seen":{seen}}}"#);
        let file = format!(
            r#"{{"version":1,"files":{{"a":{},"b":{},"c":{}}}}}"#,
            entry(i64::MIN),
            entry(i64::MAX),
            entry(i64::MIN)
        );
        fs::write(dir.path().join("checkpoints.json"), file).unwrap();
        let mut points = Checkpoints::open(dir.path());
        assert_eq!(points.get("a"), Some(7));
        points.set("a", 7, None, "/var/log/x.log");
        points.save();
        let again = Checkpoints::open(dir.path());
        assert_eq!(again.get("a"), Some(7), "set now: kept");
        assert_eq!(again.get("b"), Some(7), "seen in the future: kept");
        assert_eq!(again.get("c"), None, "seen before 1970 by far: forgotten");
    }
}
