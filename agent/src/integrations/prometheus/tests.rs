use std::collections::BTreeMap;

use lookout_protocol::MetricType;
use proptest::prelude::*;

use super::parse::{MAX_LABELS, MAX_LINE_BYTES, parse};
use super::*;

/// `curl localhost:9100/metrics` of Debian bookworm's prometheus-node-exporter 1.5.0.
const NODE: &str = include_str!("../fixtures/node-exporter-1.5.txt");
/// OpenMetrics 1.0, written from the specification's examples.
const OPEN: &str = include_str!("../fixtures/openmetrics.txt");

const LIMITS: Limits = Limits {
    max_line_bytes: MAX_LINE_BYTES,
    max_series: 10_000,
    max_labels: MAX_LABELS,
};

fn all(text: &str) -> Scrape {
    parse(text, &Filter::default(), &LIMITS)
}

fn one<'a>(s: &'a Scrape, name: &str, labels: &[(&str, &str)]) -> &'a Series {
    s.series
        .iter()
        .find(|x| {
            x.name == name
                && labels
                    .iter()
                    .all(|(k, v)| x.labels.iter().any(|(a, b)| a == k && b == v))
        })
        .unwrap_or_else(|| panic!("{name} {labels:?} not found"))
}

#[test]
fn node_exporter_text_is_read_whole_with_its_types() {
    let s = all(NODE);
    assert_eq!(s.skipped, Skipped::default());
    // Every line that is not a comment or blank is a series (counted independently of the
    // parser with grep's rule).
    let lines = NODE
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .count();
    assert_eq!(s.series.len(), lines);
    let mem = one(&s, "node_memory_MemTotal_bytes", &[]);
    assert_eq!(
        (mem.value, mem.metric_type),
        (2.5276182528e10, MetricType::Gauge)
    );
    let build = one(&s, "node_exporter_build_info", &[("version", "1.5.0")]);
    assert_eq!(build.value, 1.0);
    assert_eq!(build.labels.len(), 6);
    let cpu = one(
        &s,
        "node_cpu_seconds_total",
        &[("cpu", "0"), ("mode", "idle")],
    );
    assert_eq!(cpu.metric_type, MetricType::Counter);
    // A summary: quantiles are gauges, _sum and _count counters.
    let q = one(&s, "go_gc_duration_seconds", &[("quantile", "0.5")]);
    assert_eq!(q.metric_type, MetricType::Gauge);
    assert_eq!(
        one(&s, "go_gc_duration_seconds_count", &[]).metric_type,
        MetricType::Counter
    );
    assert_eq!(
        one(&s, "go_gc_duration_seconds_sum", &[]).metric_type,
        MetricType::Counter
    );
}

#[test]
fn openmetrics_types_units_exemplars_escapes_and_eof() {
    let text = format!("{OPEN}after_eof 1\n");
    let s = all(&text);
    assert!(s.eof);
    assert_eq!(s.skipped, Skipped::default());
    assert!(s.series.iter().all(|x| x.name != "after_eof"));
    let t = |name: &str, labels: &[(&str, &str)]| {
        let x = one(&s, name, labels);
        (x.value, x.metric_type)
    };
    assert_eq!(
        t("process_cpu_seconds_total", &[]),
        (4.20072246e6, MetricType::Counter)
    );
    assert_eq!(
        t("process_cpu_seconds_created", &[]),
        (1605281325.0, MetricType::Gauge)
    );
    assert_eq!(t("go_goroutines", &[]), (69.0, MetricType::Gauge));
    // A histogram: buckets (exemplars ignored), count and sum are counters.
    assert_eq!(
        t("foo_bucket", &[("le", "0.1")]),
        (8.0, MetricType::Counter)
    );
    assert_eq!(
        t("foo_bucket", &[("le", "1.0")]),
        (10.0, MetricType::Counter)
    );
    assert_eq!(
        t("foo_bucket", &[("le", "+Inf")]),
        (17.0, MetricType::Counter)
    );
    assert_eq!(t("foo_count", &[]), (17.0, MetricType::Counter));
    assert_eq!(t("foo_sum", &[]), (324789.3, MetricType::Counter));
    // A gauge histogram is gauges.
    assert_eq!(
        t("queue_depth_bucket", &[("le", "10")]),
        (3.0, MetricType::Gauge)
    );
    assert_eq!(t("queue_depth_gsum", &[]), (12.5, MetricType::Gauge));
    // A summary in OpenMetrics.
    assert_eq!(
        t(
            "acme_http_router_request_seconds_count",
            &[("method", "GET")]
        ),
        (807283.0, MetricType::Counter)
    );
    // Escapes: \" \\ \n.
    let b = one(&s, "build_info", &[("version", "1.2.3")]);
    assert_eq!(b.labels[1].1, "a \"quoted\" \\ name\nsecond line");
    // A timestamp is read; info, stateset and unknown are gauges.
    assert_eq!(t("feature", &[("feature", "a")]), (1.0, MetricType::Gauge));
    let temp = one(&s, "temperature", &[]);
    assert!(temp.value.is_nan() && temp.metric_type == MetricType::Gauge);
    assert_eq!(t("temperature_max", &[]).0, f64::INFINITY);
    assert_eq!(t("temperature_min", &[]).0, f64::NEG_INFINITY);
}

