//! A folder of the process's own under the temporary folder, for targets whose code under
//! test reads and writes files. It outlives an input (making one per input would be most of
//! the cost) and is left when the process ends; the next process removes those of processes
//! gone.

use std::path::{Path, PathBuf};

/// `<temp>/<prefix><pid>`, empty and made once per process; the folders of this prefix whose
/// process has ended are removed first.
pub fn process_dir(prefix: &str) -> PathBuf {
    let tmp = std::env::temp_dir();
    remove_stale(&tmp, prefix);
    let dir = tmp.join(format!("{prefix}{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch folder");
    dir
}

/// Removes the folders of `prefix` whose process has ended.
fn remove_stale(tmp: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(prefix)) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
