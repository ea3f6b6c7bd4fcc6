//! Containers' output shipped as log lines (`logs = true`): one follower a container, reading
//! `GET /containers/{id}/logs?follow=1&stdout=1&stderr=1&timestamps=1&since=...` (the
//! multiplexed stream of [`super::mux`] when the container has no terminal, raw lines when it
//! has one) until the container stops; the integration's next read starts it again when the
//! container runs again (a restart), and starts one for each new container (a replacement).
//!
//! Each line becomes a log record with the engine's timestamp as its time, the line without
//! that timestamp as its text, and as source `container:<name>/<stream>`, or
//! `container:<compose project>/<compose service>/<name>/<stream>` for a Compose container.
//!
//! ## Where reading stands
//!
//! Per container id, the checkpoint is the timestamp of the last line shipped and how many
//! lines with that very timestamp were shipped (`"2026-12-07T10:00:00.123456789Z 2"`), kept in
//! `<data_dir>/logs/containers-<integration>/checkpoints.json` as a journal cursor is
//! ([`crate::logs::checkpoints`]): saved while the spool holds the lock of the records that
//! reach it, and taken forward from the spool's own records at start. A follower asks for the
//! output since one second before the checkpoint and skips what it covers, so each line is
//! shipped once across container restarts, agent restarts and crashes. Lines without a
//! timestamp the agent can read are shipped with the time they were read and move nothing.
//!
//! At the agent's first start with logs on (no checkpoint file), the containers already there
//! are read from that moment on, not from their first line; a container that appears later,
//! or while the agent is stopped, is read from its first line.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use http_body_util::BodyExt as _;
use lookout_protocol::{FilePosition, LogRecord, Record};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::api::Api;
use super::model::{Inspect, Listed};
use super::mux::{Demux, Line, Lines, Stream};
use crate::logs::checkpoints::Checkpoints;
use crate::spool::Spool;

/// Most records in one write to the spool.
const CHUNK: usize = 2000;

/// Where a container's reading stands: every line before `time` was shipped, and `count` lines
/// at `time`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    /// The timestamp of the last line shipped.
    pub time: DateTime<Utc>,
    /// Lines with exactly that timestamp shipped.
    pub count: u64,
}

impl Mark {
    /// The checkpoint's cursor text.
    pub fn cursor(&self) -> String {
        format!(
            "{} {}",
            self.time
                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            self.count
        )
    }

    /// A cursor read back; `None` when it is not one.
    pub fn parse(cursor: &str) -> Option<Self> {
        let (time, count) = cursor.split_once(' ')?;
        Some(Self {
            time: DateTime::parse_from_rfc3339(time).ok()?.to_utc(),
            count: count.parse().ok()?,
        })
    }
}

/// Skips what a [`Mark`] covers among lines read again, and moves the mark past what is new.
#[derive(Debug, Clone)]
pub struct Dedup {
    /// Where reading stands.
    pub mark: Option<Mark>,
    /// Lines with the mark's timestamp seen in this read.
    seen_at_mark: u64,
}

impl Dedup {
    /// Reading from `mark` (none: everything is new).
    pub fn new(mark: Option<Mark>) -> Self {
        Self {
            mark,
            seen_at_mark: 0,
        }
    }

    /// Whether the line with timestamp `t` is new (and then the mark is past it).
    pub fn is_new(&mut self, t: DateTime<Utc>) -> bool {
        match self.mark {
            Some(m) if t < m.time => false,
            Some(m) if t == m.time => {
                self.seen_at_mark += 1;
                if self.seen_at_mark <= m.count {
                    return false;
                }
                self.mark = Some(Mark {
                    time: t,
                    count: self.seen_at_mark,
                });
                true
            }
            _ => {
                self.mark = Some(Mark { time: t, count: 1 });
                self.seen_at_mark = 1;
                true
            }
        }
    }
}

/// A line of the API's output with `timestamps=1`: its timestamp and text.
pub fn split_timestamp(line: &[u8]) -> (Option<DateTime<Utc>>, String) {
    let text = String::from_utf8_lossy(line);
    let text = text.strip_suffix('\r').unwrap_or(&text);
    if let Some((t, rest)) = text.split_once(' ')
        && let Ok(t) = DateTime::parse_from_rfc3339(t)
    {
        return (Some(t.to_utc()), rest.to_string());
    }
    (None, text.to_string())
}

/// The log records' source for a container's stream.
pub fn source(c: &Listed, stream: Stream) -> String {
    match c.compose_service() {
        Some(s) => format!(
            "container:{}/{s}/{}/{}",
            c.compose_project().unwrap_or(""),
            c.name(),
            stream.as_str()
        ),
        None => format!("container:{}/{}", c.name(), stream.as_str()),
    }
}

