//! The `grpc`, `websocket` and `domain` checks end to end: the real agent runs them as local
//! checks against real peers and ships to the real collector, whose API says up or down.
//!
//! - gRPC: grpcio's own health service (`grpcio-health-checking`, PyPI), in the clear and over
//!   TLS with certificates made here, switched from SERVING to NOT_SERVING by the test.
//! - WebSocket: an echo server on the `websockets` package (PyPI), which says what it received.
//! - RDAP: a small http.server script answering RFC 9083 domain objects for two domains whose
//!   expiration dates the test sets (10 and 400 days away), found through a bootstrap file
//!   (RFC 9224) the test writes.
//!
//! Each result is compared with what the peer was set to or says it saw. The peers' Python is
//! `LOOKOUT_CHECKS_PYTHON`, else the virtual environment scripts/lib/checks.sh installs.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lookout_tests::tls::Ca;
use lookout_tests::{Daemon, check_status, eventually, get_json, start_collector};

const AGENT_TOKEN: &str = "checks-more-token-0123456789abcdef";
const WAIT: Duration = Duration::from_secs(30);

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("LOOKOUT_CHECKS_PYTHON") {
        return p.into();
    }
    let home = std::env::var_os("HOME").unwrap_or_default();
    let venv = PathBuf::from(home).join(".cache/lookout/checks/bin/python");
    assert!(
        venv.exists(),
        "{} is missing: scripts/test installs it (scripts/lib/checks.sh), or set LOOKOUT_CHECKS_PYTHON",
        venv.display()
    );
    venv
}

/// A peer script from tests/fixtures/checks, its output lines collected; killed when dropped.
struct Peer {
    child: Child,
    stdin: ChildStdin,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Peer {
    fn start(script: &str, args: &[&str]) -> Self {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/checks")
            .join(script);
        let mut child = Command::new(python())
            .arg(path)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out: Box<dyn std::io::Read + Send> = Box::new(child.stdout.take().unwrap());
        let err: Box<dyn std::io::Read + Send> = Box::new(child.stderr.take().unwrap());
        for stream in [out, err] {
            let sink = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    sink.lock().unwrap().push(line);
                }
            });
        }
        let stdin = child.stdin.take().unwrap();
        Self {
            child,
            stdin,
            lines,
        }
    }

    /// The first line containing `needle`, waited for.
    fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(l) = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(needle))
            {
                return l.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} from the peer; it said:\n{}",
                self.lines.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn port(&self) -> u16 {
        self.wait_for("listening ")
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }

    fn say(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
    }

    fn said(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A collector and an agent `edge-1` running checks locally.
struct Lookout {
    collector: Daemon,
    agent: Daemon,
    base: String,
}

/// Starts a collector and an agent `edge-1` running `checks` (TOML `[[checks]]` entries).
fn start(dir: &Path, checks: &str) -> Lookout {
    let (collector, base) = start_collector(
        dir,
        &lookout_tests::collector_toml(dir, 0, "edge-1", AGENT_TOKEN, ""),
    )
    .unwrap();
    let agent_dir = dir.join("agent");
    std::fs::create_dir_all(&agent_dir).unwrap();
    let path = agent_dir.join("agent.toml");
    std::fs::write(
        &path,
        format!(
            "name = \"edge-1\"\ncollector = \"{base}\"\ntoken = \"{AGENT_TOKEN}\"\n\
             data_dir = \"{}\"\n[host_metrics]\nenabled = false\n{checks}",
            agent_dir.display()
        ),
    )
    .unwrap();
    let agent = lookout_tests::start_agent(&path).unwrap();
    Lookout {
        collector,
        agent,
        base,
    }
}

impl Lookout {
    /// Waits for check `name` to be `status` and returns its newest result from edge-1.
    async fn settles(&self, name: &str, status: &str) -> serde_json::Value {
        let base = &self.base;
        eventually(&format!("{name} {status}"), WAIT, || async {
            Ok(check_status(base, name).await?.filter(|s| s == status))
        })
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{e}\nagent:\n{}\ncollector:\n{}",
                self.agent.log_text(),
                self.collector.log_text()
            )
        });
        let j = get_json(&format!("{base}/api/v1/checks/{name}/results?agent=edge-1"))
            .await
            .unwrap();
        j["results"]
            .as_array()
            .unwrap()
            .iter()
            .max_by_key(|r| r["time"].as_str().unwrap_or_default().to_string())
            .cloned()
            .unwrap()
    }
}

