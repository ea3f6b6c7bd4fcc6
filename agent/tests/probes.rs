//! Every check type against a real peer on loopback: an HTTP server we control, TLS with
//! certificates made here (valid, expiring, for another name), dnsmasq, PostgreSQL, Redis and an
//! SMTP server (aiosmtpd). `scripts/test` installs the servers; each test starts its own on a
//! free port. What an HTTP probe's redirects may carry is in `probes/redirects.rs`.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use lookout_agent::probes::Prober;
use lookout_config::CheckConfig;
use lookout_protocol::CheckResult;
use serde_json::{Value, json};

#[path = "probes/redirects.rs"]
mod redirects;

fn check(v: Value) -> CheckConfig {
    let mut v = v;
    v["name"] = json!("t");
    let c: CheckConfig = serde_json::from_value(v).unwrap();
    assert!(c.problems().is_empty(), "{:?}", c.problems());
    c
}

async fn probe(v: Value) -> CheckResult {
    Prober::new(8).probe(&check(v)).await
}

fn error(r: &CheckResult) -> &str {
    r.error.as_deref().unwrap_or("")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed when the test ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(program: &str, args: &[&str]) -> Server {
    let child = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {program} ({e}): scripts/test installs it; run the suite with it")
        });
    Server(child)
}

/// Waits until something accepts TCP connections on `port`.
async fn wait_tcp(port: u16) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("nothing listens on port {port} after 5 s");
}

// ---- HTTP ----

