use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;

use super::uptime::{CheckState, Uptime, UptimeSettings};

fn t(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_790_000_000 + s, 0).unwrap()
}

fn no_flapping(ft: u32, quorum: Option<u32>) -> UptimeSettings {
    UptimeSettings {
        failure_threshold: ft,
        success_threshold: 1,
        quorum,
        flap_changes: u32::MAX,
        ..UptimeSettings::default()
    }
}

proptest! {
    /// Down exactly when at least quorum agents have failed `failure_threshold` times in a row
    /// (with success_threshold 1, an agent is down while its trailing failures reach it).
    #[test]
    fn down_only_at_threshold_and_quorum(
        ft in 1u32..4,
        quorum in proptest::option::of(1u32..4),
        results in proptest::collection::vec((0usize..3, any::<bool>()), 1..80),
    ) {
        let mut u = Uptime::new(no_flapping(ft, quorum));
        let mut trailing = [0u32; 3];
        let mut seen = [false; 3];
        let mut state = CheckState::Up;
        for (i, (agent, ok)) in results.iter().enumerate() {
            let change = u.observe(&format!("a{agent}"), t(i as i64), *ok, (!ok).then_some("boom"));
            seen[*agent] = true;
            trailing[*agent] = if *ok { 0 } else { trailing[*agent] + 1 };
            if let Some(c) = change {
                prop_assert_eq!(c.from, state, "changes chain");
                prop_assert_ne!(c.from, c.to);
                state = c.to;
            }
            prop_assert_eq!(u.state(), state);
            let reporting = seen.iter().filter(|s| **s).count() as u32;
            let need = quorum.unwrap_or(reporting / 2 + 1).max(1);
            let down = (0..3).filter(|a| seen[*a] && trailing[*a] >= ft).count() as u32;
            let failing = (0..3).filter(|a| seen[*a] && trailing[*a] > 0).count() as u32;
            let expect_down = down >= need;
            prop_assert_eq!(state == CheckState::Down, expect_down || (state == CheckState::Down && failing >= need),
                "state {:?}, {} down, {} failing of {}, quorum {}", state, down, failing, reporting, need);
            if state == CheckState::Down {
                prop_assert!(failing >= need);
            }
            if expect_down {
                prop_assert_eq!(state, CheckState::Down);
            }
        }
        // Everything recovers: the check ends up, and says so once.
        let mut ups = 0;
        for k in 0..3 {
            if let Some(c) = u.observe(&format!("a{k}"), t(1000 + k), true, None)
                && c.to == CheckState::Up
            {
                ups += 1;
            }
        }
        prop_assert_eq!(u.state(), CheckState::Up);
        prop_assert!(ups <= 1);
        prop_assert_eq!(ups == 1, state != CheckState::Up);
    }

    /// However results alternate, a flapping check says so once per episode and nothing else
    /// until it has been steady for the window.
    #[test]
    fn flapping_notifies_once(flips in 8usize..60) {
        let settings = UptimeSettings {
            failure_threshold: 1,
            flap_changes: 4,
            flap_window: std::time::Duration::from_secs(600),
            ..UptimeSettings::default()
        };
        let mut u = Uptime::new(settings);
        let mut changes = Vec::new();
        for i in 0..flips {
            if let Some(c) = u.observe("a", t(i as i64 * 10), i % 2 == 1, Some("boom")) {
                changes.push(c);
            }
        }
        let into_flapping = changes.iter().filter(|c| c.to == CheckState::Flapping).count();
        prop_assert_eq!(into_flapping, 1);
        let last = changes.iter().position(|c| c.to == CheckState::Flapping).unwrap();
        prop_assert_eq!(last, changes.len() - 1, "nothing after flapping began: {:?}", changes);
        // Steady (up) for longer than the window: it leaves flapping, once.
        let end = flips as i64 * 10;
        let mut after = Vec::new();
        for k in 0..70 {
            if let Some(c) = u.observe("a", t(end + k * 10), true, None) {
                after.push(c);
            }
        }
        prop_assert_eq!(after.len(), 1, "{:?}", after);
        prop_assert_eq!(after[0].to, CheckState::Up);
    }
}

#[test]
fn one_bad_path_is_not_an_outage_two_of_three_are() {
    let mut u = Uptime::new(UptimeSettings::default());
    let mut clock = 0;
    let mut round = |u: &mut Uptime, oks: [bool; 3]| {
        let mut out = Vec::new();
        for (i, ok) in oks.iter().enumerate() {
            clock += 1;
            if let Some(c) = u.observe(
                &format!("edge-{i}"),
                t(clock),
                *ok,
                (!ok).then_some("status 503"),
            ) {
                out.push(c);
            }
        }
        out
    };
    for _ in 0..5 {
        assert!(
            round(&mut u, [true, true, false]).is_empty(),
            "one location down is no outage"
        );
    }
    assert_eq!(u.state(), CheckState::Up);
    let first = round(&mut u, [true, false, false]);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].to, CheckState::Pending);
    let second = round(&mut u, [true, false, false]);
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].to, CheckState::Down);
    assert_eq!(
        second[0].summary,
        "2 of 3 locations (edge-1, edge-2): status 503"
    );
    assert!(round(&mut u, [true, false, false]).is_empty());
    let back = round(&mut u, [true, true, true]);
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].to, CheckState::Up);
    // Up as soon as fewer than a quorum fail.
    assert_eq!(back[0].summary, "up from 2 of 3 locations");
}

#[test]
fn a_silent_agent_stops_counting_and_old_results_do_not_overrule_new_ones() {
    let mut u = Uptime::new(UptimeSettings {
        stale_after: std::time::Duration::from_secs(60),
        ..UptimeSettings::default()
    });
    // Two agents down, a third up: down.
    for s in 0..2 {
        u.observe("a", t(s), false, Some("x"));
        u.observe("b", t(s), false, Some("x"));
        u.observe("c", t(s), true, None);
    }
    assert_eq!(u.state(), CheckState::Down);
    // A result older than the agent's last is ignored.
    assert!(
        u.observe("a", t(0) - Duration::seconds(5), true, None)
            .is_none()
    );
    assert_eq!(u.state(), CheckState::Down);
    // a and b go silent; c keeps reporting up: after a minute only c counts.
    assert!(u.tick(t(30)).is_none());
    let c = u.observe("c", t(100), true, None).unwrap();
    assert_eq!(c.to, CheckState::Up);
}
