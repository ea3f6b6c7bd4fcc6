//! The SQLite copy: the online backup API in one step, into a file of mode 0600 beside the
//! destination, synced and renamed into place.
//!
//! Why the backup API and not `VACUUM INTO`: both read the database in one read transaction
//! (a consistent copy that does not block the WAL writer), but `VACUUM INTO` rebuilds every
//! table and index into the new file, which costs CPU and time in proportion to the rows (the
//! samples' and results' indexes are most of the file), while the backup API copies pages as
//! they are. Time matters twice: it is how long the WAL cannot be checkpointed back to its
//! start (it grows by what is ingested meanwhile, and is checkpointed after), and how long the
//! disk is busy beside ingest. The copy keeps the file's free pages; `VACUUM` after a restore
//! drops them if that matters.
//!
//! One step (`-1` pages), not many small ones: a step's pages come from its own read
//! transaction, and SQLite restarts a stepped backup from the first page whenever another
//! connection writes between steps, which under steady ingest would never finish.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::BackupError;

/// How long the copy waits on a lock held by another connection before it gives up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// What a finished copy was.
#[derive(Debug, Clone, Copy)]
pub struct Copied {
    /// Size of the copy, in bytes.
    pub bytes: u64,
    /// How long it took, from opening the database to the rename.
    pub took: Duration,
}

/// Copies the SQLite database at `db` to `to` (mode 0600), consistently, while other
/// connections write. `to` is replaced only with `force`; it is never left half written.
pub fn backup(db: &Path, to: &Path, force: bool) -> Result<Copied, BackupError> {
    backup_waiting(db, to, force, BUSY_TIMEOUT)
}

/// [`backup`], waiting at most `busy` on a lock another connection holds.
pub(super) fn backup_waiting(
    db: &Path,
    to: &Path,
    force: bool,
    busy: Duration,
) -> Result<Copied, BackupError> {
    let started = Instant::now();
    let source_meta = match std::fs::metadata(db) {
        Ok(m) if m.is_file() => m,
        Ok(_) | Err(_) => {
            return Err(BackupError::NoDatabase {
                path: db.to_path_buf(),
            });
        }
    };
    if let Ok(existing) = std::fs::metadata(to) {
        if same_file(db, to) {
            return Err(BackupError::IsTheDatabase {
                path: to.to_path_buf(),
            });
        }
        if !force || existing.is_dir() {
            return Err(BackupError::Exists {
                path: to.to_path_buf(),
            });
        }
    }
    let dir = match to.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let disk_full = || BackupError::DiskFull {
        dir: dir.clone(),
        needed: source_meta.len(),
    };
    let io = |what, path: &Path| {
        let path = path.to_path_buf();
        let full = disk_full();
        move |source: std::io::Error| {
            if source.kind() == std::io::ErrorKind::StorageFull {
                full
            } else {
                BackupError::Io { what, path, source }
            }
        }
    };
    // Mode 0600 from its creation (tempfile's default): SQLite keeps an existing file's mode.
    let tmp = tempfile::Builder::new()
        .prefix(".lookout-backup-")
        .suffix(".partial")
        .tempfile_in(&dir)
        .map_err(io("create a file in", &dir))?;
    copy(db, tmp.path(), busy).map_err(|e| sqlite_error(e, db, disk_full))?;
    tmp.as_file().sync_all().map_err(io("sync", tmp.path()))?;
    let persisted = if force {
        tmp.persist(to).map_err(|e| e.error)
    } else {
        tmp.persist_noclobber(to).map_err(|e| e.error)
    };
    match persisted {
        Ok(_) => {}
        // Made by someone else since the check above.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(BackupError::Exists {
                path: to.to_path_buf(),
            });
        }
        Err(e) => return Err(io("rename the copy to", to)(e)),
    }
    // The rename itself survives a power cut once the folder is synced.
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(io("sync", &dir))?;
    let bytes = std::fs::metadata(to).map_err(io("read back", to))?.len();
    Ok(Copied {
        bytes,
        took: started.elapsed(),
    })
}

/// The copy itself, from `db` into the empty file at `into`.
fn copy(db: &Path, into: &Path, busy: Duration) -> rusqlite::Result<()> {
    // Read-write though it only reads (never created, and no mutex: this thread alone uses
    // it): on a stopped collector's database this is the only connection, and SQLite creates
    // `-wal` and `-shm` for it; a read-write connection that closes last removes them again,
    // where a read-only one would leave them, owned by whoever ran the backup, for the
    // collector's user to trip over at its next start.
    let source = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    source.busy_timeout(busy)?;
    // Fail here, clearly, on a file that is not a database, rather than mid-copy.
    source.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))?;
    let mut dest = Connection::open(into)?;
    // The destination is a private temporary file, removed on any failure: no rollback
    // journal is needed for it.
    dest.pragma_update(None, "journal_mode", "OFF")?;
    {
        let backup = Backup::new(&source, &mut dest)?;
        // `step` does not wait on the source's locks (its busy handler is the destination's):
        // a busy source is tried again for up to `busy`.
        let deadline = Instant::now() + busy;
        loop {
            match backup.step(-1)? {
                StepResult::Done => break,
                StepResult::More => {}
                _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                _ => {
                    return Err(rusqlite::Error::SqliteFailure(
                        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                        None,
                    ));
                }
            }
        }
    }
    dest.close().map_err(|(_, e)| e)?;
    source.close().map_err(|(_, e)| e)
}

/// The error a user can act on for what SQLite said.
fn sqlite_error(
    e: rusqlite::Error,
    db: &Path,
    disk_full: impl FnOnce() -> BackupError,
) -> BackupError {
    let path = db.to_path_buf();
    match e.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => disk_full(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => BackupError::Locked { path },
        Some(ErrorCode::NotADatabase) => BackupError::NotADatabase { path },
        _ => BackupError::Sqlite { path, source: e },
    }
}

/// True when `a` and `b` are one file (the same device and inode).
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}