/// The log shipping of one integration: a follower per container with new output.
pub struct Logs {
    api: Api,
    spool: Arc<Spool>,
    // std's Mutex: held only to read or set a cursor and save (never across an await); the
    // spool's lock is taken first whenever both are held.
    checkpoints: Arc<Mutex<Checkpoints>>,
    followers: HashMap<String, JoinHandle<()>>,
    /// Stopped containers whose output was read to the end since they last ran.
    drained: HashSet<String>,
    /// At the first start: the containers of the first read, read from that moment on.
    from_now: Option<(HashSet<String>, DateTime<Utc>)>,
    first_read: bool,
    stop: CancellationToken,
}

impl Logs {
    /// Log shipping through `api` into `spool`, with its checkpoints in `dir`; the followers
    /// stop with `stop`.
    pub fn new(api: Api, dir: &Path, spool: Arc<Spool>, stop: CancellationToken) -> Self {
        let mut checkpoints = Checkpoints::open(dir);
        checkpoints.recover(&spool);
        let first_start = checkpoints.first_start;
        // Written now, so a restart before any line is not taken for a first start.
        checkpoints.set_cursor("started", &Utc::now().to_rfc3339());
        checkpoints.save();
        Self {
            api,
            spool,
            checkpoints: Arc::new(Mutex::new(checkpoints)),
            followers: HashMap::new(),
            drained: HashSet::new(),
            from_now: first_start.then(|| (HashSet::new(), Utc::now())),
            first_read: true,
            stop,
        }
    }

    /// Starts a follower for each listed container with output not yet read: a running one
    /// without a follower, or a stopped one not read to its end since it ran.
    pub fn tick(&mut self, listed: &[Listed]) {
        if std::mem::take(&mut self.first_read)
            && let Some((ids, _)) = &mut self.from_now
        {
            ids.extend(listed.iter().map(|c| c.id.clone()));
        }
        let present: HashSet<&str> = listed.iter().map(|c| c.id.as_str()).collect();
        self.followers.retain(|id, f| {
            if present.contains(id.as_str()) {
                true
            } else {
                f.abort();
                false
            }
        });
        self.drained.retain(|id| present.contains(id.as_str()));
        for c in listed {
            if self.followers.get(&c.id).is_some_and(|f| !f.is_finished()) {
                continue;
            }
            if c.state == "running" {
                self.drained.remove(&c.id);
            } else if !self.drained.insert(c.id.clone()) {
                continue;
            }
            let start = match &self.from_now {
                Some((ids, at)) if ids.contains(&c.id) => Some(*at),
                _ => None,
            };
            let follower = Follower {
                api: self.api.clone(),
                spool: self.spool.clone(),
                checkpoints: self.checkpoints.clone(),
                container: c.clone(),
                start,
            };
            let stop = self.stop.clone();
            let handle = tokio::spawn(async move {
                tokio::select! {
                    () = stop.cancelled() => {}
                    r = follower.run() => if let Err(e) = r {
                        tracing::warn!(container = %e.0, error = %e.1, "cannot read a container's output; tried again on the next read");
                    }
                }
            });
            self.followers.insert(c.id.clone(), handle);
        }
    }
}

/// One container's output, followed until it stops.
struct Follower {
    api: Api,
    spool: Arc<Spool>,
    checkpoints: Arc<Mutex<Checkpoints>>,
    container: Listed,
    /// Read from this moment when there is no checkpoint (a container there at first start).
    start: Option<DateTime<Utc>>,
}

impl Follower {
    fn key(&self) -> String {
        format!("container:{}", self.container.id)
    }

