//! Escalation steps in the outbox: queued with the firing and due each at its step, a group
//! never sending a step before its time, acknowledging or resolving cancelling what no
//! sender holds, the resolve following only the steps that went out, and the last step's
//! repeat queued as it is delivered (docs/alerting.md, "Escalation").

use std::time::Duration;

use chrono::{DateTime, Utc};
use lookout_collector::store::Store;
use lookout_collector::store::alerting::{
    AlertState, DeliveryState, Escalation, NewNotification, Notification, Transition,
};

use super::{Backend, t};

fn transition(
    check: &str,
    from: Option<AlertState>,
    to: AlertState,
    fired: DateTime<Utc>,
    at: DateTime<Utc>,
) -> Transition {
    Transition {
        fingerprint: format!("uptime/{check}"),
        rule: "uptime".into(),
        labels: [("check".to_string(), check.to_string())].into(),
        from,
        to,
        at,
        summary: format!("{check} is {}", to.as_str()),
        fired_at: Some(fired),
        notified_at: Some(fired),
        recorded_at: at,
    }
}

/// Step `index` of `check`'s firing at `fired`, to `channel`, due `after` minutes later.
fn step(
    check: &str,
    fired: DateTime<Utc>,
    index: u32,
    channel: &str,
    after: i64,
    repeat: Option<u64>,
) -> NewNotification {
    let due = fired + chrono::Duration::minutes(after);
    NewNotification {
        channel: channel.into(),
        dedup_key: format!(
            "uptime/{check}/firing/{}/step{index}",
            fired.timestamp_millis()
        ),
        group_key: format!("route0:step{index}:"),
        payload: serde_json::json!({ "check": check, "step": index }),
        not_before: due,
        escalation: Some(Escalation::Step {
            index,
            due,
            repeat: repeat.map(|m| Duration::from_secs(m * 60)),
        }),
    }
}

/// The resolved note of `check`'s firing at `fired` to `channel`, following its steps.
fn follow(check: &str, fired: DateTime<Utc>, channel: &str, at: DateTime<Utc>) -> NewNotification {
    NewNotification {
        channel: channel.into(),
        dedup_key: format!("uptime/{check}/resolved/{}", at.timestamp_millis()),
        group_key: "route0:".into(),
        payload: serde_json::json!({ "check": check, "resolved": true }),
        not_before: at,
        escalation: Some(Escalation::Follow { since: fired }),
    }
}

/// Claims what is due at `now` and marks it delivered at `done`: (check, channel) of each.
async fn send(s: &dyn Store, now: DateTime<Utc>, done: DateTime<Utc>) -> Vec<(String, String)> {
    let rows = s
        .claim_notifications("w", now, now + chrono::Duration::minutes(2), 50)
        .await
        .unwrap();
    let mut out = Vec::new();
    for r in rows {
        assert!(s.mark_delivered(r.id, "w", done).await.unwrap());
        out.push((r.payload["check"].as_str().unwrap().to_string(), r.channel));
    }
    out
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

async fn deliveries(s: &dyn Store, id: i64) -> Vec<(String, DeliveryState)> {
    s.deliveries(id)
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.channel, d.state))
        .collect()
}

fn owned(v: &[(&str, DeliveryState)]) -> Vec<(String, DeliveryState)> {
    v.iter().map(|(c, d)| (c.to_string(), *d)).collect()
}

