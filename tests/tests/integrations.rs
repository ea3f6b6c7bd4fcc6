//! `[[integrations]]` end to end, against real peers: a Redis primary (with a password,
//! `maxmemory` and an eviction policy) and its replica started here on reserved loopback
//! ports, the real agent reading both and shipping to the real collector. What the collector
//! stores is compared with what `redis-cli INFO` on the peers says, never with the agent's own
//! figures; the starter rule of docs/integrations.md fires on the evictions.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lookout_tests::{Daemon, eventually, get_json};
use lookout_tests::{Port, free_port};

const AGENT_TOKEN: &str = "integ-agent-token-0123456789abcdef";
const PASSWORD: &str = "s3cret-redis-pw-4c1d";
const MAXMEMORY: u64 = 2 * 1024 * 1024;
const WAIT: Duration = Duration::from_secs(30);

/// A redis-server, killed when dropped.
struct Redis {
    child: Child,
    port: Port,
}

impl Redis {
    fn start(dir: &std::path::Path, port: Port, extra: &[&str]) -> Self {
        let p = port.get().to_string();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &p,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--dir", dir.to_str().unwrap(), "--requirepass", PASSWORD])
            .args(["--repl-diskless-sync-delay", "0"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/lib/peers.sh)");
        Self { child, port }
    }

    /// `redis-cli` against this server: the oracle, independent of the agent's client.
    fn cli(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("redis-cli")
            .args([
                "-p",
                &self.port.get().to_string(),
                "--no-auth-warning",
                "-a",
                PASSWORD,
            ])
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// One `INFO` field, as the server says it now.
    fn info(&self, field: &str) -> Option<String> {
        let text = self.cli(&["INFO"])?;
        text.lines().find_map(|l| {
            l.trim_end()
                .strip_prefix(field)
                .and_then(|r| r.strip_prefix(':'))
                .map(str::to_string)
        })
    }

    fn info_num(&self, field: &str) -> Option<f64> {
        self.info(field)?.parse().ok()
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_primary_and_replica_are_read_as_info_says_and_evictions_fire_the_starter_rule() {
    let dir = tempfile::tempdir().unwrap();
    let (pdir, rdir) = (dir.path().join("primary"), dir.path().join("replica"));
    std::fs::create_dir_all(&pdir).unwrap();
    std::fs::create_dir_all(&rdir).unwrap();
    let maxmemory = MAXMEMORY.to_string();
    let mut primary = Redis::start(
        &pdir,
        free_port(),
        &[
            "--maxmemory",
            &maxmemory,
            "--maxmemory-policy",
            "allkeys-lru",
        ],
    );
    let primary_port = primary.port.get().to_string();
    let replica = Redis::start(
        &rdir,
        free_port(),
        &[
            "--replicaof",
            "127.0.0.1",
            &primary_port,
            "--masterauth",
            PASSWORD,
        ],
    );
    eventually("the replica's link up", WAIT, || async {
        Ok((replica.info("master_link_status").as_deref() == Some("up")).then_some(()))
    })
    .await
    .unwrap();

    let (mut collector, base, mut agent) = lookout_tests::start_collector_and_agent(
        dir.path(),
        "cache-1",
        AGENT_TOKEN,
        "[[rules]]\nname = \"redis-evictions\"\nmetric = \"redis.keys.evicted\"\n\
         aggregate = \"rate\"\nwindow = \"5m\"\nabove = 0\n\
         [[rules]]\nname = \"redis-unreachable\"\nmetric = \"lookout.integration.up\"\n\
         labels = { type = \"redis\" }\naggregate = \"max\"\nwindow = \"3s\"\nbelow = 1\n\
         [[rules]]\nname = \"redis-replica-link\"\n\
         metric = \"redis.replication.link_status\"\naggregate = \"max\"\nwindow = \"3s\"\n\
         below = 1\n",
        &format!(
            "[[integrations]]\ntype = \"redis\"\nname = \"primary\"\n\
             url = \"redis://:{PASSWORD}@127.0.0.1:{primary_port}\"\ninterval = \"1s\"\n\
             labels = {{ role = \"cache\" }}\n\
             [[integrations]]\ntype = \"redis\"\nname = \"replica\"\n\
             url = \"redis://:{PASSWORD}@127.0.0.1:{}\"\ninterval = \"1s\"\n",
            replica.port.get()
        ),
    )
    .unwrap();
    let agent_toml = dir.path().join("agent").join("agent.toml");
    let diagnose = |agent: &Daemon, collector: &Daemon| {
        format!(
            "agent:\n{}\ncollector:\n{}",
            agent.log_text(),
            collector.log_text()
        )
    };

    // Before any write: the counter is stored at what INFO says (0), so the rule has a base.
    let before = eventually("evictions stored before the writes", WAIT, || async {
        lookout_tests::last_value(
            &base,
            "cache-1",
            "redis.keys.evicted",
            "integration=primary",
        )
        .await
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", diagnose(&agent, &collector)));
    assert_eq!(Some(before), primary.info_num("evicted_keys"));
    assert!(lookout_tests::firing_alerts(&base).await.is_empty());

    // Writes past maxmemory: 40 values of 100 KB into 2 MiB evict keys.
    let value = "x".repeat(100_000);
    for i in 0..40 {
        primary.cli(&["SET", &format!("big{i}"), &value]).unwrap();
    }
    let evicted = primary.info_num("evicted_keys").unwrap();
    assert!(evicted > 0.0, "no eviction: the test's premise failed");

    // Writes stopped: evictions and maxmemory do not move, so the stored values are exact.
    eventually("evictions as INFO says them", WAIT, || async {
        let stored = lookout_tests::last_value(
            &base,
            "cache-1",
            "redis.keys.evicted",
            "integration=primary",
        )
        .await?;
        Ok((stored == Some(evicted)).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: INFO says {evicted}\n{}", diagnose(&agent, &collector)));
    let labels = "integration=primary,role=cache";
    assert_eq!(
        lookout_tests::last_value(&base, "cache-1", "redis.maxmemory", labels)
            .await
            .unwrap(),
        primary.info_num("maxmemory")
    );
    assert_eq!(primary.info_num("maxmemory"), Some(MAXMEMORY as f64));
    // Memory moves a little with every client buffer: within 10 % of INFO's, read now.
    let stored = lookout_tests::last_value(&base, "cache-1", "redis.memory.used", labels)
        .await
        .unwrap()
        .unwrap();
    let now = primary.info_num("used_memory").unwrap();
    assert!(
        (stored - now).abs() <= now * 0.1,
        "stored {stored}, INFO used_memory {now}"
    );
    let keys = lookout_tests::last_value(
        &base,
        "cache-1",
        "redis.db.keys",
        "integration=primary,db=db0",
    )
    .await
    .unwrap();
    let info_keys = primary.info("db0").and_then(|l| {
        l.split(',')
            .find_map(|p| p.strip_prefix("keys="))
            .and_then(|k| k.parse::<f64>().ok())
    });
    assert_eq!(keys, info_keys, "redis.db.keys against INFO's db0");
    assert_eq!(
        lookout_tests::last_value(
            &base,
            "cache-1",
            "redis.slaves.connected",
            "integration=primary"
        )
        .await
        .unwrap(),
        primary.info_num("connected_slaves")
    );
    // The replica's lag as its primary sees it: master_repl_offset minus the slave0 line's
    // offset, read from INFO at the same moment (both settle at 0 once writes stop).
    let replica_label = format!("integration=primary,replica=127.0.0.1:{}", replica.port);
    eventually("replica lag as INFO says it", WAIT, || async {
        let stored = lookout_tests::last_value(
            &base,
            "cache-1",
            "redis.replication.replica_lag",
            &replica_label,
        )
        .await?;
        let text = primary.cli(&["INFO", "replication"]).unwrap_or_default();
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.trim_end().strip_prefix(name).map(str::to_string))
        };
        let oracle = match (field("master_repl_offset:"), field("slave0:")) {
            (Some(m), Some(s)) => s
                .split(',')
                .find_map(|p| p.strip_prefix("offset="))
                .and_then(|o| Some(m.parse::<f64>().ok()? - o.parse::<f64>().ok()?)),
            _ => None,
        };
        Ok((stored.is_some() && stored == oracle).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", diagnose(&agent, &collector)));
    // The replica's link, and the primary's up gauge.
    assert_eq!(
        lookout_tests::last_value(
            &base,
            "cache-1",
            "redis.replication.link_status",
            "integration=replica"
        )
        .await
        .unwrap(),
        Some(1.0)
    );
    assert_eq!(
        lookout_tests::last_value(
            &base,
            "cache-1",
            "lookout.integration.up",
            "integration=primary,type=redis"
        )
        .await
        .unwrap(),
        Some(1.0)
    );

    // The starter rule: a rate of evictions above 0 fires.
    eventually("the redis-evictions rule firing", WAIT, || async {
        let f = lookout_tests::firing_alerts(&base).await;
        Ok(f.iter()
            .any(|a| a.starts_with("redis-evictions/") && a.contains("integration=primary"))
            .then_some(f))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", diagnose(&agent, &collector)));
    let f = lookout_tests::firing_alerts(&base).await;
    assert!(
        f.iter().all(|a| a.starts_with("redis-evictions/")),
        "only evictions fire while both peers run: {f:?}"
    );

    // The primary stops: the replica says its link is down, the primary's up gauge is 0.
    primary.stop();
    eventually("link down and primary not up", WAIT, || async {
        let link = lookout_tests::last_value(
            &base,
            "cache-1",
            "redis.replication.link_status",
            "integration=replica",
        )
        .await?;
        let up = lookout_tests::last_value(
            &base,
            "cache-1",
            "lookout.integration.up",
            "integration=primary",
        )
        .await?;
        Ok((link == Some(0.0) && up == Some(0.0)).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", diagnose(&agent, &collector)));
    assert_eq!(replica.info("master_link_status").as_deref(), Some("down"));
    // The starter rules on the up gauge and the link, each for the integration it is about
    // (docs/integrations.md's, with a 3 s window for the test's sake).
    eventually("the unreachable and link rules firing", WAIT, || async {
        let f = lookout_tests::firing_alerts(&base).await;
        let fired = |rule: &str, who: &str| {
            f.iter()
                .any(|a| a.starts_with(&format!("{rule}/")) && a.contains(who))
        };
        Ok((fired("redis-unreachable", "integration=primary")
            && fired("redis-replica-link", "integration=replica"))
        .then_some(f))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", diagnose(&agent, &collector)));
    let f = lookout_tests::firing_alerts(&base).await;
    assert!(
        !f.iter()
            .any(|a| a.starts_with("redis-unreachable/") && a.contains("integration=replica")),
        "{f:?}"
    );
    assert_eq!(
        lookout_tests::last_value(
            &base,
            "cache-1",
            "lookout.integration.up",
            "integration=replica"
        )
        .await
        .unwrap(),
        Some(1.0)
    );
    // A few failed reads later, the failure was logged once, and never with the password.
    eventually("three failed reads", WAIT, || async {
        let j = get_json(&format!(
            "{base}/api/v1/metrics?agent=cache-1&name=lookout.integration.up&labels=integration=primary&step=1s"
        ))
        .await?;
        let zeros = j["series"][0]["points"]
            .as_array()
            .map(|p| p.iter().filter(|p| p["last"] == 0.0).count())
            .unwrap_or(0);
        Ok((zeros >= 3).then_some(()))
    })
    .await
    .unwrap();
    let log = agent.log_text();
    assert_eq!(
        log.matches("integration cannot read its peer").count(),
        1,
        "{log}"
    );
    assert!(
        !log.contains(PASSWORD),
        "the password reached the log:\n{log}"
    );
    assert!(!collector.log_text().contains(PASSWORD));

    // A reload adds an integration whose peer accepts and never answers: its reads end at its
    // timeout, each an up of 0, while the replica's go on.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let mut text = std::fs::read_to_string(&agent_toml).unwrap();
    text.push_str(&format!(
        "[[integrations]]\ntype = \"redis\"\nname = \"silent\"\n\
         url = \"redis://127.0.0.1:{silent_port}\"\ninterval = \"2s\"\ntimeout = \"1s\"\n"
    ));
    std::fs::write(&agent_toml, text).unwrap();
    let reloaded = chrono::Utc::now();
    agent.signal("HUP").unwrap();
    let line = agent
        .wait_for_line("configuration reloaded", WAIT)
        .unwrap_or_else(|e| panic!("{e}\n{}", agent.log_text()));
    assert!(line.contains("integrations"), "{line}");
    eventually("the silent peer read as down, twice", WAIT, || async {
        let j = get_json(&format!(
            "{base}/api/v1/metrics?agent=cache-1&name=lookout.integration.up&labels=integration=silent&step=1s"
        ))
        .await?;
        let zeros = j["series"][0]["points"]
            .as_array()
            .map(|p| p.iter().filter(|p| p["last"] == 0.0).count())
            .unwrap_or(0);
        Ok((zeros >= 2).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", agent.log_text()));
    let replica_since = get_json(&format!(
        "{base}/api/v1/metrics?agent=cache-1&name=lookout.integration.up&labels=integration=replica&step=1s&from={}",
        reloaded.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    ))
    .await
    .unwrap();
    let points = replica_since["series"][0]["points"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        !points.is_empty() && points.iter().all(|p| p["last"] == 1.0),
        "the replica's reads after the reload: {points:?}"
    );
    drop(silent);

    agent.signal("TERM").unwrap();
    agent.wait_exit(Duration::from_secs(10)).unwrap();
    collector.signal("TERM").unwrap();
    collector.wait_exit(Duration::from_secs(15)).unwrap();
}
