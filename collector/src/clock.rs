//! The collector's clock: the wall clock, moved on by tokio's time.
//!
//! Every decision that depends on the time (an alert's `for`, a heartbeat's grace, an agent's
//! timeout, a route's `group_wait`, a reminder) reads [`now`]. In a running collector that is
//! exactly the wall clock. Under `tokio::time::pause()` (tests only) it stops with tokio's
//! clock and moves with `tokio::time::advance`, so that the sleeps that wake the collector and
//! the times it compares stay one timeline.

use std::sync::OnceLock;
use std::time::Instant;

use chrono::{DateTime, Utc};

/// The wall clock at one instant, taken at the first reading.
static ANCHOR: OnceLock<(Instant, DateTime<Utc>)> = OnceLock::new();

/// The time now: the wall clock, unless a test has paused tokio's clock; then the wall clock
/// at the first reading moved on by tokio's time since, to the nanosecond, so that two
/// readings a paused minute apart are exactly a minute apart.
pub fn now() -> DateTime<Utc> {
    let &(anchor, anchor_wall) = ANCHOR.get_or_init(|| (Instant::now(), Utc::now()));
    let tokio_now = tokio::time::Instant::now().into_std();
    let real_now = Instant::now();
    // Running, tokio's clock is the monotonic clock read a moment earlier.
    let paused = tokio_now > real_now || real_now - tokio_now > std::time::Duration::from_millis(1);
    if !paused {
        return Utc::now();
    }
    let since = |later: Instant, earlier: Instant| {
        chrono::Duration::from_std(later - earlier).unwrap_or_default()
    };
    if tokio_now >= anchor {
        anchor_wall + since(tokio_now, anchor)
    } else {
        anchor_wall - since(anchor, tokio_now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_a_runtime_it_is_the_wall_clock() {
        let before = Utc::now();
        let now = now();
        assert!(now >= before - chrono::Duration::milliseconds(1) && now <= Utc::now());
    }

    #[tokio::test(start_paused = true)]
    async fn paused_it_moves_only_with_tokio() {
        let start = now();
        std::thread::sleep(std::time::Duration::from_millis(30));
        let still = now();
        assert!(
            (still - start).num_milliseconds().abs() <= 1,
            "{start} → {still}"
        );
        tokio::time::advance(std::time::Duration::from_secs(90)).await;
        let later = now() - start;
        assert!((later.num_milliseconds() - 90_000).abs() <= 1, "{later}");
    }
}
