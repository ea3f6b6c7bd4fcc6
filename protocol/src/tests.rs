use chrono::TimeZone;
use proptest::prelude::*;

use super::*;

fn time() -> impl Strategy<Value = DateTime<Utc>> {
    // 2000-01-01 to 2100-01-01, with nanoseconds: RFC 3339 must keep them all.
    (946_684_800i64..4_102_444_800i64, 0u32..1_000_000_000)
        .prop_map(|(s, ns)| Utc.timestamp_opt(s, ns).unwrap())
}

fn finite() -> impl Strategy<Value = f64> {
    prop_oneof![
        -1e12f64..1e12,
        Just(0.0),
        Just(f64::MAX),
        Just(f64::MIN_POSITIVE)
    ]
}

fn labels() -> impl Strategy<Value = BTreeMap<String, String>> {
    proptest::collection::btree_map("[a-z_.]{1,8}", ".{0,12}", 0..4)
}

fn record() -> impl Strategy<Value = Record> {
    let timings = (
        proptest::option::of(0.0f64..1e6),
        proptest::option::of(0.0f64..1e6),
        proptest::option::of(0.0f64..1e6),
    )
        .prop_map(|(dns_ms, connect_ms, total_ms)| Timings {
            dns_ms,
            connect_ms,
            tls_ms: None,
            ttfb_ms: None,
            total_ms,
        });
    prop_oneof![
        (
            ".{1,20}",
            time(),
            any::<bool>(),
            0.0f64..1e6,
            proptest::option::of(".{0,40}"),
            proptest::option::of(100u16..600),
            timings
        )
            .prop_map(
                |(check, time, ok, latency_ms, error, status_code, timings)| {
                    Record::CheckResult(CheckResult {
                        check,
                        check_type: ok.then_some(lookout_config::CheckType::Http),
                        time,
                        ok,
                        latency_ms,
                        error,
                        status_code,
                        cert_expiry: (!ok).then_some(time),
                        timings,
                    })
                }
            ),
        ("[a-z.]{1,30}", labels(), time(), finite(), any::<bool>()).prop_map(
            |(name, labels, time, value, counter)| Record::Metric(MetricSample {
                name,
                labels,
                time,
                value,
                metric_type: if counter {
                    MetricType::Counter
                } else {
                    MetricType::Gauge
                },
            })
        ),
        (
            time(),
            ".{1,20}",
            proptest::option::of("[a-z]{1,5}"),
            ".{0,200}"
        )
            .prop_map(|(time, source, level, text)| Record::Log(LogRecord {
                time,
                source,
                level,
                text,
                position: None,
            })),
    ]
}

fn batch() -> impl Strategy<Value = Batch> {
    (
        ".{1,20}",
        "[a-zA-Z0-9-]{1,128}",
        proptest::collection::vec(record(), 0..20),
    )
        .prop_map(|(agent, batch_id, records)| Batch {
            version: PROTOCOL_VERSION,
            agent,
            batch_id,
            records,
        })
}

/// `b` as it should arrive: every NUL in every string and map key replaced by U+FFFD, done on
/// the batch's JSON value, not its bytes (decode_batch works on the bytes).
fn without_nul(b: &Batch) -> Batch {
    fn clean(v: serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        let fix = |s: String| s.replace('\0', "\u{FFFD}");
        match v {
            Value::String(s) => Value::String(fix(s)),
            Value::Array(a) => Value::Array(a.into_iter().map(clean).collect()),
            Value::Object(o) => {
                Value::Object(o.into_iter().map(|(k, v)| (fix(k), clean(v))).collect())
            }
            other => other,
        }
    }
    serde_json::from_value(clean(serde_json::to_value(b).unwrap())).unwrap()
}

