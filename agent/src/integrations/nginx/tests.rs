//! The `stub_status` parser against the page nginx 1.22.1 (Debian bookworm) printed here
//! (`curl /status` after three requests and one earlier status read; trailing spaces kept).

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use lookout_protocol::MetricType;

use super::*;

const STUB: &str = include_str!("../fixtures/nginx-1.22-stub_status.txt");

#[test]
fn the_page_nginx_prints_is_read() {
    assert_eq!(
        parse_stub_status(STUB),
        Ok(StubStatus {
            active: 1,
            accepts: 5,
            handled: 5,
            requests: 5,
            reading: 0,
            writing: 1,
            waiting: 0,
        })
    );
    // A busy server's figures, with CRLF line ends (a proxy in between).
    let busy = "Active connections: 291 \r\nserver accepts handled requests\r\n 16630948 16630947 \
                31070465 \r\nReading: 6 Writing: 179 Waiting: 106 \r\n";
    let s = parse_stub_status(busy).unwrap();
    assert_eq!(
        (s.active, s.accepts, s.handled, s.requests),
        (291, 16_630_948, 16_630_947, 31_070_465)
    );
    assert_eq!((s.reading, s.writing, s.waiting), (6, 179, 106));
}

#[test]
fn the_samples_have_the_receiver_s_names_types_and_states() {
    let labels: BTreeMap<String, String> = [("integration".to_string(), "web".to_string())].into();
    let time = Utc.timestamp_opt(1_796_678_700, 0).unwrap();
    let s = parse_stub_status(STUB).unwrap();
    let got: Vec<(String, Option<String>, f64, MetricType)> = stub_samples(&s, time, &labels)
        .into_iter()
        .map(|m| {
            assert_eq!(m.labels["integration"], "web");
            assert_eq!(m.time, time);
            (
                m.name,
                m.labels.get("state").cloned(),
                m.value,
                m.metric_type,
            )
        })
        .collect();
    let c = MetricType::Counter;
    let g = MetricType::Gauge;
    let st = |s: &str| Some(s.to_string());
    assert_eq!(
        got,
        vec![
            ("nginx.connections_accepted".into(), None, 5.0, c),
            ("nginx.connections_handled".into(), None, 5.0, c),
            ("nginx.requests".into(), None, 5.0, c),
            ("nginx.connections_current".into(), st("active"), 1.0, g),
            ("nginx.connections_current".into(), st("reading"), 0.0, g),
            ("nginx.connections_current".into(), st("writing"), 1.0, g),
            ("nginx.connections_current".into(), st("waiting"), 0.0, g),
        ]
    );
}

#[test]
fn pages_that_are_not_stub_status_are_errors_naming_what_is_missing() {
    let missing = |text: &str| parse_stub_status(text).unwrap_err().to_string();
    assert!(missing("").contains("no Active connections figure"));
    assert!(missing("<html><body>Welcome to nginx!</body></html>").contains("Active connections"));
    assert!(
        missing("Active connections: 1\nserver accepts handled\n 1 1\n")
            .contains("no server accepts handled requests figure")
    );
    assert!(
        missing("Active connections: 1\nserver accepts handled requests\n 1 1\nReading: 0\n")
            .contains("no accepts handled requests figure")
    );
    assert!(
        missing(
            "Active connections: 1\nserver accepts handled requests\n 1 1 1\nReading: 0 \
             Writing: -1 Waiting: 0\n"
        )
        .contains("no Writing: figure")
    );
    assert!(
        missing("Active connections: 99999999999999999999999\n").contains("Active connections")
    );
    let long = format!("{STUB}{}", " ".repeat(MAX_BODY_BYTES));
    assert_eq!(parse_stub_status(&long), Err(StubError::TooLong));
}

proptest::proptest! {
    #[test]
    fn any_text_is_read_or_refused_without_a_panic(text in "\\PC{0,300}") {
        let _ = parse_stub_status(&text);
    }

    #[test]
    fn any_figures_round_trip(f in proptest::array::uniform7(0u64..u64::MAX)) {
        let text = format!(
            "Active connections: {} \nserver accepts handled requests\n {} {} {} \nReading: {} Writing: {} Waiting: {} \n",
            f[0], f[1], f[2], f[3], f[4], f[5], f[6]
        );
        let s = parse_stub_status(&text).unwrap();
        proptest::prop_assert_eq!(
            [s.active, s.accepts, s.handled, s.requests, s.reading, s.writing, s.waiting],
            f
        );
    }
}
