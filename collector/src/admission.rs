//! What one agent may send, record by record: bounds on labels and string lengths, on log
//! lines, on how fast it starts new metric series and on how many check names it uses.
//!
//! It exists because an agent token is not the collector's trust (docs/security.md, "What an
//! agent may say"): a buggy or stolen agent can send a label set per sample, a check name per
//! result or a log line of megabytes, and each would become rows, index entries and cache
//! entries for as long as retention keeps them. The batch's size is bounded before this
//! (`max_body_bytes`, `max_decoded_bytes`, `max_records_per_batch`, in `ingest`); here each
//! record is held to the `[server]` limits:
//!
//! | limit | beyond it |
//! |---|---|
//! | `max_labels_per_record` | record refused, `too_many_labels` |
//! | `max_label_bytes` (a label's name or value) | record refused, `label_too_long` |
//! | `max_string_bytes` (check, metric, source, level, position) | record refused, `string_too_long` |
//! | `max_string_bytes` (a result's `error`, free text) | cut between characters, marked |
//! | `max_log_line_bytes` | cut between characters, ends `…[truncated N bytes]` |
//! | `max_new_series_per_minute` (per agent) | sample refused, `series_rate` |
//! | `max_check_names` (per agent; names the collector does not define) | result refused, `too_many_checks` |
//!
//! A refused record is listed in the ingest answer and counted in
//! `lookout_ingest_rejects_total{reason}`; the rest of its batch is stored. Series and check
//! names are remembered per agent as 64-bit hashes, seeded at random per process, since the
//! collector started: about 16 bytes a series.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lookout_config::ServerConfig;
use lookout_protocol::Record;

/// The `[server]` limits this module applies, copied out of the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `max_labels_per_record`.
    pub labels: usize,
    /// `max_label_bytes`.
    pub label_bytes: usize,
    /// `max_string_bytes`.
    pub string_bytes: usize,
    /// `max_log_line_bytes`.
    pub log_line_bytes: usize,
    /// `max_new_series_per_minute`.
    pub new_series_per_minute: usize,
    /// `max_check_names`.
    pub check_names: usize,
}

impl From<&ServerConfig> for Limits {
    fn from(s: &ServerConfig) -> Self {
        Self {
            labels: s.max_labels_per_record,
            label_bytes: s.max_label_bytes,
            string_bytes: s.max_string_bytes,
            log_line_bytes: s.max_log_line_bytes,
            new_series_per_minute: s.max_new_series_per_minute,
            check_names: s.max_check_names,
        }
    }
}

/// What [`shape`] did to a record it kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shaped {
    /// Nothing.
    Whole,
    /// A log line was cut to `max_log_line_bytes`.
    LogLineCut,
    /// A check result's error was cut to `max_string_bytes`.
    ErrorCut,
}

/// Holds `record` to the limits on its labels and strings: `Err` with the reason to refuse
/// it, or what was cut to keep it.
pub fn shape(record: &mut Record, limits: &Limits) -> Result<Shaped, &'static str> {
    let long = |s: &str| s.len() > limits.string_bytes;
    match record {
        Record::CheckResult(c) => {
            if long(&c.check) {
                return Err("string_too_long");
            }
            if let Some(e) = &mut c.error
                && cut(e, limits.string_bytes)
            {
                return Ok(Shaped::ErrorCut);
            }
        }
        Record::Metric(m) => {
            if long(&m.name) {
                return Err("string_too_long");
            }
            if m.labels.len() > limits.labels {
                return Err("too_many_labels");
            }
            if m.labels
                .iter()
                .any(|(k, v)| k.len() > limits.label_bytes || v.len() > limits.label_bytes)
            {
                return Err("label_too_long");
            }
        }
        Record::Log(l) => {
            let position_long = l
                .position
                .as_ref()
                .is_some_and(|p| long(&p.file) || p.cursor.as_deref().is_some_and(long));
            if long(&l.source) || l.level.as_deref().is_some_and(long) || position_long {
                return Err("string_too_long");
            }
            if cut(&mut l.text, limits.log_line_bytes) {
                return Ok(Shaped::LogLineCut);
            }
        }
    }
    Ok(Shaped::Whole)
}