pub(super) async fn escalation_steps_are_due_in_turn_and_stop_when_acknowledged_or_resolved(
    b: Backend,
) {
    use DeliveryState::{Cancelled, Delivered, Pending};
    let s = &*b.store;
    let (a0, b0) = (t(0, 0), t(1, 0));
    let api = s
        .record_transition(
            &transition("api", None, AlertState::Firing, a0, a0),
            &[
                step("api", a0, 0, "slack", 0, None),
                step("api", a0, 1, "pushover", 5, None),
                step("api", a0, 2, "pd", 15, Some(30)),
            ],
        )
        .await
        .unwrap()
        .unwrap();
    let web = s
        .record_transition(
            &transition("web", None, AlertState::Firing, b0, b0),
            &[
                step("web", b0, 0, "slack", 0, None),
                step("web", b0, 1, "pushover", 5, None),
            ],
        )
        .await
        .unwrap()
        .unwrap();
    // Each step when it comes: web's first step, in api's group, does not go a minute early.
    assert_eq!(
        send(s, t(0, 30), t(0, 31)).await,
        pairs(&[("api", "slack")])
    );
    assert_eq!(s.next_notification_due().await.unwrap(), Some(b0));
    assert_eq!(send(s, b0, b0).await, pairs(&[("web", "slack")]));

    // web resolves before its second step: the step is cancelled, and the resolve goes only
    // where a step went.
    let resolved = t(3, 0);
    s.record_transition(
        &transition(
            "web",
            Some(AlertState::Firing),
            AlertState::Resolved,
            b0,
            resolved,
        ),
        &[
            follow("web", b0, "slack", resolved),
            follow("web", b0, "pushover", resolved),
        ],
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        deliveries(s, web).await,
        owned(&[
            ("slack", Delivered),
            ("pushover", Cancelled),
            ("slack", Pending)
        ])
    );
    assert_eq!(
        send(s, resolved, resolved).await,
        pairs(&[("web", "slack")])
    );

    // api's second step at 5 minutes, its third at 15.
    assert_eq!(s.next_notification_due().await.unwrap(), Some(t(5, 0)));
    assert!(send(s, t(4, 59), t(4, 59)).await.is_empty());
    assert_eq!(
        send(s, t(5, 0), t(5, 1)).await,
        pairs(&[("api", "pushover")])
    );
    assert_eq!(s.next_notification_due().await.unwrap(), Some(t(15, 0)));
    assert_eq!(send(s, t(15, 0), t(15, 5)).await, pairs(&[("api", "pd")]));
    // The last step repeats every 30 minutes from its time, as it is delivered...
    assert_eq!(s.next_notification_due().await.unwrap(), Some(t(45, 0)));
    // ...and a repeat sent late (the collector was down) is followed by the next slot after
    // it, not by every slot it missed.
    assert_eq!(send(s, t(100, 0), t(100, 0)).await, pairs(&[("api", "pd")]));
    assert_eq!(s.next_notification_due().await.unwrap(), Some(t(105, 0)));

    // Acknowledged while a sender holds the repeat: that one goes out once, and no other
    // is queued after it.
    let held = s
        .claim_notifications("w", t(105, 0), t(107, 0), 50)
        .await
        .unwrap();
    assert_eq!(held.len(), 1);
    assert!(
        s.ack_alert(api, "alice", t(105, 1), &|_| None)
            .await
            .unwrap()
    );
    assert!(s.mark_delivered(held[0].id, "w", t(105, 2)).await.unwrap());
    assert_eq!(s.next_notification_due().await.unwrap(), None);

    // Resolved: to each channel a step of this firing went to, not to one it never reached.
    let end = t(110, 0);
    s.record_transition(
        &transition(
            "api",
            Some(AlertState::Firing),
            AlertState::Resolved,
            a0,
            end,
        ),
        &["slack", "pushover", "pd", "mail"].map(|c| follow("api", a0, c, end)),
    )
    .await
    .unwrap()
    .unwrap();
    let mut sent = send(s, end, end).await;
    sent.sort();
    assert_eq!(
        sent,
        pairs(&[("api", "pd"), ("api", "pushover"), ("api", "slack")])
    );

    // Acknowledged before any step went out: every step is cancelled, none is sent, and a
    // resolve follows none of them.
    let c0 = t(200, 0);
    let db = s
        .record_transition(
            &transition("db", None, AlertState::Firing, c0, c0),
            &[
                step("db", c0, 0, "slack", 1, None),
                step("db", c0, 1, "pd", 5, Some(30)),
            ],
        )
        .await
        .unwrap()
        .unwrap();
    // The acknowledged notes follow what was sent: nothing here.
    let ack_note = |sent: &Notification| {
        Some(NewNotification {
            dedup_key: format!("{}/acknowledged", sent.dedup_key),
            escalation: None,
            ..follow("db", c0, &sent.channel, t(200, 30))
        })
    };
    assert!(s.ack_alert(db, "bob", t(200, 30), &ack_note).await.unwrap());
    assert_eq!(
        deliveries(s, db).await,
        owned(&[("slack", Cancelled), ("pd", Cancelled)])
    );
    assert!(send(s, t(300, 0), t(300, 0)).await.is_empty());
    let end = t(301, 0);
    s.record_transition(
        &transition(
            "db",
            Some(AlertState::Firing),
            AlertState::Resolved,
            c0,
            end,
        ),
        &[follow("db", c0, "slack", end), follow("db", c0, "pd", end)],
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(s.next_notification_due().await.unwrap(), None);

    // web fires again: its earlier firing's delivered step is not this one's, and the
    // resolve does not follow it.
    let w1 = t(400, 0);
    s.record_transition(
        &transition(
            "web",
            Some(AlertState::Resolved),
            AlertState::Firing,
            w1,
            w1,
        ),
        &[step("web", w1, 0, "pushover", 0, None)],
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(send(s, w1, w1).await, pairs(&[("web", "pushover")]));
    let end = t(401, 0);
    s.record_transition(
        &transition(
            "web",
            Some(AlertState::Firing),
            AlertState::Resolved,
            w1,
            end,
        ),
        &[
            follow("web", w1, "slack", end),
            follow("web", w1, "pushover", end),
        ],
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(send(s, end, end).await, pairs(&[("web", "pushover")]));
}
