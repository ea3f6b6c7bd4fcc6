//! The `postgresql` integration end to end, against real peers: a PostgreSQL 15 primary and a
//! streaming replica (pg_basebackup -R) started here on reserved loopback ports, a monitoring
//! role holding only `pg_monitor` (as docs/integrations.md says to create it), and the real
//! agent reading both and shipping to the real collector. What the collector stores is compared
//! with what the servers answer to the test's own queries (`pg_stat_activity`, `pg_settings`,
//! `pg_locks`, `pg_database_size`, `pg_stat_database`, `pg_stat_replication`, the replica's
//! receive and replay positions) at about the same time, never with the agent's own figures;
//! the connections starter rule (above 80 % of `max_connections`, its real threshold) fires, and
//! the replica-lag one and the primary's replication-lag one (their 30 s lowered to 2 s) fire
//! once replay is paused, not before.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use lookout_tests::{Daemon, READ_TOKEN, eventually, free_port, start_collector};
use sqlx::{Connection, PgConnection, Row};

const AGENT_TOKEN: &str = "integ-pg-agent-token-0123456789abcdef";
const MONITOR_PASSWORD: &str = "mon-pw-5e1b9c";
const MAX_CONNECTIONS: f64 = 30.0;
const WAIT: Duration = Duration::from_secs(30);

fn pg_bin(name: &str) -> PathBuf {
    Path::new("/usr/lib/postgresql/15/bin").join(name)
}

/// A PostgreSQL command as the user that owns the clusters (initdb refuses root).
fn as_pg(bin: &str) -> Command {
    if rustix::process::geteuid().is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(pg_bin(bin));
        c
    } else {
        Command::new(pg_bin(bin))
    }
}

