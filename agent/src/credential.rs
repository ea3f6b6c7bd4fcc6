//! The agent's own credential, for an agent that enrolled itself: which token it presents,
//! where it keeps it, and how it gets one.
//!
//! - A `token` in the configuration wins: the agent is an `[[agents]]` entry of the collector.
//! - Else the file `<data_dir>/credential` ([`FILE`]): the credential the collector gave at
//!   enrolment, or later by rotation. One line, the credential alone; mode 0600; at most
//!   [`MAX_FILE_BYTES`] read. It is written whole or not at all: a temporary file in the same
//!   folder, synced, renamed over the old one, and the folder synced, so a crash leaves the
//!   old credential or the new one, never a mix or nothing.
//! - Else, with `enroll_token`, the agent enrols ([`enroll`]): `POST /v1/enroll` with its
//!   name, retried with backoff until the collector answers with a credential or the agent
//!   stops; a refusal (401, 403, 409) is logged with what to do and retried at the longest
//!   wait, since the admin may fix it on the collector's side.
//!
//! The credential is a [`Token`], whose `Debug` hides it; it is never logged.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lookout_config::Token;
use lookout_config::collector::Lifecycle;
use lookout_runtime::backoff::{Backoff, Jitter};
use tokio_util::sync::CancellationToken;

use crate::client::{CollectorClient, SendError};

/// The credential file's name in the agent's data folder.
pub const FILE: &str = "credential";

/// The longest credential file read, in bytes.
pub const MAX_FILE_BYTES: u64 = 4096;

/// The first wait between two enrolment attempts.
const FIRST_WAIT: Duration = Duration::from_secs(1);

/// Why the credential file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The file or its folder failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file holds no credential.
    #[error(
        "{path}: {problem}; delete it to enrol again (with enroll_token), or set token in the configuration"
    )]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
}

/// The credential kept in `path`, if the file exists.
pub fn read(path: &Path) -> Result<Option<Token>, CredentialError> {
    use std::io::Read as _;
    let io = |source| CredentialError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    let invalid = |problem: &str| CredentialError::Invalid {
        path: path.to_path_buf(),
        problem: problem.to_string(),
    };
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(invalid("longer than a credential"));
    }
    let text = String::from_utf8(bytes).map_err(|_| invalid("not text"))?;
    let token = text.trim();
    check(token).map_err(invalid)?;
    Ok(Some(Token::new(token)))
}

/// What a credential must be for its file to read back: one word, without white space or
/// control characters, short enough that the file (the word and a line end) stays within
/// [`MAX_FILE_BYTES`].
fn check(token: &str) -> Result<(), &'static str> {
    if token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("not one credential on one line");
    }
    if token.len() as u64 >= MAX_FILE_BYTES {
        return Err("longer than a credential");
    }
    Ok(())
}

