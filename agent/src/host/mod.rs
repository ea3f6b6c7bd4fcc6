//! Host metrics: CPU, memory, swap, filesystems, network and load, named after OpenTelemetry's
//! semantic conventions for system metrics.
//!
//! | metric | labels | type | unit |
//! |---|---|---|---|
//! | `system.cpu.utilization` | (none: all cores) | gauge | fraction 0..1 |
//! | `system.cpu.load_average.1m` / `.5m` / `.15m` | | gauge | runnable tasks |
//! | `system.memory.usage` | `state` = used, free | gauge | bytes |
//! | `system.memory.limit` | | gauge | bytes |
//! | `system.memory.utilization` | | gauge | fraction 0..1 (used / limit) |
//! | `system.paging.usage` | `state` = used, free | gauge | bytes (swap) |
//! | `system.filesystem.usage` | `mountpoint`, `device`, `type`, `state` = used, free | gauge | bytes |
//! | `system.filesystem.utilization` | `mountpoint`, `device`, `type` | gauge | fraction 0..1 |
//! | `system.network.io` | `device`, `direction` = receive, transmit | counter | bytes since boot |
//!
//! Counters are sent as running totals (`metric_type = counter`); rates are computed where they
//! are read. Pseudo filesystems (proc, tmpfs, overlay, ...) are left out.

use std::collections::BTreeMap;

use chrono::Utc;
use lookout_protocol::{MetricSample, MetricType};
use sysinfo::{Disks, Networks, System};

/// Filesystem types that hold no user data.
const PSEUDO_FS: &[&str] = &[
    "proc",
    "sysfs",
    "tmpfs",
    "devtmpfs",
    "devpts",
    "cgroup",
    "cgroup2",
    "overlay",
    "squashfs",
    "securityfs",
    "debugfs",
    "tracefs",
    "pstore",
    "bpf",
    "autofs",
    "mqueue",
    "hugetlbfs",
    "configfs",
    "fusectl",
    "nsfs",
    "ramfs",
    "rpc_pipefs",
    "binfmt_misc",
];

/// Takes host metric samples; keeps sysinfo's state between samples (CPU usage is a difference).
pub struct HostCollector {
    system: System,
    disks: Disks,
    networks: Networks,
}

impl std::fmt::Debug for HostCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostCollector").finish_non_exhaustive()
    }
}

impl HostCollector {
    /// Starts collecting; the first CPU figure comes from the second [`HostCollector::sample`].
    pub fn new() -> Result<Self, sysinfo::Error> {
        let mut system = System::new()?;
        system.refresh_cpu_usage();
        Ok(Self {
            system,
            disks: Disks::new_with_refreshed_list()?,
            networks: Networks::new_with_refreshed_list()?,
        })
    }

    /// One sample of every metric.
    pub fn sample(&mut self) -> Vec<MetricSample> {
        let time = Utc::now();
        let mut out = Vec::with_capacity(32);
        let mut push =
            |name: &str, labels: &[(&str, &str)], value: f64, metric_type: MetricType| {
                if value.is_finite() {
                    out.push(MetricSample {
                        name: name.to_string(),
                        labels: labels
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .collect::<BTreeMap<_, _>>(),
                        time,
                        value,
                        metric_type,
                    });
                }
            };
        let gauge = MetricType::Gauge;

        self.system.refresh_cpu_usage();
        self.system.refresh_memory();
        push(
            "system.cpu.utilization",
            &[],
            f64::from(self.system.global_cpu_usage()) / 100.0,
            gauge,
        );
        if let Ok(load) = System::load_average() {
            push("system.cpu.load_average.1m", &[], load.one, gauge);
            push("system.cpu.load_average.5m", &[], load.five, gauge);
            push("system.cpu.load_average.15m", &[], load.fifteen, gauge);
        }

        let total = self.system.total_memory() as f64;
        let used = total - self.system.available_memory() as f64;
        push("system.memory.limit", &[], total, gauge);
        push("system.memory.usage", &[("state", "used")], used, gauge);
        push(
            "system.memory.usage",
            &[("state", "free")],
            total - used,
            gauge,
        );
        if total > 0.0 {
            push("system.memory.utilization", &[], used / total, gauge);
        }
        let swap_total = self.system.total_swap() as f64;
        let swap_used = self.system.used_swap() as f64;
        push(
            "system.paging.usage",
            &[("state", "used")],
            swap_used,
            gauge,
        );
        push(
            "system.paging.usage",
            &[("state", "free")],
            swap_total - swap_used,
            gauge,
        );

        self.disks.refresh(true);
        for disk in self.disks.iter() {
            let fs = disk.file_system().to_string_lossy();
            if PSEUDO_FS.contains(&fs.as_ref()) {
                continue;
            }
            let mount = disk.mount_point().to_string_lossy();
            let device = disk.name().to_string_lossy();
            let labels = [
                ("mountpoint", mount.as_ref()),
                ("device", device.as_ref()),
                ("type", fs.as_ref()),
            ];
            let size = disk.total_space() as f64;
            let free = disk.available_space() as f64;
            let mut with_state = |state: &'static str, v: f64| {
                let mut l = labels.to_vec();
                l.push(("state", state));
                push("system.filesystem.usage", &l, v, gauge);
            };
            with_state("used", size - free);
            with_state("free", free);
            if size > 0.0 {
                push(
                    "system.filesystem.utilization",
                    &labels,
                    (size - free) / size,
                    gauge,
                );
            }
        }

        self.networks.refresh(true);
        for (name, data) in self.networks.iter() {
            let device = name.to_string_lossy();
            let rx = [("device", device.as_ref()), ("direction", "receive")];
            let tx = [("device", device.as_ref()), ("direction", "transmit")];
            push(
                "system.network.io",
                &rx,
                data.total_received() as f64,
                MetricType::Counter,
            );
            push(
                "system.network.io",
                &tx,
                data.total_transmitted() as f64,
                MetricType::Counter,
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meminfo_kib(key: &str) -> Option<f64> {
        let text = std::fs::read_to_string("/proc/meminfo").ok()?;
        text.lines()
            .find(|l| l.starts_with(key))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }

    #[test]
    fn memory_limit_is_memtotal_and_samples_are_sane() {
        let mut c = HostCollector::new().unwrap();
        let samples = c.sample();
        let get = |name: &str| samples.iter().find(|s| s.name == name).map(|s| s.value);
        if let Some(kib) = meminfo_kib("MemTotal:") {
            assert_eq!(get("system.memory.limit").unwrap(), kib * 1024.0);
        }
        let util = get("system.memory.utilization").unwrap();
        assert!((0.0..=1.0).contains(&util), "{util}");
        let cpu = get("system.cpu.utilization").unwrap();
        assert!((0.0..=1.0).contains(&cpu), "{cpu}");
        assert!(get("system.cpu.load_average.1m").unwrap() >= 0.0);
        assert!(samples.iter().any(|s| s.name == "system.network.io"
            && s.labels.get("device").map(String::as_str) == Some("lo")));
        assert!(samples.iter().all(|s| s.value.is_finite()));
    }
}