fn run(c: &mut Command) {
    let out = c
        .stdin(Stdio::null())
        .output()
        .expect("a PostgreSQL binary");
    assert!(
        out.status.success(),
        "{c:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A cluster, stopped (immediately) when dropped.
struct Cluster {
    data: PathBuf,
    port: u16,
}

impl Cluster {
    fn start(dir: &Path, name: &str, port: u16) -> Self {
        let data = dir.join(name);
        run(as_pg("pg_ctl")
            .args(["-D", data.to_str().unwrap(), "-w", "-l"])
            .arg(dir.join(format!("{name}.log")))
            .args([
                "-o",
                &format!(
                    "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
                 -c max_connections={MAX_CONNECTIONS} -c wal_receiver_status_interval=1",
                    dir.display()
                ),
                "start",
            ]));
        Self { data, port }
    }

    fn admin_url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = as_pg("pg_ctl")
            .args(["-D", self.data.to_str().unwrap(), "-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Waits until `rule` fires for the integration `who`.
async fn fires(base: &str, rule: &str, who: &str) -> anyhow::Result<()> {
    let what = format!("the {rule} rule firing for {who}");
    eventually(&what, WAIT, || async {
        let f = lookout_tests::firing_alerts(base).await;
        Ok(f.iter()
            .any(|a| {
                a.starts_with(&format!("{rule}/")) && a.contains(&format!("integration={who}"))
            })
            .then_some(()))
    })
    .await
}

async fn one_f64(conn: &mut PgConnection, sql: &'static str) -> f64 {
    sqlx::query(sql)
        .fetch_one(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get::<f64, _>(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_and_replica_are_read_as_their_own_views_say_and_the_starter_rules_fire() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    if rustix::process::geteuid().is_root() {
        run(Command::new("chown").args(["postgres:postgres", root.to_str().unwrap()]));
    }
    run(Command::new("chmod").args(["755", root.to_str().unwrap()]));
    let (p_port, r_port) = (free_port(), free_port());
    run(as_pg("initdb")
        .args(["-D", root.join("primary").to_str().unwrap()])
        .args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"]));
    let primary = Cluster::start(root, "primary", p_port.get());
    let mut admin = PgConnection::connect(&primary.admin_url("postgres"))
        .await
        .unwrap();
    // The monitoring role of docs/integrations.md: pg_monitor and nothing else.
    for sql in [
        format!("CREATE ROLE lookout_monitor LOGIN PASSWORD '{MONITOR_PASSWORD}'"),
        "GRANT pg_monitor TO lookout_monitor".into(),
        "CREATE DATABASE app".into(),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut admin)
            .await
            .unwrap();
    }
    let mut app = PgConnection::connect(&primary.admin_url("app"))
        .await
        .unwrap();
    sqlx::raw_sql(
        "CREATE TABLE t AS SELECT g AS id, repeat('x', 200) AS pad FROM generate_series(1, 20000) g; \
         CREATE TABLE locked (id int)",
    )
    .execute(&mut app)
    .await
    .unwrap();

    // The replica: a base backup with its primary_conninfo, named so pg_stat_replication says.
    run(as_pg("pg_basebackup")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &p_port.get().to_string(),
            "-U",
            "postgres",
            "-R",
            // An immediate checkpoint: the default spreads it over minutes.
            "--checkpoint=fast",
            "--no-sync",
            "-X",
            "stream",
            "-D",
        ])
        .arg(root.join("replica")));
    let auto = root.join("replica/postgresql.auto.conf");
    let mut text = std::fs::read_to_string(&auto).unwrap();
    text.push_str(&format!(
        "primary_conninfo = 'host=127.0.0.1 port={} user=postgres application_name=replica1'\n",
        p_port.get()
    ));
    std::fs::write(&auto, text).unwrap();
    let replica = Cluster::start(root, "replica", r_port.get());
    let mut r_admin = PgConnection::connect(&replica.admin_url("postgres"))
        .await
        .unwrap();
    eventually("the replica streaming", WAIT, || {
        let url = primary.admin_url("postgres");
        async move {
            let mut c = PgConnection::connect(&url).await?;
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' \
                 AND application_name = 'replica1'",
            )
            .fetch_one(&mut c)
            .await?;
            Ok((n == 1).then_some(()))
        }
    })
    .await
    .unwrap();

    let (mut collector, base) = start_collector(
        root,
        &format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nread_tokens = [\"{READ_TOKEN}\"]\n\
             [[agents]]\nname = \"db-1\"\ntoken = \"{AGENT_TOKEN}\"\n\
             [[rules]]\nname = \"pg-connections\"\nmetric = \"postgresql.connection.usage\"\n\
             aggregate = \"max\"\nwindow = \"3s\"\nabove = 0.8\n\
             [[rules]]\nname = \"pg-replica-lag\"\nmetric = \"postgresql.replica.lag\"\n\
             aggregate = \"min\"\nwindow = \"3s\"\nabove = 2\n\
             [[rules]]\nname = \"pg-replication-lag\"\nmetric = \"postgresql.wal.lag\"\n\
             labels = {{ operation = \"replay\" }}\naggregate = \"min\"\nwindow = \"3s\"\nabove = 2\n",
            root.join("collector").display()
        ),
    )
    .unwrap();
    let agent_dir = root.join("agent");
    std::fs::create_dir_all(&agent_dir).unwrap();
    let agent_toml = agent_dir.join("agent.toml");
    let url = |port: u16| {
        format!(
            "postgres://lookout_monitor:{MONITOR_PASSWORD}@127.0.0.1:{port}/app?sslmode=disable"
        )
    };
    std::fs::write(
        &agent_toml,
        format!(
            "name = \"db-1\"\ncollector = \"{base}\"\ntoken = \"{AGENT_TOKEN}\"\n\
             data_dir = \"{}\"\n[host_metrics]\nenabled = false\n\
             [[integrations]]\ntype = \"postgresql\"\nname = \"primary\"\nurl = \"{}\"\n\
             interval = \"1s\"\n\
             [[integrations]]\ntype = \"postgresql\"\nname = \"replica\"\nurl = \"{}\"\n\
             interval = \"1s\"\n",
            agent_dir.display(),
            url(p_port.get()),
            url(r_port.get())
        ),
    )
    .unwrap();
    // A commit the replica replays, so it has a last replayed transaction to age from.
    sqlx::raw_sql("CREATE TABLE marker ()")
        .execute(&mut app)
        .await
        .unwrap();
    eventually("the replica replayed a commit", WAIT, || {
        let url = replica.admin_url("postgres");
        async move {
            let mut c = PgConnection::connect(&url).await?;
            let replayed: bool =
                sqlx::query_scalar("SELECT pg_last_xact_replay_timestamp() IS NOT NULL")
                    .fetch_one(&mut c)
                    .await?;
            Ok(replayed.then_some(()))
        }
    })
    .await
    .unwrap();
    let agent: Daemon = lookout_tests::start_agent(&agent_toml).unwrap();
    let diagnose = || {
        format!(
            "agent:\n{}\ncollector:\n{}",
            agent.log_text(),
            collector.log_text()
        )
    };

    // What does not move: the limit, as the server's setting says it.
    let limit = eventually("max_connections stored", WAIT, || async {
        lookout_tests::last_value(
            &base,
            "db-1",
            "postgresql.connection.max",
            "integration=primary",
        )
        .await
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", diagnose()));
    assert_eq!(
        limit,
        one_f64(
            &mut admin,
            "SELECT setting::float8 FROM pg_settings WHERE name = 'max_connections'"
        )
        .await
    );
    assert!(
        lookout_tests::firing_alerts(&base).await.is_empty(),
        "nothing fires before the load"
    );

    // Activity: a session idle in transaction holding a lock, one waiting for it, and idle
    // sessions up to 26 client backends of 30 (the agent's and the test's admin connections
    // among them): 87 %, above the starter rule's 80 %.
    let mut held = PgConnection::connect(&primary.admin_url("app"))
        .await
        .unwrap();
    sqlx::raw_sql("BEGIN; LOCK TABLE locked IN ACCESS EXCLUSIVE MODE")
        .execute(&mut held)
        .await
        .unwrap();
    let waiter_url = primary.admin_url("app");
    let waiter = tokio::spawn(async move {
        let mut c = PgConnection::connect(&waiter_url).await.unwrap();
        let _ = sqlx::query("SELECT count(*) FROM locked")
            .fetch_one(&mut c)
            .await;
    });
    let mut idle = Vec::new();
    for _ in 0..21 {
        idle.push(
            PgConnection::connect(&primary.admin_url("postgres"))
                .await
                .unwrap(),
        );
    }
    // The client backends the server lists besides the one asking (which is one too).
    let clients = "SELECT (count(*) + 1)::float8 FROM pg_stat_activity \
                   WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()";
    let expected = one_f64(&mut admin, clients).await;
    assert!(
        expected / MAX_CONNECTIONS > 0.8,
        "{expected} clients: the test's premise failed"
    );
    eventually(
        "connection usage as pg_stat_activity says it",
        WAIT,
        || async {
            let stored = lookout_tests::last_value(
                &base,
                "db-1",
                "postgresql.connection.usage",
                "integration=primary",
            )
            .await?;
            Ok((stored == Some(expected / MAX_CONNECTIONS)).then_some(()))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}: {expected} clients\n{}", diagnose()));
    assert_eq!(
        lookout_tests::last_value(
            &base,
            "db-1",
            "postgresql.backends",
            "integration=primary,state=idle in transaction"
        )
        .await
        .unwrap(),
        Some(
            one_f64(
                &mut admin,
                "SELECT count(*)::float8 FROM pg_stat_activity WHERE state = 'idle in transaction'"
            )
            .await
        )
    );
    let waiting = one_f64(
        &mut admin,
        "SELECT count(*)::float8 FROM pg_locks WHERE NOT granted",
    )
    .await;
    assert_eq!(waiting, 1.0, "the waiter waits");
    eventually("locks waiting as pg_locks says", WAIT, || async {
        let stored = lookout_tests::last_value(
            &base,
            "db-1",
            "postgresql.locks.waiting",
            "integration=primary",
        )
        .await?;
        Ok((stored == Some(waiting)).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", diagnose()));
    // The held transaction's age: the stored one is at most a few reads older than now's.
    let stored = lookout_tests::last_value(
        &base,
        "db-1",
        "postgresql.transaction.max_age",
        "integration=primary",
    )
    .await
    .unwrap()
    .unwrap();
    let oracle = one_f64(
        &mut admin,
        "SELECT extract(epoch FROM now() - min(xact_start))::float8 FROM pg_stat_activity \
         WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid()",
    )
    .await;
    assert!(
        stored > 0.0 && stored <= oracle && oracle - stored < 5.0,
        "stored {stored}, now {oracle}"
    );

    // The starter rule at its real threshold.
    fires(&base, "pg-connections", "primary")
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", diagnose()));
    let firing = lookout_tests::firing_alerts(&base).await;
    assert!(
        !firing
            .iter()
            .any(|a| a.contains("integration=replica") || a.starts_with("pg-replication-lag/")),
        "the replica has few connections and, replaying, no lag: {firing:?}"
    );

    // The database's size does not move once written: the stored one is the server's.
    let size = one_f64(&mut admin, "SELECT pg_database_size('app')::float8").await;
    eventually("app's size as pg_database_size says", WAIT, || async {
        let stored = lookout_tests::last_value(
            &base,
            "db-1",
            "postgresql.db_size",
            "integration=primary,db=app",
        )
        .await?;
        Ok((stored == Some(size)).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: {size}\n{}", diagnose()));
    // Commits move with every read (the agent's own among them): at most what the server says
    // a moment later, and not far behind.
    let stored = lookout_tests::last_value(
        &base,
        "db-1",
        "postgresql.commits",
        "integration=primary,db=app",
    )
    .await
    .unwrap()
    .unwrap();
    let now = one_f64(
        &mut admin,
        "SELECT xact_commit::float8 FROM pg_stat_database WHERE datname = 'app'",
    )
    .await;
    assert!(
        stored > 0.0 && stored <= now && now - stored < 100.0,
        "stored {stored}, now {now}"
    );

    // Replication lag: replay paused on the replica, then writes on the primary. The replica
    // receives and does not replay, so both sides' lag stays put while the writes are over.
    sqlx::query("SELECT pg_wal_replay_pause()")
        .execute(&mut r_admin)
        .await
        .unwrap();
    sqlx::raw_sql("INSERT INTO t SELECT g, repeat('y', 200) FROM generate_series(1, 20000) g")
        .execute(&mut app)
        .await
        .unwrap();
    let p_delay = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::float8 \
                   FROM pg_stat_replication WHERE application_name = 'replica1'";
    let r_delay = "SELECT pg_wal_lsn_diff(pg_last_wal_receive_lsn(), \
                   pg_last_wal_replay_lsn())::float8";
    eventually("the replica received the writes", WAIT, || async {
        let mut c = PgConnection::connect(&replica.admin_url("postgres")).await?;
        let d: f64 = sqlx::query_scalar(r_delay).fetch_one(&mut c).await?;
        Ok((d > 1_000_000.0).then_some(()))
    })
    .await
    .unwrap();
    // Within 64 KiB of what each server says now (a checkpoint or a standby snapshot record
    // can add WAL between the two reads).
    let close = |a: f64, b: f64| (a - b).abs() <= 65_536.0;
    eventually(
        "primary's data delay as pg_stat_replication says",
        WAIT,
        || async {
            let stored = lookout_tests::last_value(
                &base,
                "db-1",
                "postgresql.replication.data_delay",
                "integration=primary,replica=replica1",
            )
            .await?;
            let mut c = PgConnection::connect(&primary.admin_url("postgres")).await?;
            let oracle: f64 = sqlx::query_scalar(p_delay).fetch_one(&mut c).await?;
            Ok(stored
                .is_some_and(|s| oracle > 1_000_000.0 && close(s, oracle))
                .then_some(()))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", diagnose()));
    eventually(
        "replica's data delay as its replay position says",
        WAIT,
        || async {
            let stored = lookout_tests::last_value(
                &base,
                "db-1",
                "postgresql.replica.data_delay",
                "integration=replica",
            )
            .await?;
            let mut c = PgConnection::connect(&replica.admin_url("postgres")).await?;
            let oracle: f64 = sqlx::query_scalar(r_delay).fetch_one(&mut c).await?;
            Ok(stored.is_some_and(|s| close(s, oracle)).then_some(()))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", diagnose()));
    // The replica's lag in seconds: present, and no more than the age of its last replayed
    // commit as it says it now.
    eventually("replica's lag in seconds", WAIT, || async {
        let stored = lookout_tests::last_value(
            &base,
            "db-1",
            "postgresql.replica.lag",
            "integration=replica",
        )
        .await?;
        let mut c = PgConnection::connect(&replica.admin_url("postgres")).await?;
        let age: f64 = sqlx::query_scalar(
            "SELECT extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8",
        )
        .fetch_one(&mut c)
        .await?;
        Ok(stored.is_some_and(|s| s > 0.0 && s <= age).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", diagnose()));
    // The replication-lag starter rule, its 30 s lowered to 2 s for the test's sake: the
    // replica's last replayed commit is older than that, and replay stays paused.
    fires(&base, "pg-replica-lag", "replica")
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", diagnose()));
    // The primary's view of the same lag (docs/integrations.md's `pg-replication-lag`, lowered
    // to 2 s too): the primary itself says the replica's replay lags more than that, and the
    // rule fires for the primary's integration.
    eventually("the primary's own replay_lag above 2 s", WAIT, || async {
        let mut c = PgConnection::connect(&primary.admin_url("postgres")).await?;
        let lag: Option<f64> = sqlx::query_scalar(
            "SELECT extract(epoch FROM replay_lag)::float8 FROM pg_stat_replication \
             WHERE application_name = 'replica1'",
        )
        .fetch_one(&mut c)
        .await?;
        Ok(lag.is_some_and(|l| l > 2.0).then_some(()))
    })
    .await
    .unwrap();
    fires(&base, "pg-replication-lag", "primary")
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", diagnose()));
    assert_eq!(
        lookout_tests::last_value(&base, "db-1", "postgresql.recovery", "integration=replica")
            .await
            .unwrap(),
        Some(1.0)
    );
    assert!(
        lookout_tests::last_value(
            &base,
            "db-1",
            "postgresql.wal.lag",
            "integration=primary,replica=replica1,operation=replay"
        )
        .await
        .unwrap()
        .is_some()
    );
    assert!(
        !agent.log_text().contains(MONITOR_PASSWORD),
        "the password reached the log"
    );

    waiter.abort();
    drop((held, idle, app, admin, r_admin));
    let mut agent = agent;
    agent.signal("TERM").unwrap();
    agent.wait_exit(Duration::from_secs(10)).unwrap();
    collector.signal("TERM").unwrap();
    collector.wait_exit(Duration::from_secs(15)).unwrap();
    drop((replica, primary));
}
