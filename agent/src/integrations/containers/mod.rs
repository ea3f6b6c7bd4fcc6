//! The `containers` integration: the containers of a Docker engine (or podman's `podman system
//! service`, which serves the same API), read through the Docker Engine API on its unix socket
//! ([`api`]): on each interval the list (`/containers/json?all=1`), then for each container
//! its inspect (`/containers/{id}/json`) and, for a running one, one stats reading
//! (`/containers/{id}/stats?stream=false`), a few containers at a time. With `logs = true`,
//! each container's output is shipped as log lines too ([`logs`]).
//!
//! Every sample is labelled `container` (its name), `image`, and `compose_project` and
//! `compose_service` when it has Docker Compose's labels. Names follow OpenTelemetry's
//! container semantic conventions where they have one (`container.cpu.time`,
//! `container.cpu.usage`, `container.memory.usage`, `container.network.io`);
//! docs/integrations.md has the table.
//!
//! Bounds: at most [`MAX_CONTAINERS`] containers a read (the rest are counted and left), each
//! answer read up to its size bound ([`MAX_LIST_BYTES`], [`MAX_INSPECT_BYTES`],
//! [`MAX_STATS_BYTES`]), and the whole read within the integration's `timeout`.

pub mod api;
pub mod logs;
pub mod model;
pub mod mux;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use lookout_protocol::{MetricSample, MetricType};
use tokio::sync::Semaphore;

use super::ReadError;
use api::{Api, ApiError};
use model::{HEALTH_STATUSES, Inspect, Listed, Stats};

/// Most containers read in one interval.
pub const MAX_CONTAINERS: usize = 1000;
/// Largest list answer read.
pub const MAX_LIST_BYTES: usize = 16 << 20;
/// Largest inspect answer read.
pub const MAX_INSPECT_BYTES: usize = 1 << 20;
/// Largest stats answer read.
pub const MAX_STATS_BYTES: usize = 256 << 10;
/// Containers inspected at once.
const AT_ONCE: usize = 8;

/// What one read found about one container.
#[derive(Debug, Clone)]
pub struct Seen {
    /// As listed.
    pub listed: Listed,
    /// Its inspect; `None` when it went away between the list and the inspect.
    pub inspect: Option<Inspect>,
    /// Its stats reading, for a running container.
    pub stats: Option<Stats>,
}

/// One read.
#[derive(Debug, Clone, Default)]
pub struct Reading {
    /// The containers, at most [`MAX_CONTAINERS`].
    pub containers: Vec<Seen>,
    /// Containers past the bound, left unread.
    pub skipped: usize,
}

/// A Docker engine: its API, the CPU time of the last read (for `container.cpu.usage`), and
/// its log shipping when `logs = true`.
pub struct Source {
    api: Api,
    cpu: HashMap<String, (u64, Instant)>,
    /// The log shipping, when on.
    pub logs: Option<logs::Logs>,
}

impl Source {
    /// The engine whose API is at `url` (`unix:///var/run/docker.sock`).
    pub fn new(url: &str) -> Result<Self, ReadError> {
        let api = Api::new(url)
            .ok_or_else(|| ReadError::Config(format!("{url:?} is not a unix socket URL")))?;
        Ok(Self {
            api,
            cpu: HashMap::new(),
            logs: None,
        })
    }

    /// The API it reads.
    pub fn api(&self) -> &Api {
        &self.api
    }

