//! Host metrics: CPU, memory, swap, filesystems, network and load, named after OpenTelemetry's
//! semantic conventions for system metrics.
//!
//! | metric | labels | type | unit |
//! |---|---|---|---|
//! | `system.cpu.utilization` | `cpu` = all, 0, 1, ...; `state` = user, nice, system, idle, iowait, irq, softirq, steal | gauge | fraction 0..1 of the interval (Linux); without /proc, one unlabeled busy fraction |
//! | `system.cpu.load_average.1m` / `.5m` / `.15m` | | gauge | runnable tasks |
//! | `system.memory.usage` | `state` = used, free | gauge | bytes |
//! | `system.memory.limit` | | gauge | bytes |
//! | `system.memory.utilization` | | gauge | fraction 0..1 (used / limit) |
//! | `system.paging.usage` | `state` = used, free | gauge | bytes (swap) |
//! | `system.filesystem.usage` | `mountpoint`, `device`, `type`, `state` = used, free | gauge | bytes |
//! | `system.filesystem.utilization` | `mountpoint`, `device`, `type` | gauge | fraction 0..1 |
//! | `system.filesystem.inodes.usage` | `mountpoint`, `device`, `type`, `state` = used, free | gauge | inodes |
//! | `system.memory.usage` | `state` = cached, buffers (Linux, besides used and free) | gauge | bytes |
//! | `system.linux.memory.available` | | gauge | bytes (MemAvailable) |
//! | `system.network.io` | `device`, `direction` = receive, transmit | counter | bytes since boot |
//! | `system.network.packets`, `.errors`, `.dropped` | `device`, `direction` | counter | packets since boot (Linux) |
//! | `system.linux.tcp.sockets` | `state` = in_use (IPv4 + IPv6, not in TIME_WAIT), time_wait, orphan | gauge | sockets (Linux, /proc/net/sockstat) |
//! | `system.linux.tcp.current_established` | | gauge | connections ESTABLISHED or CLOSE_WAIT (Linux, /proc/net/snmp `CurrEstab`) |
//! | `system.network.connections` | `protocol` = tcp, `state` = ESTABLISHED, LISTEN, ... | gauge | sockets (Linux, IPv4 + IPv6; only with `tcp_states = true`) |
//! | `system.disk.io` | `device`, `direction` = read, write | counter | bytes since boot (Linux) |
//! | `system.disk.operations` | `device`, `direction` | counter | operations since boot (Linux) |
//! | `system.disk.io_time` | `device` | counter | seconds busy since boot (Linux) |
//! | `system.linux.pressure.stall_time` | `resource` = cpu, memory, io; `kind` = some, full | counter | seconds (Linux PSI) |
//! | `system.linux.file_descriptor.count` | `state` = allocated, max | gauge | descriptors (Linux) |
//! | `system.processes.count` | `status` = running, total | gauge | processes (Linux) |
//! | `system.uptime` | | gauge | seconds since boot |
//!
//! Counters are sent as running totals (`metric_type = counter`); rates are computed where they
//! are read (the one exception is CPU, whose per-state shares are computed here from the
//! difference of two readings, as node_exporter users graph them). Pseudo filesystems (proc,
//! tmpfs, overlay, ...), loop and RAM disks are left out.

pub mod procfs;

use std::collections::BTreeMap;

use chrono::Utc;
use lookout_config::HostMetricsConfig;
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
    /// What to collect.
    cfg: HostMetricsConfig,
    /// The previous `/proc/stat` reading, for CPU shares.
    cpu_before: Option<std::collections::BTreeMap<String, procfs::CpuTimes>>,
}

impl std::fmt::Debug for HostCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostCollector").finish_non_exhaustive()
    }
}

