//! The `INFO` parser against answers captured from redis-server 7.0.15 on this machine
//! (`redis-cli info`, CRLF kept): a primary with `maxmemory 2mb` and `allkeys-lru` after 60
//! evictions, its replica, and a standalone server with keys in two databases.

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use lookout_protocol::MetricType;

use super::*;

const PRIMARY: &str = include_str!("../fixtures/redis-7.0-primary.info");
const REPLICA: &str = include_str!("../fixtures/redis-7.0-replica.info");
const STANDALONE: &str = include_str!("../fixtures/redis-7.0-standalone.info");

fn values(text: &str) -> BTreeMap<String, (f64, MetricType)> {
    let labels: BTreeMap<String, String> = [("integration".to_string(), "r".to_string())].into();
    let time = Utc.timestamp_opt(1_796_678_700, 0).unwrap();
    samples(&parse(text), time, &labels)
        .into_iter()
        .map(|s| {
            assert_eq!(s.labels["integration"], "r", "{s:?}");
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
        .collect()
}

#[test]
fn a_primary_s_info_gives_the_receiver_s_metrics_and_replica_lag() {
    let info = parse(PRIMARY);
    assert_eq!(info.skipped, 0);
    assert_eq!(info.text("role"), Some("master"));
    let v = values(PRIMARY);
    // The figures as the fixture says them (grep the file for the field).
    for (name, value, kind) in [
        ("redis.memory.used", 1_932_808.0, MetricType::Gauge),
        ("redis.maxmemory", 2_097_152.0, MetricType::Gauge),
        ("redis.keys.evicted", 60.0, MetricType::Counter),
        ("redis.slaves.connected", 1.0, MetricType::Gauge),
        ("redis.replication.offset", 803_330.0, MetricType::Gauge),
        (
            "redis.replication.replica_lag{replica=127.0.0.1:16392}",
            0.0,
            MetricType::Gauge,
        ),
        ("redis.rdb.last_save.status", 1.0, MetricType::Gauge),
    ] {
        assert_eq!(v.get(name), Some(&(value, kind)), "{name}: {v:?}");
    }
    // Not a replica: no link status.
    assert!(!v.contains_key("redis.replication.link_status"), "{v:?}");
}

#[test]
fn a_replica_s_info_gives_its_link_and_offset() {
    let v = values(REPLICA);
    assert_eq!(v["redis.replication.link_status"].0, 1.0);
    assert_eq!(v["redis.replication.replica_offset"].0, 803_330.0);
    assert_eq!(v["redis.maxmemory"].0, 0.0);
    assert_eq!(v["redis.uptime"], (9.0, MetricType::Counter));
    // server_time_usec 1796678679.06 - rdb_last_save_time 1796678670.
    assert!(
        (v["redis.rdb.last_save.age"].0 - 9.059_272).abs() < 1e-3,
        "{v:?}"
    );
    let down = REPLICA.replace("master_link_status:up", "master_link_status:down");
    assert_eq!(values(&down)["redis.replication.link_status"].0, 0.0);
}

#[test]
fn keyspace_lines_become_per_db_series_and_every_listed_metric_is_there() {
    let v = values(STANDALONE);
    assert_eq!(v["redis.db.keys{db=db0}"], (21.0, MetricType::Gauge));
    assert_eq!(v["redis.db.expires{db=db0}"].0, 1.0);
    assert_eq!(v["redis.db.keys{db=db3}"].0, 1.0);
    for name in [
        "redis.memory.used",
        "redis.memory.peak",
        "redis.maxmemory",
        "redis.clients.connected",
        "redis.clients.blocked",
        "redis.commands",
        "redis.commands.processed",
        "redis.keyspace.hits",
        "redis.keyspace.misses",
        "redis.keys.evicted",
        "redis.keys.expired",
        "redis.replication.offset",
        "redis.replication.backlog_first_byte_offset",
        "redis.slaves.connected",
        "redis.rdb.changes_since_last_save",
        "redis.uptime",
        "redis.rdb.last_save.status",
        "redis.rdb.last_save.age",
    ] {
        assert!(v.contains_key(name), "{name} missing: {v:?}");
    }
    let err = STANDALONE.replace("rdb_last_bgsave_status:ok", "rdb_last_bgsave_status:err");
    assert_eq!(values(&err)["redis.rdb.last_save.status"].0, 0.0);
}

#[test]
fn long_malformed_and_non_numeric_lines_are_skipped_not_fatal() {
    let long = format!("used_memory:{}\r\n", "9".repeat(MAX_LINE_BYTES));
    let text = format!(
        "# Memory\r\n{long}no colon here\r\ndb0:keys=x,expires=0,avg_ttl=0\r\n\
         slave0:ip=1.2.3.4\r\nmaxmemory:NaN\r\nused_memory_peak:inf\r\n\
         connected_clients:7\r\ndb1:keys=2,expires=0,avg_ttl=0\r\n"
    );
    let info = parse(&text);
    assert_eq!(info.skipped, 4, "{info:?}");
    let v = values(&text);
    assert_eq!(v["redis.clients.connected"].0, 7.0);
    assert_eq!(v["redis.db.keys{db=db1}"].0, 2.0);
    for gone in ["redis.memory.used", "redis.maxmemory", "redis.memory.peak"] {
        assert!(!v.contains_key(gone), "{gone}: {v:?}");
    }
    // Past MAX_LINES, nothing more is read.
    let many = "x:1\n".repeat(MAX_LINES) + "connected_clients:3\n";
    assert_eq!(parse(&many).text("connected_clients"), None);
    assert!(parse("").dbs.is_empty());
}

proptest::proptest! {
    #[test]
    fn any_text_parses_without_a_panic(text in "\\PC{0,400}") {
        let info = parse(&text);
        let _ = samples(&info, Utc::now(), &BTreeMap::new());
    }
}
