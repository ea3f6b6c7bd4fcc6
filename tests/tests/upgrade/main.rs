//! A rolling upgrade from the previous release (v0.1.0), against what that release recorded
//! (tests/fixtures/v0.1.0, its README says how): its agent's requests replayed to this
//! collector; its collector's answers served to this agent; its agent's spool shipped by this
//! agent; its collector's database (SQLite, and PostgreSQL) opened by this collector.

mod recorded;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Context, Result};
use lookout_protocol::http::{ASSIGNMENTS_PATH, ENROLL_PATH, GOODBYE_PATH, INGEST_PATH};
use lookout_tests::scripted::{Answer, Scripted};
use lookout_tests::{eventually, free_port, get_json, start_agent, start_collector};
use recorded::{Carried, Exchange};
use serde_json::Value;

/// Checks that the collector at `base` serves what `carried` holds for `agent`: every check's
/// results (as many, as often up), every log line, the host and its metrics.
pub(crate) async fn serves(base: &str, carried: &Carried, agent: &str) -> Result<()> {
    let checks = get_json(&format!("{base}/api/v1/checks")).await?;
    let window = carried.window();
    for (check, oks) in &carried.results {
        let listed = checks["checks"]
            .as_array()
            .context("checks")?
            .iter()
            .find(|c| c["name"] == check.as_str())
            .with_context(|| format!("{check} not in {checks}"))?;
        assert!(listed["status"].is_string(), "{listed}");
        let url =
            format!("{base}/api/v1/checks/{check}/results?agent={agent}&{window}&limit=10000");
        let results = get_json(&url).await?;
        let mut served: Vec<bool> = results["results"]
            .as_array()
            .context("results")?
            .iter()
            .map(|r| r["ok"].as_bool().unwrap_or_default())
            .collect();
        let mut expected = oks.clone();
        served.sort_unstable();
        expected.sort_unstable();
        assert_eq!(served, expected, "{check}'s results");
    }
    if !carried.log_texts.is_empty() {
        let logs = get_json(&format!(
            "{base}/api/v1/logs?agent={agent}&{window}&limit=1000"
        ))
        .await?;
        let served: BTreeSet<String> = logs["lines"]
            .as_array()
            .context("lines")?
            .iter()
            .filter_map(|l| l["text"].as_str().map(str::to_string))
            .collect();
        assert_eq!(served, carried.log_texts, "log lines");
    }
    let hosts = get_json(&format!("{base}/api/v1/hosts")).await?;
    let host = hosts["hosts"]
        .as_array()
        .context("hosts")?
        .iter()
        .find(|h| h["name"] == agent)
        .with_context(|| format!("{agent} not in {hosts}"))?;
    let names: BTreeSet<String> = host["metrics"]
        .as_array()
        .context("metrics")?
        .iter()
        .filter_map(|m| m["name"].as_str().map(str::to_string))
        .collect();
    assert!(
        carried.metric_names.is_subset(&names),
        "{agent}'s metrics: {:?} served, {:?} recorded",
        names,
        carried.metric_names
    );
    Ok(())
}

/// `Authorization` with the recorded credential replaced by the one this collector gave.
fn authorization(value: &str, credentials: Option<&(String, String)>) -> String {
    match credentials {
        Some((old, new)) => value.replace(old.as_str(), new),
        None => value.to_string(),
    }
}

