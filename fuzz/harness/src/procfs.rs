//! The `/proc` files the agent's host metrics read. The kernel writes them, but a container,
//! another kernel or a bind mount can put anything there, and the agent reads them every
//! interval.

use std::collections::BTreeMap;

use lookout_agent::host::procfs;

use crate::input::Input;

/// Input: a byte choosing the file, then its text.
pub fn procfs(data: &[u8]) {
    let mut input = Input::new(data);
    let which = input.choose(10);
    let Ok(text) = std::str::from_utf8(input.rest()) else {
        return;
    };
    match which {
        0 => {
            let cpus = procfs::parse_stat(text);
            let idle = procfs::CpuTimes::default();
            for times in cpus.values() {
                for share in procfs::utilization(&idle, times).values() {
                    assert!((0.0..=1.0).contains(share), "{share}");
                }
            }
        }
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
