//! `lookout-collector agents list|revoke NAME|rotate NAME|allow-reenroll NAME`: the admin's
//! operations on agents ([`super::ops`]) from a shell, against the store the configuration
//! names. They need no running collector and work beside one (SQLite or PostgreSQL); a running
//! collector sees the change within [`super::REFRESH`].

use lookout_config::CollectorConfig;

use super::ops::{self, OpError};

/// One of the `agents` commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentsCommand {
    /// Every agent, configured and enrolled, with where it comes from.
    List,
    /// Revoke an enrolled agent's credential.
    Revoke(String),
    /// Give an enrolled agent a new credential (printed once).
    Rotate(String),
    /// Let an enrolled name enrol once more.
    AllowReenroll(String),
}

/// Why an `agents` command failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The store could not be opened.
    #[error("cannot open the store: {0}")]
    Open(#[source] crate::store::StoreError),
    /// The operation was refused or failed.
    #[error(transparent)]
    Op(#[from] OpError),
}

/// Runs `command` on the store of `config`; the text to print on success.
pub async fn run(config: &CollectorConfig, command: AgentsCommand) -> Result<String, CommandError> {
    let url = config.storage.resolved_url(&config.server.data_dir);
    let store = crate::store::open(&url, &config.storage)
        .await
        .map_err(CommandError::Open)?;
    let now = crate::clock::now();
    let store = store.as_ref();
    Ok(match command {
        AgentsCommand::List => table(&ops::list(store, config).await?),
        AgentsCommand::Revoke(name) => {
            let at = ops::revoke(store, config, &name, now).await?;
            format!(
                "{name}: revoked at {}; its next request is refused (a running collector \
                 learns of it within {} s)",
                at.to_rfc3339(),
                super::REFRESH.as_secs()
            )
        }
        AgentsCommand::Rotate(name) => {
            let r = ops::rotate(store, config, &name, now).await?;
            format!(
                "{name}: new credential {}\nThe agent is given it on its next request; the \
                 old one works until {}.",
                r.credential.expose(),
                r.previous_valid_until.to_rfc3339()
            )
        }
        AgentsCommand::AllowReenroll(name) => {
            let until = ops::allow_reenroll(store, config, &name, now).await?;
            format!("{name}: may enrol once more until {}", until.to_rfc3339())
        }
    })
}

/// The agents as a table: name, origin, lifecycle, enrolled, revoked (`-` for none).
fn table(agents: &[ops::AgentListing]) -> String {
    let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map_or_else(
            || "-".to_string(),
            |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        )
    };
    let rows: Vec<[String; 5]> = agents
        .iter()
        .map(|a| {
            [
                a.name.clone(),
                a.origin.to_string(),
                a.lifecycle.clone(),
                time(a.enrolled_at),
                time(a.revoked_at),
            ]
        })
        .collect();
    let header = ["NAME", "ORIGIN", "LIFECYCLE", "ENROLLED", "REVOKED"].map(String::from);
    let mut widths = [0usize; 5];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    std::iter::once(&header)
        .chain(&rows)
        .map(|row| {
            row.iter()
                .zip(widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}