proptest! {
    #[test]
    fn every_encoding_round_trips(b in batch()) {
        for enc in [Encoding::Zstd, Encoding::Gzip, Encoding::Identity] {
            let bytes = encode_batch(&b, enc).unwrap();
            let back = decode_batch(&bytes, enc, 1 << 24).unwrap();
            prop_assert_eq!(&back, &without_nul(&b));
        }
    }

    #[test]
    fn the_reusable_encoder_round_trips(batches in proptest::collection::vec(batch(), 1..4)) {
        let mut enc = ZstdBatchEncoder::new().unwrap();
        for b in &batches {
            let bytes = enc.encode(b).unwrap();
            prop_assert_eq!(&decode_batch(&bytes, Encoding::Zstd, 1 << 24).unwrap(), &without_nul(b));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        for enc in [Encoding::Zstd, Encoding::Gzip, Encoding::Identity] {
            let _ = decode_batch(&bytes, enc, 1 << 16);
        }
    }
}

fn sample() -> Batch {
    Batch {
        version: PROTOCOL_VERSION,
        agent: "web-1".into(),
        batch_id: "b-1".into(),
        records: vec![Record::Log(LogRecord {
            time: Utc::now(),
            source: "app".into(),
            level: None,
            text: "x".repeat(10_000),
            position: None,
        })],
    }
}

#[test]
fn a_compression_bomb_stops_at_the_limit() {
    let b = sample();
    let bytes = encode_batch(&b, Encoding::Zstd).unwrap();
    assert!(bytes.len() < 1_000, "compresses well: {}", bytes.len());
    let err = decode_batch(&bytes, Encoding::Zstd, 4_096).unwrap_err();
    assert!(
        matches!(err, DecodeError::TooLarge { limit: 4_096 }),
        "{err}"
    );
    let err = decode_batch(
        &encode_batch(&b, Encoding::Identity).unwrap(),
        Encoding::Identity,
        4_096,
    )
    .unwrap_err();
    assert!(matches!(err, DecodeError::TooLarge { .. }), "{err}");
}

#[test]
fn invariants_are_checked() {
    let mut b = sample();
    b.version = 2;
    let bytes = encode_batch(&b, Encoding::Identity).unwrap();
    assert!(matches!(
        decode_batch(&bytes, Encoding::Identity, 1 << 20),
        Err(DecodeError::Version(2))
    ));
    let mut b = sample();
    b.batch_id = String::new();
    let bytes = encode_batch(&b, Encoding::Identity).unwrap();
    let err = decode_batch(&bytes, Encoding::Identity, 1 << 20).unwrap_err();
    assert!(err.to_string().contains("batch_id"), "{err}");
    let err = decode_batch(b"{\"version\":1", Encoding::Identity, 1 << 20).unwrap_err();
    assert!(err.to_string().starts_with("malformed batch"), "{err}");
    let err = decode_batch(b"not zstd", Encoding::Zstd, 1 << 20).unwrap_err();
    assert!(err.to_string().contains("not valid zstd"), "{err}");
    assert!(Encoding::from_header(Some("br")).is_err());
    assert_eq!(Encoding::from_header(None).unwrap(), Encoding::Identity);
}

#[test]
fn assignments_skip_unknown_checks_and_keep_the_rest() {
    let body = br#"{"revision":"r1","checks":[
        {"name":"a","type":"http","url":"http://x/","interval":"10s"},
        {"name":"b","type":"quantum","target":"x"}]}"#;
    let (a, skipped) = Assignments::decode_lenient(body).unwrap();
    assert_eq!(a.revision, "r1");
    assert_eq!(a.checks.len(), 1);
    assert_eq!(a.checks[0].interval, std::time::Duration::from_secs(10));
    assert_eq!(skipped.len(), 1);
    assert!(
        skipped[0].contains("\"b\"") && skipped[0].contains("quantum"),
        "{skipped:?}"
    );
}

#[test]
fn revision_follows_the_checks() {
    let (a, _) = Assignments::decode_lenient(
        br#"{"revision":"x","checks":[{"name":"a","type":"http","url":"http://x/"}]}"#,
    )
    .unwrap();
    let r1 = Assignments::new(a.checks.clone()).revision;
    assert_eq!(r1, Assignments::new(a.checks.clone()).revision);
    let mut changed = a.checks.clone();
    changed[0].url = Some("http://y/".into());
    assert_ne!(r1, Assignments::new(changed).revision);
}

