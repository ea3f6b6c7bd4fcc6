//! journald as a log source: `journalctl --output=json --follow`, resumed by cursor.
//!
//! Each entry becomes a log record with the entry's own time, `journald:<unit or identifier>`
//! as its source, the level from its syslog `PRIORITY`, and `MESSAGE` as its text (a binary
//! message is kept as lossy text). Each record carries its entry's journal cursor; the cursor is saved with the file positions ([`Checkpoints`]), while the spool holds
//! those records' lock, and after a crash the newest cursor in the spool wins: so, as with
//! files, each entry is shipped once. When `journalctl` cannot run or stops, the agent says so
//! and starts it again 5 s later.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lookout_config::logs::{JournaldConfig, ReadFrom};
use lookout_protocol::{FilePosition, LogRecord, Record};
use tokio_util::sync::CancellationToken;

use super::checkpoints::Checkpoints;
use crate::spool::Spool;

/// The position key of the journal in the checkpoints.
pub const KEY: &str = "journald";
/// Most entries in one write to the spool.
const CHUNK: usize = 2000;
const RESTART_AFTER: Duration = Duration::from_secs(5);

/// `journalctl`'s arguments: follow from `cursor`, or from where `read_from` says.
pub fn arguments(cfg: &JournaldConfig, cursor: Option<&str>) -> Vec<String> {
    let mut args = vec![
        "--output=json".to_string(),
        "--follow".to_string(),
        "--no-pager".to_string(),
    ];
    match (cursor, cfg.read_from) {
        (Some(c), _) => args.push(format!("--after-cursor={c}")),
        (None, ReadFrom::Beginning) => args.push("--lines=all".into()),
        (None, ReadFrom::End) => args.push("--lines=0".into()),
    }
    for u in &cfg.units {
        args.push(format!("--unit={u}"));
    }
    args
}

/// One journal entry (`journalctl --output=json`) as a log record; `None` for a line that is
/// not an entry. Returns the entry's cursor too.
pub fn record(line: &str) -> Option<(LogRecord, String)> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let field = |k: &str| v.get(k).and_then(|x| x.as_str());
    let cursor = field("__CURSOR")?.to_string();
    let text = match v.get("MESSAGE") {
        Some(serde_json::Value::String(s)) => s.clone(),
        // A message that is not UTF-8 comes as an array of bytes.
        Some(serde_json::Value::Array(bytes)) => {
            let raw: Vec<u8> = bytes
                .iter()
                .filter_map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                .collect();
            String::from_utf8_lossy(&raw).into_owned()
        }
        _ => String::new(),
    };
    let time = field("__REALTIME_TIMESTAMP")
        .and_then(|us| us.parse::<i64>().ok())
        .and_then(DateTime::<Utc>::from_timestamp_micros)
        .unwrap_or_else(Utc::now);
    let source = field("_SYSTEMD_UNIT")
        .or_else(|| field("SYSLOG_IDENTIFIER"))
        .or_else(|| field("_COMM"))
        .unwrap_or("journal");
    let level = field("PRIORITY").and_then(|p| match p {
        "0" | "1" | "2" | "3" => Some("error"),
        "4" => Some("warn"),
        "5" | "6" => Some("info"),
        "7" => Some("debug"),
        _ => None,
    });
    Some((
        LogRecord {
            time,
            source: format!("journald:{source}"),
            level: level.map(str::to_string),
            text,
            position: None,
        },
        cursor,
    ))
}

