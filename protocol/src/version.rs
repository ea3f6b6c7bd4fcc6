//! Which protocol version an agent sends, when agent and collector are of different releases.
//!
//! During a rolling upgrade agents and collectors of two releases talk to each other, both
//! ways. The collector says which batch versions it reads in the [`VERSIONS_HEADER`] of every
//! answer on the agent's routes (`lookout-protocol-versions: 1` or `1, 2`); the agent sends
//! the highest version both speak ([`negotiate`]). A collector that says nothing (one from
//! before this header, v0.1.0) reads version 1.
//!
//! A batch refused for its version is no fault of its records: the agent keeps it in its
//! spool (never sets it aside), says so in its log and `/metrics`, and tries again once the
//! collector's next answer shows a version both speak. A collector refuses it with 400 and
//! its [`VERSIONS_HEADER`], which is how the agent tells that refusal from a malformed batch.
//!
//! Header format: decimal versions separated by commas (spaces allowed), at most
//! [`MAX_HEADER_BYTES`] bytes and [`MAX_VERSIONS`] versions, none of them 0. Anything else is
//! [`VersionsError`]; the agent then keeps to version 1.

use crate::PROTOCOL_VERSION;
pub use crate::http::VERSIONS_HEADER;

/// The oldest batch version this build reads and sends. A collector keeps reading a version
/// for at least one release after a newer one exists, so agents one release behind ship.
pub const OLDEST_PROTOCOL_VERSION: u32 = 1;

/// The version a collector that does not advertise any reads: every release before the
/// [`VERSIONS_HEADER`] read version 1 only.
pub const UNADVERTISED_VERSION: u32 = 1;

/// What a collector's refusal of a batch for its version says, in every release (v0.1.0's
/// included, which sent no [`VERSIONS_HEADER`]): [`DecodeError::Version`](crate::DecodeError)'s
/// text starts with it. An agent keeps a batch refused with it.
pub const REFUSAL_TEXT: &str = "unsupported protocol version";

/// Longest [`VERSIONS_HEADER`] value read, in bytes.
pub const MAX_HEADER_BYTES: usize = 128;

/// Most versions one [`VERSIONS_HEADER`] may list.
pub const MAX_VERSIONS: usize = 16;

/// A set of protocol versions, as a [`VERSIONS_HEADER`] lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versions(Vec<u32>);

/// Why a [`VERSIONS_HEADER`] value could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionsError {
    /// Longer than [`MAX_HEADER_BYTES`].
    #[error("the versions header is longer than {MAX_HEADER_BYTES} bytes")]
    TooLong,
    /// More than [`MAX_VERSIONS`] versions.
    #[error("the versions header lists more than {MAX_VERSIONS} versions")]
    TooMany,
    /// An entry that is not a whole number from 1 up.
    #[error("the versions header has {0:?}, which is no protocol version (a whole number from 1)")]
    NotAVersion(String),
    /// No version at all.
    #[error("the versions header lists no version")]
    Empty,
}

impl Versions {
    /// The versions this build reads: [`OLDEST_PROTOCOL_VERSION`] to [`PROTOCOL_VERSION`].
    pub fn supported() -> Self {
        Self((OLDEST_PROTOCOL_VERSION..=PROTOCOL_VERSION).collect())
    }

    /// Exactly these versions (sorted, without repeats); for tests and tools that play another
    /// release.
    pub fn of(versions: impl IntoIterator<Item = u32>) -> Self {
        let mut v: Vec<u32> = versions.into_iter().filter(|&v| v > 0).collect();
        v.sort_unstable();
        v.dedup();
        Self(v)
    }

    /// What a collector that sends no [`VERSIONS_HEADER`] reads.
    pub fn unadvertised() -> Self {
        Self(vec![UNADVERTISED_VERSION])
    }

    /// Reads a [`VERSIONS_HEADER`] value.
    pub fn parse(header: &str) -> Result<Self, VersionsError> {
        if header.len() > MAX_HEADER_BYTES {
            return Err(VersionsError::TooLong);
        }
        let mut out = Vec::new();
        for part in header.split(',') {
            let part = part.trim();
            if out.len() == MAX_VERSIONS {
                return Err(VersionsError::TooMany);
            }
            match part.parse::<u32>() {
                Ok(v) if v > 0 && part.bytes().all(|b| b.is_ascii_digit()) => out.push(v),
                _ => return Err(VersionsError::NotAVersion(part.to_string())),
            }
        }
        if out.is_empty() {
            return Err(VersionsError::Empty);
        }
        Ok(Self::of(out))
    }

