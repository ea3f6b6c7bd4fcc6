use std::collections::BTreeMap;

use chrono::Utc;
use lookout_protocol::{CheckResult, LogRecord, MetricSample, MetricType, Record};

use super::*;

fn limits() -> Limits {
    Limits {
        labels: 3,
        label_bytes: 8,
        string_bytes: 16,
        log_line_bytes: 10,
        new_series_per_minute: 2,
        check_names: 2,
    }
}

fn metric(name: &str, labels: &[(&str, &str)]) -> Record {
    Record::Metric(MetricSample {
        name: name.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        time: Utc::now(),
        value: 1.0,
        metric_type: MetricType::Gauge,
    })
}

fn result(check: &str, error: Option<&str>) -> Record {
    Record::CheckResult(CheckResult {
        check: check.into(),
        check_type: None,
        time: Utc::now(),
        ok: error.is_none(),
        latency_ms: 1.0,
        error: error.map(str::to_string),
        status_code: None,
        cert_expiry: None,
        timings: Default::default(),
    })
}

fn log(text: &str) -> Record {
    Record::Log(LogRecord {
        time: Utc::now(),
        source: "app".into(),
        level: None,
        text: text.into(),
        position: None,
    })
}

#[test]
fn labels_and_strings_past_their_limits_refuse_the_record() {
    let l = limits();
    let mut ok = metric("m", &[("a", "1"), ("b", "2"), ("c", "3")]);
    assert_eq!(shape(&mut ok, &l), Ok(Shaped::Whole));
    let four = [("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")];
    assert_eq!(shape(&mut metric("m", &four), &l), Err("too_many_labels"));
    assert_eq!(
        shape(&mut metric("m", &[("a", "123456789")]), &l),
        Err("label_too_long")
    );
    assert_eq!(
        shape(&mut metric("m", &[("abcdefghi", "1")]), &l),
        Err("label_too_long")
    );
    assert_eq!(
        shape(&mut metric(&"m".repeat(17), &[]), &l),
        Err("string_too_long")
    );
    assert_eq!(
        shape(&mut result(&"c".repeat(17), None), &l),
        Err("string_too_long")
    );
    let mut source = log("hi");
    if let Record::Log(r) = &mut source {
        r.source = "s".repeat(17);
    }
    assert_eq!(shape(&mut source, &l), Err("string_too_long"));
}

#[test]
fn long_log_lines_and_errors_are_cut_between_characters_and_marked() {
    let l = limits();
    // "é" is two bytes: byte 10 falls inside the sixth.
    let mut line = log(&format!("a{}", "é".repeat(10)));
    assert_eq!(shape(&mut line, &l), Ok(Shaped::LogLineCut));
    let Record::Log(r) = &line else { panic!() };
    assert_eq!(r.text, format!("a{}…[truncated 12 bytes]", "é".repeat(4)));
    let mut short = log("0123456789");
    assert_eq!(shape(&mut short, &l), Ok(Shaped::Whole));

    let mut failed = result("api", Some(&"€".repeat(10)));
    assert_eq!(shape(&mut failed, &l), Ok(Shaped::ErrorCut));
    let Record::CheckResult(c) = &failed else {
        panic!()
    };
    assert_eq!(
        c.error.as_deref(),
        Some(format!("{}…[truncated 15 bytes]", "€".repeat(5)).as_str())
    );
}

#[test]
fn new_series_are_limited_per_minute_and_check_names_in_all() {
    let ledgers = Ledgers::default();
    let web = ledgers.agent("web");
    let mut admit = ledgers.admit(&web, limits());
    assert_eq!(admit.record(&metric("m", &[("cpu", "0")])), Ok(()));
    assert_eq!(admit.record(&metric("m", &[("cpu", "1")])), Ok(()));
    assert_eq!(
        admit.record(&metric("m", &[("cpu", "2")])),
        Err("series_rate")
    );
    // A series already seen is never refused.
    assert_eq!(admit.record(&metric("m", &[("cpu", "0")])), Ok(()));
    assert_eq!(admit.record(&result("a", None)), Ok(()));
    assert_eq!(admit.record(&result("b", None)), Ok(()));
    assert_eq!(admit.record(&result("c", None)), Err("too_many_checks"));
    assert_eq!(admit.record(&result("a", None)), Ok(()));
    assert_eq!(admit.record(&log("x")), Ok(()));
    drop(admit);

    // Another agent has its own.
    let db = ledgers.agent("db");
    let mut admit = ledgers.admit(&db, limits());
    assert_eq!(admit.record(&metric("m", &[("cpu", "2")])), Ok(()));
    assert_eq!(admit.record(&result("c", None)), Ok(()));
    drop(admit);

    // A minute later the agent may start new series again, but not use more check names.
    web.lock().unwrap().window_start -= WINDOW;
    let mut admit = ledgers.admit(&web, limits());
    assert_eq!(admit.record(&metric("m", &[("cpu", "2")])), Ok(()));
    assert_eq!(admit.record(&result("c", None)), Err("too_many_checks"));
}
