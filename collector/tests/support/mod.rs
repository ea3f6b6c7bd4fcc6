//! Peers for the channel tests: an HTTP server that records what it is sent and answers as told
//! ([`http_peer`]); built on it, a strict fake of each vendor's endpoint that cannot be reached
//! from here, one module per vendor ([`slack`], [`pagerduty`], ...), each citing the published
//! reference it checks against; a real SMTP server (aiosmtpd) in a child process ([`smtp`]);
//! and a collector's state over a fresh database ([`collector_state`]).

// Each test binary uses a part of these.
#![allow(dead_code)]

pub mod discord;
pub mod google_chat;
pub mod http_peer;
pub mod matrix;
pub mod ntfy;
pub mod opsgenie;
pub mod pagerduty;
pub mod pushover;
pub mod slack;
pub mod slack_compat;
pub mod smtp;
pub mod teams;
pub mod telegram;

/// A collector's shared state over an SQLite database in `dir`, configured by `toml`, as a
/// start of the collector makes it (the HTTP server and background tasks are not started).
pub async fn collector_state(
    dir: &std::path::Path,
    toml: &str,
) -> std::sync::Arc<lookout_collector::state::AppState> {
    let path = std::path::Path::new("test.toml");
    let config = lookout_config::CollectorConfig::parse(path, toml, &|_| None).unwrap();
    let url = format!("sqlite://{}", dir.join("t.db").display());
    let store = lookout_collector::store::open(&url, &Default::default())
        .await
        .unwrap();
    lookout_collector::build_state(store, config, None)
        .await
        .unwrap()
}

/// A loopback port reserved for the test while the value lives (nothing else binds it).
pub use lookout_tests::free_port;