/// Writes `token` to `path` atomically (module doc), mode 0600. A credential [`read`] would
/// refuse (white space, control characters, [`MAX_FILE_BYTES`] or longer) is refused here, so
/// that what is kept is what the next start reads.
pub fn write(path: &Path, token: &Token) -> Result<(), CredentialError> {
    let io = |source| CredentialError::Io {
        path: path.to_path_buf(),
        source,
    };
    check(token.expose()).map_err(|problem| CredentialError::Invalid {
        path: path.to_path_buf(),
        problem: problem.to_string(),
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let temp = path.with_extension("new");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(&temp).map_err(io)?;
    file.write_all(token.expose().as_bytes()).map_err(io)?;
    file.write_all(b"\n").map_err(io)?;
    file.sync_all().map_err(io)?;
    drop(file);
    std::fs::rename(&temp, path).map_err(io)?;
    // The rename is durable once the folder is.
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io)?;
    Ok(())
}

/// Enrols as `name` with `enroll_token` (asking for `lifecycle`, if any) through `client`, keeps the credential in `file` and
/// returns it; `None` when `shutdown` came first. Waits grow from 1 s to `max_wait`.
pub async fn enroll(
    client: &CollectorClient,
    name: &str,
    enroll_token: &Token,
    lifecycle: Option<Lifecycle>,
    file: &Path,
    max_wait: Duration,
    shutdown: &CancellationToken,
) -> Option<Token> {
    let mut retries = Backoff::new(FIRST_WAIT, max_wait, Jitter::Full).retries();
    loop {
        let wait = match client.enroll(name, enroll_token, lifecycle).await {
            Ok(credential) => match write(file, &credential) {
                Ok(()) => {
                    tracing::info!(agent = %name, file = %file.display(), "enrolled; the credential is kept in the file");
                    return Some(credential);
                }
                Err(e) => {
                    // Without the file a restart would enrol again and be refused: fix first.
                    tracing::error!(error = %e, "enrolled, but cannot keep the credential; the admin must allow this name to enrol again once the folder is writable");
                    max_wait
                }
            },
            Err(SendError::Rejected { status, reason }) => {
                let what_to_do = match status {
                    401 => {
                        "the enrolment token is wrong: set enroll_token to the collector's [enrollment] token"
                    }
                    409 => {
                        "the name is taken: if this server replaces one of the same name, ask the admin to run `lookout-collector agents allow-reenroll NAME`; otherwise give this agent another name"
                    }
                    403 => {
                        "the collector does not take this name or has enrolment off (see its answer)"
                    }
                    _ => "the collector refused the enrolment (see its answer)",
                };
                tracing::error!(agent = %name, status, error = %reason, "enrolment refused: {what_to_do}; trying again later");
                max_wait
            }
            Err(e) => {
                let wait = match &e {
                    SendError::Retryable {
                        retry_after: Some(after),
                        ..
                    } => *after,
                    _ => retries.next_wait(),
                };
                tracing::warn!(agent = %name, error = %e, retry_in_ms = wait.as_millis() as u64, "cannot enrol yet");
                wait
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => return None,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_written_whole_with_mode_0600_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join(FILE);
        assert!(read(&path).unwrap().is_none(), "no file, no credential");
        let token = Token::new("lkc_0123456789abcdef0123456789abcdef");
        write(&path, &token).unwrap();
        assert_eq!(read(&path).unwrap(), Some(token.clone()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(
            !path.with_extension("new").exists(),
            "no temporary file left"
        );
        let other = Token::new("lkc_fedcba9876543210fedcba9876543210");
        write(&path, &other).unwrap();
        assert_eq!(read(&path).unwrap(), Some(other));
        for bad in [
            &b""[..],
            b"  \n",
            b"two words",
            &[b'x'; 5000],
            &[0xff, 0xfe],
        ] {
            std::fs::write(&path, bad).unwrap();
            let e = read(&path).unwrap_err().to_string();
            assert!(e.contains("delete it to enrol again"), "{e}");
        }
    }

    #[test]
    fn what_is_written_reads_back_and_what_would_not_is_refused() {
        // Found by the credential fuzz target: a file of a 4,096-byte credential read, but
        // written back with its line end it was 4,097 bytes, refused at the next start.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let longest = "k".repeat(MAX_FILE_BYTES as usize - 1);
        std::fs::write(&path, format!("{longest}\n")).unwrap();
        let token = read(&path).unwrap().unwrap();
        write(&path, &token).unwrap();
        assert_eq!(read(&path).unwrap(), Some(token.clone()));
        std::fs::write(&path, "k".repeat(MAX_FILE_BYTES as usize)).unwrap();
        assert!(
            read(&path).is_err(),
            "a credential that cannot be written back"
        );
        write(&path, &token).unwrap();
        for bad in [
            "k".repeat(MAX_FILE_BYTES as usize),
            "two words".into(),
            "a\nb".into(),
            String::new(),
        ] {
            let e = write(&path, &Token::new(bad.clone())).unwrap_err();
            assert!(matches!(e, CredentialError::Invalid { .. }), "{bad:?}: {e}");
        }
        assert_eq!(
            read(&path).unwrap().map(|t| t.expose().len()),
            Some(MAX_FILE_BYTES as usize - 1),
            "the file kept"
        );
    }
}