async fn http_server() -> SocketAddr {
    let app = Router::new()
        .route(
            "/ok",
            get(|| async {
                (
                    [("content-type", "application/json")],
                    r#"{"status": "ok", "items": [1, 2, 3]}"#,
                )
            }),
        )
        .route(
            "/fail",
            get(|| async { (axum::http::StatusCode::SERVICE_UNAVAILABLE, "down") }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        .route("/moved", get(|| async { Redirect::temporary("/ok") }))
        .route("/loop", get(|| async { Redirect::temporary("/loop") }))
        .route(
            "/echo",
            axum::routing::post(|headers: axum::http::HeaderMap, body: String| async move {
                let token = headers
                    .get("x-token")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                axum::Json(json!({"token": token, "body": body})).into_response()
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test]
async fn http_status_body_headers_and_timings() {
    let a = http_server().await;
    let r = probe(json!({"type": "http", "url": format!("http://{a}/ok"),
        "conditions": ["[STATUS] == 200", "[BODY].status == ok", "len([BODY].items) == 3",
                       "[HEADER].content-type == pat(application/json*)", "[RESPONSE_TIME] < 5000",
                       "[CONNECTED] == true", "[IP] == 127.0.0.1"]}))
    .await;
    assert!(r.ok, "{r:?}");
    assert_eq!(r.status_code, Some(200));
    let t = &r.timings;
    assert!(t.dns_ms.is_none(), "an IP address needs no lookup");
    assert!(
        t.connect_ms.unwrap() > 0.0 && t.ttfb_ms.unwrap() > 0.0,
        "{t:?}"
    );
    assert!(t.total_ms.unwrap() >= t.connect_ms.unwrap() + t.ttfb_ms.unwrap());

    // A hostname goes through the system resolver, and that phase is timed.
    let r = probe(json!({"type": "http", "url": format!("http://localhost:{}/ok", a.port()), "ip_version": "4"})).await;
    assert!(r.ok, "{r:?}");
    assert!(r.timings.dns_ms.is_some());

    // The failing condition is named, with the value found.
    let r = probe(json!({"type": "http", "url": format!("http://{a}/ok"),
        "conditions": ["[BODY].status == degraded", "len([BODY].items) > 5"]}))
    .await;
    assert!(!r.ok);
    assert_eq!(
        error(&r),
        "condition failed: [BODY].status == degraded (actual: \"ok\"); len([BODY].items) > 5 (actual: 3)"
    );
}

#[tokio::test]
async fn http_expected_status_method_headers_and_body() {
    let a = http_server().await;
    let r = probe(json!({"type": "http", "url": format!("http://{a}/fail")})).await;
    assert!(!r.ok);
    assert_eq!(error(&r), "status 503, expected 2xx");
    let r =
        probe(json!({"type": "http", "url": format!("http://{a}/fail"), "expected_status": [503]}))
            .await;
    assert!(r.ok, "{r:?}");
    // A [STATUS] condition replaces the default 2xx.
    let r = probe(json!({"type": "http", "url": format!("http://{a}/fail"), "conditions": ["[STATUS] == any(500, 503)"]})).await;
    assert!(r.ok, "{r:?}");
    let r = probe(
        json!({"type": "http", "method": "POST", "url": format!("http://{a}/echo"),
        "headers": {"X-Token": "abc"}, "body": "hello",
        "conditions": ["[BODY].token == abc", "[BODY].body == hello"]}),
    )
    .await;
    assert!(r.ok, "{r:?}");
}

#[tokio::test]
async fn http_redirects_are_followed_limited_or_refused() {
    let a = http_server().await;
    let r = probe(json!({"type": "http", "url": format!("http://{a}/moved"), "conditions": ["[BODY].status == ok"]})).await;
    assert!(r.ok, "{r:?}");
    assert_eq!(r.status_code, Some(200));
    let r = probe(
        json!({"type": "http", "url": format!("http://{a}/moved"), "follow_redirects": false}),
    )
    .await;
    assert_eq!(error(&r), "status 307, expected 2xx");
    let r =
        probe(json!({"type": "http", "url": format!("http://{a}/loop"), "max_redirects": 3})).await;
    assert!(error(&r).starts_with("more than 3 redirects"), "{r:?}");
}

#[tokio::test]
async fn a_timeout_is_kept_to_within_milliseconds() {
    let a = http_server().await;
    let started = std::time::Instant::now();
    let r = probe(json!({"type": "http", "url": format!("http://{a}/slow"), "timeout": "300ms", "interval": "1s"})).await;
    let took = started.elapsed();
    assert_eq!(error(&r), "timed out after 300ms");
    // The bound is the check's timeout; the margin is the scheduler's wake-up, not the peer.
    assert!(took < Duration::from_millis(350), "took {took:?}");
    // Nothing listening: refused at once, and said so.
    let r =
        probe(json!({"type": "http", "url": format!("http://127.0.0.1:{}/", free_port())})).await;
    assert!(error(&r).contains("Connection refused"), "{r:?}");
    assert_eq!(r.timings.connect_ms, None);
}

// ---- TLS ----

struct Pki {
    dir: tempfile::TempDir,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "Lookout test CA");
        ca.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let now = time::OffsetDateTime::now_utc();
        ca.not_before = now - time::Duration::days(1);
        ca.not_after = now + time::Duration::days(365);
        let cert = ca.self_signed(&key).unwrap();
        std::fs::write(dir.path().join("ca.pem"), cert.pem()).unwrap();
        Self {
            dir,
            issuer: rcgen::Issuer::new(ca, key),
        }
    }

    fn ca_file(&self) -> String {
        self.dir.path().join("ca.pem").display().to_string()
    }

    /// A server certificate for `names`, valid for `days` more; returns (chain, key, expiry),
    /// and writes it as `leaf.pem` and `leaf.key` too.
    fn leaf(
        &self,
        names: &[&str],
        days: i64,
    ) -> (
        Vec<rustls::pki_types::CertificateDer<'static>>,
        rustls::pki_types::PrivateKeyDer<'static>,
        std::time::SystemTime,
    ) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        p.use_authority_key_identifier_extension = true;
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let now = time::OffsetDateTime::now_utc();
        // Whole seconds: X.509 times have no fractions.
        let not_after = now.replace_nanosecond(0).unwrap() + time::Duration::days(days);
        p.not_before = now - time::Duration::hours(1);
        p.not_after = not_after;
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        std::fs::write(self.dir.path().join("leaf.pem"), cert.pem()).unwrap();
        std::fs::write(self.dir.path().join("leaf.key"), key.serialize_pem()).unwrap();
        let der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        (vec![cert.der().clone()], der, not_after.into())
    }
}

/// A TLS server side presenting this chain.
fn tls_acceptor(
    chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
) -> tokio_rustls::TlsAcceptor {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// An HTTPS server (HTTP/1.1 over TLS) presenting this chain; answers 200 "secure".
async fn tls_server(
    chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
) -> SocketAddr {
    let acceptor = tls_acceptor(chain, key);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(
                        http_body_util::Full::new(bytes::Bytes::from_static(b"secure")),
                    ))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    addr
}

fn close_to(a: chrono::DateTime<chrono::Utc>, b: std::time::SystemTime) -> bool {
    let b: chrono::DateTime<chrono::Utc> = b.into();
    (a - b).num_seconds().abs() <= 1
}

#[tokio::test]
async fn tls_valid_expiring_and_misnamed_certificates() {
    let pki = Pki::new();
    let ca = pki.ca_file();

    let (chain, key, expiry) = pki.leaf(&["localhost", "127.0.0.1"], 90);
    let good = tls_server(chain, key).await;
    let r = probe(
        json!({"type": "tls", "address": format!("localhost:{}", good.port()), "ca": ca,
        "conditions": ["[CERTIFICATE_EXPIRATION] > 30d"]}),
    )
    .await;
    assert!(r.ok, "{r:?}");
    assert!(
        close_to(r.cert_expiry.unwrap(), expiry),
        "{:?}",
        r.cert_expiry
    );
    assert!(r.timings.tls_ms.unwrap() > 0.0);
    // The same server over https, with the body checked.
    let r = probe(
        json!({"type": "http", "url": format!("https://127.0.0.1:{}/", good.port()), "ca": ca,
        "conditions": ["[BODY] == secure"]}),
    )
    .await;
    assert!(r.ok, "{r:?}");
    assert!(r.timings.tls_ms.is_some() && r.cert_expiry.is_some());
    // Not trusted without the CA: said, and the expiry is still reported.
    let r = probe(json!({"type": "tls", "address": format!("localhost:{}", good.port())})).await;
    assert!(error(&r).contains("UnknownIssuer"), "{r:?}");
    assert!(close_to(r.cert_expiry.unwrap(), expiry));

    let (chain, key, expiry) = pki.leaf(&["localhost"], 2);
    let expiring = tls_server(chain, key).await;
    let target = format!("localhost:{}", expiring.port());
    let r = probe(json!({"type": "tls", "address": target, "ca_file": ca})).await; // the older key name is accepted
    assert!(r.ok, "an expiring certificate is still valid: {r:?}");
    assert!(close_to(r.cert_expiry.unwrap(), expiry));
    let r = probe(json!({"type": "tls", "address": target, "ca": ca,
        "conditions": ["[CERTIFICATE_EXPIRATION] > 72h"]}))
    .await;
    assert!(
        error(&r).starts_with("condition failed: [CERTIFICATE_EXPIRATION] > 72h (actual: 1day 23h"),
        "{r:?}"
    );

    let (chain, key, _) = pki.leaf(&["other.example"], 90);
    let misnamed = tls_server(chain, key).await;
    let target = format!("localhost:{}", misnamed.port());
    let r = probe(json!({"type": "tls", "address": target, "ca": ca})).await;
    assert!(
        error(&r).contains("certificate not valid for name \"localhost\""),
        "{r:?}"
    );
    let r =
        probe(json!({"type": "tls", "address": target, "server_name": "other.example", "ca": ca}))
            .await;
    assert!(r.ok, "{r:?}");
    let r = probe(json!({"type": "tls", "address": target, "tls_verify": false})).await;
    assert!(r.ok, "verification off: {r:?}");
    assert!(r.cert_expiry.is_some());
}

// ---- TCP ----

#[tokio::test]
async fn tcp_connect_send_and_expect() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let _ = s.write_all(b"SSH-2.0-Lookout_test\r\n").await;
                let mut buf = [0u8; 64];
                if let Ok(n) = s.read(&mut buf).await {
                    let _ = s.write_all(&buf[..n]).await;
                }
            });
        }
    });
    let r = probe(json!({"type": "tcp", "address": a.to_string()})).await;
    assert!(r.ok && r.timings.connect_ms.is_some(), "{r:?}");
    let r = probe(json!({"type": "tcp", "address": a.to_string(), "expect": "SSH-"})).await;
    assert!(r.ok, "{r:?}");
    let r =
        probe(json!({"type": "tcp", "address": a.to_string(), "send": "PING\n", "expect": "PING"}))
            .await;
    assert!(r.ok, "{r:?}");
    let r = probe(json!({"type": "tcp", "address": a.to_string(), "expect": "220 ", "timeout": "500ms", "interval": "1s"})).await;
    assert_eq!(error(&r), "timed out after 500ms", "{r:?}");
    let r = probe(json!({"type": "tcp", "address": format!("127.0.0.1:{}", free_port())})).await;
    assert!(error(&r).contains("Connection refused"), "{r:?}");
}

