//! The mapping from query rows to samples, on readings written as PostgreSQL 15 answers them:
//! a primary with one streaming replica (whose lags are NULL once it caught up) and a replica.

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use lookout_protocol::MetricType;

use super::*;

fn values(r: &Reading) -> BTreeMap<String, (f64, MetricType)> {
    let labels: BTreeMap<String, String> = [("integration".to_string(), "p".to_string())].into();
    let time = Utc.timestamp_opt(1_796_678_700, 0).unwrap();
    let samples = samples(r, time, &labels);
    let n = samples.len();
    let out: BTreeMap<_, _> = samples
        .into_iter()
        .map(|s| {
            assert_eq!(s.labels["integration"], "p", "{s:?}");
            assert_eq!(s.time, time);
            let extra: Vec<String> = s
                .labels
                .iter()
                .filter(|(k, _)| *k != "integration")
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let key = if extra.is_empty() {
                s.name
            } else {
                format!("{}{{{}}}", s.name, extra.join(","))
            };
            (key, (s.value, s.metric_type))
        })
        .collect();
    assert_eq!(out.len(), n, "a series given twice");
    out
}

fn database(name: &str) -> Database {
    Database {
        name: name.into(),
        commits: 1520.0,
        rollbacks: 3.0,
        blks_hit: 900.0,
        blks_read: 100.0,
        deadlocks: 1.0,
        temp_files: 2.0,
        temp_bytes: 16_384.0,
        size: 7_631_663.0,
    }
}

fn primary() -> Reading {
    Reading {
        max_connections: 30.0,
        backends: vec![
            ("active".into(), 1.0),
            ("idle".into(), 24.0),
            ("idle in transaction".into(), 1.0),
        ],
        longest_transaction: Some(12.5),
        locks_waiting: 2.0,
        in_recovery: false,
        databases: vec![database("app"), database("postgres")],
        replicas: vec![
            Replica {
                name: "replica1".into(),
                data_delay: 16_800.0,
                lag: [Some(0.001), Some(0.002), Some(0.25)],
            },
            Replica {
                name: "10.0.0.7".into(),
                data_delay: 0.0,
                lag: [None, None, None],
            },
        ],
        standby: None,
        skipped: 0,
    }
}

#[test]
fn a_primary_s_rows_give_the_receiver_s_names_with_their_types_and_labels() {
    let v = values(&primary());
    for (key, value, kind) in [
        ("postgresql.connection.max", 30.0, MetricType::Gauge),
        ("postgresql.backends{state=idle}", 24.0, MetricType::Gauge),
        (
            "postgresql.backends{state=idle in transaction}",
            1.0,
            MetricType::Gauge,
        ),
        (
            "postgresql.connection.usage",
            26.0 / 30.0,
            MetricType::Gauge,
        ),
        ("postgresql.transaction.max_age", 12.5, MetricType::Gauge),
        ("postgresql.locks.waiting", 2.0, MetricType::Gauge),
        ("postgresql.recovery", 0.0, MetricType::Gauge),
        ("postgresql.commits{db=app}", 1520.0, MetricType::Counter),
        ("postgresql.rollbacks{db=app}", 3.0, MetricType::Counter),
        ("postgresql.blks_hit{db=app}", 900.0, MetricType::Counter),
        ("postgresql.blks_read{db=app}", 100.0, MetricType::Counter),
        ("postgresql.cache.hit_ratio{db=app}", 0.9, MetricType::Gauge),
        (
            "postgresql.deadlocks{db=postgres}",
            1.0,
            MetricType::Counter,
        ),
        ("postgresql.temp_files{db=app}", 2.0, MetricType::Counter),
        ("postgresql.temp.io{db=app}", 16_384.0, MetricType::Counter),
        (
            "postgresql.db_size{db=postgres}",
            7_631_663.0,
            MetricType::Gauge,
        ),
        (
            "postgresql.replication.data_delay{replica=replica1}",
            16_800.0,
            MetricType::Gauge,
        ),
        (
            "postgresql.wal.lag{operation=replay,replica=replica1}",
            0.25,
            MetricType::Gauge,
        ),
        (
            "postgresql.wal.lag{operation=write,replica=replica1}",
            0.001,
            MetricType::Gauge,
        ),
        // NULL lags (caught up, nothing sent) are no lag.
        (
            "postgresql.wal.lag{operation=replay,replica=10.0.0.7}",
            0.0,
            MetricType::Gauge,
        ),
    ] {
        assert_eq!(v.get(key), Some(&(value, kind)), "{key}: {v:?}");
    }
    assert!(
        !v.keys().any(|k| k.starts_with("postgresql.replica.")),
        "{v:?}"
    );
    // 8 server-wide (3 of them states), 9 a database, 4 a replica.
    assert_eq!(v.len(), 8 + 2 * 9 + 2 * 4, "{v:?}");
}

