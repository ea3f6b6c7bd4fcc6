//! This agent against a collector of another release, one that reads other protocol versions
//! than it speaks: it sends nothing such a collector cannot read, keeps what it has in its
//! spool (never in rejected/) with an error in its log and `/metrics`, and ships all of it,
//! the same batches, once the collector's answers name a version both speak.
//!
//! The collector is scripted (tests/src/scripted.rs): no real collector of this release
//! refuses version 1.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Result;
use lookout_protocol::http::{ASSIGNMENTS_PATH, INGEST_PATH, VERSIONS_HEADER};
use lookout_protocol::{Encoding, Record, decode_batch};
use lookout_tests::scripted::{Answer, Scripted, Seen};
use lookout_tests::{eventually, free_port, start_agent};

const ASSIGNMENTS: &str = r#"{"revision":"r1","checks":[]}"#;

/// What the scripted collector does with a batch.
#[derive(Debug, Clone, Copy)]
enum Ingest {
    /// Stores it.
    Take,
    /// Refuses it for its version as every release says it: 400 "unsupported protocol
    /// version" (v0.1.0 named no versions).
    RefuseSaying,
    /// Refuses it with a 400 that says nothing of versions, but names the versions it reads
    /// (2) in its header.
    RefuseNaming,
}

/// A collector that names `versions` (`None`: none, as v0.1.0) on its answers and does
/// `ingest` with batches.
fn collector_that(versions: Option<&'static str>, ingest: Ingest) -> impl Fn(&Seen) -> Answer {
    move |seen| {
        let answer = if seen.path.starts_with(ASSIGNMENTS_PATH) {
            Answer::json(200, ASSIGNMENTS).with("etag", "\"r1\"")
        } else if seen.path == INGEST_PATH {
            match ingest {
                Ingest::RefuseSaying => Answer::json(
                    400,
                    r#"{"error":"unsupported protocol version 1: this collector reads version 2"}"#,
                ),
                Ingest::RefuseNaming => {
                    return Answer::json(400, r#"{"error":"bad request"}"#)
                        .with(VERSIONS_HEADER, "2");
                }
                Ingest::Take => {
                    let batch = decode_batch(&seen.body, Encoding::Zstd, 64 << 20).unwrap();
                    Answer::json(
                        200,
                        &format!(r#"{{"stored":{},"duplicate":false}}"#, batch.records.len()),
                    )
                }
            }
        } else {
            Answer::json(204, "")
        };
        match versions {
            Some(v) => answer.with(VERSIONS_HEADER, v),
            None => answer,
        }
    }
}

/// Check results probed before `before` in the batches sent from the `from`th on (the ones
/// taken), refusing a result that arrives twice.
fn results_taken(
    collector: &Scripted,
    from: usize,
    before: chrono::DateTime<chrono::Utc>,
) -> Result<usize> {
    let mut times = BTreeSet::new();
    for s in collector.seen_at(INGEST_PATH).iter().skip(from) {
        for r in decode_batch(&s.body, Encoding::Zstd, 64 << 20)?.records {
            if let Record::CheckResult(c) = r {
                anyhow::ensure!(times.insert(c.time), "a result arrived twice");
            }
        }
    }
    Ok(times.iter().filter(|t| **t < before).count())
}

async fn agent_metrics(port: u16) -> Result<String> {
    Ok(reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await?
        .text()
        .await?)
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_reads_other_versions_gets_nothing_and_loses_nothing() -> Result<()> {
    // It reads versions 2 and 3 only: nothing in common with this agent (1).
    let collector = Scripted::start(collector_that(Some("2, 3"), Ingest::RefuseSaying)).await?;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let metrics_port = free_port();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "name = \"web-1\"\ncollector = \"{}\"\ntoken = \"skew-token-0123456789abcdef\"\n\
             data_dir = \"{}\"\n\n[host_metrics]\nenabled = false\n\n\
             [shipping]\nflush_interval = \"1s\"\nassignments_interval = \"1s\"\n\n\
             [telemetry]\nmetrics_listen = \"127.0.0.1:{}\"\n\n\
             [[checks]]\nname = \"local\"\ntype = \"tcp\"\naddress = \"127.0.0.1:{}\"\n\
             interval = \"1s\"\ntimeout = \"1s\"\n",
            collector.url,
            data.display(),
            metrics_port.get(),
            free_port().get(),
        ),
    )?;
    let agent = start_agent(&config)?;
    let needle = "does not read this agent's protocol version";
    agent.wait_for_line(needle, Duration::from_secs(20))?;
    let text = agent_metrics(metrics_port.get()).await?;
    assert_eq!(
        metric(&text, "lookout_agent_protocol_version"),
        Some(0.0),
        "{text}"
    );
    assert!(
        metric(&text, "lookout_agent_batches_total{outcome=\"version\"}").unwrap_or(0.0) >= 1.0,
        "{text}"
    );
    // At most the batch sent before the first answer named the versions; none after, for
    // three more assignments fetches.
    let (sent, fetched) = (
        collector.seen_at(INGEST_PATH).len(),
        collector.seen_at(ASSIGNMENTS_PATH).len(),
    );
    assert!(
        sent <= 1,
        "{sent} batches sent to a collector that reads none"
    );
    eventually("three more fetches", Duration::from_secs(20), || async {
        Ok((collector.seen_at(ASSIGNMENTS_PATH).len() >= fetched + 3).then_some(()))
    })
    .await?;
    assert_eq!(
        collector.seen_at(INGEST_PATH).len(),
        sent,
        "a batch was sent in a version the collector does not read"
    );

    // Now its assignments name no versions (read: 1), but it refuses version 1 anyway: the
    // agent sends, is refused, and keeps the batch; told so by the refusal's header alone,
    // then by its text alone.
    for (how, ingest) in [
        ("by its header", Ingest::RefuseNaming),
        ("by its text", Ingest::RefuseSaying),
    ] {
        let before = collector.seen_at(INGEST_PATH).len();
        collector.answer_by(collector_that(None, ingest));
        eventually(
            &format!("a batch refused {how}"),
            Duration::from_secs(20),
            || async { Ok((collector.seen_at(INGEST_PATH).len() > before).then_some(())) },
        )
        .await?;
    }
    let refused: Vec<String> = collector
        .seen_at(INGEST_PATH)
        .iter()
        .map(|s| {
            decode_batch(&s.body, Encoding::Zstd, 64 << 20)
                .unwrap()
                .batch_id
        })
        .collect();

    // What waits in the spool while nothing is taken: the agent's own count, read before the
    // collector takes anything, against what then arrives.
    let text = agent_metrics(metrics_port.get()).await?;
    let waiting = metric(&text, "lookout_agent_spool_backlog_records").unwrap_or(0.0);
    // Every record waiting then was probed before now.
    let read_at = chrono::Utc::now();
    assert!(
        waiting >= 1.0,
        "nothing waited: {text}\n{}",
        agent.log_text()
    );

    // It reads 1 again: every record written meanwhile arrives, the refused batch first.
    let taken_from = collector.seen_at(INGEST_PATH).len();
    collector.answer_by(collector_that(Some("1, 2"), Ingest::Take));
    // Until every result probed before `read_at` has been taken: at least `waiting` of them.
    eventually("what waited, shipped", Duration::from_secs(30), || {
        let taken = results_taken(&collector, taken_from, read_at);
        async move { Ok((taken? as f64 >= waiting).then_some(())) }
    })
    .await?;
    let delivered = agent_metrics(metrics_port.get()).await?;
    assert_eq!(
        metric(&delivered, "lookout_agent_protocol_version"),
        Some(1.0),
        "{delivered}"
    );
    assert_eq!(
        metric(
            &delivered,
            "lookout_agent_batches_total{outcome=\"rejected\"}"
        ),
        None,
        "{delivered}"
    );
    let rejected = data.join("spool").join("rejected");
    assert!(
        !rejected.exists() || std::fs::read_dir(&rejected)?.next().is_none(),
        "a batch was set aside in {}",
        rejected.display()
    );
    let mut taken = Vec::new();
    for (i, s) in collector.seen_at(INGEST_PATH).iter().enumerate() {
        let batch = decode_batch(&s.body, Encoding::Zstd, 64 << 20)?;
        assert_eq!(batch.version, 1);
        if i >= taken_from {
            taken.push(batch.batch_id);
        }
    }
    // The first refused batch was sent again, unchanged in id, and taken.
    assert!(
        taken.contains(&refused[0]),
        "{} not sent again: {taken:?}",
        refused[0]
    );
    drop(agent);
    Ok(())
}