// ---- DNS (dnsmasq) ----

/// Probes `check` until it succeeds (a server that answers over UDP has no port to wait for);
/// fails the test with the last result after 5 s.
async fn probe_until_ok(check: Value) {
    let mut last = None;
    for _ in 0..100 {
        let r = probe(check.clone()).await;
        if r.ok {
            return;
        }
        last = Some(r);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no good answer within 5 s: {last:?}");
}

/// dnsmasq on 127.0.0.1:`port`, answering only from its command line (`records`).
fn dnsmasq(port: u16, records: &[&str]) -> Server {
    let mut args = vec![
        "--keep-in-foreground".to_string(),
        "--conf-file=/dev/null".into(),
        "--pid-file=".into(),
        format!("--port={port}"),
        "--listen-address=127.0.0.1".into(),
        "--bind-interfaces".into(),
        "--no-resolv".into(),
        "--no-hosts".into(),
    ];
    args.extend(records.iter().map(|r| r.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    spawn("dnsmasq", &args)
}

#[tokio::test]
async fn dns_records_rcodes_and_expected_values() {
    let port = free_port();
    let _dns = dnsmasq(
        port,
        &[
            "--local=/lookout.test/",
            "--address=/a.lookout.test/10.1.2.3",
            "--address=/v6.lookout.test/fd00::7",
            "--mx-host=lookout.test,mail.lookout.test,10",
            "--txt-record=lookout.test,v=spf1 -all",
            "--cname=www.lookout.test,a.lookout.test",
        ],
    );
    let resolver = format!("127.0.0.1:{port}");
    // dnsmasq answers over UDP; wait until it does.
    probe_until_ok(json!({"type": "dns", "query": "a.lookout.test", "resolver": resolver, "timeout": "200ms", "interval": "1s"})).await;
    let dns = |extra: Value| {
        let mut v = json!({"type": "dns", "resolver": resolver});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        probe(v)
    };
    let r = dns(json!({"query": "a.lookout.test", "expected": ["10.1.2.3"], "conditions": ["[DNS_RCODE] == NOERROR", "[BODY] == 10.1.2.3"]})).await;
    assert!(r.ok, "{r:?}");
    assert!(r.timings.dns_ms.is_some());
    let r = dns(json!({"query": "a.lookout.test", "expected": ["10.9.9.9"]})).await;
    assert_eq!(
        error(&r),
        "expected \"10.9.9.9\" among the answers, got [10.1.2.3]"
    );
    let r =
        dns(json!({"query": "v6.lookout.test", "record": "AAAA", "expected": ["fd00::7"]})).await;
    assert!(r.ok, "{r:?}");
    let r = dns(
        json!({"query": "lookout.test", "record": "MX", "expected": ["10 mail.lookout.test."]}),
    )
    .await;
    assert!(r.ok, "{r:?}");
    let r =
        dns(json!({"query": "lookout.test", "record": "TXT", "expected": ["v=spf1 -all"]})).await;
    assert!(r.ok, "{r:?}");
    let r = dns(
        json!({"query": "www.lookout.test", "record": "CNAME", "expected": ["a.lookout.test"]}),
    )
    .await;
    assert!(r.ok, "{r:?}");
    // A server that is not there fails (within the check's timeout).
    let r = probe(json!({"type": "dns", "query": "a.lookout.test", "resolver": format!("127.0.0.1:{}", free_port()), "timeout": "1s"})).await;
    assert!(!r.ok, "{r:?}");
    let r = dns(json!({"query": "nope.lookout.test"})).await;
    assert_eq!(error(&r), "response code NXDOMAIN for nope.lookout.test. A");
    let r = dns(json!({"query": "nope.lookout.test", "rcode": "NXDOMAIN"})).await;
    assert!(r.ok, "{r:?}");
    let r =
        dns(json!({"query": "nope.lookout.test", "conditions": ["[DNS_RCODE] == NOERROR"]})).await;
    assert_eq!(
        error(&r),
        "condition failed: [DNS_RCODE] == NOERROR (actual: \"NXDOMAIN\")"
    );
}

/// A second dnsmasq, authoritative for the zone, for NS records (which `--address` cannot give).
#[tokio::test]
async fn dns_ns_records() {
    let port = free_port();
    let _dns = dnsmasq(
        port,
        &[
            "--auth-server=ns1.lookout.test,127.0.0.1",
            "--auth-zone=lookout.test",
            "--host-record=ns1.lookout.test,127.0.0.9",
        ],
    );
    let resolver = format!("127.0.0.1:{port}");
    let ns = json!({"type": "dns", "query": "lookout.test", "record": "NS",
        "resolver": resolver, "expected": ["ns1.lookout.test."], "timeout": "300ms", "interval": "1s"});
    probe_until_ok(ns).await;
}

#[tokio::test]
async fn at_most_max_concurrent_probes_run_at_once() {
    let a = http_server().await;
    // /slow answers after 5 s; each probe times out at 300 ms. Six probes, two at a time: three
    // rounds, so at least 900 ms; unlimited they would all end at 300 ms.
    let prober = Prober::new(2);
    let c = check(
        json!({"type": "http", "url": format!("http://{a}/slow"), "timeout": "300ms", "interval": "1s"}),
    );
    let started = std::time::Instant::now();
    let runs: Vec<_> = (0..6)
        .map(|_| {
            let (p, c) = (prober.clone(), c.clone());
            tokio::spawn(async move { p.probe(&c).await })
        })
        .collect();
    for r in runs {
        let r = r.await.unwrap();
        assert_eq!(error(&r), "timed out after 300ms");
        // Each probe's own time is its timeout, not its wait for a slot.
        assert!(r.latency_ms < 350.0, "{r:?}");
    }
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900), "took {took:?}");
}

// ---- PostgreSQL ----

fn pg_url() -> Option<String> {
    match std::env::var("LOOKOUT_TEST_PG_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            assert!(
                std::env::var("LOOKOUT_REQUIRE_PG").is_err(),
                "LOOKOUT_REQUIRE_PG is set but LOOKOUT_TEST_PG_URL is not"
            );
            eprintln!("no LOOKOUT_TEST_PG_URL: the postgres probe test needs scripts/test");
            None
        }
    }
}