#[test]
fn a_replica_gives_its_own_replay_lag_and_no_replication_rows() {
    let r = Reading {
        in_recovery: true,
        replicas: Vec::new(),
        standby: Some(Standby {
            replay_delay: 81_920.0,
            replay_age: Some(3.5),
        }),
        ..primary()
    };
    let v = values(&r);
    assert_eq!(v["postgresql.recovery"], (1.0, MetricType::Gauge));
    assert_eq!(
        v["postgresql.replica.data_delay"],
        (81_920.0, MetricType::Gauge)
    );
    assert_eq!(v["postgresql.replica.lag"], (3.5, MetricType::Gauge));
    assert!(!v.keys().any(|k| k.starts_with("postgresql.replication.")));
    assert!(!v.keys().any(|k| k.starts_with("postgresql.wal.")));
    // Nothing replayed since the replica started: no age is made up.
    let r = Reading {
        standby: Some(Standby {
            replay_delay: 10.0,
            replay_age: None,
        }),
        ..r
    };
    let v = values(&r);
    assert_eq!(v["postgresql.replica.data_delay"].0, 10.0);
    assert!(!v.contains_key("postgresql.replica.lag"));
}

#[test]
fn empty_and_odd_rows_give_no_made_up_figures() {
    let r = Reading {
        max_connections: 0.0,
        backends: Vec::new(),
        longest_transaction: None,
        databases: vec![Database {
            blks_hit: 0.0,
            blks_read: 0.0,
            size: f64::NAN,
            ..database("fresh")
        }],
        replicas: vec![Replica {
            name: "r".into(),
            // A clock step can make a difference negative: never a negative lag.
            data_delay: -8.0,
            lag: [None, None, Some(-0.5)],
        }],
        ..primary()
    };
    let v = values(&r);
    // No limit: no usage ratio (never a division by 0); no block read: no hit ratio.
    assert!(!v.contains_key("postgresql.connection.usage"));
    assert!(!v.contains_key("postgresql.cache.hit_ratio{db=fresh}"));
    // A value that is not a finite number gives no sample.
    assert!(!v.contains_key("postgresql.db_size{db=fresh}"));
    assert!(!v.contains_key("postgresql.transaction.max_age"));
    assert!(!v.keys().any(|k| k.starts_with("postgresql.backends")));
    assert_eq!(v["postgresql.replication.data_delay{replica=r}"].0, 0.0);
    assert_eq!(v["postgresql.wal.lag{operation=replay,replica=r}"].0, 0.0);
}

#[test]
fn a_url_that_is_not_postgresql_s_is_a_config_error_that_hides_the_password() {
    let e = Source::new(
        "postgres://u:pw-77aa@h:5432/db?sslmode=bogus",
        Duration::from_secs(1),
    )
    .err()
    .expect("sslmode=bogus is refused");
    assert!(matches!(e, ReadError::Config(_)), "{e}");
    assert!(!e.to_string().contains("pw-77aa"), "{e}");
}
