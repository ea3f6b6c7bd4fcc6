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

/// An independent model of the uptime rule with `success_threshold` 1 and no flapping, written
/// from the rule's contract rather than from its code: per agent, count the failures in a row;
/// the agents reporting decide by quorum (the configured one, else a majority). The check is down
/// when at least quorum agents have `failure_threshold` failures in a row; pending when quorum
/// agents have at least one but not enough are down yet; and once down it stays down while
/// quorum agents still fail. Anything else is up.
#[derive(Debug)]
struct Model {
    failure_threshold: u32,
    quorum: Option<u32>,
    /// Failures in a row of each agent that has reported (a success resets it).
    in_a_row: std::collections::BTreeMap<String, u32>,
    state: CheckState,
}

impl Model {
    fn new(failure_threshold: u32, quorum: Option<u32>) -> Self {
        Self {
            failure_threshold,
            quorum,
            in_a_row: Default::default(),
            state: CheckState::Up,
        }
    }

    fn observe(&mut self, agent: &str, ok: bool) -> CheckState {
        let n = self.in_a_row.entry(agent.to_string()).or_default();
        *n = if ok { 0 } else { *n + 1 };
        let reporting = self.in_a_row.len() as u32;
        let quorum = self.quorum.unwrap_or(reporting / 2 + 1).max(1);
        let confirmed = self
            .in_a_row
            .values()
            .filter(|n| **n >= self.failure_threshold)
            .count() as u32;
        let failing = self.in_a_row.values().filter(|n| **n > 0).count() as u32;
        // Down also holds while a quorum still fails.
        let holds_down = self.state == CheckState::Down && failing >= quorum;
        self.state = if confirmed >= quorum || holds_down {
            CheckState::Down
        } else if failing >= quorum {
            CheckState::Pending
        } else {
            CheckState::Up
        };
        self.state
    }
}

proptest! {
    /// The rule goes through the model's states, and says so by one change per step that
    /// changes the state, from the state before.
    #[test]
    fn down_only_at_threshold_and_quorum(
        ft in 1u32..4,
        quorum in proptest::option::of(1u32..4),
        results in proptest::collection::vec((0usize..3, any::<bool>()), 1..80),
    ) {
        let mut u = Uptime::new(no_flapping(ft, quorum));
        let mut model = Model::new(ft, quorum);
        for (i, (agent, ok)) in results.iter().enumerate() {
            let agent = format!("a{agent}");
            let before = model.state;
            let expected = model.observe(&agent, *ok);
            let change = u.observe(&agent, t(i as i64), *ok, (!ok).then_some("boom"));
            prop_assert_eq!(u.state(), expected, "step {}: model {:?}", i, model);
            match change {
                Some(c) => {
                    prop_assert_eq!((c.from, c.to), (before, expected), "step {}", i);
                }
                None => prop_assert_eq!(before, expected, "step {}: a change without a Change", i),
            }
        }
        // Everything recovers: the check ends up, and says so once.
        let state = u.state();
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
        "down from 2 of 3 locations (edge-1, edge-2): status 503"
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
