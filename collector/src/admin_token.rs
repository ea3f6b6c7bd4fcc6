//! The quickstart's admin token. With `[server] generate_admin_token = true` and no
//! `admin_token`, the collector makes a token on its first start, keeps it in
//! `<data_dir>/admin_token` (mode 0600, as Jupyter and Grafana keep theirs) and says it once, on
//! standard output, with the login URL; later starts and reloads read it back. The admin pages
//! and the API's writes then work from the README's first command, and nothing is open that
//! the admin token guards.
//!
//! Tokens are drawn from the kernel's random source (`/dev/urandom`), not from a seeded
//! generator: they are what stands between the network and the admin.

use std::io::{Read as _, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use lookout_config::{CollectorConfig, Token};

/// The file in the data folder that holds a generated admin token.
pub const FILE: &str = "admin_token";

/// Why the generated admin token could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum AdminTokenError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file holds something that is not a usable token.
    #[error("{path}: {problem}; delete the file to make a new token")]
    Weak {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
}

/// `bytes` random bytes from the kernel, as hexadecimal digits.
pub fn random_hex(bytes: usize) -> std::io::Result<String> {
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Puts the generated admin token in `config` when it asks for one and sets none; returns the
/// file's path when the token was made just now (the caller says it once).
pub fn apply(config: &mut CollectorConfig) -> Result<Option<PathBuf>, AdminTokenError> {
    if !config.server.generate_admin_token || config.server.admin_token.is_some() {
        return Ok(None);
    }
    let path = config.server.data_dir.join(FILE);
    let io = |source| AdminTokenError::Io {
        path: path.clone(),
        source,
    };
    let (token, made) = match std::fs::read_to_string(&path) {
        Ok(text) => {
            // Whoever can read it is the admin: keep it to this user.
            let mode = std::fs::metadata(&path).map_err(io)?.permissions().mode();
            if mode & 0o077 != 0 {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                    .map_err(io)?;
                tracing::warn!(path = %path.display(), "the admin token file was readable by others; now 0600");
            }
            (Token::new(text.trim()), None)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let token = Token::new(random_hex(32).map_err(io)?);
            write_new(&path, token.expose()).map_err(io)?;
            (token, Some(path.clone()))
        }
        Err(e) => return Err(io(e)),
    };
    token
        .check_strength()
        .map_err(|problem| AdminTokenError::Weak {
            path: path.clone(),
            problem,
        })?;
    config.server.admin_token = Some(token);
    Ok(made)
}

/// Writes a new file that only this user can read.
fn write_new(path: &Path, token: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(format!("{token}\n").as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path, extra: &str) -> CollectorConfig {
        CollectorConfig::parse(
            Path::new("c.toml"),
            &format!(
                "[server]\ndata_dir = \"{}\"\ngenerate_admin_token = true\n{extra}",
                dir.display()
            ),
            &|_| None,
        )
        .unwrap()
    }

    #[test]
    fn made_once_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut first = config(&data, "");
        let made = apply(&mut first).unwrap().expect("made on the first start");
        let token = first.server.admin_token.clone().unwrap();
        assert_eq!(token.expose().len(), 64);
        assert!(token.expose().chars().all(|c| c.is_ascii_hexdigit()));
        let mode = std::fs::metadata(&made).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // The next start reads the same token and says nothing.
        let mut second = config(&data, "");
        assert!(apply(&mut second).unwrap().is_none());
        assert_eq!(second.server.admin_token, Some(token.clone()));
        // A file others could read is made private again.
        std::fs::set_permissions(&made, std::fs::Permissions::from_mode(0o644)).unwrap();
        apply(&mut config(&data, "")).unwrap();
        let mode = std::fs::metadata(&made).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // Two installations do not share a token.
        let other = tempfile::tempdir().unwrap();
        let mut third = config(other.path(), "");
        apply(&mut third).unwrap();
        assert_ne!(third.server.admin_token, Some(token));
    }

    #[test]
    fn a_configured_token_wins_and_nothing_is_made_unless_asked() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(
            dir.path(),
            "admin_token = \"configured-admin-token-0123\"\n",
        );
        assert!(apply(&mut c).unwrap().is_none());
        assert_eq!(
            c.server.admin_token.as_ref().map(Token::expose),
            Some("configured-admin-token-0123")
        );
        let mut plain = CollectorConfig::parse(
            Path::new("c.toml"),
            &format!("[server]\ndata_dir = \"{}\"\n", dir.path().display()),
            &|_| None,
        )
        .unwrap();
        assert!(apply(&mut plain).unwrap().is_none());
        assert!(plain.server.admin_token.is_none());
        assert!(!dir.path().join(FILE).exists());
    }

    #[test]
    fn a_weak_token_in_the_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), "short\n").unwrap();
        let err = apply(&mut config(dir.path(), "")).unwrap_err().to_string();
        assert!(
            err.contains("too short") && err.contains("delete the file"),
            "{err}"
        );
    }
}
