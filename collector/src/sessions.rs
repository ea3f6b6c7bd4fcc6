//! What the admin's logins need to be remembered by this collector: the session key that
//! signs login cookies ([`crate::auth::session`]), drawn at start and drawn again when the
//! admin logs out so every earlier cookie stops working, and the failed logins of each client
//! address, so that guessing the admin token is slow: after [`MAX_FAILURES`] failures in
//! [`FAILURE_WINDOW`] an address is told to come back later. Nothing here is stored: a
//! restart asks for the login again, and forgets the failures.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

/// Failed logins an address may make within [`FAILURE_WINDOW`].
pub const MAX_FAILURES: usize = 10;
/// The window failed logins are counted in.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(600);
/// Addresses whose failures are remembered at most; beyond it the oldest go first.
const ADDRESSES_KEPT: usize = 10_000;

/// The session key and the failed logins.
#[derive(Debug)]
pub struct Sessions {
    key: RwLock<[u8; 32]>,
    failures: Failures,
}

/// Failed attempts at a secret per client address (logins; enrolments with a wrong
/// enrolment token): after [`MAX_FAILURES`] in [`FAILURE_WINDOW`] an address waits.
#[derive(Debug, Default)]
pub struct Failures {
    // std's Mutex: held for a map operation, never across an await.
    by_addr: Mutex<HashMap<Option<IpAddr>, VecDeque<Instant>>>,
}

impl Sessions {
    /// A fresh session key.
    pub fn new() -> Self {
        Self {
            key: RwLock::new(fresh_key()),
            failures: Failures::default(),
        }
    }

    /// The key login cookies are signed with now.
    pub fn key(&self) -> [u8; 32] {
        *self.key.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Draws a new key: every login so far ends.
    pub fn end_all(&self) {
        *self.key.write().unwrap_or_else(|p| p.into_inner()) = fresh_key();
    }

    /// `Err(seconds to wait)` when `addr` failed [`MAX_FAILURES`] logins in the window.
    pub fn may_try(&self, addr: Option<IpAddr>, now: Instant) -> Result<(), u64> {
        self.failures.may_try(addr, now)
    }

    /// Counts a failed login from `addr`.
    pub fn failed(&self, addr: Option<IpAddr>, now: Instant) {
        self.failures.failed(addr, now);
    }
}

impl Failures {
    /// `Err(seconds to wait)` when `addr` failed [`MAX_FAILURES`] times in the window.
    pub fn may_try(&self, addr: Option<IpAddr>, now: Instant) -> Result<(), u64> {
        let mut failures = self.by_addr.lock().unwrap_or_else(|p| p.into_inner());
        let Some(times) = failures.get_mut(&addr) else {
            return Ok(());
        };
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= FAILURE_WINDOW)
        {
            times.pop_front();
        }
        match times.front() {
            Some(oldest) if times.len() >= MAX_FAILURES => {
                let wait = FAILURE_WINDOW.saturating_sub(now.duration_since(*oldest));
                Err(wait.as_secs().max(1))
            }
            _ => Ok(()),
        }
    }

    /// Counts a failed attempt from `addr`.
    pub fn failed(&self, addr: Option<IpAddr>, now: Instant) {
        let mut failures = self.by_addr.lock().unwrap_or_else(|p| p.into_inner());
        if failures.len() >= ADDRESSES_KEPT && !failures.contains_key(&addr) {
            // Forget whoever failed longest ago: memory stays bounded under a spray of
            // addresses, and the addresses still trying are the ones remembered.
            let oldest = failures
                .iter()
                .min_by_key(|(_, t)| t.back().copied())
                .map(|(a, _)| *a);
            if let Some(a) = oldest {
                failures.remove(&a);
            }
        }
        let times = failures.entry(addr).or_default();
        times.push_back(now);
        while times.len() > MAX_FAILURES {
            times.pop_front();
        }
    }
}

impl Default for Sessions {
    fn default() -> Self {
        Self::new()
    }
}

/// 32 bytes from the kernel's random source; should it fail, from the standard library's
/// randomly seeded hasher, which is still unknown outside this process.
pub(crate) fn fresh_key() -> [u8; 32] {
    use std::io::Read as _;
    let mut key = [0u8; 32];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut key));
    if read.is_err() {
        use std::hash::{BuildHasher as _, Hasher as _};
        for chunk in key.chunks_mut(8) {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(Instant::now().elapsed().as_nanos());
            chunk.copy_from_slice(&h.finish().to_le_bytes());
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_failures_in_ten_minutes_then_wait_and_a_new_key_on_logout() {
        let s = Sessions::new();
        let a = Some(IpAddr::from([192, 0, 2, 1]));
        let b = Some(IpAddr::from([192, 0, 2, 2]));
        let t0 = Instant::now();
        for i in 0..MAX_FAILURES {
            assert_eq!(s.may_try(a, t0), Ok(()), "attempt {i}");
            s.failed(a, t0 + Duration::from_secs(i as u64));
        }
        let wait = s.may_try(a, t0 + Duration::from_secs(60)).unwrap_err();
        assert!((530..=540).contains(&wait), "{wait}");
        assert_eq!(s.may_try(b, t0), Ok(()), "another address is not held back");
        // Ten minutes after the first failure, one more try.
        assert_eq!(s.may_try(a, t0 + FAILURE_WINDOW), Ok(()));
        let before = s.key();
        s.end_all();
        assert_ne!(s.key(), before);
    }
}
