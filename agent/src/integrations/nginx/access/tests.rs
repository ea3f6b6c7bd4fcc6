//! The access log parsers on lines as nginx 1.22 writes them (combined, combined with
//! `$request_time` appended, and docs/integrations.md's JSON format) and odd ones: `-` fields,
//! quotes in the request, lines too long, text that is not a log line.

use super::*;

fn line(text: &str) -> Line {
    Line {
        bytes: text.as_bytes().to_vec(),
        cut: 0,
        start: 0,
        end: text.len() as u64 + 1,
    }
}

const COMBINED: &str =
    r#"127.0.0.1 - - [07/Dec/2026:21:58:01 +0000] "GET /ok HTTP/1.1" 200 3 "-" "curl/7.88.1""#;

#[test]
fn combined_lines_read_with_and_without_request_time() {
    let c = AccessLogFormat::Combined;
    assert_eq!(
        parse(COMBINED.as_bytes(), c),
        Some(Request {
            status: 200,
            bytes: 3,
            time: None
        })
    );
    let timed = format!("{COMBINED} 0.153");
    assert_eq!(parse(timed.as_bytes(), c).unwrap().time, Some(0.153));
    let dash = format!("{COMBINED} -");
    assert_eq!(parse(dash.as_bytes(), c).unwrap().time, None);
    // A user, a referer, a request with a quote nginx escaped and one a writer did not.
    let odd = r#"10.0.0.1 - bob [07/Dec/2026:21:58:01 +0000] "GET /a?q=\x22x\x22 HTTP/1.1" 500 0 "https://r/" "Mozilla/5.0 (X11)" 1.002"#;
    assert_eq!(
        parse(odd.as_bytes(), c),
        Some(Request {
            status: 500,
            bytes: 0,
            time: Some(1.002)
        })
    );
    let raw_quote =
        r#"10.0.0.1 - - [07/Dec/2026:21:58:01 +0000] "GET /a" b" HTTP/1.1" 404 12 "-" "-""#;
    assert_eq!(parse(raw_quote.as_bytes(), c).unwrap().status, 404);
    // A request line nginx could not read at all is written as "-".
    let bad = r#"10.0.0.1 - - [07/Dec/2026:21:58:01 +0000] "-" 400 0 "-" "-""#;
    assert_eq!(parse(bad.as_bytes(), c).unwrap().status, 400);
    for junk in [
        "",
        "hello",
        r#"1.2.3.4 - - [x] "GET /" abc 1 "-" "-""#,
        r#"1.2.3.4 - - [x] "GET /" 200 x "-" "-""#,
        r#"1.2.3.4 - - [x] "GET /" 200 1 "-" "-" nan"#,
        r#"1.2.3.4 - - [x] "GET /" 200 1 "-" "-" -1"#,
        "{\"status\":200}",
    ] {
        assert_eq!(parse(junk.as_bytes(), c), None, "{junk:?}");
    }
    assert_eq!(parse(b"\xff\xfe", c), None);
}

#[test]
fn json_lines_read_with_numbers_or_strings() {
    let j = AccessLogFormat::Json;
    let l = r#"{"time":"2026-12-07T21:58:01+00:00","remote_addr":"127.0.0.1","request":"GET /a\"b HTTP/1.1","status":503,"body_bytes_sent":42,"request_time":0.012,"http_referer":"","http_user_agent":"curl/7.88.1"}"#;
    assert_eq!(
        parse(l.as_bytes(), j),
        Some(Request {
            status: 503,
            bytes: 42,
            time: Some(0.012)
        })
    );
    let quoted = r#"{"status":"200","body_bytes_sent":"0","request_time":"0.000"}"#;
    assert_eq!(
        parse(quoted.as_bytes(), j),
        Some(Request {
            status: 200,
            bytes: 0,
            time: Some(0.0)
        })
    );
    assert_eq!(parse(br#"{"status":204}"#, j).unwrap().time, None);
    for junk in [
        "",
        "{",
        COMBINED,
        r#"{"status":"-"}"#,
        r#"{"status":42}"#,
        r#"{"status":200,"request_time":"x"}"#,
        r#"[200]"#,
    ] {
        assert_eq!(parse(junk.as_bytes(), j), None, "{junk:?}");
    }
}

#[test]
fn the_tap_counts_classes_bytes_and_skips_what_it_cannot_read() {
    let tap = AccessTap::new(AccessLogFormat::Combined);
    let mut lines: Vec<Line> = Vec::new();
    for (status, n) in [(200, 40), (500, 10), (302, 2), (404, 1)] {
        for i in 0..n {
            lines.push(line(&format!(
                r#"127.0.0.1 - - [07/Dec/2026:21:58:01 +0000] "GET / HTTP/1.1" {status} 10 "-" "-" 0.{i:03}"#
            )));
        }
    }
    lines.push(line("not a log line"));
    lines.push(line("   "));
    lines.push(line(&"x".repeat(MAX_LINE_BYTES + 1)));
    let mut cut = line("127.0.0.1 - - [07/Dec/2026");
    cut.cut = 100_000;
    lines.push(cut);
    tap.lines(&lines);
    let t = tap.take();
    assert_eq!(t.by_class, [0, 40, 2, 1, 10]);
    assert_eq!(t.interval, [0, 40, 2, 1, 10]);
    assert_eq!(t.bytes, 530);
    assert_eq!((t.too_long, t.unparseable), (2, 1));
    assert_eq!(t.latencies.len(), 53);
    // The interval's latencies and class counts start again; the totals do not.
    let again = tap.take();
    assert!(again.latencies.is_empty());
    assert_eq!(again.interval, [0; 5]);
    assert_eq!(again.by_class, [0, 40, 2, 1, 10]);
}

#[test]
fn percentiles_are_nearest_rank_exact_below_a_second_and_within_one_percent_above() {
    let mut l = Latencies::default();
    assert_eq!(l.quantile(0.5), None);
    for ms in 1..=100 {
        l.add(ms as f64 / 1000.0);
    }
    assert_eq!(l.quantile(0.5), Some(0.050));
    assert_eq!(l.quantile(0.9), Some(0.090));
    assert_eq!(l.quantile(0.99), Some(0.099));
    assert_eq!(l.quantile(1.0), Some(0.100));
    let mut big = Latencies::default();
    for s in [1.234, 12.345, 123.456, 5000.0] {
        big.add(s);
    }
    let got = [0.25, 0.5, 0.75, 1.0].map(|q| big.quantile(q).unwrap());
    for (g, want) in got.iter().zip([1.234, 12.345, 123.456, 1000.0]) {
        assert!(*g <= want && want - g <= want * 0.01, "{got:?}");
    }
}

proptest::proptest! {
    #[test]
    fn any_bytes_parse_or_not_without_a_panic(b in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
        let _ = parse(&b, AccessLogFormat::Combined);
        let _ = parse(&b, AccessLogFormat::Json);
    }

    #[test]
    fn any_latency_under_1000_s_lands_in_a_bucket_within_one_percent_below_it(s in 0.0f64..1000.0) {
        let mut l = Latencies::default();
        l.add(s);
        let q = l.quantile(0.5).unwrap();
        let ms = (s * 1000.0).round() / 1000.0;
        proptest::prop_assert!(q <= ms + 1e-9 && ms - q <= ms * 0.01 + 1e-9, "{} {}", q, ms);
    }
}
