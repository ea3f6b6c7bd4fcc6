//! Reloads `[server.tls]`'s certificate when its files change on disk.
//!
//! Renewals replace the files in different ways, and each is seen here:
//! - certbot points `live/<name>/fullchain.pem`, a symlink, at a new file in `archive/` (a
//!   new link renamed over the old one in `live/<name>/`);
//! - Kubernetes secret volumes swap a `..data` symlink in the files' folder;
//! - secret managers and `cp` rewrite the file in place, or write a temporary file and rename
//!   it over.
//!
//! So what is watched is the folder of each file (and, for a symlink, the folder of the file
//! it points to), not the file: a watch on a file follows the old inode after a rename. Any
//! creation, write, rename or removal in those folders starts a quiet period of [`DEBOUNCE`]
//! (a file is often written in several steps, and certbot replaces several); when it passes
//! with nothing more, the files are read again ([`super::Tls::reload`]), which serves them
//! only if they are good and differ from what is served. Reads (the reload's own) are not
//! changes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher as _};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{Tls, TlsError};

/// How long the folders must stay quiet after a change before the files are read.
pub const DEBOUNCE: Duration = Duration::from_millis(500);

/// The folders to watch for `path`: its own, and that of the file a symlink points to.
fn folders_of(path: &Path) -> Vec<PathBuf> {
    let folder = |p: &Path| match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut out = vec![folder(path)];
    if let Ok(real) = std::fs::canonicalize(path) {
        out.push(folder(&real));
    }
    out
}

/// Whether an event can mean a file's content changed.
fn is_change(kind: &EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode};
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// Watches the folders of `tls`'s certificate and key and reloads it after a change, until
/// `stop`. The watch is set up before this returns: an error here is a start-up error.
pub fn spawn(
    tls: Arc<Tls>,
    stop: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, TlsError> {
    let changed = Arc::new(Notify::new());
    let signal = changed.clone();
    let handler = move |event: notify::Result<notify::Event>| match event {
        Ok(e) if is_change(&e.kind) => signal.notify_one(),
        Ok(_) => {}
        // The watch lost events (an overflowing queue): read the files to be sure.
        Err(_) => signal.notify_one(),
    };
    let watch_error = |path: &Path, source| TlsError::Watch {
        path: path.to_path_buf(),
        source,
    };
    let mut watcher =
        notify::recommended_watcher(handler).map_err(|e| watch_error(&tls.files.cert, e))?;
    let folders: BTreeSet<PathBuf> = folders_of(&tls.files.cert)
        .into_iter()
        .chain(folders_of(&tls.files.key))
        .collect();
    for folder in &folders {
        watcher
            .watch(folder, RecursiveMode::NonRecursive)
            .map_err(|e| watch_error(folder, e))?;
    }
    tracing::debug!(?folders, "watching the TLS files' folders");
    Ok(tokio::spawn(async move {
        // Kept for as long as the task runs: dropping it ends the watch.
        let _watcher = watcher;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = changed.notified() => {}
            }
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = changed.notified() => {}
                    () = tokio::time::sleep(DEBOUNCE) => break,
                }
            }
            tls.reload("file change");
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlinked_file_is_watched_in_both_folders_and_a_bare_name_in_the_current_one() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("archive");
        let live = dir.path().join("live");
        std::fs::create_dir_all(&archive).unwrap();
        std::fs::create_dir_all(&live).unwrap();
        std::fs::write(archive.join("fullchain1.pem"), "x").unwrap();
        std::os::unix::fs::symlink(archive.join("fullchain1.pem"), live.join("fullchain.pem"))
            .unwrap();
        let folders = folders_of(&live.join("fullchain.pem"));
        assert_eq!(folders[0], live);
        assert_eq!(folders[1], std::fs::canonicalize(&archive).unwrap());
        assert_eq!(folders_of(Path::new("cert.pem"))[0], Path::new("."));
    }

    #[test]
    fn reads_are_not_changes_but_writes_renames_and_removals_are() {
        use notify::event::{
            AccessKind, AccessMode, CreateKind, ModifyKind, RemoveKind, RenameMode,
        };
        assert!(!is_change(&EventKind::Access(AccessKind::Open(
            AccessMode::Any
        ))));
        assert!(!is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        for kind in [
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            EventKind::Create(CreateKind::File),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            EventKind::Remove(RemoveKind::File),
        ] {
            assert!(is_change(&kind), "{kind:?}");
        }
    }
}
