//! The `/proc` files the agent's host metrics read. The kernel writes them, but a container,
//! another kernel or a bind mount can put anything there, and the agent reads them every
//! interval.

use std::collections::BTreeMap;

use lookout_agent::host::procfs;

use crate::input::Input;

/// Input: a byte choosing the file, then its text. For `/proc/stat`, the text up to a NUL is
/// a first reading and what follows a second one.
pub fn procfs(data: &[u8]) {
    let mut input = Input::new(data);
    let which = input.choose(10);
    if which == 0 {
        let first = input.until(0);
        return cpu(first, input.rest());
    }
    let Ok(text) = std::str::from_utf8(input.rest()) else {
        return;
    };
    match which {
        0 => {}
        1 => drop(procfs::parse_net_dev(text)),
        2 => drop(procfs::parse_diskstats(text)),
        3 => drop(procfs::parse_pressure(text)),
        4 => {
            let mut counts = BTreeMap::new();
            procfs::count_tcp(text, &mut counts);
        }
        5 => drop(procfs::parse_sockstat_tcp(text, "TCP")),
        6 => drop(procfs::parse_snmp_tcp(text, "CurrEstab")),
        7 => drop(procfs::parse_file_nr(text)),
        8 => drop(procfs::parse_processes(text)),
        _ => drop(procfs::parse_uptime(text)),
    }
}

/// Two `/proc/stat` readings, each also against an idle start: every share of every CPU
/// within 0 and 1, and together at most 1, whatever the counters did in between.
fn cpu(first: &[u8], second: &[u8]) {
    let parse = |b: &[u8]| procfs::parse_stat(&String::from_utf8_lossy(b));
    let (before, after) = (parse(first), parse(second));
    let idle = procfs::CpuTimes::default();
    let pairs = before
        .iter()
        .filter_map(|(cpu, b)| Some((b, after.get(cpu)?)))
        .chain(before.values().map(|b| (&idle, b)))
        .chain(after.values().map(|a| (&idle, a)))
        .chain(before.values().map(|b| (b, &idle)));
    for (b, a) in pairs {
        let shares = procfs::utilization(b, a);
        assert!(
            shares.values().all(|s| (0.0..=1.0).contains(s)),
            "{shares:?}"
        );
        let sum: f64 = shares.values().sum();
        assert!(sum <= 1.0 + 1e-9, "{sum}: {shares:?}");
    }
}
