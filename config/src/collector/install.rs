//! `[install]`: what the collector serves to install an agent with one command
//! (`curl -fsSL https://COLLECTOR/install.sh | sudo sh -s -- --enroll-token TOKEN`): the
//! folder the agent binaries are served from, and the CA an agent should trust for this
//! collector. Only paths live here; the collector reads the files when it is asked for them
//! (`collector/src/install/`), so a binary or CA replaced on disk is served without a restart.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::document::{Document, KeyPath};

/// `[install]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallConfig {
    /// The folder `GET /downloads/lookout-agent-linux-<arch>` serves agent binaries from: a
    /// file named `lookout-agent-linux-<arch>` (`<arch>` as `uname -m` prints it: `x86_64`,
    /// `aarch64`, ...), or, for Linux on the collector's own architecture, `lookout-agent`.
    /// Default none: the folder of the running collector's executable, where a release and the
    /// container image put `lookout-agent` beside `lookout-collector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binaries: Option<PathBuf>,
    /// A PEM bundle of the CA certificates that sign this collector's certificate, when that
    /// is a private CA: `install.sh` carries it, writes it to `/etc/lookout/ca.pem` and sets
    /// the agent's `ca` to it. Read (at most 1 MiB) at start and for each script served.
    /// Default none: agents trust the system's roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_ca: Option<PathBuf>,
}

/// Paths that are set are not empty.
pub(super) fn validate(doc: &mut Document<'_>, install: &InstallConfig) {
    let at = KeyPath::key("install");
    for (key, path) in [
        ("binaries", install.binaries.as_ref()),
        ("agent_ca", install.agent_ca.as_ref()),
    ] {
        if path.is_some_and(|p| p.as_os_str().is_empty()) {
            doc.error_at(&at.child(key), "must be a path, not empty");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use crate::CollectorConfig;

    fn parse(text: &str) -> Result<CollectorConfig, String> {
        CollectorConfig::parse(Path::new("c.toml"), text, &|_| None).map_err(|e| e.to_string())
    }

    #[test]
    fn install_is_read_from_its_table_and_empty_paths_are_refused() {
        assert_eq!(parse("").unwrap().install, Default::default());
        let c = parse("[install]\nbinaries = \"/opt/lookout/bin\"\nagent_ca = \"/etc/ca.pem\"\n")
            .unwrap();
        assert_eq!(c.install.binaries, Some(PathBuf::from("/opt/lookout/bin")));
        assert_eq!(c.install.agent_ca, Some(PathBuf::from("/etc/ca.pem")));
        let e = parse("[install]\nagent_ca = \"\"\n").unwrap_err();
        assert!(
            e.contains("install.agent_ca") && e.contains("not empty"),
            "{e}"
        );
        let e = parse("[install]\nbinary = \"/x\"\n").unwrap_err();
        assert!(e.contains("binary"), "{e}");
    }
}