#[tokio::test]
async fn postgres_connects_queries_and_reports_failures() {
    let Some(url) = pg_url() else { return };
    let r = probe(json!({"type": "postgres", "url": url})).await;
    assert!(r.ok, "{r:?}");
    assert!(r.timings.connect_ms.is_some());
    let r = probe(json!({"type": "postgres", "url": url, "query": "SELECT 40 + 2", "conditions": ["[BODY] == 42"]})).await;
    assert!(r.ok, "{r:?}");
    // TLS as the URL asks (the test server has a self-signed certificate).
    let tls = format!("{url}?sslmode=require");
    let r = probe(json!({"type": "postgres", "url": tls, "query": "SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()", "conditions": ["[BODY] == true"]})).await;
    assert!(r.ok, "{r:?}");
    let r = probe(json!({"type": "postgres", "url": url, "query": "SELECT * FROM no_such_table"}))
        .await;
    assert!(error(&r).contains("no_such_table"), "{r:?}");
    let missing_db = url.rsplit_once('/').unwrap().0.to_string() + "/no_such_db";
    let r = probe(json!({"type": "postgres", "url": missing_db})).await;
    assert!(error(&r).contains("no_such_db"), "{r:?}");
    let r = probe(json!({"type": "postgres", "url": format!("postgres://u:secret@127.0.0.1:{}/x", free_port())})).await;
    assert!(!r.ok && !error(&r).contains("secret"), "{r:?}");
}

