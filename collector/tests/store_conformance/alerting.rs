//! Alerts, the notification outbox, acknowledgements and silences.

use chrono::{DateTime, Utc};
use lookout_collector::store::alerting::{
    AlertState, DeliveryState, NewNotification, Notification, Silence, Transition,
};
use lookout_collector::store::{NewBatch, ResultQuery};

use super::{Backend, all_time, batch, default_retention, result, t};

fn transition(from: Option<AlertState>, to: AlertState, at: DateTime<Utc>) -> Transition {
    Transition {
        fingerprint: "uptime:api".into(),
        rule: "uptime".into(),
        labels: [
            ("check".to_string(), "api".to_string()),
            ("severity".to_string(), "critical".to_string()),
        ]
        .into_iter()
        .collect(),
        from,
        to,
        at,
        summary: format!("api is {}", to.as_str()),
        fired_at: (to == AlertState::Firing).then_some(at),
        notified_at: None,
        recorded_at: at,
    }
}

fn note(channel: &str, key: &str, at: DateTime<Utc>) -> NewNotification {
    NewNotification {
        channel: channel.into(),
        dedup_key: key.into(),
        // Its own group: claimed only when itself due.
        group_key: key.into(),
        payload: serde_json::json!({ "key": key }),
        not_before: at,
        escalation: None,
    }
}

