use super::*;
use proptest::prelude::*;

/// RFC 9224 §4's example registry.
const BOOTSTRAP: &str = r#"{
  "version": "1.0",
  "publication": "2024-01-07T10:11:12Z",
  "description": "Some text",
  "services": [
    [["net", "com"], ["https://registry.example.com/myrdap/"]],
    [["org", "mytld"], ["https://example.org/"]],
    [["xn--zckzah"], ["https://example.net/rdap/xn--zckzah/", "http://example.net/rdap/xn--zckzah/"]]
  ]
}"#;

/// The shape of RFC 9083 §5.3's domain example, trimmed, with its events.
const ANSWER: &str = r#"{
  "objectClassName" : "domain",
  "handle" : "XXXX",
  "ldhName" : "xn--fo-5ja.example",
  "unicodeName" : "fóo.example",
  "status" : [ "locked", "transfer prohibited" ],
  "nameservers" : [ { "objectClassName" : "nameserver", "ldhName" : "ns1.example.com" } ],
  "port43" : "whois.example.net",
  "events" : [
    { "eventAction" : "registration", "eventDate" : "1990-12-31T23:59:59Z" },
    { "eventAction" : "last changed", "eventDate" : "1991-12-31T23:59:59Z", "eventActor" : "joe@example.com" },
    { "eventAction" : "transfer", "eventDate" : "1991-12-31T23:59:59Z", "eventActor" : "joe@example.com" },
    { "eventAction" : "expiration", "eventDate" : "2016-12-31T23:59:59Z", "eventActor" : "joe@example.com" }
  ]
}"#;

#[test]
fn the_bootstrap_gives_the_longest_match_and_https_first() {
    let s = parse_bootstrap(BOOTSTRAP.as_bytes()).unwrap();
    assert_eq!(
        s.base_for("example.com"),
        Some("https://registry.example.com/myrdap/")
    );
    assert_eq!(s.base_for("a.b.mytld"), Some("https://example.org/"));
    assert_eq!(
        s.base_for("x.xn--zckzah"),
        Some("https://example.net/rdap/xn--zckzah/")
    );
    assert_eq!(s.base_for("example.dev"), None);
    // The longer label wins over the shorter one, whatever the order.
    let s = parse_bootstrap(
        br#"{"services": [[["uk"], ["https://uk/"]], [["co.uk"], ["http://co-uk/"]]]}"#,
    )
    .unwrap();
    assert_eq!(s.base_for("shop.co.uk"), Some("http://co-uk/"));
    assert_eq!(s.base_for("shop.org.uk"), Some("https://uk/"));
}

#[test]
fn a_bad_bootstrap_says_what_is_wrong() {
    for (bad, says) in [
        (&b"<html>"[..], "not JSON"),
        (br#"{"version": "1.0"}"#, "no \"services\" array"),
        (br#"{"services": [[["com"]]]}"#, "services[0] is not"),
        (br#"{"services": [[["com"], [1]]]}"#, "services[0] is not"),
    ] {
        let e = parse_bootstrap(bad).unwrap_err();
        assert!(e.contains(says), "{e}");
    }
}

#[test]
fn the_expiration_event_is_read() {
    assert_eq!(
        expiration(ANSWER.as_bytes()).unwrap().to_rfc3339(),
        "2016-12-31T23:59:59+00:00"
    );
    let offset =
        br#"{"events": [{"eventAction": "EXPIRATION", "eventDate": "2030-01-01T02:00:00+02:00"}]}"#;
    assert_eq!(
        expiration(offset).unwrap().to_rfc3339(),
        "2030-01-01T00:00:00+00:00"
    );
    for (bad, says) in [
        (&b"nope"[..], "not JSON"),
        (br#"{"objectClassName": "entity", "events": []}"#, "expected a domain"),
        (br#"{"objectClassName": "domain"}"#, "no \"events\" array"),
        (
            br#"{"events": [{"eventAction": "registration", "eventDate": "1990-12-31T23:59:59Z"}]}"#,
            "no \"expiration\" event",
        ),
        (br#"{"events": [{"eventAction": "expiration"}]}"#, "no eventDate"),
        (
            br#"{"events": [{"eventAction": "expiration", "eventDate": "next year"}]}"#,
            "not an RFC 3339 date",
        ),
    ] {
        let e = expiration(bad).unwrap_err();
        assert!(e.contains(says), "{e}");
    }
}

proptest! {
    #[test]
    fn no_bytes_make_the_parsers_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_bootstrap(&bytes);
        let _ = expiration(&bytes);
    }

    #[test]
    fn no_json_shape_makes_the_parsers_panic(
        text in r#"\{("services"|"events"|"eventAction"|"eventDate"|\[|\]|\{|\}|,|:|"expiration"|"com"|1|null)*\}"#
    ) {
        let _ = parse_bootstrap(text.as_bytes()).map(|s| s.base_for("a.com").map(str::to_string));
        let _ = expiration(text.as_bytes());
    }
}

#[tokio::test]
async fn the_bootstrap_is_read_again_only_after_a_day() {
    let start = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dns.json");
    let location = path.to_str().unwrap();
    std::fs::write(&path, BOOTSTRAP).unwrap();
    let rdap = Rdap::default();
    let first = rdap.services(location, start).await.unwrap();
    assert!(first.base_for("example.com").is_some());
    std::fs::write(&path, r#"{"services": []}"#).unwrap();
    let almost = start + BOOTSTRAP_TTL - Duration::from_secs(1);
    assert_eq!(rdap.services(location, almost).await.unwrap(), first);
    let day = start + BOOTSTRAP_TTL + Duration::from_secs(1);
    let second = rdap.services(location, day).await.unwrap();
    assert_eq!(second.base_for("example.com"), None);
    // A registry that cannot be read any more: the last one read goes on serving.
    std::fs::remove_file(&path).unwrap();
    let later = day + BOOTSTRAP_TTL * 2;
    assert_eq!(rdap.services(location, later).await.unwrap(), second);
}

#[tokio::test]
async fn an_oversized_bootstrap_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dns.json");
    std::fs::write(&path, vec![b' '; MAX_BOOTSTRAP + 1]).unwrap();
    let e = Rdap::default()
        .services(path.to_str().unwrap(), Instant::now())
        .await
        .unwrap_err();
    assert!(e.contains("is over 4194304 bytes"), "{e}");
    let e = Rdap::default()
        .services("/nonexistent/dns.json", Instant::now())
        .await
        .unwrap_err();
    assert!(e.contains("/nonexistent/dns.json"), "{e}");
}
