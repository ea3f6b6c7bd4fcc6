//! Lines of a tailed file, seen by something other than the shipper. The nginx integration
//! counts its access log's requests from the lines the tailer already reads, so the log is read
//! once, through the tailer's rotation, truncation and restart handling, instead of by a
//! second reader of its own that would have to get all of that right again.
//!
//! A tap is registered for a path; the tailer hands it every line it reads from a file it
//! opened at that path, or at a rotated name of it (`access.log.1` for `access.log`: the copy
//! logrotate's `copytruncate` leaves), just before the lines go to the spool. A tap sees a line
//! when it is shipped: a line shipped again after a crash is seen again, a line the tailer never
//! read (the past of a file read from its end) is not seen.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use super::lines::Line;

/// Something that looks at a file's lines.
pub trait LineTap: Send + Sync + std::fmt::Debug {
    /// Lines just read, in file order.
    fn lines(&self, lines: &[Line]);
}

/// A tap and the path whose lines it sees.
pub type Tapped = (PathBuf, Arc<dyn LineTap>);

/// The taps of the agent's integrations by path, shared by the tailer and the integrations (a
/// reload of either keeps the other's). A std lock: it is held for a lookup or a swap, never
/// across an await.
#[derive(Debug, Clone, Default)]
pub struct Taps(Arc<RwLock<Vec<Tapped>>>);

impl Taps {
    /// Replaces every tap with `taps` (the integrations after a start or reload).
    pub fn set(&self, taps: Vec<Tapped>) {
        if let Ok(mut t) = self.0.write() {
            *t = taps;
        }
    }

    /// The tap of the file opened at `path`, if any.
    pub fn find(&self, path: &Path) -> Option<Arc<dyn LineTap>> {
        let taps = self.0.read().ok()?;
        taps.iter()
            .find(|(p, _)| p == path || is_rotated(p, path))
            .map(|(_, t)| t.clone())
    }
}

/// `path` is `of` with a suffix after a dot, in the same directory (`access.log.1`).
fn is_rotated(of: &Path, path: &Path) -> bool {
    let (Some(name), Some(base)) = (path.file_name(), of.file_name()) else {
        return false;
    };
    path.parent() == of.parent()
        && name
            .to_str()
            .zip(base.to_str())
            .and_then(|(n, b)| n.strip_prefix(b))
            .is_some_and(|rest| rest.starts_with('.') && rest.len() > 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tap_sees_its_file_and_its_rotated_copies_only() {
        let of = Path::new("/var/log/nginx/access.log");
        assert!(is_rotated(of, Path::new("/var/log/nginx/access.log.1")));
        assert!(!is_rotated(of, Path::new("/var/log/nginx/access.log")));
        assert!(!is_rotated(of, Path::new("/var/log/nginx/access.log.")));
        assert!(!is_rotated(of, Path::new("/var/log/nginx/access.logx")));
        assert!(!is_rotated(of, Path::new("/var/log/other/access.log.1")));
        assert!(!is_rotated(of, Path::new("/var/log/nginx/error.log")));
    }
}
