//! The bodies of Lookout's fuzz targets: one plain function per target, taking the fuzzer's
//! bytes, that feeds them to the code that reads hostile input and checks what it gives back.
//!
//! Why a crate of its own: `fuzz/` is built by `cargo fuzz` (libFuzzer, nightly flags), apart
//! from the workspace, while the inputs it finds must also be replayed by the normal test suite
//! on stable Rust (`tests/replay.rs`, over `fuzz/corpus/<target>/` and
//! `fuzz/regressions/<target>/`). Both call the functions here, so both run the same code.
//!
//! A body returns nothing: what it checks it asserts, and a panic is the finding. Inputs that
//! the code under test refuses with an error are fine; only a panic, a wrong answer to an
//! invariant or a hang is not. [`TARGETS`] names them all; `fuzz/run` and docs/fuzzing.md say
//! how to run them.

pub mod api_query;
pub mod batch;
pub mod checkpoints;
pub mod condition;
pub mod config;
pub mod credential;
pub mod input;
pub mod log_lines;
pub mod procfs;
pub mod scratch;
pub mod spool;
pub mod spool_open;

/// A fuzz target's body.
pub type Body = fn(&[u8]);

/// Every target: its name (the `fuzz/fuzz_targets/<name>.rs` binary and the corpus folder) and
/// its body.
pub const TARGETS: &[(&str, Body)] = &[
    ("batch", batch::batch),
    ("assignments", batch::assignments),
    ("config_agent", config::agent),
    ("config_collector", config::collector),
    ("condition", condition::condition),
    ("log_lines", log_lines::log_lines),
    ("spool_frame", spool::frame),
    ("spool_acked", spool::acked),
    ("spool_open", spool_open::spool_open),
    ("checkpoints", checkpoints::checkpoints),
    ("credential", credential::credential),
    ("procfs", procfs::procfs),
    ("api_query", api_query::api_query),
];
