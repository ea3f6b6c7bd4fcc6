//! The host collector's figures against the kernel's own files and statvfs.

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
    let mut c = HostCollector::new(HostMetricsConfig::default()).unwrap();
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

#[test]
fn linux_figures_match_proc() {
    let Ok(uptime) = std::fs::read_to_string("/proc/uptime") else {
        return;
    };
    let mut c = HostCollector::new(HostMetricsConfig::default()).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let samples = c.sample();
    let find = |name: &str, labels: &[(&str, &str)]| {
        samples
            .iter()
            .find(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
    };
    // CPU shares of all CPUs over the interval add up to the whole interval.
    let shares: f64 = samples
        .iter()
        .filter(|s| {
            s.name == "system.cpu.utilization"
                && s.labels.get("cpu").map(String::as_str) == Some("all")
        })
        .map(|s| s.value)
        .sum();
    assert!(shares == 0.0 || (shares - 1.0).abs() < 1e-6, "{shares}");
    let up: f64 = uptime.split_whitespace().next().unwrap().parse().unwrap();
    let got = find("system.uptime", &[]).unwrap();
    assert!((got - up).abs() < 5.0, "uptime {got} vs /proc {up}");
    assert!(find("system.processes.count", &[("status", "total")]).unwrap() >= 1.0);
    let (allocated, _) =
        procfs::parse_file_nr(&std::fs::read_to_string("/proc/sys/fs/file-nr").unwrap()).unwrap();
    let fds = find(
        "system.linux.file_descriptor.count",
        &[("state", "allocated")],
    )
    .unwrap();
    assert!(
        (fds - allocated as f64).abs() < 1000.0,
        "{fds} vs {allocated}"
    );
    assert!(
        find(
            "system.network.packets",
            &[("device", "lo"), ("direction", "receive")]
        )
        .is_some()
    );
}

mod filesystem_tests {
    use super::*;

    /// Each mount's bytes and inodes, as collected, against statvfs of its mount point.
    #[test]
    fn filesystem_sizes_and_inodes_match_statvfs() {
        let mut c = HostCollector::new(HostMetricsConfig {
            groups: vec!["filesystem".into()],
            ..HostMetricsConfig::default()
        })
        .unwrap();
        let samples = c.sample();
        let value = |name: &str, mount: &str, state: &str| {
            samples
                .iter()
                .find(|s| {
                    s.name == name
                        && s.labels.get("mountpoint").map(String::as_str) == Some(mount)
                        && s.labels.get("state").map(String::as_str) == Some(state)
                })
                .map(|s| s.value)
        };
        let mounts: std::collections::BTreeSet<String> = samples
            .iter()
            .filter(|s| s.name == "system.filesystem.usage")
            .filter_map(|s| s.labels.get("mountpoint").cloned())
            .collect();
        assert!(!mounts.is_empty(), "no filesystem collected");
        let mut checked = 0;
        for m in &mounts {
            let st = rustix::fs::statvfs(m.as_str()).unwrap();
            let size = (st.f_blocks * st.f_frsize) as f64;
            let used = value("system.filesystem.usage", m, "used").unwrap();
            let free = value("system.filesystem.usage", m, "free").unwrap();
            assert_eq!(used + free, size, "{m}: size");
            // Free space moves while the test runs; a few MB at most here.
            let avail = (st.f_bavail * st.f_frsize) as f64;
            assert!(
                (free - avail).abs() < 64.0 * 1024.0 * 1024.0,
                "{m}: {free} vs {avail}"
            );
            if st.f_files > 0 {
                let iu = value("system.filesystem.inodes.usage", m, "used").unwrap();
                let ifree = value("system.filesystem.inodes.usage", m, "free").unwrap();
                assert_eq!(iu + ifree, st.f_files as f64, "{m}: inodes");
                assert!(
                    (ifree - st.f_ffree as f64).abs() < 10_000.0,
                    "{m}: free inodes"
                );
            }
            checked += 1;
        }
        assert_eq!(checked, mounts.len());
    }
}

mod group_tests {
    use super::*;

    #[test]
    fn only_the_chosen_groups_are_collected() {
        let cfg = HostMetricsConfig {
            groups: vec!["memory".into(), "uptime".into()],
            ..HostMetricsConfig::default()
        };
        let samples = HostCollector::new(cfg).unwrap().sample();
        assert!(samples.iter().any(|s| s.name == "system.memory.usage"));
        assert!(
            samples.iter().all(|s| s.name.starts_with("system.memory")
                || s.name.starts_with("system.paging")
                || s.name == "system.linux.memory.available"
                || s.name == "system.uptime"),
            "{:?}",
            samples.iter().map(|s| &s.name).collect::<Vec<_>>()
        );
    }
    /// The connection counters come from the kernel's counters; the per-state walk of the
    /// socket table only when asked for. An open connection on loopback shows in both.
    #[cfg(target_os = "linux")]
    #[test]
    fn connections_are_counted_and_states_only_on_request() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (_server, _) = listener.accept().unwrap();
        let collect = |tcp_states: bool| {
            HostCollector::new(HostMetricsConfig {
                groups: vec!["connections".into()],
                tcp_states,
                ..HostMetricsConfig::default()
            })
            .unwrap()
            .sample()
        };
        let value = |samples: &[MetricSample], name: &str, state: Option<&str>| {
            samples
                .iter()
                .find(|s| s.name == name && s.labels.get("state").map(String::as_str) == state)
                .map(|s| s.value)
        };
        let plain = collect(false);
        // The listener, the client and the accepted side: three sockets in use, two established.
        assert!(value(&plain, "system.linux.tcp.sockets", Some("in_use")).unwrap() >= 3.0);
        assert!(value(&plain, "system.linux.tcp.sockets", Some("time_wait")).is_some());
        assert!(value(&plain, "system.linux.tcp.current_established", None).unwrap() >= 2.0);
        assert!(
            plain.iter().all(|s| s.name != "system.network.connections"),
            "the socket table is walked only with tcp_states"
        );
        let states = collect(true);
        assert!(value(&states, "system.network.connections", Some("ESTABLISHED")).unwrap() >= 2.0);
        assert!(value(&states, "system.network.connections", Some("LISTEN")).unwrap() >= 1.0);
        drop(client);
    }
}
