//! `lookout-collector backup --to FILE`: a copy of the store to restore from, taken while the
//! collector runs.
//!
//! Why it exists: the SQLite file cannot be copied with `cp` while the collector writes (the
//! copy would mix pages of different moments, and miss what is still in `-wal`), and stopping
//! the collector to copy it makes a gap. So:
//!
//! - **SQLite** ([`sqlite`]): SQLite's online backup API, in one step, on a connection that
//!   only reads. The step is one read transaction, so the copy is the database as of the moment
//!   it began (every batch acknowledged before then, none half), and in WAL mode a reader does
//!   not block the writer: ingest goes on. The file is written beside `FILE` (mode 0600), synced,
//!   then renamed to `FILE`, so `FILE` is either absent or whole; an existing `FILE` is kept
//!   unless `--force`.
//! - **PostgreSQL** ([`postgres`]): its own tool does it better than we could (`pg_dump`, a
//!   consistent snapshot while collectors write). The command says the exact `pg_dump` line
//!   (the URL without its password), whether `pg_dump` is on `PATH`, and exits non-zero, since it
//!   made no backup.
//!
//! Restore: docs/deployment.md, "Backups and restore".

pub mod postgres;
pub mod sqlite;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use lookout_config::CollectorConfig;

/// Why a backup was not made. Each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// `--to` names a file that exists, and `--force` was not given.
    #[error("{} exists: choose another --to, or pass --force to replace it", path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// `--to` names the live database itself.
    #[error("{} is the collector's own database: choose another --to", path.display())]
    IsTheDatabase {
        /// The file.
        path: PathBuf,
    },
    /// There is no database where the configuration says.
    #[error(
        "no database at {} (the configuration's [storage] url, or [server] data_dir/lookout.db)",
        path.display()
    )]
    NoDatabase {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// The file at the configured path is not an SQLite database.
    #[error("{} is not an SQLite database", path.display())]
    NotADatabase {
        /// The file.
        path: PathBuf,
    },
    /// The database stayed locked past the busy timeout (a checkpoint in `TRUNCATE` mode or a
    /// recovery by another process holds it).
    #[error(
        "{} stayed locked for more than {} s: try again (nothing was written)",
        path.display(),
        sqlite::BUSY_TIMEOUT.as_secs()
    )]
    Locked {
        /// The database.
        path: PathBuf,
    },
    /// The disk that holds `--to` filled up; the partial copy was removed.
    #[error(
        "the disk holding {} is full (the database is {} bytes): free space or choose another \
         --to (nothing was written)",
        dir.display(),
        needed
    )]
    DiskFull {
        /// The folder of `--to`.
        dir: PathBuf,
        /// The database's size, in bytes: about what the copy needs.
        needed: u64,
    },
    /// A file operation failed.
    #[error("cannot {what} {}: {source}", path.display())]
    Io {
        /// What was being done ("write in", "sync", ...).
        what: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// SQLite refused for another reason.
    #[error("SQLite error while copying {}: {source}", path.display())]
    Sqlite {
        /// The database.
        path: PathBuf,
        /// The cause.
        source: rusqlite::Error,
    },
    /// The store is PostgreSQL: `pg_dump` backs it up. Not a failure of the command, but no
    /// backup was made, so it exits non-zero.
    #[error("{0}")]
    UsePgDump(postgres::Advice),
    /// The storage URL is neither SQLite nor PostgreSQL.
    #[error("unsupported storage URL {0:?}: expected sqlite://PATH or postgres://...")]
    Unsupported(String),
}

/// Backs up the store `config` names to `to`; the sentence to print on success.
pub fn run(config: &CollectorConfig, to: &Path, force: bool) -> Result<String, BackupError> {
    let url = config.storage.resolved_url(&config.server.data_dir);
    if let Some(db) = crate::store::sqlite_path(&url) {
        let done = sqlite::backup(db, to, force)?;
        Ok(format!(
            "backed up {} to {}: {} bytes in {:.1} s, the database as it was when the copy \
             began",
            db.display(),
            to.display(),
            done.bytes,
            done.took.as_secs_f64()
        ))
    } else if crate::store::is_postgres(&url) {
        Err(BackupError::UsePgDump(postgres::advice(
            &url,
            to,
            postgres::find_on_path("pg_dump"),
        )))
    } else {
        Err(BackupError::Unsupported(crate::store::redact(&url)))
    }
}
