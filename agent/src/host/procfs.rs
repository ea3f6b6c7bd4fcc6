//! Figures sysinfo does not give, read from Linux's `/proc`: CPU time by state, disk I/O,
//! network packets, errors and drops, pressure stall information, TCP connections by state, open
//! file descriptors, processes and uptime. Each parser takes the file's text, so tests feed them
//! fixtures; a file that is missing (another kernel, a container) yields nothing.

use std::collections::BTreeMap;

/// CPU time per state, in clock ticks, for one CPU line of `/proc/stat`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CpuTimes {
    /// Ticks per state: user, nice, system, idle, iowait, irq, softirq, steal.
    pub ticks: BTreeMap<&'static str, u64>,
}

const CPU_STATES: [&str; 8] = [
    "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
];

/// `/proc/stat`: `"all"` and each CPU by number.
pub fn parse_stat(text: &str) -> BTreeMap<String, CpuTimes> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some(name) = fields.next().filter(|n| n.starts_with("cpu")) else {
            continue;
        };
        let cpu = match &name[3..] {
            "" => "all".to_string(),
            n if n.chars().all(|c| c.is_ascii_digit()) => n.to_string(),
            _ => continue,
        };
        let values: Vec<u64> = fields.filter_map(|v| v.parse().ok()).collect();
        let ticks = CPU_STATES
            .iter()
            .zip(values)
            .map(|(s, v)| (*s, v))
            .collect();
        out.insert(cpu, CpuTimes { ticks });
    }
    out
}

/// Share of time per state between two readings, each 0..1 and together 1 (0 when no tick
/// passed).
///
/// Each state's ticks are taken apart: a counter that went backwards (iowait does on Linux,
/// being an estimate the kernel corrects; a CPU taken offline and back restarts its counters)
/// counts no time, and the interval is the sum of what the states gained, not the difference
/// of the totals. With the totals, a state that gained more than the whole total did had a
/// share above 1, and the others summed past it.
pub fn utilization(before: &CpuTimes, after: &CpuTimes) -> BTreeMap<&'static str, f64> {
    let ticks = |t: &CpuTimes, s: &str| t.ticks.get(s).copied().unwrap_or(0);
    let gained: Vec<(&'static str, u64)> = CPU_STATES
        .iter()
        .map(|s| (*s, ticks(after, s).saturating_sub(ticks(before, s))))
        .collect();
    // In f64: eight u64 gains may sum past u64::MAX (the values come from a file).
    let span: f64 = gained.iter().map(|(_, d)| *d as f64).sum();
    gained
        .into_iter()
        .map(|(s, d)| {
            let share = if span > 0.0 { d as f64 / span } else { 0.0 };
            (s, share.clamp(0.0, 1.0))
        })
        .collect()
}

/// Counters of one network interface from `/proc/net/dev`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NetDev {
    /// Bytes, packets, errors, drops received.
    pub rx: [u64; 4],
    /// Bytes, packets, errors, drops sent.
    pub tx: [u64; 4],
}

/// `/proc/net/dev`, by interface.
pub fn parse_net_dev(text: &str) -> BTreeMap<String, NetDev> {
    text.lines()
        .filter_map(|line| {
            let (name, rest) = line.split_once(':')?;
            let v: Vec<u64> = rest
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            (v.len() >= 12).then(|| {
                (
                    name.trim().to_string(),
                    NetDev {
                        rx: [v[0], v[1], v[2], v[3]],
                        tx: [v[8], v[9], v[10], v[11]],
                    },
                )
            })
        })
        .collect()
}

/// Counters of one block device from `/proc/diskstats`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DiskStat {
    /// Reads completed.
    pub reads: u64,
    /// Bytes read.
    pub read_bytes: u64,
    /// Writes completed.
    pub writes: u64,
    /// Bytes written.
    pub written_bytes: u64,
    /// Time the device was busy, in milliseconds.
    pub busy_ms: u64,
}

/// `/proc/diskstats`, by device; loop and RAM devices are left out.
pub fn parse_diskstats(text: &str) -> BTreeMap<String, DiskStat> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let name = *f.get(2)?;
            if name.starts_with("loop") || name.starts_with("ram") {
                return None;
            }
            let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
            // Sectors are 512 bytes in this file whatever the device's own sector size.
            Some((
                name.to_string(),
                DiskStat {
                    reads: n(3)?,
                    read_bytes: n(5)?.saturating_mul(512),
                    writes: n(7)?,
                    written_bytes: n(9)?.saturating_mul(512),
                    busy_ms: n(12)?,
                },
            ))
        })
        .collect()
}

