//! The query and ping bounds of `[server]`: their defaults, and zero or absurd values refused
//! by key at load.

use std::path::Path;
use std::time::Duration;

use crate::{CollectorConfig, ConfigErrors};

fn collector(text: &str) -> Result<CollectorConfig, ConfigErrors> {
    CollectorConfig::parse(Path::new("c.toml"), text, &|_| None)
}

#[test]
fn query_and_ping_bounds_default_and_refuse_zero_or_absurd_values() {
    let s = collector("").unwrap().server;
    assert_eq!(s.max_ping_body_bytes, 100 * 1024);
    assert_eq!(s.max_query_steps, 20_000);
    assert_eq!(s.max_raw_query_window, Duration::from_secs(6 * 3600));
    assert_eq!(s.max_minute_query_window, Duration::from_secs(31 * 86_400));
    assert_eq!(s.max_query_step, Duration::from_secs(366 * 86_400));
    assert_eq!(s.max_query_points, 500_000);
    let s = collector(
        "[server]\nmax_query_steps = 10\nmax_raw_query_window = \"10m\"\n\
         max_minute_query_window = \"2d\"\nmax_query_step = \"1h\"\nmax_query_points = 3\n\
         max_ping_body_bytes = 2048\n",
    )
    .unwrap()
    .server;
    assert_eq!(
        (s.max_query_steps, s.max_query_points, s.max_ping_body_bytes),
        (10, 3, 2048)
    );
    assert_eq!(s.max_raw_query_window, Duration::from_secs(600));
    assert_eq!(s.max_minute_query_window, Duration::from_secs(2 * 86_400));
    assert_eq!(s.max_query_step, Duration::from_secs(3600));

    for text in [
        "max_query_steps = 0\nmax_query_points = 0\nmax_ping_body_bytes = 0\n\
         max_raw_query_window = \"0s\"\nmax_minute_query_window = \"0s\"\n\
         max_query_step = \"500ms\"\n",
        "max_query_steps = 1000001\nmax_query_points = 100000001\n\
         max_ping_body_bytes = 1073741825\nmax_raw_query_window = \"4000d\"\n\
         max_minute_query_window = \"4000d\"\nmax_query_step = \"4000d\"\n",
    ] {
        let errs = collector(&format!("[server]\n{text}"))
            .unwrap_err()
            .to_string();
        for want in [
            "server.max_query_steps: must be between 1 and 1000000",
            "server.max_query_points: must be between 1 and 100000000",
            "server.max_ping_body_bytes: must be between 1024 and 1073741824",
            "server.max_raw_query_window: must be between 1m and 3660d",
            "server.max_minute_query_window: must be between 1m and 3660d",
            "server.max_query_step: must be between 1s and 3660d",
        ] {
            assert!(errs.contains(want), "{want} not in {errs}");
        }
    }
}