    async fn run(&self) -> Result<(), (String, String)> {
        let fail = |e: String| (self.container.name(), e);
        let id = &self.container.id;
        let inspect: Inspect = self
            .api
            .json(&format!("/containers/{id}/json"), super::MAX_INSPECT_BYTES)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let key = self.key();
        let saved = self
            .checkpoints
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .cursor(&key)
            .and_then(|c| Mark::parse(&c));
        let mark = saved.or(self.start.map(|time| Mark { time, count: 0 }));
        // A second early: the engine's `since` is whole seconds, inclusive or not by engine.
        let since = mark.map_or(0, |m| m.time.timestamp() - 1).max(0);
        let path =
            format!("/containers/{id}/logs?follow=1&stdout=1&stderr=1&timestamps=1&since={since}");
        let mut body = self
            .api
            .get(&path)
            .await
            .map_err(|e| fail(e.to_string()))?
            .into_body();
        let mut dedup = Dedup::new(mark);
        let mut demux = Demux::default();
        let mut lines: HashMap<Stream, Lines> = HashMap::new();
        let mut records = Vec::new();
        let mut got: Vec<Line> = Vec::new();
        loop {
            let frame = match body.frame().await {
                None => break,
                Some(Err(e)) => return Err(fail(format!("reading the output: {e}"))),
                Some(Ok(f)) => f,
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if inspect.config.tty {
                lines
                    .entry(Stream::Stdout)
                    .or_default()
                    .push(&data, &mut got);
                self.take(Stream::Stdout, &mut got, &mut dedup, &mut records);
            } else {
                demux.push(&data);
                while let Some((stream, payload)) =
                    demux.next_frame().map_err(|e| fail(e.to_string()))?
                {
                    lines.entry(stream).or_default().push(&payload, &mut got);
                    self.take(stream, &mut got, &mut dedup, &mut records);
                }
            }
            if !records.is_empty() && (records.len() >= CHUNK || demux.pending() == 0) {
                self.ship(std::mem::take(&mut records), dedup.mark).await;
            }
        }
        for (stream, l) in &mut lines {
            if let Some(line) = l.finish() {
                got.push(line);
                self.take(*stream, &mut got, &mut dedup, &mut records);
            }
        }
        self.ship(records, dedup.mark).await;
        Ok(())
    }

    /// Makes records of the new ones among `got`.
    fn take(
        &self,
        stream: Stream,
        got: &mut Vec<Line>,
        dedup: &mut Dedup,
        records: &mut Vec<Record>,
    ) {
        let source = source(&self.container, stream);
        for (bytes, _cut) in got.drain(..) {
            let (time, text) = split_timestamp(&bytes);
            if let Some(t) = time
                && !dedup.is_new(t)
            {
                continue;
            }
            records.push(Record::Log(LogRecord {
                time: time.unwrap_or_else(Utc::now),
                source: source.clone(),
                level: None,
                text,
                position: dedup.mark.map(|m| FilePosition {
                    file: self.key(),
                    offset: 0,
                    cursor: Some(m.cursor()),
                }),
            }));
        }
    }

    /// Writes `records` to the spool, saving `mark` under the spool's lock.
    async fn ship(&self, records: Vec<Record>, mark: Option<Mark>) {
        if records.is_empty() {
            return;
        }
        let (spool, checkpoints, key) = (self.spool.clone(), self.checkpoints.clone(), self.key());
        let path = self.container.name();
        let wrote = tokio::task::spawn_blocking(move || {
            spool.push_all(&records, || {
                if let Some(m) = mark {
                    let mut c = checkpoints
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    c.set_cursor(&key, &m.cursor());
                    c.save();
                }
            });
        })
        .await;
        if let Err(e) = wrote {
            tracing::warn!(container = %path, error = %e, "writing a container's lines failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    #[test]
    fn a_mark_skips_what_it_covers_and_moves_past_what_is_new() {
        let a = t("2026-12-07T10:00:00.5Z");
        let b = t("2026-12-07T10:00:01Z");
        // Shipped: everything before `a`, and 2 lines at `a`.
        let mut d = Dedup::new(Some(Mark { time: a, count: 2 }));
        let earlier = t("2026-12-07T10:00:00.1Z");
        let seen: Vec<bool> = [earlier, a, a, a, b, b]
            .into_iter()
            .map(|x| d.is_new(x))
            .collect();
        assert_eq!(seen, [false, false, false, true, true, true]);
        assert_eq!(d.mark, Some(Mark { time: b, count: 2 }));
        // Read again from that mark: nothing is new but what comes after.
        let mut again = Dedup::new(d.mark);
        let seen: Vec<bool> = [a, a, a, b, b, b]
            .into_iter()
            .map(|x| again.is_new(x))
            .collect();
        assert_eq!(seen, [false, false, false, false, false, true]);
        let m = again.mark.unwrap();
        assert_eq!(Mark::parse(&m.cursor()), Some(m));
        assert_eq!(m.cursor(), "2026-12-07T10:00:01.000000000Z 3");
        assert!(Mark::parse("garbage").is_none());
        assert!(Dedup::new(None).is_new(a));
    }

    #[test]
    fn timestamps_are_split_off_their_lines() {
        let (time, text) = split_timestamp(b"2026-12-07T10:00:00.123456789Z hello world\r");
        assert_eq!(time, Some(t("2026-12-07T10:00:00.123456789Z")));
        assert_eq!(text, "hello world");
        let (time, text) = split_timestamp(b"2026-12-07T11:00:00.1+01:00 x");
        assert_eq!(time, Some(t("2026-12-07T10:00:00.1Z")));
        assert_eq!(text, "x");
        assert_eq!(
            split_timestamp(b"no time here"),
            (None, "no time here".into())
        );
    }
}