/// `/proc/pressure/<resource>`: total stall time in microseconds, for `some` and `full`.
pub fn parse_pressure(text: &str) -> BTreeMap<&'static str, u64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let kind = match line.split_whitespace().next() {
            Some("some") => "some",
            Some("full") => "full",
            _ => continue,
        };
        if let Some(total) = line
            .split_whitespace()
            .find_map(|f| f.strip_prefix("total="))
            .and_then(|v| v.parse().ok())
        {
            out.insert(kind, total);
        }
    }
    out
}

/// TCP socket states as `/proc/net/tcp` numbers them.
const TCP_STATES: [&str; 12] = [
    "",
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "FIN_WAIT1",
    "FIN_WAIT2",
    "TIME_WAIT",
    "CLOSE",
    "CLOSE_WAIT",
    "LAST_ACK",
    "LISTEN",
    "CLOSING",
];

/// Adds the sockets of a `/proc/net/tcp` or `tcp6` file to `counts`, by state.
pub fn count_tcp(text: &str, counts: &mut BTreeMap<&'static str, u64>) {
    for line in text.lines().skip(1) {
        let Some(st) = line.split_whitespace().nth(3) else {
            continue;
        };
        if let Ok(i) = usize::from_str_radix(st, 16)
            && let Some(name) = TCP_STATES.get(i).filter(|n| !n.is_empty())
        {
            *counts.entry(name).or_insert(0) += 1;
        }
    }
}

/// The `prefix:` line of `/proc/net/sockstat` (`TCP`) or `sockstat6` (`TCP6`), as its
/// name-value pairs: `inuse`, `orphan`, `tw`, `alloc`, `mem` for `TCP`, `inuse` for `TCP6`.
pub fn parse_sockstat_tcp<'a>(text: &'a str, prefix: &str) -> BTreeMap<&'a str, u64> {
    let Some(rest) = text
        .lines()
        .find_map(|l| l.strip_prefix(prefix)?.strip_prefix(':'))
    else {
        return BTreeMap::new();
    };
    let words: Vec<&str> = rest.split_whitespace().collect();
    words
        .chunks_exact(2)
        .filter_map(|kv| Some((kv[0], kv[1].parse().ok()?)))
        .collect()
}

/// One field of `/proc/net/snmp`'s `Tcp:` lines (a line of names, then a line of values).
pub fn parse_snmp_tcp(text: &str, field: &str) -> Option<u64> {
    let mut lines = text.lines().filter_map(|l| l.strip_prefix("Tcp:"));
    let names = lines.next()?;
    let values = lines.next()?;
    let at = names.split_whitespace().position(|n| n == field)?;
    values.split_whitespace().nth(at)?.parse().ok()
}

/// `/proc/sys/fs/file-nr`: (allocated, maximum) file descriptors.
pub fn parse_file_nr(text: &str) -> Option<(u64, u64)> {
    let v: Vec<u64> = text
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    Some((*v.first()?, *v.get(2)?))
}

/// `/proc/loadavg`: (running, total) processes.
pub fn parse_processes(loadavg: &str) -> Option<(u64, u64)> {
    let (running, total) = loadavg.split_whitespace().nth(3)?.split_once('/')?;
    Some((running.parse().ok()?, total.parse().ok()?))
}

