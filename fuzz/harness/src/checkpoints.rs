//! The log tailer's `checkpoints.json` (where reading of each tailed file stands), as the
//! agent reads it at start: a crash, a full disk or an edit can leave any bytes there.

use std::collections::BTreeMap;

use lookout_agent::logs::checkpoints::Checkpoints;

/// The input is the file. What opens is used as the tailer uses it: every position read,
/// set again and saved (which forgets the entries not seen for a week), and the file
/// opened again gives the positions back as they were set.
pub fn checkpoints(data: &[u8]) {
    static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    let dir = DIR.get_or_init(|| crate::scratch::process_dir("lookout-fuzz-checkpoints-"));
    std::fs::write(dir.join("checkpoints.json"), data).expect("the file is written");
    let mut points = Checkpoints::open(dir);
    assert!(!points.first_start, "the file exists");
    // The keys the file names, read independently of the agent's own types.
    let keys: Vec<String> = serde_json::from_slice::<serde_json::Value>(data)
        .ok()
        .and_then(|v| Some(v.get("files")?.as_object()?.keys().cloned().collect()))
        .unwrap_or_default();
    let mut set = BTreeMap::new();
    for key in &keys {
        let _ = points.cursor(key);
        let Some(offset) = points.get(key) else {
            continue;
        };
        let moved = offset.saturating_add(1);
        let mark = points.mark(key);
        points.set(key, moved, mark, "/var/log/fuzz.log");
        points.set_cursor(key, "s=fuzz;i=1");
        set.insert(key.clone(), (moved, mark));
    }
    points.save();
    let again = Checkpoints::open(dir);
    for (key, (offset, mark)) in &set {
        assert_eq!(again.get(key), Some(*offset), "{key}");
        assert_eq!(again.mark(key), *mark, "{key}");
        assert_eq!(again.cursor(key).as_deref(), Some("s=fuzz;i=1"), "{key}");
    }
}
