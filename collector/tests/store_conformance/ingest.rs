//! Storing batches: once per batch id, in groups, latest values, agents, raw results read back.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use lookout_collector::store::{LogQuery, ResultQuery};

use super::{Backend, all_time, batch, count_samples, ingest, log, result, sample, t};

pub(super) async fn a_batch_is_stored_once(b: Backend) {
    let s = &*b.store;
    let b1 = batch(
        "a",
        "id-1",
        vec![
            result("api", t(0, 0), true, 5.0),
            sample("m", &[], t(0, 0), 1.0),
        ],
    );
    let first = s.ingest("a", &b1, Utc::now()).await.unwrap();
    assert_eq!((first.stored, first.duplicate), (2, false));
    let again = s.ingest("a", &b1, Utc::now()).await.unwrap();
    assert_eq!((again.stored, again.duplicate), (0, true));
    // The same id from another agent is another batch.
    let other = s
        .ingest(
            "b",
            &batch("b", "id-1", vec![result("api", t(0, 1), false, 9.0)]),
            Utc::now(),
        )
        .await
        .unwrap();
    assert!(!other.duplicate);
    let (from, to) = all_time();
    let rows = s
        .results(&ResultQuery {
            check: "api".into(),
            agent: None,
            from,
            to,
            limit: 100,
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
}

pub(super) async fn latest_values_follow_time_not_arrival(b: Backend) {
    let s = &*b.store;
    ingest(
        s,
        "a",
        "1",
        vec![
            result("api", t(5, 0), false, 7.0),
            sample("m", &[("k", "v")], t(5, 0), 2.0),
        ],
    )
    .await;
    // A late, older result (an agent's backlog) must not replace the newer one.
    ingest(
        s,
        "a",
        "2",
        vec![
            result("api", t(1, 0), true, 3.0),
            sample("m", &[("k", "v")], t(1, 0), 1.0),
        ],
    )
    .await;
    let latest = s.latest_results().await.unwrap();
    assert_eq!(latest.len(), 1);
    assert_eq!(latest[0].time, t(5, 0));
    assert!(!latest[0].ok);
    assert_eq!(latest[0].status_code, Some(503));
    assert_eq!(
        latest[0].cert_expiry,
        Some(t(5, 0) + chrono::Duration::days(2))
    );
    assert_eq!(latest[0].timings.connect_ms, Some(1.5));
    assert_eq!(latest[0].check_type.as_deref(), Some("http"));
    let metrics = s.latest_metrics("a").await.unwrap();
    assert_eq!(metrics.len(), 1);
    assert_eq!(metrics[0].value, 2.0);
    assert_eq!(metrics[0].labels.get("k").map(String::as_str), Some("v"));
    assert_eq!(metrics[0].metric_type, "gauge");
}

pub(super) async fn results_filter_and_order(b: Backend) {
    let s = &*b.store;
    ingest(
        s,
        "a",
        "1",
        (0..10)
            .map(|i| result("api", t(i, 0), i % 2 == 0, i as f64))
            .collect(),
    )
    .await;
    ingest(
        s,
        "b",
        "1",
        vec![
            result("api", t(3, 30), true, 1.0),
            result("other", t(3, 30), true, 1.0),
        ],
    )
    .await;
    let q = |agent: Option<&str>, from: DateTime<Utc>, to: DateTime<Utc>, limit: u32| ResultQuery {
        check: "api".into(),
        agent: agent.map(String::from),
        from,
        to,
        limit,
    };
    let rows = s.results(&q(None, t(2, 0), t(4, 0), 100)).await.unwrap();
    let times: Vec<_> = rows.iter().map(|r| (r.agent.as_str(), r.time)).collect();
    assert_eq!(
        times,
        [
            ("a", t(4, 0)),
            ("b", t(3, 30)),
            ("a", t(3, 0)),
            ("a", t(2, 0))
        ]
    );
    // The failed one at minute 3 kept its certificate expiry and phase timings.
    assert_eq!(
        rows[2].cert_expiry,
        Some(t(3, 0) + chrono::Duration::days(2))
    );
    assert_eq!(rows[2].timings.connect_ms, Some(1.5));
    assert_eq!(rows[0].cert_expiry, None);
    let rows = s
        .results(&q(Some("a"), t(0, 0), t(100, 0), 3))
        .await
        .unwrap();
    assert_eq!(
        rows.iter().map(|r| r.latency_ms).collect::<Vec<_>>(),
        [9.0, 8.0, 7.0]
    );
    assert!(rows.iter().all(|r| r.agent == "a"));
}

pub(super) async fn many_new_series_in_one_batch_get_their_own_ids(b: Backend) {
    let s = &*b.store;
    // 700 metric series (more than one multi-row insert holds) each sampled twice, and 3
    // checks, new for two agents with the same names: every value lands on its own series.
    for agent in ["a", "b"] {
        let mut records = Vec::new();
        for round in 0..2 {
            for i in 0..700 {
                let value = if agent == "a" { i as f64 } else { -(i as f64) } + round as f64 * 0.5;
                let label = i.to_string();
                records.push(sample("m", &[("i", label.as_str())], t(round, 0), value));
            }
        }
        for check in ["c1", "c2", "c3"] {
            records.push(result(check, t(0, 0), agent == "a", 1.0));
        }
        ingest(s, agent, "1", records).await;
    }
    for (agent, sign) in [("a", 1.0), ("b", -1.0)] {
        let latest = s.latest_metrics(agent).await.unwrap();
        assert_eq!(latest.len(), 700, "{agent}");
        for m in &latest {
            let i: f64 = m.labels["i"].parse().unwrap();
            assert_eq!(m.value, sign * i + 0.5, "{agent} {m:?}");
        }
    }
    let latest = s.latest_results().await.unwrap();
    assert_eq!(latest.len(), 6);
    assert!(
        latest.iter().all(|r| r.ok == (r.agent == "a")),
        "{latest:?}"
    );
}

pub(super) async fn a_group_of_batches_is_stored_in_one_go_each_once(b: Backend) {
    use lookout_collector::store::NewBatch;
    let s = &*b.store;
    // One batch stored before; then a group with it again, two new ones from two agents, and
    // one of those twice (a retry while the first was still queued).
    ingest(s, "a", "old", vec![result("api", t(0, 0), true, 1.0)]).await;
    let old = batch("a", "old", vec![result("api", t(0, 1), false, 1.0)]);
    let a1 = batch(
        "a",
        "1",
        vec![result("api", t(1, 0), false, 2.0), log(t(1, 0), "from a")],
    );
    let b1 = batch(
        "b",
        "1",
        vec![
            result("api", t(2, 0), true, 3.0),
            sample("load", &[], t(2, 0), 0.5),
            log(t(2, 0), "from b"),
        ],
    );
    let item = |agent, batch| NewBatch {
        agent,
        batch,
        received: t(3, 0),
    };
    let out = s
        .ingest_many(&[
            item("a", &old),
            item("a", &a1),
            item("b", &b1),
            item("a", &a1),
        ])
        .await
        .unwrap();
    let shape: Vec<_> = out.iter().map(|o| (o.stored, o.duplicate)).collect();
    assert_eq!(shape, [(0, true), (2, false), (3, false), (0, true)]);
    // Each stored once, under its own agent.
    let (from, to) = all_time();
    let api = |agent: &str| ResultQuery {
        check: "api".into(),
        agent: Some(agent.into()),
        from,
        to,
        limit: 100,
    };
    assert_eq!(s.results(&api("a")).await.unwrap().len(), 2);
    assert_eq!(s.results(&api("b")).await.unwrap().len(), 1);
    let lines = s
        .logs(&LogQuery {
            text: None,
            agent: None,
            source: None,
            level: None,
            before: None,
            from,
            to,
            limit: 10,
        })
        .await
        .unwrap();
    let mut who: Vec<_> = lines
        .iter()
        .map(|l| (l.agent.as_str(), l.text.as_str()))
        .collect();
    who.sort();
    assert_eq!(who, [("a", "from a"), ("b", "from b")]);
    assert_eq!(s.latest_metrics("b").await.unwrap()[0].value, 0.5);
    // b is seen at the group's arrival; a was seen later before (by the first batch), and
    // last_seen never goes back.
    let agents = s.agents().await.unwrap();
    assert_eq!(agents[1].last_seen, Some(t(3, 0)), "{agents:?}");
    assert!(agents[0].last_seen > Some(t(3, 0)), "{agents:?}");
}

/// A batch of more samples than a block holds is stored as several, all read and rolled up.
pub(super) async fn a_batch_larger_than_a_block_is_stored_whole(b: Backend) {
    let s = &*b.store;
    let n = lookout_collector::store::blocks::MAX_SAMPLES + 3;
    let records = (0..n)
        .map(|i| {
            sample(
                "m",
                &[],
                t(0, 0) + chrono::Duration::milliseconds(i as i64),
                1.0,
            )
        })
        .collect();
    ingest(s, "a", "big", records).await;
    assert_eq!(count_samples(s, "m").await, n);
    let mut rolled = 0;
    loop {
        let k = s.roll_up(5_000).await.unwrap();
        if k == 0 {
            break;
        }
        rolled += k;
    }
    assert_eq!(rolled as usize, n);
}

pub(super) async fn agents_are_listed_with_labels_and_last_seen(b: Backend) {
    let s = &*b.store;
    let labels: BTreeMap<String, String> = [("role".to_string(), "web".to_string())]
        .into_iter()
        .collect();
    let claimed: BTreeMap<String, String> = [("role".to_string(), "db".to_string())]
        .into_iter()
        .collect();
    s.upsert_agent("web-1", &labels, Some(&claimed), Some("0.1.0"))
        .await
        .unwrap();
    s.upsert_agent("db-1", &BTreeMap::new(), None, None)
        .await
        .unwrap();
    let received = Utc.timestamp_millis_opt(1_800_000_000_000).unwrap();
    s.ingest("web-1", &batch("web-1", "1", vec![]), received)
        .await
        .unwrap();
    // An earlier arrival time never moves last_seen back.
    s.ingest(
        "web-1",
        &batch("web-1", "2", vec![]),
        received - chrono::Duration::hours(1),
    )
    .await
    .unwrap();
    let agents = s.agents().await.unwrap();
    assert_eq!(
        agents.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
        ["db-1", "web-1"]
    );
    assert_eq!(agents[1].labels, labels);
    assert_eq!(agents[1].last_seen, Some(received));
    assert_eq!(agents[0].last_seen, None);
    assert_eq!(
        (agents[0].version.as_deref(), agents[1].version.as_deref()),
        (None, Some("0.1.0"))
    );
    assert_eq!(agents[1].claimed_labels, claimed, "kept beside the labels");
    assert!(agents[0].claimed_labels.is_empty(), "nothing sent yet");
    // A later upsert without a version or claims (a restart reading the configuration) keeps
    // the ones recorded.
    s.upsert_agent("web-1", &labels, None, None).await.unwrap();
    let agents = s.agents().await.unwrap();
    assert_eq!(agents[1].version.as_deref(), Some("0.1.0"));
    assert_eq!(agents[1].claimed_labels, claimed);
}

pub(super) async fn an_agent_that_left_is_recorded_until_its_next_batch(b: Backend) {
    use lookout_collector::store::Presence;
    let s = &*b.store;
    let at = Utc.timestamp_millis_opt(1_800_000_000_000).unwrap();
    // An agent not recorded yet (a goodbye before any batch) is added.
    s.set_agent_presence("web-1", Some(Presence::Stopped), at)
        .await
        .unwrap();
    s.set_agent_presence("web-2", Some(Presence::Retired), at)
        .await
        .unwrap();
    let agents = s.agents().await.unwrap();
    assert_eq!(agents[0].presence, Some((Presence::Stopped, at)));
    assert_eq!(agents[1].presence, Some((Presence::Retired, at)));
    // Its next batch, whatever its arrival time, is its return.
    s.ingest(
        "web-1",
        &batch("web-1", "1", vec![]),
        at - chrono::Duration::hours(1),
    )
    .await
    .unwrap();
    let agents = s.agents().await.unwrap();
    assert_eq!(agents[0].presence, None);
    assert_eq!(agents[1].presence, Some((Presence::Retired, at)));
    // And a return said outright clears it too.
    s.set_agent_presence("web-2", None, at).await.unwrap();
    assert_eq!(s.agents().await.unwrap()[1].presence, None);
}
