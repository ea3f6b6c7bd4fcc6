//! The parts of the Docker Engine API's answers the integration reads, and what it makes of
//! them: `GET /containers/json?all=1` (the list), `GET /containers/{id}/json` (inspect) and
//! `GET /containers/{id}/stats?stream=false` (one reading). Fields missing from an answer (an
//! older engine, podman's compat layer, a stopped container's empty stats) are read as absent,
//! never as an error.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The label Docker Compose puts its project's name in.
pub const COMPOSE_PROJECT: &str = "com.docker.compose.project";
/// The label Docker Compose puts the service's name in.
pub const COMPOSE_SERVICE: &str = "com.docker.compose.service";

/// One container of `GET /containers/json?all=1`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Listed {
    /// The container's id (hex).
    pub id: String,
    /// Its names, each with a leading `/`.
    #[serde(default, deserialize_with = "null_as_none")]
    pub names: Vec<String>,
    /// The image as the container was created from it (`debian:bookworm-slim`).
    #[serde(default)]
    pub image: String,
    /// `created`, `running`, `paused`, `restarting`, `removing`, `exited` or `dead`.
    #[serde(default)]
    pub state: String,
    /// Its labels (null in some engines' answers when there are none).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub labels: BTreeMap<String, String>,
}

impl Listed {
    /// Its name, without the leading `/`; the id's first 12 digits when it has none.
    pub fn name(&self) -> String {
        match self.names.first() {
            Some(n) => n.trim_start_matches('/').to_string(),
            None => self.id.chars().take(12).collect(),
        }
    }

    /// Its compose project, when it has the label.
    pub fn compose_project(&self) -> Option<&str> {
        self.labels.get(COMPOSE_PROJECT).map(String::as_str)
    }

    /// Its compose service, when it has the label.
    pub fn compose_service(&self) -> Option<&str> {
        self.labels.get(COMPOSE_SERVICE).map(String::as_str)
    }
}

/// `GET /containers/{id}/json`, the parts read.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Inspect {
    /// Its name, with a leading `/`.
    #[serde(default)]
    pub name: String,
    /// Times the engine restarted it under its restart policy.
    #[serde(default)]
    pub restart_count: u64,
    /// Its state.
    #[serde(default)]
    pub state: State,
    /// Its configuration.
    #[serde(default)]
    pub config: Config,
}

/// `State` of an inspect.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct State {
    /// As in the list (`running`, `exited`...).
    #[serde(default)]
    pub status: String,
    /// Whether it runs.
    #[serde(default)]
    pub running: bool,
    /// The last exit's code (0 while it has never exited).
    #[serde(default)]
    pub exit_code: i64,
    /// Its health check's state; absent when it has none.
    #[serde(default)]
    pub health: Option<Health>,
}

/// `State.Health` of an inspect.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    /// `starting`, `healthy` or `unhealthy` (empty or `none` when there is no check).
    #[serde(default)]
    pub status: String,
}

/// `Config` of an inspect.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Config {
    /// Whether it has a terminal: its log is then one raw stream, not multiplexed frames.
    #[serde(default)]
    pub tty: bool,
}

/// The health statuses, in the order the `container.health` series are shipped.
pub const HEALTH_STATUSES: [&str; 4] = ["healthy", "unhealthy", "starting", "none"];

impl Inspect {
    /// One of [`HEALTH_STATUSES`]: `none` when it has no health check.
    pub fn health(&self) -> &'static str {
        let s = self.state.health.as_ref().map(|h| h.status.as_str());
        HEALTH_STATUSES[..3]
            .iter()
            .find(|h| Some(**h) == s)
            .copied()
            .unwrap_or("none")
    }
}

/// `GET /containers/{id}/stats?stream=false`, the parts read.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Stats {
    /// CPU time.
    #[serde(default)]
    pub cpu_stats: CpuStats,
    /// Memory.
    #[serde(default)]
    pub memory_stats: MemoryStats,
    /// Bytes by network interface (absent with the host's network).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub networks: BTreeMap<String, Network>,
}

/// `cpu_stats` of a reading.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CpuStats {
    /// CPU time used.
    #[serde(default)]
    pub cpu_usage: CpuUsage,
}

/// `cpu_stats.cpu_usage` of a reading.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CpuUsage {
    /// CPU time used since the container started, in nanoseconds.
    #[serde(default)]
    pub total_usage: u64,
}

/// `memory_stats` of a reading.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct MemoryStats {
    /// Memory used, in bytes, as the cgroup counts it (page cache included).
    #[serde(default)]
    pub usage: Option<u64>,
    /// The container's memory limit, in bytes (the host's memory when it has none).
    #[serde(default)]
    pub limit: Option<u64>,
}

/// One interface of `networks`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Network {
    /// Bytes received.
    #[serde(default)]
    pub rx_bytes: u64,
    /// Bytes sent.
    #[serde(default)]
    pub tx_bytes: u64,
}

impl Stats {
    /// Bytes received and sent over every interface; `None` when the reading has none.
    pub fn network(&self) -> Option<(u64, u64)> {
        (!self.networks.is_empty()).then(|| {
            self.networks.values().fold((0u64, 0u64), |(rx, tx), n| {
                (rx.saturating_add(n.rx_bytes), tx.saturating_add(n.tx_bytes))
            })
        })
    }
}

fn null_as_none<'de, D>(d: D) -> Result<Vec<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

fn null_as_empty<'de, D, T>(d: D) -> Result<BTreeMap<String, T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<BTreeMap<String, T>>::deserialize(d)?.unwrap_or_default())
}