/// A record reads the same wherever its `kind` stands; without one, or with one not known, it is
/// refused with the reason.
#[test]
fn a_record_is_read_whatever_the_order_of_its_fields() {
    let batch = |records: &str| {
        format!(r#"{{"version":1,"agent":"web-1","batch_id":"b","records":[{records}]}}"#)
    };
    let first = r#"{"kind":"metric","name":"m","labels":{"a":"1"},"time":"2026-11-27T04:00:00Z","value":2.5,"extra":[1]}"#;
    let middle = r#"{"name":"m","labels":{"a":"1"},"kind":"metric","time":"2026-11-27T04:00:00Z","value":2.5}"#;
    let last = r#"{"name":"m","labels":{"a":"1"},"time":"2026-11-27T04:00:00Z","value":2.5,"kind":"metric"}"#;
    let read = |r: &str| decode_batch(batch(r).as_bytes(), Encoding::Identity, 1 << 20);
    let want = read(first).unwrap();
    assert!(
        matches!(&want.records[0], Record::Metric(m) if m.value == 2.5 && m.labels["a"] == "1"),
        "{want:?}"
    );
    assert_eq!(read(middle).unwrap(), want);
    assert_eq!(read(last).unwrap(), want);

    let log = r#"{"time":"2026-11-27T04:00:00Z","kind":"log","source":"app","text":"hi","position":{"file":"f","offset":7}}"#;
    assert!(matches!(&read(log).unwrap().records[0],
        Record::Log(l) if l.position.as_ref().map(|p| p.offset) == Some(7)));

    let err = read(r#"{"name":"m","value":1}"#).unwrap_err().to_string();
    assert!(err.contains("missing field `kind`"), "{err}");
    let err = read(r#"{"kind":"trace","name":"m"}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown variant `trace`"), "{err}");
    let err = read(r#"{"kind":"metric","name":"m","time":"2026-11-27T04:00:00Z"}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing field `value`"), "{err}");
    let err = read(r#"{"name":"m","kind":"metric","time":"yesterday","value":1}"#)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("malformed batch"), "{err}");
    for duplicate in [
        r#"{"kind":"metric","name":"m","kind":"log","time":"2026-11-27T04:00:00Z","value":1}"#,
        r#"{"name":"m","kind":"metric","kind":"log","time":"2026-11-27T04:00:00Z","value":1}"#,
        r#"{"name":"m","value":2,"kind":"metric","time":"2026-11-27T04:00:00Z","value":1}"#,
        r#"{"kind":"metric","name":"m","time":"2026-11-27T04:00:00Z","value":1,"value":2}"#,
    ] {
        let err = read(duplicate).unwrap_err().to_string();
        assert!(err.contains("duplicate field"), "{duplicate}: {err}");
    }
    let err = read(r#"["metric"]"#).unwrap_err().to_string();
    assert!(err.contains("an object with a \"kind\""), "{err}");
}

/// Times in any offset are read as UTC; the forms chrono's generic parse took (a space before
/// the offset, say) are still read.
#[test]
fn record_times_are_read_in_utc_in_every_form_read_before() {
    let at = |time: &str| {
        let body = format!(
            r#"{{"version":1,"agent":"a","batch_id":"b","records":[{{"kind":"metric","name":"m","time":"{time}","value":1}}]}}"#
        );
        match decode_batch(body.as_bytes(), Encoding::Identity, 1 << 20) {
            Ok(b) => match &b.records[0] {
                Record::Metric(m) => Ok(m.time.to_rfc3339()),
                other => panic!("{other:?}"),
            },
            Err(e) => Err(e.to_string()),
        }
    };
    let want = Ok("2026-11-27T02:00:00.250+00:00".to_string());
    for form in [
        "2026-11-27T02:00:00.250Z",
        "2026-11-27T04:00:00.250+02:00",
        "2026-11-27t02:00:00.250z",
        "2026-11-27 02:00:00.250Z",
        "2026-11-27T04:00:00.250 +02:00",
    ] {
        assert_eq!(at(form), want, "{form}");
        assert_eq!(
            form.parse::<DateTime<Utc>>().map(|t| t.to_rfc3339()).ok(),
            want.clone().ok(),
            "chrono's generic parse reads {form} so too"
        );
    }
    let err = at("2026-11-27T02:00:00").unwrap_err();
    assert!(err.starts_with("malformed batch"), "{err}");
}

#[test]
fn a_nul_in_any_string_arrives_as_the_replacement_character() {
    // A NUL in a log line, a check's name and a label's name and value; and the text `\u0000`
    // written with an escaped backslash, which is not a NUL and stays.
    let body = br#"{"version":1,"agent":"a","batch_id":"b","records":[
        {"kind":"log","time":"2026-01-01T00:00:00Z","source":"/x","text":"a\u0000b \\u0000 c\\\u0000"},
        {"kind":"check_result","check":"web\u0000","time":"2026-01-01T00:00:00Z","ok":true,"latency_ms":1},
        {"kind":"metric","name":"m","labels":{"k\u0000":"v\u0000"},"time":"2026-01-01T00:00:00Z","value":1}
    ]}"#;
    for encoding in [Encoding::Identity, Encoding::Gzip, Encoding::Zstd] {
        let sent = match encoding {
            Encoding::Identity => body.to_vec(),
            Encoding::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                std::io::Write::write_all(&mut e, body).unwrap();
                e.finish().unwrap()
            }
            Encoding::Zstd => zstd::bulk::compress(body, 1).unwrap(),
        };
        let batch = decode_batch(&sent, encoding, 1 << 20).unwrap();
        let Record::Log(log) = &batch.records[0] else {
            panic!("a log")
        };
        assert_eq!(log.text, "a\u{FFFD}b \\u0000 c\\\u{FFFD}");
        let Record::CheckResult(c) = &batch.records[1] else {
            panic!("a result")
        };
        assert_eq!(c.check, "web\u{FFFD}");
        let Record::Metric(m) = &batch.records[2] else {
            panic!("a metric")
        };
        assert_eq!(
            m.labels.get("k\u{FFFD}").map(String::as_str),
            Some("v\u{FFFD}")
        );
    }
}

/// A batch past the record bound is refused as such, and read like any other below it.
#[test]
fn records_past_the_bound_are_refused_without_reading_the_rest() {
    let batch = |n: usize, tail: &str| {
        let record = r#"{"kind":"metric","name":"m","time":"2026-11-27T04:00:00Z","value":1}"#;
        let records = vec![record; n].join(",");
        format!(r#"{{"version":1,"agent":"a","batch_id":"b","records":[{records}]{tail}}}"#)
    };
    let read =
        |body: &str, max| decode_batch_bounded(body.as_bytes(), Encoding::Identity, 1 << 24, max);
    assert_eq!(read(&batch(10, ""), 10).unwrap().records.len(), 10);
    assert_eq!(read(&batch(0, ""), 10).unwrap().records.len(), 0);
    assert!(matches!(
        read(&batch(11, ""), 10),
        Err(DecodeError::TooManyRecords { limit: 10 })
    ));
    // What follows the bound is not read: not even its malformed JSON.
    let broken = batch(11, "").replace("]}", ",{]}");
    assert!(matches!(
        read(&broken, 10),
        Err(DecodeError::TooManyRecords { limit: 10 })
    ));
    // The fields as the derived reader wants them: each once, none unknown, none missing.
    for (body, says) in [
        (batch(1, r#","extra":1"#), "unknown field"),
        (batch(1, r#","agent":"b""#), "duplicate field `agent`"),
        (
            r#"{"version":1,"agent":"a","records":[]}"#.to_string(),
            "missing field `batch_id`",
        ),
        (batch(1, "") + " x", "trailing characters"),
    ] {
        let e = read(&body, 10).unwrap_err().to_string();
        assert!(e.contains(says), "{body}: {e}");
    }
    let big = batch(3, "");
    assert_eq!(
        read(&big, usize::MAX).unwrap(),
        decode_batch(big.as_bytes(), Encoding::Identity, 1 << 24).unwrap()
    );
}
