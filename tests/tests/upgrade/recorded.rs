//! The fixtures of the previous release (tests/fixtures/v0.1.0, see its README) as the tests
//! read them, and what they say should be found: read from the recording itself (its bodies,
//! decoded here), never from what this release's agent or collector says.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use base64::Engine as _;
use lookout_protocol::{Encoding, Record, decode_batch};
use serde_json::Value;

/// The directory of the previous release's fixtures.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/v0.1.0")
}

/// The read token of the fixture's collector configuration.
pub const FIXTURE_READ_TOKEN: &str = "fixture-read-token-0123456789abcdef";

/// One request of the old agent and the old collector's answer.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub method: String,
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
    pub status: u16,
    pub answer_headers: BTreeMap<String, String>,
    pub answer: Vec<u8>,
}

fn b64(v: &Value) -> Result<Vec<u8>> {
    Ok(base64::engine::general_purpose::STANDARD.decode(v.as_str().context("base64 text")?)?)
}

fn headers(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// A recorded request, its answer left empty.
fn request(r: &Value) -> Result<Exchange> {
    Ok(Exchange {
        method: r["method"].as_str().context("method")?.to_string(),
        path: r["path"].as_str().context("path")?.to_string(),
        headers: headers(&r["headers"]),
        body: b64(&r["body_base64"])?,
        status: 0,
        answer_headers: BTreeMap::new(),
        answer: Vec::new(),
    })
}

/// exchanges.json: enrolment, assignments, ingest and goodbye, in the order they happened.
pub fn exchanges() -> Result<Vec<Exchange>> {
    let doc: Value = serde_json::from_slice(&std::fs::read(dir().join("exchanges.json"))?)?;
    doc["exchanges"]
        .as_array()
        .context("exchanges")?
        .iter()
        .map(|e| {
            Ok(Exchange {
                status: e["response"]["status"].as_u64().context("status")? as u16,
                answer_headers: headers(&e["response"]["headers"]),
                answer: b64(&e["response"]["body_base64"])?,
                ..request(&e["request"])?
            })
        })
        .collect()
}

/// The collector configuration the exchanges were recorded with, for a collector listening
/// on `port` with its data in `data_dir`: the checks' own URLs as recorded (so the assignments'
/// revision is the recorded one), records of any age taken and kept, and the tests' read token
/// accepted too.
pub fn collector_config(port: u16, data_dir: &Path, extra: &str) -> Result<String> {
    let template = std::fs::read_to_string(dir().join("collector.toml"))?;
    let recorded_port = recorded_collector_port()?;
    Ok(template
        .replace(
            "listen = \"127.0.0.1:{port}\"",
            &format!("listen = \"127.0.0.1:{port}\""),
        )
        .replace("{port}", &recorded_port.to_string())
        .replace("{data_dir}", &data_dir.display().to_string())
        .replace(
            &format!("read_tokens = [\"{FIXTURE_READ_TOKEN}\"]"),
            &format!(
                "read_tokens = [\"{FIXTURE_READ_TOKEN}\", \"{}\"]\n{KEEP_EVERYTHING_SERVER}",
                lookout_tests::READ_TOKEN
            ),
        )
        + KEEP_EVERYTHING_STORAGE
        + extra)
}

/// `[server]` keys that take the recording's records whatever their age.
pub const KEEP_EVERYTHING_SERVER: &str = "max_record_age = \"3650d\"\n";

/// A `[storage]` that keeps the recording's records whatever their age.
pub const KEEP_EVERYTHING_STORAGE: &str = "\n[storage]\nraw_retention = \"3650d\"\n\
    minute_rollup_retention = \"3650d\"\nhour_rollup_retention = \"3650d\"\n\
    log_retention = \"3650d\"\n";

/// The port the recording's collector listened on, which its checks' URLs name.
fn recorded_collector_port() -> Result<u16> {
    let assignments = exchanges()?
        .into_iter()
        .find(|e| e.path == lookout_protocol::http::ASSIGNMENTS_PATH && e.status == 200)
        .context("no assignments answer recorded")?;
    let doc: Value = serde_json::from_slice(&assignments.answer)?;
    let url = doc["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "collector-health"))
        .and_then(|c| c["url"].as_str())
        .context("collector-health's URL")?;
    let port = url
        .trim_start_matches("http://127.0.0.1:")
        .split('/')
        .next()
        .context("a port")?;
    Ok(port.parse()?)
}

/// What a set of recorded batches carried.
#[derive(Debug, Default)]
pub struct Carried {
    /// Results per check, each its `ok`.
    pub results: BTreeMap<String, Vec<bool>>,
    /// The text of every log line.
    pub log_texts: BTreeSet<String>,
    /// Every metric name.
    pub metric_names: BTreeSet<String>,
    /// Records of each kind.
    pub kinds: BTreeMap<&'static str, usize>,
    /// The field names of each kind of record, as the old agent wrote them.
    pub fields: BTreeMap<String, BTreeSet<String>>,
    /// The earliest and latest record time.
    pub span: Option<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)>,
}

impl Carried {
    /// Adds one zstd batch body, as the old agent sent it.
    pub fn add(&mut self, body: &[u8]) -> Result<()> {
        let batch = decode_batch(body, Encoding::Zstd, 64 << 20)?;
        let json: Value = serde_json::from_slice(&zstd::decode_all(body)?)?;
        for r in json["records"].as_array().context("records")? {
            let kind = r["kind"].as_str().context("kind")?.to_string();
            let fields = self.fields.entry(kind).or_default();
            fields.extend(r.as_object().context("a record object")?.keys().cloned());
        }
        for r in &batch.records {
            let (kind, time) = match r {
                Record::CheckResult(c) => {
                    self.results.entry(c.check.clone()).or_default().push(c.ok);
                    ("check_result", c.time)
                }
                Record::Metric(m) => {
                    self.metric_names.insert(m.name.clone());
                    ("metric", m.time)
                }
                Record::Log(l) => {
                    self.log_texts.insert(l.text.clone());
                    ("log", l.time)
                }
            };
            *self.kinds.entry(kind).or_default() += 1;
            self.span = Some(match self.span {
                None => (time, time),
                Some((a, b)) => (a.min(time), b.max(time)),
            });
        }
        Ok(())
    }

    /// What the recorded ingest requests carried.
    pub fn of_exchanges(exchanges: &[Exchange]) -> Result<Self> {
        let mut c = Self::default();
        for e in exchanges
            .iter()
            .filter(|e| e.path == lookout_protocol::http::INGEST_PATH)
        {
            c.add(&e.body)?;
        }
        Ok(c)
    }

    /// What the old agent sent from its spool (spool-drained.json), with the agent's token.
    pub fn of_spool() -> Result<(Self, String)> {
        let doc: Value = serde_json::from_slice(&std::fs::read(dir().join("spool-drained.json"))?)?;
        let mut c = Self::default();
        for b in doc["batches"].as_array().context("batches")? {
            c.add(&request(b)?.body)?;
        }
        Ok((c, doc["token"].as_str().context("token")?.to_string()))
    }

    /// A `from=..&to=..` query around the records' times.
    pub fn window(&self) -> String {
        let (a, b) = self.span.expect("records were recorded");
        let f =
            |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        format!(
            "from={}&to={}",
            f(a - chrono::Duration::minutes(1)),
            f(b + chrono::Duration::minutes(1))
        )
    }
}

/// Copies the directory `from` to `to`, recursively.
pub fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}
