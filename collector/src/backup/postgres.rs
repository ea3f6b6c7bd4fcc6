//! PostgreSQL: what to run instead. `pg_dump` takes a consistent snapshot while collectors
//! write, and `pg_restore` puts it back; the collector only says the exact lines, with the
//! configured URL's password left out (pg_dump asks for it, or reads `PGPASSWORD` or
//! `~/.pgpass`), and whether `pg_dump` is on `PATH`.

use std::fmt;
use std::path::{Path, PathBuf};

/// What to run to back up (and restore) a PostgreSQL store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advice {
    /// The `pg_dump` command line, the password left out.
    pub dump: String,
    /// The `pg_restore` command line, the password left out.
    pub restore: String,
    /// Where `pg_dump` was found on `PATH`, if it was.
    pub pg_dump: Option<PathBuf>,
}

impl fmt::Display for Advice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "this collector stores in PostgreSQL, which lookout-collector does not copy itself: \
             back it up with pg_dump (a consistent snapshot, while collectors write):"
        )?;
        writeln!(f, "  {}", self.dump)?;
        writeln!(
            f,
            "pg_dump asks for the password, or reads it from PGPASSWORD or ~/.pgpass (the \
             configured one is not shown). Restore, with every collector stopped:"
        )?;
        writeln!(f, "  {}", self.restore)?;
        match &self.pg_dump {
            Some(p) => write!(f, "pg_dump is {}", p.display()),
            None => write!(
                f,
                "pg_dump is not on PATH: install PostgreSQL's client tools of the server's major \
                 version or newer (Debian: apt-get install postgresql-client)"
            ),
        }
    }
}

/// The advice for the store at `url`, to be written to `to`, with `pg_dump` found at `found`.
pub fn advice(url: &str, to: &Path, found: Option<PathBuf>) -> Advice {
    let url = without_password(url);
    let file = quote(&to.display().to_string());
    Advice {
        dump: format!(
            "pg_dump --format=custom --no-owner --file={file} {}",
            quote(&url)
        ),
        restore: format!(
            "pg_restore --clean --if-exists --no-owner --single-transaction --dbname={} {file}",
            quote(&url)
        ),
        pg_dump: found,
    }
}

/// `url` without the password in its user part, and with secret-looking query values
/// (`sslpassword=`, ...) replaced by `***`; the user name stays, since pg_dump needs it.
pub fn without_password(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return lookout_config::redact::url(url);
    };
    let user = parsed.username().to_string();
    // Only fails for URLs that cannot have a user (none that reach here).
    if parsed.set_password(None).is_err() || parsed.set_username("").is_err() {
        return lookout_config::redact::url(url);
    }
    let bare = lookout_config::redact::url(parsed.as_str());
    if user.is_empty() {
        return bare;
    }
    match bare.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{user}@{rest}"),
        None => bare,
    }
}

/// `text` quoted for a POSIX shell.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The first executable file called `name` in a folder of `PATH`.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    find_in(&std::env::var_os("PATH")?, name)
}

/// The first executable file called `name` in a folder of `path` (a `PATH` value).
pub fn find_in(path: &std::ffi::OsStr, name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path)
        .map(|dir| dir.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}