    /// Lists, inspects and reads the stats of the containers; starts following new output
    /// when logs are on.
    pub async fn read(&mut self) -> Result<Reading, ReadError> {
        let mut listed: Vec<Listed> = self
            .api
            .json("/containers/json?all=1", MAX_LIST_BYTES)
            .await
            .map_err(read_error)?;
        let skipped = listed.len().saturating_sub(MAX_CONTAINERS);
        listed.truncate(MAX_CONTAINERS);
        listed.retain(|c| api::safe_id(&c.id).is_some());
        if let Some(l) = &mut self.logs {
            l.tick(&listed);
        }
        let slots = Arc::new(Semaphore::new(AT_ONCE));
        let mut tasks = tokio::task::JoinSet::new();
        for (i, c) in listed.iter().enumerate() {
            let (api, slots, id) = (self.api.clone(), slots.clone(), c.id.clone());
            let running = c.state == "running";
            tasks.spawn(async move {
                let _slot = slots.acquire_owned().await;
                let inspect: Result<Inspect, ApiError> = api
                    .json(&format!("/containers/{id}/json"), MAX_INSPECT_BYTES)
                    .await;
                let stats = if running {
                    api.json::<Stats>(
                        &format!("/containers/{id}/stats?stream=false"),
                        MAX_STATS_BYTES,
                    )
                    .await
                    .ok()
                } else {
                    None
                };
                (i, inspect, stats)
            });
        }
        let mut found: Vec<(Option<Inspect>, Option<Stats>)> = vec![(None, None); listed.len()];
        while let Some(done) = tasks.join_next().await {
            let Ok((i, inspect, stats)) = done else {
                continue;
            };
            match inspect {
                Ok(x) => found[i] = (Some(x), stats),
                // Gone since the list: left out of this read.
                Err(ApiError::Status { status: 404, .. }) => {}
                Err(e) => return Err(read_error(e)),
            }
        }
        let containers = listed
            .into_iter()
            .zip(found)
            .filter(|(_, (inspect, _))| inspect.is_some())
            .map(|(listed, (inspect, stats))| Seen {
                listed,
                inspect,
                stats,
            })
            .collect();
        Ok(Reading {
            containers,
            skipped,
        })
    }

    /// The samples of `reading`, taken at `time`, each with `labels` and the container's.
    pub fn samples(
        &mut self,
        reading: &Reading,
        time: DateTime<Utc>,
        labels: &BTreeMap<String, String>,
    ) -> Vec<MetricSample> {
        let now = Instant::now();
        let mut cpu = HashMap::with_capacity(reading.containers.len());
        let mut out = Vec::new();
        for c in &reading.containers {
            let mut l = labels.clone();
            l.insert("container".into(), c.listed.name());
            l.insert("image".into(), c.listed.image.clone());
            if let Some(p) = c.listed.compose_project() {
                l.insert("compose_project".into(), p.into());
            }
            if let Some(s) = c.listed.compose_service() {
                l.insert("compose_service".into(), s.into());
            }
            let mut push = |name: &str, value: f64, metric_type, extra: Option<(&str, &str)>| {
                let mut labels = l.clone();
                if let Some((k, v)) = extra {
                    labels.insert(k.into(), v.into());
                }
                out.push(MetricSample {
                    name: name.into(),
                    labels,
                    time,
                    value,
                    metric_type,
                });
            };
            let (gauge, counter) = (MetricType::Gauge, MetricType::Counter);
            if let Some(i) = &c.inspect {
                push(
                    "container.running",
                    f64::from(u8::from(i.state.running)),
                    gauge,
                    None,
                );
                push("container.restarts", i.restart_count as f64, counter, None);
                push("container.exit_code", i.state.exit_code as f64, gauge, None);
                let health = i.health();
                for h in HEALTH_STATUSES {
                    let v = f64::from(u8::from(h == health));
                    push("container.health", v, gauge, Some(("status", h)));
                }
            }
            let Some(s) = &c.stats else { continue };
            let used = s.cpu_stats.cpu_usage.total_usage;
            push("container.cpu.time", used as f64 / 1e9, counter, None);
            if let Some((before, at)) = self.cpu.get(&c.listed.id)
                && used >= *before
            {
                let secs = now.duration_since(*at).as_secs_f64();
                if secs > 0.0 {
                    let cores = (used - before) as f64 / 1e9 / secs;
                    push("container.cpu.usage", cores, gauge, None);
                }
            }
            cpu.insert(c.listed.id.clone(), (used, now));
            if let Some(u) = s.memory_stats.usage {
                push("container.memory.usage", u as f64, gauge, None);
            }
            if let Some(m) = s.memory_stats.limit {
                push("container.memory.limit", m as f64, gauge, None);
            }
            if let Some((rx, tx)) = s.network() {
                push(
                    "container.network.io",
                    rx as f64,
                    counter,
                    Some(("direction", "receive")),
                );
                push(
                    "container.network.io",
                    tx as f64,
                    counter,
                    Some(("direction", "transmit")),
                );
            }
        }
        // Only the containers of this read: a removed one's figure is forgotten.
        self.cpu = cpu;
        out
    }
}

/// An API error as a read error.
fn read_error(e: ApiError) -> ReadError {
    match e {
        ApiError::Connect { .. } => ReadError::Connect(e.to_string()),
        _ => ReadError::Command(e.to_string()),
    }
}

#[cfg(test)]
mod tests;