/// Cuts `text` to `max` bytes between characters and marks it as the agent marks the lines it
/// cuts; `true` when it did.
fn cut(text: &mut String, max: usize) -> bool {
    let n = lookout_runtime::truncate_on_char_boundary(text, max);
    if n > 0 {
        text.push_str(&format!("…[truncated {n} bytes]"));
    }
    n > 0
}

/// The length of the window `max_new_series_per_minute` counts in.
const WINDOW: Duration = Duration::from_secs(60);

/// What each agent has used since the collector started: its series and check names.
#[derive(Debug)]
pub struct Ledgers {
    seed: u64,
    // std's Mutex: held only to find or add an agent's ledger, never across an await.
    agents: Mutex<HashMap<String, Arc<Mutex<Ledger>>>>,
}

impl Default for Ledgers {
    fn default() -> Self {
        Self {
            seed: fastrand::u64(..),
            agents: Mutex::default(),
        }
    }
}

/// One agent's series and check names, and the new series of the current minute.
#[derive(Debug)]
pub struct Ledger {
    series: HashSet<u64>,
    checks: HashSet<u64>,
    window_start: Instant,
    new_in_window: usize,
}

/// One agent's ledger, held for one batch's records.
pub struct Admit<'a> {
    seed: u64,
    ledger: std::sync::MutexGuard<'a, Ledger>,
    limits: Limits,
}

impl Ledgers {
    /// `agent`'s ledger, to admit one batch's records with; other agents' batches go on
    /// meanwhile.
    pub fn agent(&self, agent: &str) -> Arc<Mutex<Ledger>> {
        let mut agents = self.agents.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(l) = agents.get(agent) {
            return l.clone();
        }
        let l = Arc::new(Mutex::new(Ledger {
            series: HashSet::new(),
            checks: HashSet::new(),
            window_start: Instant::now(),
            new_in_window: 0,
        }));
        agents.insert(agent.to_string(), l.clone());
        l
    }

    /// Locks `ledger` (from [`Ledgers::agent`]) for one batch.
    pub fn admit<'a>(&self, ledger: &'a Mutex<Ledger>, limits: Limits) -> Admit<'a> {
        let mut ledger = ledger.lock().unwrap_or_else(|p| p.into_inner());
        if ledger.window_start.elapsed() >= WINDOW {
            ledger.window_start = Instant::now();
            ledger.new_in_window = 0;
        }
        Admit {
            seed: self.seed,
            ledger,
            limits,
        }
    }
}

impl Admit<'_> {
    /// `Err` with the reason when `record` would start a series or use a check name past
    /// the agent's limits; otherwise it is remembered as seen.
    pub fn record(&mut self, record: &Record) -> Result<(), &'static str> {
        match record {
            Record::CheckResult(c) => {
                let key = xxhash_rust::xxh3::xxh3_64_with_seed(c.check.as_bytes(), self.seed);
                let checks = &mut self.ledger.checks;
                if checks.contains(&key) {
                    Ok(())
                } else if checks.len() >= self.limits.check_names {
                    Err("too_many_checks")
                } else {
                    checks.insert(key);
                    Ok(())
                }
            }
            Record::Metric(m) => {
                let mut h = xxhash_rust::xxh3::Xxh3::with_seed(self.seed);
                let strings = std::iter::once(m.name.as_str())
                    .chain(m.labels.iter().flat_map(|(k, v)| [k.as_str(), v.as_str()]));
                for s in strings {
                    // The length first: no two label sets write the same bytes.
                    h.update(&(s.len() as u64).to_le_bytes());
                    h.update(s.as_bytes());
                }
                let key = h.digest();
                let ledger = &mut *self.ledger;
                if ledger.series.contains(&key) {
                    Ok(())
                } else if ledger.new_in_window >= self.limits.new_series_per_minute {
                    Err("series_rate")
                } else {
                    ledger.series.insert(key);
                    ledger.new_in_window += 1;
                    Ok(())
                }
            }
            Record::Log(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
