//! Which protocol version this agent sends its batches in: the highest it shares with the
//! collector that answered last ([`lookout_protocol::version`]).
//!
//! It exists so that a rolling upgrade loses nothing. Every answer of a collector names the
//! versions it reads ([`VERSIONS_HEADER`]; one that names none, v0.1.0, reads 1); the client
//! keeps the last one here. The shipper asks [`CollectorVersions::to_send`] before each batch,
//! and a batch the collector refuses for its version ([`CollectorVersions::refuses`]) is
//! neither released nor set aside: it stays first in the spool, and is sent again when the
//! next answer (the next assignments fetch) shows a version both speak.

use lookout_protocol::http::VERSIONS_HEADER;
use lookout_protocol::version::{Versions, negotiate};
use tokio::sync::watch;

/// The versions the collector that answered last reads.
#[derive(Debug)]
pub struct CollectorVersions {
    /// Replaced by every answer, so a waiting shipper wakes at the next one.
    read: watch::Sender<Versions>,
    /// The last unreadable header value, so it is logged once, not at every answer; std's
    /// Mutex, never held across an await.
    unreadable: std::sync::Mutex<Option<String>>,
}

impl Default for CollectorVersions {
    fn default() -> Self {
        // Before any answer: what every collector reads.
        Self {
            read: watch::Sender::new(Versions::unadvertised()),
            unreadable: std::sync::Mutex::new(None),
        }
    }
}

impl CollectorVersions {
    /// Takes the versions an answer names; none (a collector of v0.1.0) is version 1, and so
    /// is a header that cannot be read (said once in the log).
    pub fn learn(&self, headers: &reqwest::header::HeaderMap) {
        let read = match headers.get(VERSIONS_HEADER) {
            None => Versions::unadvertised(),
            Some(value) => {
                let text = String::from_utf8_lossy(value.as_bytes());
                match Versions::parse(&text) {
                    Ok(v) => v,
                    Err(e) => {
                        let mut last = self.unreadable.lock().unwrap_or_else(|p| p.into_inner());
                        if last.as_deref() != Some(&*text) {
                            tracing::warn!(error = %e, "the collector's answer names protocol versions this agent cannot read; sending version 1");
                            *last = Some(text.into_owned());
                        }
                        Versions::unadvertised()
                    }
                }
            }
        };
        self.read.send_replace(read);
    }

    /// The version to send a batch in, or why none can be.
    pub fn to_send(&self) -> Result<u32, NoCommonVersion> {
        let collector = self.read.borrow().clone();
        let agent = Versions::supported();
        negotiate(&agent, &collector).ok_or(NoCommonVersion { collector, agent })
    }

    /// Whether the collector that answered last does not read `version`: a 400 to a batch of
    /// that version is then a refusal of the version, not of the batch.
    pub fn refuses(&self, version: u32) -> bool {
        !self.read.borrow().contains(version)
    }

    /// What the collector that answered last reads.
    pub fn collector(&self) -> Versions {
        self.read.borrow().clone()
    }

    /// A receiver that sees every answer from now on.
    pub fn subscribe(&self) -> watch::Receiver<Versions> {
        self.read.subscribe()
    }
}

/// The collector reads none of the versions this agent sends: they are more than one release
/// apart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the collector reads protocol versions {collector} and this agent sends {agent}: none in \
     common (upgrade the older of the two; they may be at most one release apart)"
)]
pub struct NoCommonVersion {
    /// What the collector reads.
    pub collector: Versions,
    /// What this agent sends.
    pub agent: Versions,
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    fn answer(versions: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(v) = versions {
            h.insert(VERSIONS_HEADER, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn follows_the_last_answer() {
        let v = CollectorVersions::default();
        assert_eq!(v.to_send(), Ok(1), "before any answer");
        v.learn(&answer(Some("1, 2")));
        assert_eq!(v.to_send(), Ok(lookout_protocol::PROTOCOL_VERSION));
        v.learn(&answer(Some("7, 8")));
        let none = v.to_send().unwrap_err();
        assert_eq!(none.collector.as_slice(), [7, 8]);
        assert!(v.refuses(1));
        assert!(none.to_string().contains("7, 8"), "{none}");
        // A collector from before the header reads 1.
        v.learn(&answer(None));
        assert_eq!(v.to_send(), Ok(1));
        assert!(!v.refuses(1));
        // Unreadable: version 1, as from a collector that says nothing.
        v.learn(&answer(Some("one, two")));
        assert_eq!(v.to_send(), Ok(1));
    }

    #[tokio::test]
    async fn a_waiting_shipper_wakes_at_the_next_answer() {
        let v = CollectorVersions::default();
        let mut rx = v.subscribe();
        rx.mark_unchanged();
        v.learn(&answer(Some("1")));
        tokio::time::timeout(std::time::Duration::from_secs(5), rx.changed())
            .await
            .unwrap()
            .unwrap();
    }
}