// ---- Redis ----

#[tokio::test]
async fn redis_ping_with_and_without_auth() {
    let port = free_port();
    let _redis = spawn(
        "redis-server",
        &[
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--requirepass",
            "s3cret-pass",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
    );
    wait_tcp(port).await;
    let r =
        probe(json!({"type": "redis", "url": format!("redis://:s3cret-pass@127.0.0.1:{port}")}))
            .await;
    assert!(r.ok, "{r:?}");
    assert!(r.timings.ttfb_ms.is_some());
    let r = probe(json!({"type": "redis", "url": format!("redis://127.0.0.1:{port}")})).await;
    assert!(error(&r).contains("NOAUTH"), "{r:?}");
    let r =
        probe(json!({"type": "redis", "url": format!("redis://:wrong@127.0.0.1:{port}")})).await;
    assert!(!r.ok && !error(&r).contains("wrong"), "{r:?}");
}

// ---- SMTP (aiosmtpd) ----

#[tokio::test]
async fn smtp_banner_ehlo_and_starttls() {
    let pki = Pki::new();
    pki.leaf(&["localhost"], 30);
    let dir = pki.dir.path();
    let port = free_port();
    let _smtp = spawn(
        "python3",
        &[
            "-m",
            "aiosmtpd",
            "-n",
            "-c",
            "aiosmtpd.handlers.Sink",
            "-l",
            &format!("127.0.0.1:{port}"),
            "--tlscert",
            &dir.join("leaf.pem").display().to_string(),
            "--tlskey",
            &dir.join("leaf.key").display().to_string(),
            "--no-requiretls",
        ],
    );
    wait_tcp(port).await;
    let address = format!("localhost:{port}");
    let r = probe(json!({"type": "smtp", "address": address})).await;
    assert!(r.ok, "{r:?}");
    let r =
        probe(json!({"type": "smtp", "address": address, "starttls": true, "ca": pki.ca_file()}))
            .await;
    assert!(r.ok, "{r:?}");
    // Not trusted without the CA.
    let r = probe(json!({"type": "smtp", "address": address, "starttls": true})).await;
    assert!(!r.ok, "{r:?}");

    // A server without STARTTLS: asked for it, the probe fails and says so.
    let plain_port = free_port();
    let _plain = spawn(
        "python3",
        &[
            "-m",
            "aiosmtpd",
            "-n",
            "-c",
            "aiosmtpd.handlers.Sink",
            "-l",
            &format!("127.0.0.1:{plain_port}"),
        ],
    );
    wait_tcp(plain_port).await;
    let r = probe(
        json!({"type": "smtp", "address": format!("127.0.0.1:{plain_port}"), "starttls": true}),
    )
    .await;
    assert!(error(&r).contains("STARTTLS"), "{r:?}");
}

// ---- ICMP ----

/// Runs as root (as the test command does): the kernel lets root open an ICMP socket whatever
/// `ping_group_range` says. The refused case, as an unprivileged user, is in tests/ (it needs a
/// process of its own).
#[tokio::test]
async fn icmp_echo_to_loopback() {
    let r = probe(json!({"type": "icmp", "host": "127.0.0.1"})).await;
    assert!(r.ok, "{r:?}");
    assert!(r.timings.ttfb_ms.is_some());
    assert!(r.ok && r.latency_ms < 1000.0);
    // A name is resolved first.
    let r = probe(json!({"type": "icmp", "host": "localhost", "ip_version": "4"})).await;
    assert!(r.ok && r.timings.dns_ms.is_some(), "{r:?}");
}