impl HostCollector {
    /// Starts collecting; the first CPU figure comes from the second [`HostCollector::sample`].
    pub fn new(cfg: HostMetricsConfig) -> Result<Self, sysinfo::Error> {
        let mut system = System::new()?;
        system.refresh_cpu_usage();
        Ok(Self {
            cfg,
            system,
            disks: Disks::new_with_refreshed_list()?,
            networks: Networks::new_with_refreshed_list()?,
            cpu_before: std::fs::read_to_string("/proc/stat")
                .ok()
                .map(|t| procfs::parse_stat(&t)),
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

        let cfg = self.cfg.clone();
        if cfg.collects("cpu") {
            self.system.refresh_cpu_usage();
            match (
                std::fs::read_to_string("/proc/stat")
                    .ok()
                    .map(|t| procfs::parse_stat(&t)),
                &self.cpu_before,
            ) {
                (Some(now), Some(before)) => {
                    for (cpu, after) in &now {
                        if let Some(b) = before.get(cpu) {
                            for (state, share) in procfs::utilization(b, after) {
                                push(
                                    "system.cpu.utilization",
                                    &[("cpu", cpu), ("state", state)],
                                    share,
                                    gauge,
                                );
                            }
                        }
                    }
                    self.cpu_before = Some(now);
                }
                _ => push(
                    "system.cpu.utilization",
                    &[],
                    f64::from(self.system.global_cpu_usage()) / 100.0,
                    gauge,
                ),
            }
        }
        if cfg.collects("load")
            && let Ok(load) = System::load_average()
        {
            push("system.cpu.load_average.1m", &[], load.one, gauge);
            push("system.cpu.load_average.5m", &[], load.five, gauge);
            push("system.cpu.load_average.15m", &[], load.fifteen, gauge);
        }

        if cfg.collects("memory") {
            self.system.refresh_memory();
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
        }

        if cfg.collects("filesystem") {
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
                // sysinfo has no inode counts; statvfs of the mount point has them.
                if let Ok(st) = rustix::fs::statvfs(disk.mount_point())
                    && st.f_files > 0
                {
                    for (state, v) in [
                        ("used", st.f_files.saturating_sub(st.f_ffree)),
                        ("free", st.f_ffree),
                    ] {
                        let mut l = labels.to_vec();
                        l.push(("state", state));
                        push("system.filesystem.inodes.usage", &l, v as f64, gauge);
                    }
                }
            }
        }

        linux_extras(&mut push, &cfg);

        if cfg.collects("network") {
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
        }
        out
    }
}

/// The figures read from `/proc` alone; nothing when a file is missing.
fn linux_extras(
    push: &mut impl FnMut(&str, &[(&str, &str)], f64, MetricType),
    cfg: &HostMetricsConfig,
) {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let (gauge, counter) = (MetricType::Gauge, MetricType::Counter);
    if cfg.collects("memory")
        && let Some(t) = read("/proc/meminfo")
    {
        let kib = |key: &str| {
            t.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
                .map(|v| v * 1024.0)
        };
        if let Some(v) = kib("Cached:") {
            push("system.memory.usage", &[("state", "cached")], v, gauge);
        }
        if let Some(v) = kib("Buffers:") {
            push("system.memory.usage", &[("state", "buffers")], v, gauge);
        }
        if let Some(v) = kib("MemAvailable:") {
            push("system.linux.memory.available", &[], v, gauge);
        }
    }
    if cfg.collects("network")
        && let Some(t) = read("/proc/net/dev")
    {
        for (dev, d) in procfs::parse_net_dev(&t) {
            for (dir, v) in [("receive", d.rx), ("transmit", d.tx)] {
                let l = [("device", dev.as_str()), ("direction", dir)];
                push("system.network.packets", &l, v[1] as f64, counter);
                push("system.network.errors", &l, v[2] as f64, counter);
                push("system.network.dropped", &l, v[3] as f64, counter);
            }
        }
    }
    if cfg.collects("disk")
        && let Some(t) = read("/proc/diskstats")
    {
        for (dev, d) in procfs::parse_diskstats(&t) {
            for (dir, bytes, ops) in [
                ("read", d.read_bytes, d.reads),
                ("write", d.written_bytes, d.writes),
            ] {
                let l = [("device", dev.as_str()), ("direction", dir)];
                push("system.disk.io", &l, bytes as f64, counter);
                push("system.disk.operations", &l, ops as f64, counter);
            }
            push(
                "system.disk.io_time",
                &[("device", dev.as_str())],
                d.busy_ms as f64 / 1000.0,
                counter,
            );
        }
    }
    for resource in ["cpu", "memory", "io"]
        .into_iter()
        .filter(|_| cfg.collects("pressure"))
    {
        if let Some(t) = read(&format!("/proc/pressure/{resource}")) {
            for (kind, micros) in procfs::parse_pressure(&t) {
                let l = [("resource", resource), ("kind", kind)];
                push(
                    "system.linux.pressure.stall_time",
                    &l,
                    micros as f64 / 1e6,
                    counter,
                );
            }
        }
    }
    if cfg.collects("connections") {
        // Counters the kernel keeps: reading them costs microseconds whatever the host.
        let (v4, v6) = (read("/proc/net/sockstat"), read("/proc/net/sockstat6"));
        let v4 = v4.as_deref().map(|t| procfs::parse_sockstat_tcp(t, "TCP"));
        let v6 = v6.as_deref().map(|t| procfs::parse_sockstat_tcp(t, "TCP6"));
        if let Some(v4) = &v4 {
            let in_use = v4.get("inuse").copied().unwrap_or(0)
                + v6.as_ref()
                    .and_then(|v| v.get("inuse").copied())
                    .unwrap_or(0);
            for (state, n) in [
                ("in_use", Some(in_use)),
                ("time_wait", v4.get("tw").copied()),
                ("orphan", v4.get("orphan").copied()),
            ] {
                if let Some(n) = n {
                    push(
                        "system.linux.tcp.sockets",
                        &[("state", state)],
                        n as f64,
                        gauge,
                    );
                }
            }
        }
        if let Some(n) =
            read("/proc/net/snmp").and_then(|t| procfs::parse_snmp_tcp(&t, "CurrEstab"))
        {
            push("system.linux.tcp.current_established", &[], n as f64, gauge);
        }
    }
    let mut tcp = BTreeMap::new();
    for f in ["/proc/net/tcp", "/proc/net/tcp6"]
        .into_iter()
        .filter(|_| cfg.tcp_states && cfg.collects("connections"))
    {
        if let Some(t) = read(f) {
            procfs::count_tcp(&t, &mut tcp);
        }
    }
    for (state, n) in tcp {
        push(
            "system.network.connections",
            &[("protocol", "tcp"), ("state", state)],
            n as f64,
            gauge,
        );
    }
    if let Some((allocated, max)) = read("/proc/sys/fs/file-nr")
        .filter(|_| cfg.collects("files"))
        .as_deref()
        .and_then(procfs::parse_file_nr)
    {
        push(
            "system.linux.file_descriptor.count",
            &[("state", "allocated")],
            allocated as f64,
            gauge,
        );
        push(
            "system.linux.file_descriptor.count",
            &[("state", "max")],
            max as f64,
            gauge,
        );
    }
    if let Some((running, total)) = read("/proc/loadavg")
        .filter(|_| cfg.collects("processes"))
        .as_deref()
        .and_then(procfs::parse_processes)
    {
        push(
            "system.processes.count",
            &[("status", "running")],
            running as f64,
            gauge,
        );
        push(
            "system.processes.count",
            &[("status", "total")],
            total as f64,
            gauge,
        );
    }
    if let Some(up) = read("/proc/uptime")
        .filter(|_| cfg.collects("uptime"))
        .as_deref()
        .and_then(procfs::parse_uptime)
    {
        push("system.uptime", &[], up, gauge);
    }
}

#[cfg(test)]
mod tests;
