//! copytruncate as a new user meets it, with the real binaries (issue #33): `cp app.log
//! app.log.1 && truncate -s 0 app.log`, then the application writes again at once, up to and
//! past where the agent had read, before the agent looks again. Two writers the first-line
//! check alone missed:
//!
//! - `alike.log`: JSON lines whose first 256 bytes are all the same (one service's lines with a
//!   long fixed head), appended: the file's first line, its fingerprint, is the same after
//!   each truncation;
//! - `plain.log`: a writer that does not append (`app > plain.log`): after a truncation its next
//!   line lands at its own offset, after a hole of NULs.
//!
//! The agent follows the live names only. Before each rotation the test waits until the
//! collector has every line written so far (lines written between the agent's last read and
//! the copy are copytruncate's own race, not what is tested here). Every line written must be
//! stored exactly once, and nothing else (the written lines are the oracle).

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use lookout_tests::logs::{LogsRig, stored_lines};
use lookout_tests::{eventually, start_agent};

/// Generations of each file: each ends in a copytruncate, the next is written at once.
const GENERATIONS: u32 = 5;

/// Lines of generation `g`: as many as the one before (its refill ends exactly where the
/// agent had read), and then more (past it); the first generation is the longest but one.
fn line_count(g: u32) -> u32 {
    [3_000, 3_000, 4_000, 2_000, 5_000][g as usize]
}

fn alike_line(g: u32, n: u32) -> String {
    format!(
        r#"{{"service":"checkout","region":"eu-west","msg":"{}","file":"alike","g":{g},"n":{n:06}}}"#,
        "=".repeat(220)
    )
}

fn plain_line(g: u32, n: u32) -> String {
    format!("plain g{g} n{n:06} payment service handled request")
}

fn copytruncate(path: &Path) {
    let copy = path.with_extension("log.1");
    for argv in [
        vec!["cp", path.to_str().unwrap(), copy.to_str().unwrap()],
        vec!["truncate", "-s", "0", path.to_str().unwrap()],
    ] {
        let status = Command::new(argv[0]).args(&argv[1..]).status().unwrap();
        assert!(status.success(), "{argv:?}");
    }
}

async fn stored(db: &Path) -> anyhow::Result<Vec<String>> {
    Ok(stored_lines(db).await?.into_iter().map(|r| r.2).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_written_past_the_old_position_right_after_copytruncate_loses_no_line() {
    let logs = tempfile::tempdir().unwrap();
    let (alike, plain) = (logs.path().join("alike.log"), logs.path().join("plain.log"));
    let rig = LogsRig::new(&[&alike, &plain], "max_backoff = \"500ms\"").unwrap();
    let mut appender = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&alike)
        .unwrap();
    let mut overwriter = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&plain)
        .unwrap();
    let agent = start_agent(&rig.config).unwrap();
    let db = &rig.db;
    let mut written: Vec<String> = Vec::new();
    for g in 0..GENERATIONS {
        // Each generation in one write per file, right after the truncation before it.
        let (a, p): (Vec<_>, Vec<_>) = (0..line_count(g))
            .map(|n| (alike_line(g, n), plain_line(g, n)))
            .unzip();
        appender
            .write_all((a.join("\n") + "\n").as_bytes())
            .unwrap();
        overwriter
            .write_all((p.join("\n") + "\n").as_bytes())
            .unwrap();
        written.extend(a);
        written.extend(p);
        let want = written.len();
        let got = eventually(
            &format!("generation {g} stored"),
            Duration::from_secs(60),
            || async {
                let rows = stored(db).await?;
                Ok((rows.len() >= want).then_some(rows))
            },
        )
        .await;
        if got.is_err() {
            break; // counted below, with what went missing
        }
        if g + 1 < GENERATIONS {
            copytruncate(&alike);
            copytruncate(&plain);
        }
    }
    let rows = stored(db).await.unwrap();
    let mut count: HashMap<&str, i64> = written.iter().map(|l| (l.as_str(), 0)).collect();
    let mut foreign = Vec::new();
    for r in &rows {
        match count.get_mut(r.as_str()) {
            Some(c) => *c += 1,
            None => foreign.push(r.escape_debug().take(120).collect::<String>()),
        }
    }
    let lost: Vec<&str> = count
        .iter()
        .filter(|(_, c)| **c == 0)
        .map(|(l, _)| *l)
        .collect();
    let twice = count.values().filter(|c| **c > 1).count();
    eprintln!(
        "copytruncate e2e: {} lines written, {} stored, {} lost, {} stored twice, {} not written",
        written.len(),
        rows.len(),
        lost.len(),
        twice,
        foreign.len()
    );
    if !lost.is_empty() || !foreign.is_empty() {
        let mut lost: Vec<String> = lost.iter().map(|l| l[l.len() - 30..].into()).collect();
        lost.sort();
        eprintln!("lost (ends): {:?}", &lost[..lost.len().min(5)]);
        eprintln!("not written: {:?}", &foreign[..foreign.len().min(3)]);
        eprintln!("agent log:\n{}", agent.log_text());
    }
    assert!(lost.is_empty(), "{} lines lost", lost.len());
    assert_eq!(twice, 0, "lines stored twice");
    assert!(foreign.is_empty(), "records no writer wrote: {foreign:?}");
}
