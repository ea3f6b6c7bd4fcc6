//! `lookout-agent probe`: runs every local check, and the assigned ones when the collector
//! answers, once, concurrently, and prints a table. Needs no collector for local checks.

use std::fmt::Write as _;
use std::time::Duration;

use lookout_protocol::CheckResult;

use crate::client::CollectorClient;
use crate::probes::Prober;
use crate::scheduler::probe_isolated;
use crate::{AgentError, AgentSettings};

/// How long `probe` waits for the collector's assignments before going on without them.
const ASSIGNMENTS_WAIT: Duration = Duration::from_secs(3);

/// Where a probed check came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The agent's own `[[checks]]`.
    Local,
    /// The collector's assignments.
    Assigned,
}

/// What one `probe` run found.
#[derive(Debug)]
pub struct Report {
    /// Each check with its result, in the order of the configuration.
    pub rows: Vec<(Source, CheckResult)>,
    /// Why the assigned checks are missing, when they are.
    pub notes: Vec<String>,
}

impl Report {
    /// True when every check succeeded.
    pub fn all_ok(&self) -> bool {
        self.rows.iter().all(|(_, r)| r.ok)
    }
}

/// Runs every check once.
pub async fn run(settings: &AgentSettings) -> Result<Report, AgentError> {
    let prober = Prober::new(settings.max_concurrent_probes).identified_as(&settings.name);
    let mut checks: Vec<(Source, lookout_config::CheckConfig)> = settings
        .local_checks
        .iter()
        .cloned()
        .map(|c| (Source::Local, c))
        .collect();
    let mut notes = Vec::new();
    let client = CollectorClient::new(
        settings.collector_urls.clone(),
        settings.token.clone(),
        &settings.labels,
        &settings.tls,
        ASSIGNMENTS_WAIT,
        settings.shipping.max_answer_bytes,
    )?;
    // An enrolled agent presents its kept credential; `probe` never enrols.
    let client = match (&settings.credential_file, settings.token.is_empty()) {
        (Some(file), true) => {
            if let Some(kept) = crate::credential::read(file)? {
                client.set_token(kept);
            }
            client.with_credential_file(file.clone())
        }
        _ => client,
    };
    match client
        .assignments(None, settings.shipping.assignments_interval)
        .await
    {
        Ok(Some((assigned, skipped))) => {
            notes.extend(skipped.into_iter().map(|s| format!("skipped: {s}")));
            for c in crate::merge(&settings.local_checks, assigned.checks) {
                if !settings.local_checks.iter().any(|l| l.name == c.name) {
                    checks.push((Source::Assigned, c));
                }
            }
        }
        Ok(None) => {}
        Err(e) => notes.push(format!("assigned checks not run: {e}")),
    }
    let handles: Vec<_> = checks
        .into_iter()
        .map(|(source, check)| {
            let prober = prober.clone();
            tokio::spawn(async move { (source, probe_isolated(&prober, &check).await) })
        })
        .collect();
    let mut rows = Vec::with_capacity(handles.len());
    for h in handles {
        // probe_isolated already contains a probe's panic; a join error here means the runtime
        // is going away, and that row is simply missing.
        if let Ok(row) = h.await {
            rows.push(row);
        }
    }
    Ok(Report { rows, notes })
}

/// The report as a table for a terminal: each check with its result, total time, the phases
/// (DNS, connect, TLS, first byte, in ms), HTTP status, days until its certificate expires,
/// and why it failed (the failed conditions with the values found).
pub fn render(report: &Report) -> String {
    const COLUMNS: usize = 9;
    let header = [
        "CHECK",
        "TYPE",
        "FROM",
        "RESULT",
        "TOTAL",
        "DNS/CONN/TLS/TTFB",
        "STATUS",
        "CERT",
        "DETAIL",
    ];
    let mut table: Vec<[String; COLUMNS]> = vec![header.map(String::from)];
    let dash = || "-".to_string();
    for (source, r) in &report.rows {
        let phase = |v: Option<f64>| v.map_or_else(dash, |ms| format!("{ms:.1}"));
        let t = &r.timings;
        table.push([
            r.check.clone(),
            r.check_type.map_or_else(dash, |t| t.to_string()),
            match source {
                Source::Local => "local".into(),
                Source::Assigned => "assigned".into(),
            },
            if r.ok { "ok".into() } else { "FAIL".into() },
            format!("{:.1} ms", r.latency_ms),
            format!(
                "{}/{}/{}/{}",
                phase(t.dns_ms),
                phase(t.connect_ms),
                phase(t.tls_ms),
                phase(t.ttfb_ms)
            ),
            r.status_code.map_or_else(dash, |s| s.to_string()),
            r.cert_expiry.map_or_else(dash, |e| {
                format!("{}d", (e - chrono::Utc::now()).num_days())
            }),
            r.error.clone().unwrap_or_default(),
        ]);
    }
    let widths: Vec<usize> = (0..COLUMNS)
        .map(|i| {
            table
                .iter()
                .map(|row| row[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in &table {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i == COLUMNS - 1 {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ", w = widths[i]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    if report.rows.is_empty() {
        out.push_str("(no checks: none are local and none were assigned)\n");
    }
    for n in &report.notes {
        let _ = writeln!(out, "note: {n}");
    }
    let failed = report.rows.iter().filter(|(_, r)| !r.ok).count();
    let _ = writeln!(out, "{} checks, {} failed", report.rows.len(), failed);
    out
}
