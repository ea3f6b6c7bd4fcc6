//! The log tests' rig: a collector, the configuration of an agent that tails files into it,
//! and the lines the collector stored.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::{Daemon, collector_toml, free_port, start_collector};

/// The agent's name and token in the collector [`LogsRig`] starts.
pub const AGENT: &str = "edge";
const TOKEN: &str = "logs-agent-token-0123456789abcdef";

/// A running collector and an agent configuration for it (`agent.toml`, no host metrics).
pub struct LogsRig {
    /// The collector (stopped when dropped).
    pub collector: Daemon,
    /// The agent's configuration file, for [`crate::start_agent`].
    pub config: PathBuf,
    /// The collector's SQLite database.
    pub db: PathBuf,
    _dirs: [tempfile::TempDir; 2],
}

impl LogsRig {
    /// Starts a collector that knows agent [`AGENT`], and writes the configuration of that
    /// agent: one `[[logs]]` entry reading `paths` from their beginning, and `shipping` (lines
    /// of TOML) in its `[shipping]` table.
    pub fn new(paths: &[&Path], shipping: &str) -> Result<Self> {
        let (cdir, adir) = (tempfile::tempdir()?, tempfile::tempdir()?);
        let port = free_port();
        let (collector, _) = start_collector(
            cdir.path(),
            &collector_toml(cdir.path(), port.get(), AGENT, TOKEN, ""),
        )?;
        let config = adir.path().join("agent.toml");
        let paths: Vec<String> = paths
            .iter()
            .map(|p| format!("{:?}", p.display().to_string()))
            .collect();
        std::fs::write(
            &config,
            format!(
                "name = \"{AGENT}\"\ncollector = \"http://127.0.0.1:{port}\"\ntoken = \"{TOKEN}\"\ndata_dir = \"{}\"\n\
                 [host_metrics]\nenabled = false\n\
                 [shipping]\n{shipping}\n\
                 [[logs]]\npaths = [{}]\nread_from = \"beginning\"\n",
                adir.path().display(),
                paths.join(", "),
            ),
        )?;
        Ok(Self {
            collector,
            config,
            db: cdir.path().join("lookout.db"),
            _dirs: [cdir, adir],
        })
    }
}

/// The log lines the collector at `db` stored for [`AGENT`]: (time in ms, id, text).
pub async fn stored_lines(db: &Path) -> Result<Vec<(i64, i64, String)>> {
    let url = format!("sqlite://{}?mode=ro", db.display());
    let pool = sqlx::SqlitePool::connect(&url).await?;
    let rows = sqlx::query_as("SELECT time_ms, id, text FROM logs WHERE agent = $1")
        .bind(AGENT)
        .fetch_all(&pool)
        .await?;
    pool.close().await;
    Ok(rows)
}