/// Follows the journal on a thread of its own until `parent` is cancelled or the reader is
/// stopped.
pub fn spawn(
    cfg: JournaldConfig,
    dir: &Path,
    spool: Arc<Spool>,
    parent: &CancellationToken,
) -> std::io::Result<super::Reader> {
    let dir = dir.to_path_buf();
    super::Reader::spawn("lookout-journald", parent, move |stop| {
        let mut checkpoints = Checkpoints::open(&dir.join("journald"));
        checkpoints.recover(&spool);
        while !stop.is_cancelled() {
            let args = arguments(&cfg, checkpoints.cursor(KEY).as_deref());
            match Command::new(&cfg.journalctl)
                .args(&args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
            {
                Ok(child) => follow(child, &spool, &mut checkpoints, &stop),
                Err(e) => {
                    tracing::error!(journalctl = %cfg.journalctl.display(), error = %e, "cannot run journalctl; journal entries are not shipped until it can")
                }
            }
            checkpoints.save();
            sleep_unless(&stop, RESTART_AFTER);
        }
    })
}

fn sleep_unless(stop: &CancellationToken, d: Duration) {
    let step = Duration::from_millis(100);
    let mut left = d;
    while !left.is_zero() && !stop.is_cancelled() {
        std::thread::sleep(step.min(left));
        left = left.saturating_sub(step);
    }
}

/// Reads entries until journalctl ends or `stop`, writing them to the spool a read at a time.
fn follow(
    mut child: Child,
    spool: &Spool,
    checkpoints: &mut Checkpoints,
    stop: &CancellationToken,
) {
    let Some(stdout) = child.stdout.take() else {
        return;
    };
    // Ends journalctl when the agent stops (a read would otherwise wait for the next entry).
    let pid = child.id();
    let watcher_stop = stop.clone();
    let done = CancellationToken::new();
    let watcher_done = done.clone();
    let watcher = std::thread::spawn(move || {
        while !watcher_stop.is_cancelled() && !watcher_done.is_cancelled() {
            std::thread::sleep(Duration::from_millis(100));
        }
        if watcher_stop.is_cancelled() {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    });
    let mut reader = BufReader::with_capacity(1 << 16, stdout);
    let mut line = String::new();
    let mut records: Vec<Record> = Vec::new();
    let mut last_cursor = None;
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if let Some((mut r, cursor)) = record(line.trim_end()) {
            // On every record: a write torn by a kill keeps a prefix of them.
            r.position = Some(FilePosition {
                file: KEY.to_string(),
                offset: 0,
                cursor: Some(cursor.clone()),
            });
            records.push(Record::Log(r));
            last_cursor = Some(cursor);
        }
        // Ship when nothing more is waiting, or a chunk is full.
        if records.len() >= CHUNK || (reader.buffer().is_empty() && !records.is_empty()) {
            ship(spool, checkpoints, &mut records, last_cursor.take());
        }
    }
    ship(spool, checkpoints, &mut records, last_cursor.take());
    done.cancel();
    let _ = watcher.join();
    let status = child.wait();
    if !stop.is_cancelled() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        tracing::warn!(status = ?status.ok(), stderr = %err.trim(), "journalctl ended; starting it again in 5 s");
    }
}

fn ship(
    spool: &Spool,
    checkpoints: &mut Checkpoints,
    records: &mut Vec<Record>,
    cursor: Option<String>,
) {
    let Some(cursor) = cursor.filter(|_| !records.is_empty()) else {
        return;
    };
    spool.push_all(records, || {
        checkpoints.set_cursor(KEY, &cursor);
        checkpoints.save();
    });
    records.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_become_records_with_their_time_source_level_and_cursor() {
        let line = r#"{"__CURSOR":"s=1;i=2","__REALTIME_TIMESTAMP":"1795697524123456","PRIORITY":"3","_SYSTEMD_UNIT":"nginx.service","SYSLOG_IDENTIFIER":"nginx","MESSAGE":"upstream timed out"}"#;
        let (r, cursor) = record(line).unwrap();
        assert_eq!(cursor, "s=1;i=2");
        assert_eq!(r.source, "journald:nginx.service");
        assert_eq!(r.level.as_deref(), Some("error"));
        assert_eq!(r.text, "upstream timed out");
        assert_eq!(r.time.timestamp_micros(), 1_795_697_524_123_456);
        let binary =
            r#"{"__CURSOR":"c","MESSAGE":[104,105,255],"SYSLOG_IDENTIFIER":"x","PRIORITY":"6"}"#;
        let (r, _) = record(binary).unwrap();
        assert_eq!(r.text, "hi\u{fffd}");
        assert_eq!(r.source, "journald:x");
        assert_eq!(r.level.as_deref(), Some("info"));
        assert!(record("not json").is_none());
    }

    #[test]
    fn arguments_resume_from_the_cursor_or_start_where_told() {
        let mut cfg = JournaldConfig {
            enabled: true,
            units: vec!["nginx.service".into()],
            read_from: ReadFrom::End,
            journalctl: "journalctl".into(),
        };
        assert!(arguments(&cfg, None).contains(&"--lines=0".to_string()));
        assert!(arguments(&cfg, None).contains(&"--unit=nginx.service".to_string()));
        cfg.read_from = ReadFrom::Beginning;
        assert!(arguments(&cfg, None).contains(&"--lines=all".to_string()));
        assert!(arguments(&cfg, Some("s=9")).contains(&"--after-cursor=s=9".to_string()));
    }
}