/// `/proc/uptime`: seconds since boot.
pub fn parse_uptime(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_states_per_core_and_their_shares() {
        let a =
            parse_stat("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\nintr 1 2\n");
        let b = parse_stat("cpu  160 0 70 900 70 0 0 0 0 0\ncpu0 80 0 35 450 35 0 0 0 0 0\n");
        assert_eq!(a.keys().collect::<Vec<_>>(), ["0", "all"]);
        let u = utilization(&a["all"], &b["all"]);
        // 200 ticks: 60 user, 20 system, 100 idle, 20 iowait.
        assert_eq!(
            (u["user"], u["system"], u["idle"], u["iowait"], u["steal"]),
            (0.3, 0.1, 0.5, 0.1, 0.0)
        );
        assert!((u.values().sum::<f64>() - 1.0).abs() < 1e-9);
    }

    /// Two readings of a host's `/proc/stat` a few seconds apart, between which the kernel
    /// corrected iowait down by 300 ticks while the other states gained 310: the totals grew
    /// by 10, and with their difference as the interval user's share was 160/10 = 16.
    #[test]
    fn a_counter_that_goes_backwards_keeps_every_share_within_0_and_1() {
        let before = parse_stat(
            "cpu  4705 150 1120 1676990 5400 0 230 0 0 0
             cpu0 1180 40 290 419230 1350 0 60 0 0 0
",
        );
        let after = parse_stat(
            "cpu  4865 150 1180 1677060 5100 0 250 0 0 0
             cpu0 1220 40 300 419300 1280 0 65 0 0 0
",
        );
        let u = utilization(&before["all"], &after["all"]);
        // Gained: user 160, system 60, idle 70, softirq 20; iowait lost 300 and counts 0.
        assert_eq!(u["iowait"], 0.0);
        assert_eq!(u["user"], 160.0 / 310.0);
        assert_eq!(u["idle"], 70.0 / 310.0);
        for cpu in ["all", "0"] {
            let u = utilization(&before[cpu], &after[cpu]);
            assert!(u.values().all(|s| (0.0..=1.0).contains(s)), "{cpu}: {u:?}");
            let sum: f64 = u.values().sum();
            assert!(sum <= 1.0 + 1e-12 && sum > 0.99, "{cpu}: {sum}");
        }
        // Every counter back to zero (a CPU offline and back): no time, not negative time.
        let u = utilization(&after["0"], &CpuTimes::default());
        assert!(u.values().all(|s| *s == 0.0), "{u:?}");
    }

    #[test]
    fn network_disk_pressure_tcp_and_the_rest() {
        let dev = "Inter-|   Receive |  Transmit\n face |bytes packets errs drop fifo frame compressed multicast|bytes\n  eth0: 1000 10 1 2 0 0 0 0 2000 20 3 4 0 0 0 0\n";
        assert_eq!(
            parse_net_dev(dev)["eth0"],
            NetDev {
                rx: [1000, 10, 1, 2],
                tx: [2000, 20, 3, 4]
            }
        );
        let disk = "   8       0 sda 100 5 2000 30 200 10 4000 60 0 500 90\n   7       0 loop0 1 0 2 0 0 0 0 0 0 0 0\n";
        let d = parse_diskstats(disk);
        assert_eq!(d.len(), 1);
        assert_eq!(
            d["sda"],
            DiskStat {
                reads: 100,
                read_bytes: 2000 * 512,
                writes: 200,
                written_bytes: 4000 * 512,
                busy_ms: 500
            }
        );
        let p = parse_pressure(
            "some avg10=0.00 avg60=0.00 avg300=0.00 total=1234\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=56\n",
        );
        assert_eq!((p["some"], p["full"]), (1234, 56));
        let tcp = "  sl  local_address rem_address   st\n   0: 0100007F:1F90 00000000:0000 0A 0\n   1: 0100007F:1F90 0100007F:9C40 01 0\n   2: 0100007F:1F90 0100007F:9C41 01 0\n";
        let mut c = BTreeMap::new();
        count_tcp(tcp, &mut c);
        assert_eq!((c["LISTEN"], c["ESTABLISHED"]), (1, 2));
        let sockstat =
            "sockets: used 8\nTCP: inuse 5 orphan 1 tw 86 alloc 7 mem 2\nUDP: inuse 0 mem 0\n";
        let t = parse_sockstat_tcp(sockstat, "TCP");
        assert_eq!(
            (t["inuse"], t["orphan"], t["tw"], t["alloc"]),
            (5, 1, 86, 7)
        );
        let t6 = parse_sockstat_tcp("TCP6: inuse 3\nUDP6: inuse 1\n", "TCP6");
        assert_eq!(t6.into_iter().collect::<Vec<_>>(), [("inuse", 3)]);
        assert!(
            parse_sockstat_tcp(sockstat, "TCP6").is_empty(),
            "TCP is not TCP6"
        );
        let snmp = "Ip: Forwarding DefaultTTL\nIp: 1 64\nTcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab InSegs\nTcp: 1 200 120000 -1 10 4 0 1 12 99\nUdp: InDatagrams\nUdp: 5\n";
        assert_eq!(parse_snmp_tcp(snmp, "CurrEstab"), Some(12));
        assert_eq!(parse_snmp_tcp(snmp, "NoSuchField"), None);
        assert_eq!(
            parse_file_nr("1024\t0\t9223372036854775807\n"),
            Some((1024, 9223372036854775807))
        );
        assert_eq!(
            parse_processes("0.10 0.20 0.30 3/456 7890\n"),
            Some((3, 456))
        );
        assert_eq!(parse_uptime("12345.67 20000.00\n"), Some(12345.67));
    }

    #[test]
    fn this_machine_reads() {
        let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
            return;
        };
        let cpus = parse_stat(&stat);
        assert!(
            cpus.contains_key("all") && cpus.contains_key("0"),
            "{cpus:?}"
        );
        assert_eq!(cpus["all"].ticks.len(), 8);
        let dev = parse_net_dev(&std::fs::read_to_string("/proc/net/dev").unwrap());
        assert!(dev.contains_key("lo"));
    }
}
