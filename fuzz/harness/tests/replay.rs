//! Replays every committed fuzz input through its target's body, on stable Rust, as part of the
//! normal test suite: the corpus (`fuzz/corpus/<target>/`: seeds written from real examples,
//! and what `cargo fuzz cmin` kept of the fuzzer's finds) and the regressions
//! (`fuzz/regressions/<target>/`: each crash found, kept after its fix).

use std::path::{Path, PathBuf};

fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(kind)
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("a readable folder").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn replay(kind: &str) -> usize {
    let mut n = 0;
    for (target, body) in lookout_fuzz::TARGETS {
        for file in inputs(kind, target) {
            let data = std::fs::read(&file).expect("a readable input");
            eprintln!("{target}: {}", file.display());
            body(&data);
            n += 1;
        }
    }
    n
}

#[test]
fn every_corpus_input_runs_through_its_target() {
    // Each target has seeds: a missing folder would make this test pass without testing.
    for (target, _) in lookout_fuzz::TARGETS {
        assert!(
            !inputs("corpus", target).is_empty(),
            "fuzz/corpus/{target}/ has no inputs"
        );
    }
    assert!(replay("corpus") > 0);
}

#[test]
fn every_crash_found_stays_fixed() {
    replay("regressions");
}

#[test]
fn every_target_has_a_fuzz_binary() {
    let manifest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml"))
        .expect("fuzz/Cargo.toml");
    for (target, _) in lookout_fuzz::TARGETS {
        assert!(
            manifest.contains(&format!("name = \"{target}\"")),
            "fuzz/Cargo.toml has no [[bin]] for {target}"
        );
    }
}