#[test]
fn keep_and_drop_match_whole_names() {
    let f = Filter::new(
        Some("node_memory_.*|node_exporter_build_info"),
        Some(".*_Swap.*"),
    )
    .unwrap();
    let s = parse(NODE, &f, &LIMITS);
    assert!(!s.series.is_empty());
    assert!(s.series.iter().all(|x| {
        (x.name.starts_with("node_memory_") || x.name == "node_exporter_build_info")
            && !x.name.contains("_Swap")
    }));
    assert!(
        s.series
            .iter()
            .any(|x| x.name == "node_memory_MemTotal_bytes")
    );
    let lines = NODE
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .count();
    assert_eq!(s.series.len() + s.skipped.filtered, lines);
    // Anchored: "memory" alone keeps nothing.
    let f = Filter::new(Some("memory"), None).unwrap();
    assert!(parse(NODE, &f, &LIMITS).series.is_empty());
}

#[test]
fn each_limit_is_counted() {
    let limits = Limits {
        max_line_bytes: 40,
        max_series: 2,
        max_labels: 2,
    };
    let text = format!(
        "a 1\nb{{x=\"1\",y=\"2\",z=\"3\"}} 2\nc{{v=\"{}\"}} 3\nd 4\ne 5\nnot a series\n",
        "v".repeat(50)
    );
    let s = parse(&text, &Filter::default(), &limits);
    assert_eq!(
        s.skipped,
        Skipped {
            long_lines: 1,
            bad_lines: 1,
            too_many_labels: 1,
            over_series: 1,
            filtered: 0,
        }
    );
    assert_eq!(
        s.series.iter().map(|x| x.name.as_str()).collect::<Vec<_>>(),
        ["a", "d"]
    );
}

#[test]
fn malformed_lines_are_unreadable_not_guessed() {
    for bad in [
        "1abc 1",
        "a{b=\"1\" 2",
        "a{b=1} 2",
        "a{b=\"1\"}2",
        "a 1 2 3",
        "a inf",
        "a nan",
        "a 1 NaN",
        "a{=\"x\"} 1",
        "a{b=\"x\\",
        "a",
        "a{b=\"1\",,} 1",
    ] {
        let s = all(bad);
        assert_eq!((s.series.len(), s.skipped.bad_lines), (0, 1), "{bad:?}");
    }
    let s = all("a{b=\"1\",} 2 1700000000000\nb 1 1.5 # {x=\"y\"} 1\n");
    assert_eq!(s.series.len(), 2);
    assert_eq!(s.series[0].labels, [("b".to_string(), "1".to_string())]);
}

