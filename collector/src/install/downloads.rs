//! The agent binaries `GET /downloads/{file}` serves, and their SHA-256.
//!
//! A download is named `lookout-agent-linux-<arch>` (`<arch>` as `uname -m` prints it), or that
//! with `.sha256` for its checksum in `sha256sum`'s format. It is the file of that name in
//! `[install] binaries` (default: the folder of the running collector's executable), or, for
//! the collector's own architecture, `lookout-agent` there: where a release and the container
//! image put it. A binary is streamed from its file (never read whole into memory); its
//! checksum is computed once per file version (length, modification time, inode) and kept, so
//! the public route cannot be made to hash a binary on every request.

use std::collections::HashMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use sha2::Digest as _;

/// Every agent download's name starts so; the architecture follows.
pub const PREFIX: &str = "lookout-agent-linux-";

/// The longest architecture name taken (`uname -m` prints at most a dozen characters).
const MAX_ARCH_BYTES: usize = 32;

/// What a download name asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// The machine architecture, as `uname -m` prints it.
    pub arch: String,
    /// True for the `.sha256` checksum, false for the binary.
    pub checksum: bool,
}

impl Wanted {
    /// The binary's download name.
    pub fn binary_name(&self) -> String {
        format!("{PREFIX}{}", self.arch)
    }
}

/// What `file` (the path's last segment) asks for, if it names a download.
pub fn parse(file: &str) -> Option<Wanted> {
    let rest = file.strip_prefix(PREFIX)?;
    let (arch, checksum) = match rest.strip_suffix(".sha256") {
        Some(a) => (a, true),
        None => (rest, false),
    };
    let plain = !arch.is_empty()
        && arch.len() <= MAX_ARCH_BYTES
        && arch.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    plain.then(|| Wanted {
        arch: arch.to_string(),
        checksum,
    })
}

/// The folder binaries are served from: `[install] binaries`, else the running executable's.
pub fn folder(configured: Option<&Path>) -> Option<PathBuf> {
    match configured {
        Some(p) => Some(p.to_path_buf()),
        None => std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(Path::to_path_buf)),
    }
}

/// The file serving `wanted` in `folder`, if there is one: `lookout-agent-linux-<arch>`, or,
/// when `<arch>` is the collector's own on Linux, `lookout-agent`.
pub fn find(folder: &Path, wanted: &Wanted) -> Option<PathBuf> {
    let named = folder.join(wanted.binary_name());
    if named.is_file() {
        return Some(named);
    }
    let own = cfg!(target_os = "linux") && wanted.arch == std::env::consts::ARCH;
    let beside = folder.join("lookout-agent");
    (own && beside.is_file()).then_some(beside)
}

/// Which version of a file a checksum is of.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Version {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

impl Version {
    fn of(meta: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(meta);
        #[cfg(not(unix))]
        let inode = 0;
        Self {
            len: meta.len(),
            modified: meta.modified().ok(),
            inode,
        }
    }
}

/// The SHA-256 of served binaries, by path, each for the version of the file it was computed
/// from.
// std's Mutex: held only to look up or insert, never across the hashing or an await.
#[derive(Debug, Default)]
pub struct Checksums(Mutex<HashMap<PathBuf, (Version, String)>>);

impl Checksums {
    /// The SHA-256 (lowercase hex) of the file at `path` as it is now. Blocking: reads the
    /// whole file, in 64 KiB pieces, the first time and after the file changes.
    pub fn of(&self, path: &Path) -> std::io::Result<String> {
        let version = Version::of(&std::fs::metadata(path)?);
        if let Some((v, sum)) = self.lock().get(path)
            && *v == version
        {
            return Ok(sum.clone());
        }
        let mut file = std::fs::File::open(path)?;
        let mut hasher = sha2::Sha256::new();
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let sum: String = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        // The version read before hashing: a file replaced meanwhile is hashed again next time.
        self.lock()
            .insert(path.to_path_buf(), (version, sum.clone()));
        Ok(sum)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, (Version, String)>> {
        // A panic while holding it cannot leave the map half-written: insert is one call.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_agent_downloads_are_named() {
        assert_eq!(
            parse("lookout-agent-linux-x86_64"),
            Some(Wanted {
                arch: "x86_64".into(),
                checksum: false
            })
        );
        assert_eq!(
            parse("lookout-agent-linux-aarch64.sha256"),
            Some(Wanted {
                arch: "aarch64".into(),
                checksum: true
            })
        );
        for bad in [
            "lookout-agent",
            "lookout-agent-linux-",
            "lookout-agent-linux-.sha256",
            "lookout-agent-linux-../x",
            "lookout-agent-linux-a/b",
            "lookout-collector",
            "lookout-agent-linux-x86_64.sig",
            &format!("{PREFIX}{}", "a".repeat(33)),
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_binary_is_found_by_its_name_or_as_lookout_agent_for_this_machine() {
        let dir = tempfile::tempdir().unwrap();
        let own = parse(&format!("{PREFIX}{}", std::env::consts::ARCH)).unwrap();
        let other = parse(&format!("{PREFIX}sparc64")).unwrap();
        assert_eq!(find(dir.path(), &own), None);
        std::fs::write(dir.path().join("lookout-agent"), b"agent").unwrap();
        assert_eq!(
            find(dir.path(), &own),
            cfg!(target_os = "linux").then(|| dir.path().join("lookout-agent"))
        );
        assert_eq!(find(dir.path(), &other), None);
        std::fs::write(dir.path().join(other.binary_name()), b"sparc").unwrap();
        assert_eq!(
            find(dir.path(), &other),
            Some(dir.path().join(other.binary_name()))
        );
        std::fs::write(dir.path().join(own.binary_name()), b"named").unwrap();
        assert_eq!(
            find(dir.path(), &own),
            Some(dir.path().join(own.binary_name())),
            "the named file wins"
        );
    }

    #[test]
    fn a_checksum_is_sha256_and_follows_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bin");
        std::fs::write(&path, b"abc").unwrap();
        let sums = Checksums::default();
        // sha256("abc"), FIPS 180-2's example.
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(sums.of(&path).unwrap(), abc);
        assert_eq!(sums.of(&path).unwrap(), abc, "kept");
        // Replaced by rename, as an upgrade does: another inode and length.
        let new = dir.path().join("bin.new");
        std::fs::write(&new, b"abcd").unwrap();
        std::fs::rename(&new, &path).unwrap();
        assert_eq!(
            sums.of(&path).unwrap(),
            "88d4266fd4e6338d13b845fcf289579d209c897823b9217da3e161936f031589"
        );
        assert!(sums.of(&dir.path().join("missing")).is_err());
    }
}
