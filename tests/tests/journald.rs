//! The systemd journal as a log source, against a real systemd-journald (started here when none
//! runs): entries written with `systemd-cat` reach the collector with their level and source,
//! and after a `kill -9` of the agent it resumes from its cursor: each entry stored once.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lookout_tests::{collector_toml, free_port, start_agent, start_collector};

const TOKEN: &str = "journal-agent-token-0123456789abcdef";

/// A journald of our own when the machine has none running (a container, CI).
struct Journald(Option<Child>);

impl Journald {
    fn ensure() -> Journald {
        if journal_accepts() {
            return Journald(None);
        }
        std::fs::create_dir_all("/run/systemd/journal").expect("/run/systemd/journal (root?)");
        let child = Command::new("/lib/systemd/systemd-journald")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("systemd-journald (Debian's systemd package)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !journal_accepts() {
            assert!(Instant::now() < deadline, "journald did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Journald(Some(child))
    }
}

impl Drop for Journald {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// True when a journald takes entries (a socket file left by a dead one does not).
fn journal_accepts() -> bool {
    Command::new("systemd-cat")
        .args(["-t", "lookout-e2e-probe", "true"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Writes `lines` to the journal under `tag`, with syslog priority `priority`.
fn write(tag: &str, priority: &str, lines: &[String]) {
    let mut child = Command::new("systemd-cat")
        .args(["-t", tag, "-p", priority])
        .stdin(Stdio::piped())
        .spawn()
        .expect("systemd-cat");
    {
        use std::io::Write;
        let stdin = child.stdin.as_mut().unwrap();
        for l in lines {
            writeln!(stdin, "{l}").unwrap();
        }
    }
    assert!(child.wait().unwrap().success());
}

async fn stored(db: &Path, source: &str) -> Vec<(String, Option<String>)> {
    if !db.exists() {
        return Vec::new();
    }
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=ro", db.display()))
        .await
        .unwrap();
    let rows =
        sqlx::query_as("SELECT text, level FROM logs WHERE source = $1 ORDER BY time_ms, id")
            .bind(source)
            .fetch_all(&pool)
            .await
            .unwrap_or_default();
    pool.close().await;
    rows
}

/// Writes a marker entry under `tag` again and again until the collector has stored one: the
/// agent's journalctl then follows the journal, and entries written from now on reach it.
/// (`read_from = "end"` leaves out what was written before journalctl began to follow.)
async fn wait_until_following(db: &Path, tag: &str) {
    let source = format!("journald:{tag}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while stored(db, &source).await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "no marker entry reached the collector"
        );
        write(tag, "info", &["marker".to_string()]);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn wait_for(db: &Path, source: &str, n: usize) -> Vec<(String, Option<String>)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows = stored(db, source).await;
        if rows.len() >= n || Instant::now() > deadline {
            // A little longer, to see any line stored twice (waiting is the point here: a
            // duplicate would come later, and nothing observable says it will not).
            tokio::time::sleep(Duration::from_millis(500)).await;
            return stored(db, source).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_entries_are_shipped_once_across_a_kill() {
    let _journald = Journald::ensure();
    let (cdir, adir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let port = free_port();
    let (_collector, _) = start_collector(
        cdir.path(),
        &collector_toml(cdir.path(), port.get(), "edge", TOKEN, ""),
    )
    .unwrap();
    let config = adir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "name = \"edge\"\ncollector = \"http://127.0.0.1:{port}\"\ntoken = \"{TOKEN}\"\ndata_dir = \"{}\"\n\
             [host_metrics]\nenabled = false\n[journald]\nenabled = true\n",
            adir.path().display()
        ),
    )
    .unwrap();
    let tag = format!("lookout-e2e-{}", std::process::id());
    let source = format!("journald:{tag}");
    // Written before the agent's first start: read_from = "end" leaves it out.
    write(&tag, "info", &["before the agent".to_string()]);
    let start = || start_agent(&config).unwrap();
    let agent = start();
    agent
        .wait_for_line("agent started", Duration::from_secs(10))
        .unwrap();
    let db = cdir.path().join("lookout.db");
    // Markers under a tag of their own, so that they are not among the entries counted.
    wait_until_following(&db, &format!("{tag}-ready")).await;
    let first: Vec<String> = (0..50).map(|i| format!("first {i:03}")).collect();
    write(&tag, "err", &first);
    let rows = wait_for(&db, &source, 50).await;
    assert_eq!(
        rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>(),
        first,
        "the first entries, once, in order"
    );
    assert!(rows.iter().all(|r| r.1.as_deref() == Some("error")));
    // Killed; entries written while it is down come after the restart, from the cursor.
    agent.signal("KILL").unwrap();
    drop(agent);
    let second: Vec<String> = (0..50).map(|i| format!("second {i:03}")).collect();
    write(&tag, "warning", &second);
    let _agent = start();
    let rows = wait_for(&db, &source, 100).await;
    let texts: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    let mut want = first.clone();
    want.extend(second);
    assert_eq!(
        texts, want,
        "every entry once, none from before the first start"
    );
    assert!(rows[50..].iter().all(|r| r.1.as_deref() == Some("warn")));
}