    /// Whether `version` is one of these.
    pub fn contains(&self, version: u32) -> bool {
        self.0.binary_search(&version).is_ok()
    }

    /// The versions, lowest first.
    pub fn as_slice(&self) -> &[u32] {
        &self.0
    }

    /// The [`VERSIONS_HEADER`] value: `1` or `1, 2`.
    pub fn header_value(&self) -> String {
        self.0
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl std::fmt::Display for Versions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.header_value())
    }
}

/// The version an agent speaking `ours` sends to a collector reading `theirs`: the highest
/// both have, `None` when they share none (a skew of more than the supported one).
pub fn negotiate(ours: &Versions, theirs: &Versions) -> Option<u32> {
    ours.0.iter().rev().copied().find(|&v| theirs.contains(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_what_collectors_send_and_refuses_the_rest() {
        assert_eq!(Versions::parse("1").unwrap().as_slice(), [1]);
        assert_eq!(Versions::parse(" 2 , 1,3").unwrap().as_slice(), [1, 2, 3]);
        assert_eq!(Versions::parse("1,1").unwrap().as_slice(), [1]);
        for bad in [
            "",
            " ",
            "0",
            "-1",
            "+1",
            "1,,2",
            "one",
            "1.5",
            "99999999999",
        ] {
            assert!(
                matches!(
                    Versions::parse(bad),
                    Err(VersionsError::NotAVersion(_) | VersionsError::Empty)
                ),
                "{bad:?} was read"
            );
        }
        let many = (1..=17)
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(Versions::parse(&many), Err(VersionsError::TooMany));
        assert_eq!(
            Versions::parse(&"1,".repeat(70)),
            Err(VersionsError::TooLong)
        );
    }

    #[test]
    fn the_refusal_says_what_agents_look_for() {
        let e = crate::DecodeError::Version(PROTOCOL_VERSION + 1);
        assert!(e.to_string().starts_with(REFUSAL_TEXT), "{e}");
    }

    #[test]
    fn this_build_reads_its_own_version_and_the_header_round_trips() {
        let ours = Versions::supported();
        assert!(ours.contains(PROTOCOL_VERSION));
        assert!(ours.contains(OLDEST_PROTOCOL_VERSION));
        assert_eq!(Versions::parse(&ours.header_value()).unwrap(), ours);
    }

    #[test]
    fn the_highest_common_version_is_sent_and_a_silent_collector_reads_1() {
        let v = |s: &[u32]| Versions::of(s.iter().copied());
        // One release apart, both ways.
        assert_eq!(negotiate(&v(&[1, 2]), &v(&[1])), Some(1));
        assert_eq!(negotiate(&v(&[1]), &v(&[1, 2])), Some(1));
        assert_eq!(negotiate(&v(&[1, 2]), &v(&[1, 2, 3])), Some(2));
        // A collector from before the header.
        assert_eq!(negotiate(&v(&[1, 2]), &Versions::unadvertised()), Some(1));
        assert_eq!(
            negotiate(&Versions::supported(), &Versions::unadvertised()),
            Some(1)
        );
        // Too far apart.
        assert_eq!(negotiate(&v(&[1]), &v(&[2, 3])), None);
    }

    proptest! {
        #[test]
        fn any_header_is_read_or_refused_within_its_bounds(
            header in prop_oneof![".{0,200}", "[0-9, +-]{0,200}"]
        ) {
            match Versions::parse(&header) {
                Ok(v) => {
                    prop_assert!(header.len() <= MAX_HEADER_BYTES);
                    prop_assert!(!v.as_slice().is_empty() && v.as_slice().len() <= MAX_VERSIONS);
                    prop_assert!(!v.contains(0));
                }
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }

        #[test]
        fn negotiation_is_the_highest_version_in_both(
            ours in proptest::collection::vec(1u32..8, 0..6),
            theirs in proptest::collection::vec(1u32..8, 0..6),
        ) {
            let (o, t) = (Versions::of(ours.clone()), Versions::of(theirs.clone()));
            let oracle = ours.iter().filter(|v| theirs.contains(v)).max().copied();
            prop_assert_eq!(negotiate(&o, &t), oracle);
            if !t.as_slice().is_empty() {
                prop_assert_eq!(Versions::parse(&t.header_value()).unwrap(), t);
            }
        }
    }
}
