//! The one retry policy of both daemons: exponential backoff with jitter. Attempt `n` (0 for
//! the first retry) has a ceiling of `first × 2ⁿ`, at most `max`; the wait is drawn around that
//! ceiling as the [`Jitter`] says, so that many peers that failed together (agents cut off by a
//! collector's restart, outbox rows of one failed channel) do not all retry at the same moment.
//!
//! A [`Backoff`] holds no count: [`Backoff::wait`] takes the attempt number, so the
//! collector's notifier computes a row's next wait from the attempts stored with it in the
//! outbox. A caller that counts in memory (the agent's shipper, consecutive failures of its
//! current batch) takes [`Backoff::retries`]: [`Retries::next_wait`] after a failure,
//! [`Retries::reset`] after a success.
//!
//! A peer's own `Retry-After` is not this module's business: callers prefer it when there is
//! one.

use std::time::Duration;

/// Attempts past this one wait as long as it does: the ceiling is `max` long before, and the
/// doubling stays within a `u32`.
const LAST_DOUBLING: u32 = 20;

/// How a wait strays from its attempt's ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// Anywhere from `first` up to the ceiling (in whole milliseconds): never longer than
    /// `max`, so a configured "longest wait" holds, and retries spread over the whole window.
    /// The agent's shipper.
    Full,
    /// The ceiling ±50 %: the doubling's rhythm kept, spread on either side; a wait may reach
    /// 1.5 × `max`. The collector's notifier.
    Half,
}

/// Exponential backoff from `first`, doubling per attempt up to `max`, with [`Jitter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    jitter: Jitter,
}

impl Backoff {
    /// Waits from `first` doubling up to `max` (at least `first`), with `jitter`.
    pub const fn new(first: Duration, max: Duration, jitter: Jitter) -> Self {
        let max = if max.as_nanos() < first.as_nanos() {
            first
        } else {
            max
        };
        Self { first, max, jitter }
    }

    /// Attempt `attempt`'s ceiling before jitter: `first × 2^attempt`, at most `max`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        self.first
            .saturating_mul(1u32 << attempt.min(LAST_DOUBLING))
            .min(self.max)
    }

    /// The wait before retry number `attempt + 1`, after `attempt` earlier retries failed.
    pub fn wait(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt);
        match self.jitter {
            Jitter::Full => {
                let span = ceiling.saturating_sub(self.first).as_millis() as u64;
                self.first + Duration::from_millis(fastrand::u64(0..=span))
            }
            Jitter::Half => {
                Duration::try_from_secs_f64(ceiling.as_secs_f64() * (0.5 + fastrand::f64()))
                    .unwrap_or(Duration::MAX)
            }
        }
    }

    /// A count of consecutive failures over this policy, for a caller that keeps it in memory.
    pub fn retries(self) -> Retries {
        Retries {
            policy: self,
            failed: 0,
        }
    }
}

/// [`Backoff`] with its attempt count: each failure waits longer, a success starts over.
#[derive(Debug, Clone)]
pub struct Retries {
    policy: Backoff,
    failed: u32,
}

impl Retries {
    /// The wait after one more failure.
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.policy.wait(self.failed);
        self.failed = self.failed.saturating_add(1);
        wait
    }

    /// Back to the first wait, after a success.
    pub fn reset(&mut self) {
        self.failed = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_and_resets() {
        let mut b = Backoff::new(
            Duration::from_millis(100),
            Duration::from_secs(2),
            Jitter::Full,
        )
        .retries();
        for _ in 0..50 {
            let w = b.next_wait();
            assert!(
                w >= Duration::from_millis(100) && w <= Duration::from_secs(2),
                "{w:?}"
            );
        }
        // After many attempts the ceiling is the cap: some wait must exceed the base by far.
        assert!(
            (0..50)
                .map(|_| b.next_wait())
                .any(|w| w > Duration::from_millis(500))
        );
        b.reset();
        assert!(b.next_wait() <= Duration::from_millis(100));
    }

    #[test]
    fn half_jitter_stays_within_half_of_each_ceiling() {
        let b = Backoff::new(
            Duration::from_secs(2),
            Duration::from_secs(600),
            Jitter::Half,
        );
        for attempt in [0, 1, 3, 8, 9, 40, u32::MAX] {
            let ceiling = b.ceiling(attempt);
            assert_eq!(
                ceiling,
                Duration::from_secs(2)
                    .saturating_mul(1 << attempt.min(20))
                    .min(Duration::from_secs(600))
            );
            let waits: Vec<_> = (0..200).map(|_| b.wait(attempt)).collect();
            assert!(
                waits
                    .iter()
                    .all(|w| *w >= ceiling / 2 && *w <= ceiling.mul_f64(1.5)),
                "attempt {attempt}: {waits:?}"
            );
            // Jitter, not a fixed wait: 200 draws on both sides of the ceiling.
            assert!(waits.iter().any(|w| *w < ceiling) && waits.iter().any(|w| *w > ceiling));
        }
    }

    #[test]
    fn full_jitter_never_passes_max_nor_falls_under_first() {
        let b = Backoff::new(
            Duration::from_millis(200),
            Duration::from_secs(30),
            Jitter::Full,
        );
        for attempt in [0, 1, 5, 7, 8, 20, 21, u32::MAX] {
            for _ in 0..200 {
                let w = b.wait(attempt);
                assert!(
                    w >= Duration::from_millis(200) && w <= b.ceiling(attempt),
                    "attempt {attempt}: {w:?}"
                );
                assert!(w <= Duration::from_secs(30));
            }
        }
        assert_eq!(
            b.wait(0),
            Duration::from_millis(200),
            "the first wait is `first`"
        );
    }

    #[test]
    fn a_max_under_first_is_first() {
        let b = Backoff::new(Duration::from_secs(5), Duration::from_secs(1), Jitter::Full);
        assert_eq!(b.ceiling(10), Duration::from_secs(5));
        assert_eq!(b.wait(10), Duration::from_secs(5));
    }
}