pub(super) async fn a_group_is_claimed_together_when_its_first_row_is_due(b: Backend) {
    let s = &*b.store;
    let grouped = |channel: &str, key: &str, due: DateTime<Utc>| NewNotification {
        group_key: "route0:".into(),
        ..note(channel, key, due)
    };
    let mut fire = transition(None, AlertState::Firing, t(0, 0));
    fire.notified_at = Some(t(0, 0));
    let id = s
        .record_transition(
            &fire,
            &[grouped("hook", "a", t(0, 2)), grouped("mail", "a", t(0, 2))],
        )
        .await
        .unwrap()
        .unwrap();
    let firing = s.alerts(&[AlertState::Firing]).await.unwrap();
    assert_eq!(
        (firing[0].fired_at, firing[0].notified_at),
        (Some(t(0, 0)), Some(t(0, 0)))
    );
    // A second alert's note for the same group, due later: not due on its own...
    let mut other = transition(None, AlertState::Firing, t(0, 1));
    other.fingerprint = "uptime:web".into();
    let other_id = s
        .record_transition(&other, &[grouped("hook", "b", t(0, 3))])
        .await
        .unwrap()
        .unwrap();
    assert!(
        s.claim_notifications("w", t(0, 1), t(1, 0), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.next_notification_due().await.unwrap(), Some(t(0, 2)));
    // ...but it goes with the group's first row, in the same channel only.
    let claimed = s
        .claim_notifications("w", t(0, 2), t(1, 0), 10)
        .await
        .unwrap();
    let keys: Vec<_> = claimed
        .iter()
        .map(|n| {
            (
                n.channel.as_str(),
                n.dedup_key.as_str(),
                n.group_key.as_str(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            ("hook", "a", "route0:"),
            ("mail", "a", "route0:"),
            ("hook", "b", "route0:")
        ]
    );
    assert_eq!(claimed[0].created, t(0, 0));
    assert!(s.mark_delivered(claimed[0].id, "w", t(0, 3)).await.unwrap());
    assert!(s.mark_delivered(claimed[2].id, "w", t(0, 3)).await.unwrap());
    assert!(
        s.mark_failed(claimed[1].id, "w", "535 auth", None, t(0, 3))
            .await
            .unwrap()
    );
    let deliveries = s.deliveries(id).await.unwrap();
    let seen: Vec<_> = deliveries
        .iter()
        .map(|d| {
            (
                d.channel.as_str(),
                d.state,
                d.attempts,
                d.last_error.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("hook", DeliveryState::Delivered, 1, None),
            ("mail", DeliveryState::Failed, 1, Some("535 auth"))
        ]
    );
    assert_eq!(s.deliveries(other_id).await.unwrap().len(), 1);

    // Reminders and released notes: queued only while the alert is still in the state seen.
    assert!(
        s.queue_notifications(
            "uptime:api",
            AlertState::Firing,
            t(5, 0),
            &[note("hook", "r1", t(5, 0))]
        )
        .await
        .unwrap()
    );
    let firing = s.alerts(&[AlertState::Firing]).await.unwrap();
    let api = firing.iter().find(|a| a.id == id).unwrap();
    assert_eq!(api.notified_at, Some(t(5, 0)));
    assert!(
        !s.queue_notifications(
            "uptime:api",
            AlertState::Resolved,
            t(6, 0),
            &[note("hook", "r2", t(6, 0))]
        )
        .await
        .unwrap()
    );
    assert!(
        !s.queue_notifications(
            "uptime:nope",
            AlertState::Firing,
            t(6, 0),
            &[note("hook", "r3", t(6, 0))]
        )
        .await
        .unwrap()
    );
    let keys: Vec<String> = s
        .claim_notifications("w", t(9, 0), t(10, 0), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.dedup_key)
        .collect();
    assert_eq!(keys, ["r1"]);
    let r1 = s
        .claim_notifications("w", t(10, 1), t(11, 0), 10)
        .await
        .unwrap();
    assert_eq!(r1.len(), 1, "r1 again, its lease over");
    assert!(s.mark_delivered(r1[0].id, "w", t(10, 2)).await.unwrap());

    // A row waiting to be retried keeps its backoff when another row of its group comes due,
    // and a leased row is due when its lease ends.
    let mut again = transition(None, AlertState::Firing, t(20, 0));
    again.fingerprint = "uptime:db".into();
    s.record_transition(&again, &[grouped("hook", "c", t(20, 0))])
        .await
        .unwrap()
        .unwrap();
    let c = s
        .claim_notifications("w", t(20, 0), t(20, 30), 10)
        .await
        .unwrap();
    let keys: Vec<&str> = c.iter().map(|n| n.dedup_key.as_str()).collect();
    assert_eq!(keys, ["c"]);
    assert!(
        s.mark_failed(c[0].id, "w", "503", Some(t(25, 0)), t(20, 1))
            .await
            .unwrap()
    );
    let mut later = transition(None, AlertState::Firing, t(21, 0));
    later.fingerprint = "uptime:cache".into();
    s.record_transition(&later, &[grouped("hook", "d", t(21, 0))])
        .await
        .unwrap()
        .unwrap();
    let keys: Vec<String> = s
        .claim_notifications("w", t(21, 0), t(30, 0), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.dedup_key)
        .collect();
    assert_eq!(keys, ["d"], "c waits for its retry at 25:00");
    assert_eq!(s.next_notification_due().await.unwrap(), Some(t(25, 0)));
    let leased = s
        .claim_notifications("v", t(25, 0), t(27, 0), 10)
        .await
        .unwrap();
    assert_eq!(leased.len(), 1);
    // d (leased until 30:00) and c (leased until 27:00): the earliest lease end.
    assert_eq!(s.next_notification_due().await.unwrap(), Some(t(27, 0)));
}

pub(super) async fn alert_transitions_are_compare_and_set_with_history_and_outbox(b: Backend) {
    let s = &*b.store;
    use AlertState::*;
    let fire = [
        note("mail", "1:firing", t(0, 0)),
        note("slack", "1:firing", t(0, 0)),
    ];
    let id = s
        .record_transition(&transition(None, Firing, t(0, 0)), &fire)
        .await
        .unwrap()
        .unwrap();
    // The same transition again (a restarted evaluator that did not see the first): refused,
    // and nothing more is queued.
    assert_eq!(
        s.record_transition(&transition(None, Firing, t(0, 1)), &fire)
            .await
            .unwrap(),
        None
    );
    let firing = s.alerts(&[Firing]).await.unwrap();
    assert_eq!(firing.len(), 1);
    assert_eq!(
        (firing[0].id, firing[0].since, firing[0].summary.as_str()),
        (id, t(0, 0), "api is firing")
    );
    assert_eq!(
        firing[0].labels.get("severity").map(String::as_str),
        Some("critical")
    );
    // From a state the alert is not in: refused.
    assert_eq!(
        s.record_transition(&transition(Some(Pending), Resolved, t(1, 0)), &[])
            .await
            .unwrap(),
        None
    );
    let resolve = [note("mail", "1:resolved", t(2, 0))];
    assert_eq!(
        s.record_transition(&transition(Some(Firing), Resolved, t(2, 0)), &resolve)
            .await
            .unwrap(),
        Some(id)
    );
    // A second resolve by a stale caller: refused.
    assert_eq!(
        s.record_transition(&transition(Some(Firing), Resolved, t(2, 5)), &resolve)
            .await
            .unwrap(),
        None
    );
    // A notification key already queued is not queued again, even with a new transition.
    let again = [
        note("mail", "1:resolved", t(3, 0)),
        note("mail", "2:firing", t(3, 0)),
    ];
    assert_eq!(
        s.record_transition(&transition(Some(Resolved), Firing, t(3, 0)), &again)
            .await
            .unwrap(),
        Some(id)
    );
    let history = s.alert_history(id).await.unwrap();
    let steps: Vec<_> = history.iter().map(|e| (e.from, e.to, e.time)).collect();
    assert_eq!(
        steps,
        [
            (None, Firing, t(0, 0)),
            (Some(Firing), Resolved, t(2, 0)),
            (Some(Resolved), Firing, t(3, 0))
        ]
    );
    let queued = s
        .claim_notifications("w", t(10, 0), t(11, 0), 100)
        .await
        .unwrap();
    let keys: Vec<_> = queued
        .iter()
        .map(|n| (n.channel.as_str(), n.dedup_key.as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            ("mail", "1:firing"),
            ("slack", "1:firing"),
            ("mail", "1:resolved"),
            ("mail", "2:firing")
        ]
    );
    assert_eq!(queued[0].payload["key"], "1:firing");
    assert!(s.alerts(&[Resolved]).await.unwrap().is_empty());
    // The status page's incidents: each firing with its end, newest first; a window that
    // starts after the first firing began leaves it out.
    let incidents = s.incidents("uptime", t(0, 0)).await.unwrap();
    let shape: Vec<_> = incidents.iter().map(|i| (i.started, i.ended)).collect();
    assert_eq!(shape, [(t(3, 0), None), (t(0, 0), Some(t(2, 0)))]);
    assert_eq!(incidents[1].summary, "api is firing");
    assert_eq!(incidents[1].labels["check"], "api");
    let later = s.incidents("uptime", t(2, 30)).await.unwrap();
    assert_eq!(later.len(), 1);
    assert!(s.incidents("heartbeat", t(0, 0)).await.unwrap().is_empty());
}

pub(super) async fn outbox_claims_lease_retry_and_give_up(b: Backend) {
    let s = &*b.store;
    let notes = [
        note("mail", "a", t(0, 0)),
        note("mail", "b", t(0, 0)),
        note("mail", "later", t(5, 0)),
    ];
    s.record_transition(&transition(None, AlertState::Firing, t(0, 0)), &notes)
        .await
        .unwrap()
        .unwrap();
    // Due now: a and b, not "later". A second sender gets nothing while the lease holds.
    let a = s
        .claim_notifications("one", t(1, 0), t(2, 0), 10)
        .await
        .unwrap();
    assert_eq!(
        a.iter().map(|n| n.dedup_key.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert!(
        s.claim_notifications("two", t(1, 30), t(2, 30), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(s.mark_delivered(a[0].id, "one", t(1, 40)).await.unwrap());
    assert_eq!(
        s.delivery(a[0].id).await.unwrap(),
        Some((DeliveryState::Delivered, None))
    );
    // The lease on b runs out: another sender takes it, and the first can no longer finish it.
    let b2 = s
        .claim_notifications("two", t(2, 1), t(3, 0), 10)
        .await
        .unwrap();
    assert_eq!(
        b2.iter().map(|n| n.dedup_key.as_str()).collect::<Vec<_>>(),
        ["b"]
    );
    assert!(!s.mark_delivered(a[1].id, "one", t(2, 2)).await.unwrap());
    // A failed attempt with a retry time: not due before it, due after, attempts counted.
    assert!(
        s.mark_failed(b2[0].id, "two", "SMTP 451", Some(t(4, 0)), t(2, 3))
            .await
            .unwrap()
    );
    assert!(
        s.claim_notifications("two", t(3, 59), t(9, 0), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let retry = s
        .claim_notifications("two", t(4, 0), t(4, 30), 1)
        .await
        .unwrap();
    assert_eq!((retry[0].dedup_key.as_str(), retry[0].attempts), ("b", 1));
    // Giving up: failed, with the reason; never claimed again.
    assert!(
        s.mark_failed(retry[0].id, "two", "gave up after 1 h", None, t(4, 10))
            .await
            .unwrap()
    );
    assert_eq!(
        s.delivery(retry[0].id).await.unwrap(),
        Some((DeliveryState::Failed, Some("gave up after 1 h".into())))
    );
    let rest = s
        .claim_notifications("two", t(9, 0), t(10, 0), 10)
        .await
        .unwrap();
    assert_eq!(
        rest.iter()
            .map(|n| n.dedup_key.as_str())
            .collect::<Vec<_>>(),
        ["later"]
    );
    // Finished rows go with retention; a pending one stays.
    let later = t(60 * 24 * 30, 0);
    while s
        .enforce_retention(&default_retention(), later, 100)
        .await
        .unwrap()
        > 0
    {}
    assert_eq!(s.delivery(a[0].id).await.unwrap(), None);
    assert_eq!(s.delivery(retry[0].id).await.unwrap(), None);
    assert!(s.delivery(rest[0].id).await.unwrap().is_some());
}

pub(super) async fn acknowledgements_and_silences(b: Backend) {
    let s = &*b.store;
    let none = |_: &Notification| None;
    let id = s
        .record_transition(&transition(None, AlertState::Firing, t(0, 0)), &[])
        .await
        .unwrap()
        .unwrap();
    assert!(
        s.ack_alert(id, "ops@example.com", t(1, 0), &none)
            .await
            .unwrap()
    );
    assert_eq!(
        s.alerts(&[AlertState::Firing]).await.unwrap()[0]
            .acked_by
            .as_deref(),
        Some("ops@example.com")
    );
    s.record_transition(
        &transition(Some(AlertState::Firing), AlertState::Resolved, t(2, 0)),
        &[],
    )
    .await
    .unwrap()
    .unwrap();
    // Only a firing alert can be acknowledged; resolving clears the acknowledgement.
    assert!(
        !s.ack_alert(id, "ops@example.com", t(3, 0), &none)
            .await
            .unwrap()
    );
    assert_eq!(
        s.alerts(&[AlertState::Resolved]).await.unwrap()[0].acked_by,
        None
    );

    let silence = Silence {
        id: 0,
        matchers: [("check".to_string(), "api".to_string())]
            .into_iter()
            .collect(),
        starts: t(0, 0),
        ends: t(60, 0),
        created_by: "ops@example.com".into(),
        comment: "deploy".into(),
    };
    let sid = s.create_silence(&silence).await.unwrap();
    let active = s.silences(t(10, 0)).await.unwrap();
    assert_eq!(
        active,
        [Silence {
            id: sid,
            ..silence.clone()
        }]
    );
    let labels = transition(None, AlertState::Firing, t(0, 0)).labels;
    assert!(active[0].silences(&labels, t(10, 0)));
    assert!(!active[0].silences(&labels, t(61, 0)));
    assert!(s.expire_silence(sid, t(20, 0)).await.unwrap());
    assert!(!s.expire_silence(sid, t(21, 0)).await.unwrap());
    assert!(s.silences(t(21, 0)).await.unwrap().is_empty());
}

/// An acknowledgement queues, in its transaction, what the caller makes of each notification
/// the alert's current firing sent (delivered, being retried): not of one given up on, one of
/// a step not yet due, or one of an earlier firing; and a second acknowledgement of the same
/// firing queues nothing again, the outbox's unique key holding.
pub(super) async fn an_acknowledgement_queues_notes_to_the_channels_its_firing_reached_once(
    b: Backend,
) {
    let s = &*b.store;
    let id = s
        .record_transition(
            &transition(None, AlertState::Firing, t(0, 0)),
            &[note("mail", "earlier", t(0, 0))],
        )
        .await
        .unwrap()
        .unwrap();
    for n in s
        .claim_notifications("x", t(0, 1), t(1, 0), 10)
        .await
        .unwrap()
    {
        assert!(s.mark_delivered(n.id, "x", t(0, 2)).await.unwrap());
    }
    s.record_transition(
        &transition(Some(AlertState::Firing), AlertState::Resolved, t(1, 0)),
        &[],
    )
    .await
    .unwrap()
    .unwrap();
    let mut again = transition(Some(AlertState::Resolved), AlertState::Firing, t(2, 0));
    again.fired_at = Some(t(2, 0));
    let notes = [
        note("mail", "sent", t(2, 0)),
        note("hook", "given-up", t(2, 0)),
        note("pager", "a-later-step", t(30, 0)),
        note("chat", "retrying", t(2, 0)),
    ];
    s.record_transition(&again, &notes).await.unwrap().unwrap();
    let claimed = s
        .claim_notifications("x", t(2, 1), t(3, 0), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 3, "{claimed:?}");
    for n in &claimed {
        assert_eq!(n.alert_id, Some(id));
        let done = match n.channel.as_str() {
            "mail" => s.mark_delivered(n.id, "x", t(2, 2)).await,
            "hook" => s.mark_failed(n.id, "x", "410", None, t(2, 2)).await,
            _ => {
                s.mark_failed(n.id, "x", "503", Some(t(40, 0)), t(2, 2))
                    .await
            }
        };
        assert!(done.unwrap());
    }
    let seen = std::sync::Mutex::new(Vec::new());
    let make = |n: &Notification| {
        seen.lock().unwrap().push(n.dedup_key.clone());
        Some(note(&n.channel, "acked", t(3, 0)))
    };
    assert!(s.ack_alert(id, "alice", t(3, 0), &make).await.unwrap());
    assert_eq!(*seen.lock().unwrap(), ["sent", "retrying"]);
    let queued = s
        .claim_notifications("y", t(3, 1), t(4, 0), 10)
        .await
        .unwrap();
    let mut to: Vec<(&str, &str)> = queued
        .iter()
        .map(|n| (n.channel.as_str(), n.dedup_key.as_str()))
        .collect();
    to.sort();
    assert_eq!(to, [("chat", "acked"), ("mail", "acked")]);
    // Again, by someone else: who is updated, nothing is queued.
    let before = s.deliveries(id).await.unwrap().len();
    assert!(s.ack_alert(id, "bob", t(5, 0), &make).await.unwrap());
    assert_eq!(s.deliveries(id).await.unwrap().len(), before);
    assert_eq!(
        s.alerts(&[AlertState::Firing]).await.unwrap()[0]
            .acked_by
            .as_deref(),
        Some("bob")
    );
}

/// The key acknowledge links are signed with is made once, by the first to ask, and every
/// later asker (a restart, another collector on the database) reads that one.
pub(super) async fn a_shared_key_is_made_once_and_read_by_every_collector(b: Backend) {
    let first = b.store.shared_key("ack_link", &[1; 32]).await.unwrap();
    assert_eq!(first, [1; 32]);
    assert_eq!(
        b.store.shared_key("ack_link", &[2; 32]).await.unwrap(),
        [1; 32]
    );
    let other = lookout_collector::store::open(&b.url, &Default::default())
        .await
        .unwrap();
    assert_eq!(
        other.shared_key("ack_link", &[3; 32]).await.unwrap(),
        [1; 32]
    );
    assert_eq!(
        other.shared_key("another", &[4; 32]).await.unwrap(),
        [4; 32]
    );
}

pub(super) async fn concurrent_senders_never_claim_one_notification_twice(b: Backend) {
    let notes: Vec<NewNotification> = (0..60)
        .map(|i| note("mail", &format!("n{i}"), t(0, 0)))
        .collect();
    b.store
        .record_transition(&transition(None, AlertState::Firing, t(0, 0)), &notes)
        .await
        .unwrap()
        .unwrap();
    let mut senders = Vec::new();
    for k in 0..4 {
        let store = b.store.clone();
        senders.push(tokio::spawn(async move {
            let owner = format!("sender-{k}");
            let mut got = Vec::new();
            loop {
                let batch = store
                    .claim_notifications(&owner, t(1, 0), t(30, 0), 3)
                    .await
                    .unwrap();
                if batch.is_empty() {
                    return got;
                }
                for n in batch {
                    assert!(
                        store.mark_delivered(n.id, &owner, t(1, 1)).await.unwrap(),
                        "lost the lease on {}",
                        n.id
                    );
                    got.push(n.id);
                }
            }
        }));
    }
    let mut all = Vec::new();
    for s in senders {
        all.extend(s.await.unwrap());
    }
    all.sort();
    let n = all.len();
    all.dedup();
    assert_eq!(
        (n, all.len()),
        (60, 60),
        "every notification claimed exactly once"
    );
}

/// A group of batches and the transitions written in its transaction (the evaluation of its
/// batches on a database of its own) commit together, or neither is stored; a transition the
/// group's ledger refuses leaves the rest of the group written, and the ledger reads the
/// group's own writes.
pub(super) async fn a_group_commits_its_transitions_with_its_batches_or_neither(b: Backend) {
    use AlertState::*;
    let s = &*b.store;
    let failing = batch("a", "id-1", vec![result("api", t(0, 0), false, 5.0)]);
    let item = NewBatch {
        agent: "a",
        batch: &failing,
        received: t(0, 0),
    };
    let fire = [note("mail", "1:firing", t(0, 0))];

    // Written, then dropped before the commit (as when the commit fails): nothing is stored.
    let (out, mut group) = s.open_group(&[item]).await.unwrap();
    assert!(!out[0].duplicate);
    let id = group
        .record_transition(&transition(None, Firing, t(0, 0)), &fire)
        .await
        .unwrap();
    assert!(id.is_some());
    let seen = group
        .alert("uptime:api")
        .await
        .unwrap()
        .expect("its own write");
    assert_eq!(seen.state, Firing);
    drop(group);
    assert!(s.alerts(&AlertState::ALL).await.unwrap().is_empty());
    assert_eq!(s.next_notification_due().await.unwrap(), None);
    let (from, to) = all_time();
    let api = ResultQuery {
        check: "api".into(),
        agent: None,
        from,
        to,
        limit: 10,
    };
    assert!(s.results(&api).await.unwrap().is_empty());

    // Committed: the batch, the alert, its history and its outbox row, at once.
    let (out, mut group) = s.open_group(&[item]).await.unwrap();
    assert!(!out[0].duplicate, "the dropped group stored nothing");
    let id = group
        .record_transition(&transition(None, Firing, t(0, 0)), &fire)
        .await
        .unwrap()
        .unwrap();
    // Refused (the alert is not pending): only this transition is undone, not the group.
    assert_eq!(
        group
            .record_transition(&transition(Some(Pending), Resolved, t(0, 1)), &[])
            .await
            .unwrap(),
        None
    );
    group.commit().await.unwrap();
    let firing = s.alerts(&[Firing]).await.unwrap();
    assert_eq!(firing.len(), 1);
    assert_eq!(firing[0].id, id);
    assert_eq!(s.alert_history(id).await.unwrap().len(), 1);
    assert_eq!(s.deliveries(id).await.unwrap().len(), 1);
    assert_eq!(s.results(&api).await.unwrap().len(), 1);
    let again = s.ingest("a", &failing, t(0, 1)).await.unwrap();
    assert!(again.duplicate);
}
