//! Loopback ports reserved for one test, for the servers a test starts, stops and starts again
//! on the same port (a collector restarted, an SMTP server that comes up late) and for ports
//! that must stay dead (nothing listens: connections are refused).
//!
//! Why not bind `127.0.0.1:0`, read the port and close it: the port is then free for anyone.
//! The kernel hands out ports from its ephemeral range (`net.ipv4.ip_local_port_range`) for every
//! `bind(0)` and every outgoing connection, so between a collector's stop and its restart another
//! test (or a client's connection) could take "its" port, and the restart fails or, worse, the
//! test's agent talks to someone else's collector.
//!
//! So a reserved port comes from below the ephemeral range, where the kernel never picks one by
//! itself, and it is held with an exclusive lock on a file named after it in the temporary
//! directory, which every test process (nextest runs each test in its own; other checkouts run
//! theirs beside) honours. The lock lives as long as the [`Port`] value, and the kernel releases
//! it when the process ends, however it ends. A port that something outside the tests listens on
//! is skipped.

use std::fmt;
use std::fs::File;
use std::net::TcpListener;
use std::path::PathBuf;

/// The lowest port handed out: well above the ports services are usually given.
const LOWEST: u16 = 10_000;

/// A loopback port reserved for this test while the value lives. Displays as the number.
#[derive(Debug)]
pub struct Port {
    port: u16,
    /// Held for the reservation; never read.
    _lock: File,
}

impl Port {
    /// The port number.
    pub fn get(&self) -> u16 {
        self.port
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.port.fmt(f)
    }
}

/// A loopback port that nothing listens on now and that no other test and no `bind(0)` takes
/// while the returned [`Port`] lives: for a server that starts (or restarts) on it later, or
/// for an address that must refuse connections.
pub fn free_port() -> Port {
    let (low, high) = candidates();
    let dir = lock_dir();
    std::fs::create_dir_all(&dir).expect("a directory for port locks");
    for _ in 0..1000 {
        let port = fastrand::u16(low..high);
        let path = dir.join(format!("{port}.lock"));
        let lock = File::create(&path).expect("a port lock file");
        if lock.try_lock().is_err() {
            continue; // Another test holds it.
        }
        // Something outside the tests may listen on it; then it is not ours.
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Port { port, _lock: lock };
        }
    }
    panic!("no free loopback port in {low}..{high} after 1000 tries");
}

/// Where the locks live: one file per port, shared by every test process of this user.
fn lock_dir() -> PathBuf {
    std::env::temp_dir().join("lookout-test-ports")
}

/// The ports to choose from: those below the kernel's ephemeral range (Linux's default starts
/// at 32768), or above it if it leaves more room there.
fn candidates() -> (u16, u16) {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|v| v.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32_768, 60_999));
    let below = range.0.saturating_sub(LOWEST);
    let above = u16::MAX - range.1;
    if below >= above {
        (LOWEST, range.0.max(LOWEST + 1))
    } else {
        (range.1 + 1, u16::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reserved_port_is_not_handed_out_again_until_released() {
        let (low, high) = candidates();
        let ports: Vec<Port> = (0..20).map(|_| free_port()).collect();
        let mut numbers: Vec<u16> = ports.iter().map(Port::get).collect();
        assert!(
            numbers.iter().all(|p| (low..high).contains(p)),
            "{numbers:?}"
        );
        numbers.sort();
        numbers.dedup();
        assert_eq!(numbers.len(), 20, "a port reserved twice");
        // Its lock is taken: another process trying it skips it.
        let held = &ports[0];
        let again = File::create(lock_dir().join(format!("{held}.lock"))).unwrap();
        assert!(again.try_lock().is_err());
        let number = held.get();
        drop(ports);
        assert!(again.try_lock().is_ok(), "port {number} still locked");
    }
}
