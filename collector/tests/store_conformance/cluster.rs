//! Collectors sharing one database: the leader's queue of stored batches, presence.

use chrono::{DateTime, Utc};
use lookout_protocol::Record;

use super::{Backend, batch, ingest, result, sample, t};

pub(super) async fn a_shared_database_queues_each_stored_batch_once_for_the_leader(b: Backend) {
    let s = &*b.store;
    let first = batch("web-1", "1", vec![result("api", t(0, 0), false, 5.0)]);
    s.ingest("web-1", &first, t(0, 0)).await.unwrap();
    let resend = s.ingest("web-1", &first, t(0, 1)).await.unwrap();
    assert!(resend.duplicate);
    ingest(s, "web-2", "1", vec![sample("load", &[], t(0, 1), 1.5)]).await;
    let queued = s.queued_batches(10).await.unwrap();
    if !s.shared() {
        // SQLite: one collector, which evaluates in process; nothing is queued.
        assert!(queued.is_empty());
        return;
    }
    let seen: Vec<(&str, usize)> = queued
        .iter()
        .map(|q| {
            (
                q.agent.as_str(),
                q.records.as_ref().map(Vec::len).unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [("web-1", 1), ("web-2", 1)],
        "the resend is not queued again"
    );
    match &queued[0].records.as_ref().unwrap()[0] {
        Record::CheckResult(c) => assert!(c.check == "api" && !c.ok),
        other => panic!("{other:?}"),
    }
    s.dequeue_batches(&[queued[0].id]).await.unwrap();
    let left = s.queued_batches(10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].agent, "web-2");
}

pub(super) async fn collectors_announce_themselves_and_age_out(b: Backend) {
    use lookout_collector::store::cluster::CollectorRow;
    let s = &*b.store;
    let row = |instance: &str, seen: DateTime<Utc>, leader: Option<DateTime<Utc>>| CollectorRow {
        instance: instance.into(),
        address: format!("http://{instance}:7700"),
        version: "0.1.0".into(),
        started: t(0, 0),
        seen,
        leader_since: leader,
    };
    s.announce(&row("a", t(0, 10), Some(t(0, 1))))
        .await
        .unwrap();
    s.announce(&row("b", t(0, 10), None)).await.unwrap();
    s.announce(&row("old", t(0, 0), None)).await.unwrap();
    // A later announcement replaces the row: b leads now, a is gone quiet.
    s.announce(&row("b", t(0, 20), Some(t(0, 15))))
        .await
        .unwrap();
    let listed = s.collectors(t(0, 5)).await.unwrap();
    let names: Vec<&str> = listed.iter().map(|c| c.instance.as_str()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.contains(&"a") && names.contains(&"b"));
    let b_row = listed.iter().find(|c| c.instance == "b").unwrap();
    assert_eq!(b_row.leader_since, Some(t(0, 15)));
    assert_eq!(b_row.seen, t(0, 20));
}