#[test]
fn samples_carry_the_integrations_labels_and_the_counts() {
    let s = all("x{integration=\"app\",path=\"/\"} 2\ny NaN\nbad line\n");
    let mut labels = BTreeMap::new();
    labels.insert("integration".to_string(), "web".to_string());
    let out = samples(&s, chrono::Utc::now(), &labels);
    let x = &out[0];
    assert_eq!(x.name, "x");
    assert_eq!(x.labels["integration"], "web");
    assert_eq!(x.labels["exported_integration"], "app");
    assert_eq!(x.labels["path"], "/");
    let get = |name: &str, reason: Option<&str>| {
        out.iter()
            .find(|m| m.name == name && m.labels.get("reason").map(String::as_str) == reason)
            .map(|m| m.value)
    };
    assert_eq!(get(SERIES_METRIC, None), Some(1.0));
    assert_eq!(get(SKIPPED_METRIC, Some("not_finite")), Some(1.0));
    assert_eq!(get(SKIPPED_METRIC, Some("unreadable")), Some(1.0));
    assert_eq!(get(SKIPPED_METRIC, Some("max_series")), Some(0.0));
    assert!(out.iter().all(|m| m.name != "y"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Arbitrary text never panics and never keeps more than the limits allow.
    #[test]
    fn arbitrary_text_never_panics(text in "(?s).{0,400}", cut in 0usize..NODE.len()) {
        let limits = Limits { max_line_bytes: 64, max_series: 5, max_labels: 3 };
        let s = parse(&text, &Filter::default(), &limits);
        prop_assert!(s.series.len() <= 5);
        prop_assert!(s.series.iter().all(|x| x.labels.len() <= 3));
        // Text shaped like the format, cut anywhere (on a char boundary).
        let mut at = cut;
        while !NODE.is_char_boundary(at) { at -= 1; }
        let _ = parse(&NODE[..at], &Filter::default(), &LIMITS);
        let _ = parse(&format!("{}{text}", &NODE[..at.min(300)]), &Filter::default(), &limits);
    }

    /// Series-like lines built from the format's own pieces never panic.
    #[test]
    fn series_like_lines_never_panic(
        lines in prop::collection::vec(
            "[a-z_]{0,4}(\\{([a-z]{0,2}=\"([^\"\\\\]|\\\\.){0,4}\",?){0,3}\\}?)? ?(NaN|[+-]Inf|-?[0-9.e]{0,5})( [0-9.]{0,4})?( # \\{\\} 1)?",
            0..20,
        ),
    ) {
        let text = lines.join("\n");
        let _ = parse(&text, &Filter::default(), &LIMITS);
    }
}

/// A local endpoint: `/metrics` answers whether the agent's Accept was Prometheus's, `/big` a
/// body of `big` bytes, `/down` 503.
async fn endpoint(big: usize) -> String {
    use axum::http::{HeaderMap, StatusCode};
    let app = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(|h: HeaderMap| async move {
                let ok = h.get("accept").and_then(|v| v.to_str().ok()) == Some(ACCEPT);
                format!(
                    "# TYPE accept_ok gauge\naccept_ok {}\n# EOF\n",
                    u8::from(ok)
                )
            }),
        )
        .route(
            "/big",
            axum::routing::get(move || async move { "a 1\n".repeat(big / 4) }),
        )
        .route(
            "/down",
            axum::routing::get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "no") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn config(url: String, max_body_bytes: usize) -> lookout_config::IntegrationConfig {
    lookout_config::IntegrationConfig {
        kind: lookout_config::IntegrationType::Prometheus,
        name: "p".into(),
        url,
        interval: std::time::Duration::from_secs(2),
        timeout: std::time::Duration::from_secs(1),
        labels: BTreeMap::new(),
        keep: None,
        drop: None,
        max_body_bytes,
        max_series: 10,
        access_log: None,
        logs: false,
    }
}

#[tokio::test]
async fn scrapes_ask_for_both_formats_and_bound_the_body() {
    let base = endpoint(4096).await;
    let s = Source::new(&config(format!("{base}/metrics"), 1024)).unwrap();
    let got = s.scrape().await.unwrap();
    assert!(got.eof);
    assert_eq!(got.series[0].name, "accept_ok");
    assert_eq!(
        got.series[0].value, 1.0,
        "the Accept header sent is {ACCEPT}"
    );
    // 4,096 bytes against a limit of 1,024: a failed read that says which limit.
    let s = Source::new(&config(format!("{base}/big"), 1024)).unwrap();
    let e = s.scrape().await.unwrap_err().to_string();
    assert!(e.contains("over max_body_bytes (1024 bytes)"), "{e}");
    // Within the limit: read, and the series past max_series counted.
    let s = Source::new(&config(format!("{base}/big"), 4096)).unwrap();
    let got = s.scrape().await.unwrap();
    assert_eq!((got.series.len(), got.skipped.over_series), (10, 1014));
    let s = Source::new(&config(format!("{base}/down"), 1024)).unwrap();
    let e = s.scrape().await.unwrap_err().to_string();
    assert!(e.contains("the endpoint answered 503"), "{e}");
}