fn credential(answer: &[u8]) -> Result<String> {
    let doc: Value = serde_json::from_slice(answer)?;
    Ok(doc["credential"]
        .as_str()
        .context("a credential")?
        .to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_previous_agents_requests_are_answered_as_recorded_and_their_data_served() -> Result<()>
{
    let exchanges = recorded::exchanges()?;
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let config = recorded::collector_config(port.get(), dir.path(), "")?;
    let (_collector, base) = start_collector(dir.path(), &config)?;
    let http = reqwest::Client::new();
    // (recorded credential, the one this collector gave)
    let mut credentials: Option<(String, String)> = None;
    for (i, e) in exchanges.iter().enumerate() {
        let mut req = http.request(e.method.parse()?, format!("{base}{}", e.path));
        for (name, value) in &e.headers {
            let value = match name.as_str() {
                "authorization" => authorization(value, credentials.as_ref()),
                _ => value.clone(),
            };
            req = req.header(name, value);
        }
        let resp = req.body(e.body.clone()).send().await?;
        let status = resp.status().as_u16();
        let answer = resp.bytes().await?;
        let what = format!(
            "exchange {i}: {} {}: {}",
            e.method,
            e.path,
            String::from_utf8_lossy(&answer)
        );
        assert_eq!(status, e.status, "{what}");
        match e.path.as_str() {
            ENROLL_PATH => {
                credentials = Some((credential(&e.answer)?, credential(&answer)?));
            }
            INGEST_PATH => {
                let (ours, theirs): (Value, Value) = (
                    serde_json::from_slice(&answer)?,
                    serde_json::from_slice(&e.answer)?,
                );
                assert_eq!(ours["stored"], theirs["stored"], "{what}");
                assert_eq!(ours["duplicate"], theirs["duplicate"], "{what}");
            }
            p if p.starts_with(ASSIGNMENTS_PATH) && status == 200 => {
                let names = |b: &[u8]| -> Result<Vec<Value>> {
                    let doc: Value = serde_json::from_slice(b)?;
                    Ok(doc["checks"]
                        .as_array()
                        .context("checks")?
                        .iter()
                        .map(|c| c["name"].clone())
                        .collect())
                };
                assert_eq!(names(&answer)?, names(&e.answer)?, "{what}");
            }
            _ => {}
        }
    }
    let carried = Carried::of_exchanges(&exchanges)?;
    assert!(
        carried.kinds.len() == 3,
        "the recording has every kind: {:?}",
        carried.kinds
    );
    serves(&base, &carried, "web-1").await
}

/// The old collector, played from its recorded answers: the first of each kind, as it sent
/// them (no protocol versions named: v0.1.0 named none).
fn old_collector(
    exchanges: &[Exchange],
) -> Result<impl Fn(&lookout_tests::scripted::Seen) -> Answer + use<>> {
    let first = |path: &str, status: u16| -> Result<Answer> {
        let e = exchanges
            .iter()
            .find(|e| e.path.starts_with(path) && e.status == status)
            .with_context(|| format!("no {status} to {path} recorded"))?;
        Ok(Answer {
            status,
            headers: e.answer_headers.clone().into_iter().collect(),
            body: e.answer.clone(),
        })
    };
    let (enrolled, assigned, unchanged, stored, goodbye) = (
        first(ENROLL_PATH, 201)?,
        first(ASSIGNMENTS_PATH, 200)?,
        first(ASSIGNMENTS_PATH, 304)?,
        first(INGEST_PATH, 200)?,
        first(GOODBYE_PATH, 204)?,
    );
    let etag = assigned
        .headers
        .iter()
        .find(|(k, _)| k == "etag")
        .map(|(_, v)| v.clone())
        .context("the assignments' etag")?;
    Ok(move |seen: &lookout_tests::scripted::Seen| {
        let path = seen.path.split('?').next().unwrap_or_default();
        match path {
            ENROLL_PATH => enrolled.clone(),
            ASSIGNMENTS_PATH if seen.header("if-none-match") == Some(etag.as_str()) => {
                unchanged.clone()
            }
            ASSIGNMENTS_PATH => assigned.clone(),
            INGEST_PATH => stored.clone(),
            GOODBYE_PATH => goodbye.clone(),
            _ => Answer::json(404, "{}"),
        }
    })
}

/// The kinds of record in the batches `collector` was sent.
fn kinds_sent(collector: &Scripted) -> Result<BTreeSet<String>> {
    let mut kinds = BTreeSet::new();
    for s in collector.seen_at(INGEST_PATH) {
        let json: Value = serde_json::from_slice(&zstd::decode_all(&s.body[..])?)?;
        for r in json["records"].as_array().context("records")? {
            kinds.insert(r["kind"].as_str().unwrap_or_default().to_string());
        }
    }
    Ok(kinds)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn this_agent_understands_the_previous_collector_and_sends_what_it_reads() -> Result<()> {
    let exchanges = recorded::exchanges()?;
    let old = Carried::of_exchanges(&exchanges)?;
    let collector = Scripted::start(old_collector(&exchanges)?).await?;
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("app.log");
    std::fs::write(&log, "ERROR payment failed\nINFO request handled\n")?;
    let enroll_token = exchanges[0].headers["authorization"].trim_start_matches("Bearer ");
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "name = \"web-1\"\ncollector = \"{}\"\nenroll_token = \"{enroll_token}\"\n\
             data_dir = \"{}\"\nlabels = {{ role = \"web\" }}\n\n\
             [host_metrics]\ninterval = \"1s\"\n\n\
             [shipping]\nflush_interval = \"1s\"\nassignments_interval = \"1s\"\n\n\
             [[logs]]\npaths = [\"{}\"]\nread_from = \"beginning\"\n",
            collector.url,
            dir.path().join("data").display(),
            log.display()
        ),
    )?;
    let mut agent = start_agent(&config)?;
    agent.wait_for_line("assignments applied", Duration::from_secs(20))?;
    eventually("batches of every kind", Duration::from_secs(30), || {
        let kinds = kinds_sent(&collector);
        async move { Ok((kinds?.len() == 3).then_some(())) }
    })
    .await?;
    agent.signal("TERM")?;
    agent.wait_exit(Duration::from_secs(20))?;

    let seen = collector.seen();
    let recorded_credential = credential(&exchanges[0].answer)?;
    let (enrol, rest) = seen.split_first().context("no request")?;
    assert_eq!(enrol.path, ENROLL_PATH);
    let body: Value = serde_json::from_slice(&enrol.body)?;
    assert_eq!(body, serde_json::json!({"name": "web-1"}));
    // Every later request presents the credential the old collector gave.
    for s in rest {
        assert_eq!(
            s.header("authorization"),
            Some(format!("Bearer {recorded_credential}").as_str()),
            "{}",
            s.path
        );
    }
    // The headers the old collector read are there, as the old agent sent them.
    for (path, names) in [
        (
            ASSIGNMENTS_PATH,
            &["lookout-agent-labels", "lookout-agent-poll-interval-ms"][..],
        ),
        (
            INGEST_PATH,
            &[
                "content-encoding",
                "lookout-agent-spool-backlog",
                "content-type",
            ][..],
        ),
    ] {
        for s in rest.iter().filter(|s| s.path.starts_with(path)) {
            for n in names {
                assert!(s.header(n).is_some(), "{path} without {n}");
            }
        }
    }
    // Every batch is version 1, decodes as the old collector decoded (this crate's decoder, the
    // same as v0.1.0's for version 1: README), and holds no field the old agent did not send.
    for s in collector.seen_at(INGEST_PATH) {
        assert_eq!(s.header("content-encoding"), Some("zstd"));
        let batch =
            lookout_protocol::decode_batch(&s.body, lookout_protocol::Encoding::Zstd, 64 << 20)?;
        assert_eq!(batch.version, 1);
        assert_eq!(batch.agent, "web-1");
        let json: Value = serde_json::from_slice(&zstd::decode_all(&s.body[..])?)?;
        let top: BTreeSet<&str> = json
            .as_object()
            .context("a batch")?
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            top,
            BTreeSet::from(["version", "agent", "batch_id", "records"])
        );
        for r in json["records"].as_array().context("records")? {
            let kind = r["kind"].as_str().context("kind")?;
            let known = old
                .fields
                .get(kind)
                .with_context(|| format!("a {kind} record"))?;
            for field in r.as_object().context("a record")?.keys() {
                assert!(
                    known.contains(field),
                    "{kind}.{field} was never sent by v0.1.0: {r}"
                );
            }
        }
    }
    assert_eq!(collector.seen_at(GOODBYE_PATH).len(), 1, "goodbye");
    let log = agent.log_text();
    for bad in ["set aside", "not readable", "cannot fetch assignments"] {
        assert!(!log.contains(bad), "{bad}: {log}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn this_agent_ships_every_record_of_the_previous_agents_spool() -> Result<()> {
    let (spooled, token) = Carried::of_spool()?;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("agent");
    recorded::copy_dir(&recorded::dir().join("spool"), &data)?;
    let port = free_port();
    let cdir = dir.path().join("collector");
    std::fs::create_dir_all(&cdir)?;
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:{}\"\ndata_dir = \"{}\"\nread_tokens = [\"{}\"]\n{}\n\
         [[agents]]\nname = \"spool-1\"\ntoken = \"{token}\"\n{}",
        port.get(),
        cdir.display(),
        lookout_tests::READ_TOKEN,
        recorded::KEEP_EVERYTHING_SERVER,
        recorded::KEEP_EVERYTHING_STORAGE,
    );
    let (_collector, base) = start_collector(&cdir, &config)?;
    // Nothing of its own to send: every record that arrives is the spool's.
    let agent_config = dir.path().join("agent.toml");
    std::fs::write(
        &agent_config,
        format!(
            "name = \"spool-1\"\ncollector = \"{base}\"\ntoken = \"{token}\"\ndata_dir = \"{}\"\n\n\
             [host_metrics]\nenabled = false\n\n[shipping]\nflush_interval = \"1s\"\n",
            data.display()
        ),
    )?;
    let _agent = start_agent(&agent_config)?;
    // The collector's count of the records it stored, by kind, against the recording's.
    let expected: BTreeMap<String, f64> = spooled
        .kinds
        .iter()
        .map(|(k, n)| (k.to_string(), *n as f64))
        .collect();
    let stored = eventually("the spool shipped", Duration::from_secs(60), || async {
        let text = lookout_tests::read(format!("{base}/metrics"))
            .await?
            .text()
            .await?;
        let stored: BTreeMap<String, f64> = expected
            .keys()
            .map(|k| {
                let line = format!("lookout_ingest_records_total{{kind=\"{k}\"}} ");
                let n = text
                    .lines()
                    .find_map(|l| l.strip_prefix(line.as_str())?.parse().ok())
                    .unwrap_or(0.0);
                (k.clone(), n)
            })
            .collect();
        Ok((stored == expected).then_some(stored))
    })
    .await?;
    assert_eq!(stored, expected);
    assert!(
        stored.values().sum::<f64>() >= 100.0,
        "a spool of a few hundred records"
    );
    serves(&base, &spooled, "spool-1").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn this_collector_migrates_the_previous_sqlite_database_and_serves_it() -> Result<()> {
    let exchanges = recorded::exchanges()?;
    // lookout.db was written by the collector of exchanges.json: it holds what they carried.
    let carried = Carried::of_exchanges(&exchanges)?;
    let dir = tempfile::tempdir()?;
    std::fs::copy(
        recorded::dir().join("lookout.db"),
        dir.path().join("lookout.db"),
    )?;
    let config = recorded::collector_config(free_port().get(), dir.path(), "")?;
    let (collector, base) = start_collector(dir.path(), &config)?;
    serves(&base, &carried, "web-1").await?;
    let hosts = get_json(&format!("{base}/api/v1/hosts")).await?;
    let host = hosts["hosts"]
        .as_array()
        .context("hosts")?
        .iter()
        .find(|h| h["name"] == "web-1")
        .context("web-1")?;
    assert_eq!(host["origin"], "enrolled", "{host}");
    assert!(
        !collector.log_text().contains("ERROR"),
        "{}",
        collector.log_text()
    );
    Ok(())
}

mod postgres;