/// One check's TOML, probing every second.
fn check(name: &str, kind: &str, keys: &str) -> String {
    format!(
        "[[checks]]\nname = \"{name}\"\ntype = \"{kind}\"\ninterval = \"1s\"\ntimeout = \"1s\"\n{keys}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_health_follows_the_server_s_serving_status_in_the_clear_and_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let mut plain = Peer::start("health_server.py", &[]);
    let ca = Ca::new("checks-more test CA");
    let (cert, key) = ca.leaf(&["localhost"], 7, 2040).write(dir.path(), "grpc");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let tls = Peer::start(
        "health_server.py",
        &[cert.to_str().unwrap(), key.to_str().unwrap()],
    );
    let (port, tls_port) = (plain.port(), tls.port());
    let checks = [
        check("grpc-server", "grpc", &format!("url = \"grpc://127.0.0.1:{port}\"")),
        check(
            "grpc-orders",
            "grpc",
            &format!("url = \"grpc://127.0.0.1:{port}\"\nservice = \"lookout.Orders\""),
        ),
        check(
            "grpc-unknown",
            "grpc",
            &format!("url = \"grpc://127.0.0.1:{port}\"\nservice = \"lookout.Nothing\""),
        ),
        check(
            "grpcs-trusted",
            "grpc",
            &format!(
                "url = \"grpcs://localhost:{tls_port}\"\nca = \"{}\"\nconditions = [\"[BODY] == SERVING\", \"[CERTIFICATE_EXPIRATION] > 3000d\"]",
                ca_file.display()
            ),
        ),
        check(
            "grpcs-untrusted",
            "grpc",
            &format!("url = \"grpcs://localhost:{tls_port}\""),
        ),
    ]
    .concat();
    let lookout = start(dir.path(), &checks);

    for name in ["grpc-server", "grpc-orders", "grpcs-trusted"] {
        let r = lookout.settles(name, "up").await;
        assert_eq!(r["ok"], true, "{r}");
    }
    // grpcio answers a service it does not know with the status NOT_FOUND in its trailers and
    // no message (grpc_health/v1/health.py), as the protocol says.
    let r = lookout.settles("grpc-unknown", "down").await;
    assert_eq!(r["error"], "grpc-status 5 (NOT_FOUND)", "{r}");
    // Not the test's CA: the chain does not verify.
    let r = lookout.settles("grpcs-untrusted", "down").await;
    let error = r["error"].as_str().unwrap();
    assert!(error.starts_with("certificate: "), "{error}");
    assert!(error.contains("UnknownIssuer"), "{error}");

    plain.say("lookout.Orders NOT_SERVING");
    plain.wait_for("set lookout.Orders NOT_SERVING");
    let r = lookout.settles("grpc-orders", "down").await;
    assert_eq!(
        r["error"], "serving status NOT_SERVING, expected SERVING",
        "{r}"
    );
    // The server as a whole was not switched: still up.
    assert_eq!(
        check_status(&lookout.base, "grpc-server")
            .await
            .unwrap()
            .as_deref(),
        Some("up")
    );
    plain.say("lookout.Orders SERVING");
    plain.wait_for("set lookout.Orders SERVING");
    lookout.settles("grpc-orders", "up").await;
    plain.say("- NOT_SERVING");
    plain.wait_for("set - NOT_SERVING");
    let r = lookout.settles("grpc-server", "down").await;
    assert_eq!(
        r["error"], "serving status NOT_SERVING, expected SERVING",
        "{r}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_reply_is_tested_by_the_check_s_conditions() {
    let dir = tempfile::tempdir().unwrap();
    let echo = Peer::start("ws_echo.py", &[]);
    let url = format!("ws://127.0.0.1:{}/", echo.port());
    // Reserved, and nothing listens there.
    let closed = lookout_tests::free_port();
    let checks = [
        check(
            "ws-matching",
            "websocket",
            &format!("url = \"{url}\"\nsend = \"ping-7\"\nconditions = [\"[BODY] == ping-7\", \"[STATUS] == 101\"]"),
        ),
        check(
            "ws-other",
            "websocket",
            &format!("url = \"{url}\"\nsend = \"ping-8\"\nconditions = [\"[BODY] == pong\"]"),
        ),
        check(
            "ws-refused",
            "websocket",
            &format!("url = \"ws://127.0.0.1:{}/\"", closed.get()),
        ),
    ]
    .concat();
    let lookout = start(dir.path(), &checks);

    let r = lookout.settles("ws-matching", "up").await;
    assert_eq!(r["ok"], true, "{r}");
    let r = lookout.settles("ws-other", "down").await;
    // The echo server sent back what it got: the failed condition shows it.
    assert_eq!(
        r["error"], "condition failed: [BODY] == pong (actual: \"ping-8\")",
        "{r}"
    );
    // What the server says it received is what each check sent.
    echo.wait_for("got ping-7");
    echo.wait_for("got ping-8");
    assert!(
        echo.said()
            .iter()
            .filter(|l| l.starts_with("got "))
            .all(|l| l == "got ping-7" || l == "got ping-8"),
        "{:?}",
        echo.said()
    );
    let r = lookout.settles("ws-refused", "down").await;
    assert!(
        r["error"].as_str().unwrap().contains("Connection refused"),
        "{r}"
    );
}

/// A duration as humantime writes it in a failed condition (`9days 23h 59m 58s 12ms`).
fn humantime_duration(text: &str) -> Duration {
    let mut total = Duration::ZERO;
    for part in text.split_whitespace() {
        let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
        let n: u64 = digits.parse().unwrap();
        let unit = &part[digits.len()..];
        total += match unit {
            "days" | "day" => Duration::from_secs(n * 86_400),
            "h" => Duration::from_secs(n * 3600),
            "m" => Duration::from_secs(n * 60),
            "s" => Duration::from_secs(n),
            "ms" => Duration::from_millis(n),
            "us" => Duration::from_micros(n),
            "ns" => Duration::from_nanos(n),
            other => panic!("unit {other:?} in {text:?}"),
        };
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn domain_expiration_comes_from_the_rdap_server_the_bootstrap_names() {
    let dir = tempfile::tempdir().unwrap();
    let now = chrono::Utc::now();
    let soon = now + chrono::Duration::days(10);
    let later = now + chrono::Duration::days(400);
    let domains = dir.path().join("domains.json");
    std::fs::write(
        &domains,
        serde_json::json!({
            "soon.test": soon.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "later.test": later.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        })
        .to_string(),
    )
    .unwrap();
    let rdap = Peer::start("rdap_server.py", &[domains.to_str().unwrap()]);
    let bootstrap = dir.path().join("dns.json");
    std::fs::write(
        &bootstrap,
        serde_json::json!({
            "version": "1.0",
            "publication": now.to_rfc3339(),
            "services": [
                [["example"], ["https://rdap.invalid/"]],
                [["test"], [format!("http://127.0.0.1:{}/", rdap.port())]],
            ],
        })
        .to_string(),
    )
    .unwrap();
    let keys = |domain: &str| {
        format!(
            "domain = \"{domain}\"\nrdap_bootstrap = \"{}\"\nconditions = [\"[DOMAIN_EXPIRATION] > 30d\"]",
            bootstrap.display()
        )
    };
    let checks = [
        check("domain-soon", "domain", &keys("soon.test")),
        check("domain-later", "domain", &keys("later.test")),
        check("domain-unknown", "domain", &keys("nobody.test")),
        check("domain-no-rdap", "domain", &keys("example.org")),
    ]
    .concat();
    let lookout = start(dir.path(), &checks);

    let r = lookout.settles("domain-later", "up").await;
    assert_eq!(r["ok"], true, "{r}");
    let r = lookout.settles("domain-soon", "down").await;
    let error = r["error"].as_str().unwrap().to_string();
    let actual = error
        .strip_prefix("condition failed: [DOMAIN_EXPIRATION] > 30d (actual: ")
        .and_then(|a| a.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{error}"));
    // The time left the agent saw is what the server was set to, less the time since.
    let left = humantime_duration(actual);
    let set = (soon - now).to_std().unwrap();
    assert!(
        left <= set && set - left < Duration::from_secs(120),
        "set {set:?} ahead, the check saw {left:?}"
    );
    let r = lookout.settles("domain-unknown", "down").await;
    let port = rdap.port();
    assert_eq!(
        r["error"],
        format!(
            "http://127.0.0.1:{port}/domain/nobody.test answered 404: the registry has no nobody.test"
        ),
        "{r}"
    );
    let r = lookout.settles("domain-no-rdap", "down").await;
    assert_eq!(
        r["error"],
        format!(
            "the RDAP bootstrap registry ({}) lists no RDAP service for example.org",
            bootstrap.display()
        ),
        "{r}"
    );
    // The server's own log: the agent asked RFC 9082's path, for RDAP's media type.
    let asked = rdap.wait_for("GET /domain/soon.test");
    assert_eq!(asked, "GET /domain/soon.test accept=application/rdap+json");
}
