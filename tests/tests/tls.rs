//! TLS on the agent's hop, end to end (issue #29): the real collector serving `[server.tls]`,
//! the real agent verifying it, with certificates made here (rcgen) for each case: a CA, a
//! leaf for 127.0.0.1 and localhost, an expired leaf, a leaf for another name, a leaf from a
//! CA the agent does not trust, and client certificates for agents `a1` and `a2`.
//!
//! The oracle of "which certificate is served" is the DER of the leaf a new handshake sees,
//! compared with the leaf this test wrote (each renewal has its own serial number).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use lookout_tests::{Daemon, READ_TOKEN, eventually, start_collector};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SerialNumber, date_time_ymd,
};

const WAIT: Duration = Duration::from_secs(20);
const A1_TOKEN: &str = "tls-agent-a1-token-0123456789abcdef";
const A2_TOKEN: &str = "tls-agent-a2-token-0123456789abcdef";
const ENROLL_TOKEN: &str = "tls-fleet-enrol-token-0123456789abcdef";

/// A certificate authority that signs leaves.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf for `names` with serial `serial`, valid until `until` (a year).
    fn leaf(&self, names: &[&str], serial: u64, until: i32) -> Leaf {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.serial_number = Some(SerialNumber::from(serial));
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = date_time_ymd(until, 1, 1);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            pem: cert.pem(),
            der: cert.der().to_vec(),
            key: key.serialize_pem(),
        }
    }
}

/// A certificate and its key, PEM, and the certificate's DER.
#[derive(Clone)]
struct Leaf {
    pem: String,
    der: Vec<u8>,
    key: String,
}

impl Leaf {
    /// Writes `<name>.pem` and `<name>.key` into `dir`.
    fn write(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, &self.pem).unwrap();
        std::fs::write(&key, &self.key).unwrap();
        (cert, key)
    }
}

/// A collector serving `cert`/`key` over TLS on a free loopback port, knowing agents `a1` and
/// `a2`; `server_extra` goes into `[server.tls]`, `extra` at the end. Returns the daemon and
/// its `https://127.0.0.1:port` base.
fn tls_collector(
    dir: &Path,
    cert: &Path,
    key: &Path,
    server_extra: &str,
    extra: &str,
) -> (Daemon, String) {
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nread_tokens = [\"{READ_TOKEN}\"]\n\
         header_timeout = \"2s\"\n\
         [server.tls]\ncert = \"{}\"\nkey = \"{}\"\n{server_extra}\n\
         [[agents]]\nname = \"a1\"\ntoken = \"{A1_TOKEN}\"\n\
         [[agents]]\nname = \"a2\"\ntoken = \"{A2_TOKEN}\"\n{extra}",
        dir.display(),
        cert.display(),
        key.display()
    );
    let (daemon, base) = start_collector(dir, &config).unwrap();
    (daemon, base.replace("http://", "https://"))
}

/// An agent named `name` with the credential line `credential` (`token = ...` or
/// `enroll_token = ...`), shipping to `collector` with these extra top-level keys (`ca`,
/// `cert`, `key`), one local TCP check `reach-<name>` against `target`, host metrics off.
fn agent(
    dir: &Path,
    name: &str,
    credential: &str,
    collector: &str,
    keys: &str,
    target: &str,
) -> Daemon {
    let path = dir.join("agent.toml");
    std::fs::write(
        &path,
        format!(
            "name = \"{name}\"\ncollector = \"{collector}\"\n{credential}\n\
             data_dir = \"{}\"\n{keys}\n[host_metrics]\nenabled = false\n\
             [shipping]\nmax_backoff = \"1s\"\nassignments_interval = \"1s\"\n\
             [[checks]]\nname = \"reach-{name}\"\ntype = \"tcp\"\naddress = \"{target}\"\n\
             interval = \"1s\"\ntimeout = \"1s\"\n",
            dir.display()
        ),
    )
    .unwrap();
    lookout_tests::start_agent(&path).unwrap()
}

/// The agent's credential line for a configured token.
fn token(t: &str) -> String {
    format!("token = \"{t}\"")
}

/// A client that trusts `ca` only, reports the peer's certificate, and keeps connections
/// alive (or not, with `fresh`).
fn client(ca: &Ca, fresh: bool) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap()])
        .tls_info(true)
        .timeout(Duration::from_secs(10));
    if fresh {
        b = b.pool_max_idle_per_host(0);
    }
    b.build().unwrap()
}

/// The leaf certificate (DER) a new connection to `base` is served.
async fn served_leaf(ca: &Ca, base: &str) -> anyhow::Result<Vec<u8>> {
    let resp = client(ca, true)
        .get(format!("{base}/healthz"))
        .send()
        .await?;
    anyhow::ensure!(resp.status() == 200, "healthz: {}", resp.status());
    resp.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .map(<[u8]>::to_vec)
        .ok_or_else(|| anyhow::anyhow!("no peer certificate"))
}

/// The reader API's JSON over TLS.
async fn read_json(ca: &Ca, url: &str) -> anyhow::Result<serde_json::Value> {
    let resp = client(ca, false)
        .get(url)
        .bearer_auth(READ_TOKEN)
        .send()
        .await?;
    anyhow::ensure!(resp.status().is_success(), "{url}: {}", resp.status());
    Ok(resp.json().await?)
}

/// Waits until check `check` (run by `agent`) is up at the collector.
async fn check_reported(ca: &Ca, base: &str, check: &str, agent: &Daemon) {
    eventually(&format!("{check} reported over TLS"), WAIT, || async {
        let j = read_json(ca, &format!("{base}/api/v1/checks")).await?;
        Ok(j["checks"]
            .as_array()
            .and_then(|a| a.iter().find(|c| c["name"] == check))
            .filter(|c| c["status"] == "up")
            .map(|_| ()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\nagent:\n{}", agent.log_text()));
}

/// A metric's value in the collector's `/metrics`, read over TLS.
async fn metric(ca: &Ca, base: &str, name: &str) -> anyhow::Result<Option<f64>> {
    let text = client(ca, false)
        .get(format!("{base}/metrics"))
        .bearer_auth(READ_TOKEN)
        .send()
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_ships_over_tls_and_names_why_it_refuses_a_collector() {
    let ca = Ca::new("Lookout test CA");
    let stranger = Ca::new("Someone else's CA");
    let pki = tempfile::tempdir().unwrap();
    std::fs::write(pki.path().join("ca.pem"), &ca.pem).unwrap();
    let ca_path = pki.path().join("ca.pem");
    let cases = [
        ("good", ca.leaf(&["localhost", "127.0.0.1"], 1, 2099), None),
        (
            "expired",
            ca.leaf(&["localhost", "127.0.0.1"], 2, 2021),
            Some("certificate expired"),
        ),
        (
            "wrong-name",
            ca.leaf(&["collector.example"], 3, 2099),
            Some("name mismatch"),
        ),
        (
            "unknown-ca",
            stranger.leaf(&["localhost", "127.0.0.1"], 4, 2099),
            Some("unknown issuer"),
        ),
    ];
    let mut running = Vec::new();
    for (name, leaf, refusal) in cases {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = leaf.write(pki.path(), name);
        let (collector, base) = tls_collector(dir.path(), &cert, &key, "", "");
        let agent_dir = tempfile::tempdir().unwrap();
        let target = base.trim_start_matches("https://").to_string();
        let a = agent(
            agent_dir.path(),
            "a1",
            &token(A1_TOKEN),
            &base,
            &format!("ca = \"{}\"", ca_path.display()),
            &target,
        );
        running.push((name, refusal, collector, base, a, dir, agent_dir));
    }
    for (name, refusal, _collector, base, a, _dir, _agent_dir) in &running {
        match refusal {
            None => check_reported(&ca, base, "reach-a1", a).await,
            Some(reason) => {
                let line = a
                    .wait_for_line(&format!("TLS handshake failed: {reason}"), WAIT)
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                assert!(line.contains("WARN"), "{name}: {line}");
            }
        }
    }
    // Over plain HTTP the collector answers nothing: it serves HTTPS only on `listen`.
    let plain = running[0].3.replace("https://", "http://");
    let err = reqwest::get(format!("{plain}/healthz")).await;
    assert!(
        err.is_err() || !err.unwrap().status().is_success(),
        "plain HTTP was served"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_listing_two_https_collectors_ships_to_the_one_it_can_verify() {
    // docs/high-availability.md: `collector = ["https://a...", "https://b..."]`. The first
    // serves a certificate from a CA the agent does not trust: it is passed over, as a
    // collector that is down would be, and nothing is sent to it.
    let ca = Ca::new("Lookout test CA");
    let stranger = Ca::new("Someone else's CA");
    let names = ["localhost", "127.0.0.1"];
    let pki = tempfile::tempdir().unwrap();
    std::fs::write(pki.path().join("ca.pem"), &ca.pem).unwrap();
    let (bad_cert, bad_key) = stranger.leaf(&names, 1, 2099).write(pki.path(), "a");
    let (good_cert, good_key) = ca.leaf(&names, 2, 2099).write(pki.path(), "b");
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_a, a) = tls_collector(a_dir.path(), &bad_cert, &bad_key, "", "");
    let (_b, b) = tls_collector(b_dir.path(), &good_cert, &good_key, "", "");
    let agent_dir = tempfile::tempdir().unwrap();
    let path = agent_dir.path().join("agent.toml");
    std::fs::write(
        &path,
        format!(
            "name = \"a1\"\ncollector = [\"{a}\", \"{b}\"]\ntoken = \"{A1_TOKEN}\"\n\
             ca = \"{}\"\ndata_dir = \"{}\"\n[host_metrics]\nenabled = false\n\
             [shipping]\nmax_backoff = \"1s\"\nassignments_interval = \"1s\"\n\
             [[checks]]\nname = \"reach-a1\"\ntype = \"tcp\"\naddress = \"{}\"\n\
             interval = \"1s\"\ntimeout = \"1s\"\n",
            pki.path().join("ca.pem").display(),
            agent_dir.path().display(),
            b.trim_start_matches("https://"),
        ),
    )
    .unwrap();
    let agent = lookout_tests::start_agent(&path).unwrap();
    check_reported(&ca, &b, "reach-a1", &agent).await;
    // The untrusted collector was never given a batch (it has no record of a1's check). It is
    // read trusting its own CA, as its operator would.
    let checks = client(&stranger, false)
        .get(format!("{a}/api/v1/checks"))
        .bearer_auth(READ_TOKEN)
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert!(checks["checks"].is_array(), "{checks}");
    assert!(
        !checks.to_string().contains("reach-a1"),
        "the untrusted collector got a batch: {checks}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_served_without_a_failed_request_and_a_bad_one_is_not() {
    let ca = Ca::new("Lookout test CA");
    let names = ["localhost", "127.0.0.1"];
    let first = ca.leaf(&names, 100, 2099);
    // certbot's layout: live/ holds symlinks into archive/.
    let pki = tempfile::tempdir().unwrap();
    let archive = pki.path().join("archive");
    let live = pki.path().join("live");
    std::fs::create_dir_all(&archive).unwrap();
    std::fs::create_dir_all(&live).unwrap();
    let (c1, k1) = first.write(&archive, "1");
    let cert = live.join("fullchain.pem");
    let key = live.join("privkey.pem");
    std::os::unix::fs::symlink(&c1, &cert).unwrap();
    std::os::unix::fs::symlink(&k1, &key).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (mut collector, base) = tls_collector(dir.path(), &cert, &key, "", "");
    assert_eq!(served_leaf(&ca, &base).await.unwrap(), first.der);
    let expiry = metric(&ca, &base, "lookout_tls_certificate_expiry_seconds")
        .await
        .unwrap()
        .unwrap();
    assert!(expiry > 365.0 * 86400.0, "expiry gauge {expiry}");

    // Clients that keep requesting through every swap: one on a kept-alive connection, one
    // with a new connection (and handshake) for each request.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let mut loops = Vec::new();
    for fresh in [false, true] {
        let (stop, failures, done) = (stop.clone(), failures.clone(), done.clone());
        let http = client(&ca, fresh);
        let url = format!("{base}/healthz");
        loops.push(tokio::spawn(async move {
            let mut errors = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match http.get(&url).send().await {
                    Ok(r) if r.status() == 200 => {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => errors.push(format!("status {}", r.status())),
                    Err(e) => errors.push(format!("{e:?}")),
                }
                if !errors.is_empty() {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            }
            errors
        }));
    }

    // A secret manager: the files rewritten in place.
    let second = ca.leaf(&names, 200, 2099);
    std::fs::write(&c1, &second.pem).unwrap();
    std::fs::write(&k1, &second.key).unwrap();
    eventually("the rewritten certificate served", WAIT, || async {
        Ok((served_leaf(&ca, &base).await? == second.der).then_some(()))
    })
    .await
    .unwrap();

    // certbot: new files in archive/, the live links replaced by a rename.
    let third = ca.leaf(&names, 300, 2099);
    let (c3, k3) = third.write(&archive, "3");
    for (target, link) in [(&k3, &key), (&c3, &cert)] {
        let tmp = live.join("new-link");
        std::os::unix::fs::symlink(target, &tmp).unwrap();
        std::fs::rename(&tmp, link).unwrap();
    }
    eventually("the certbot-renewed certificate served", WAIT, || async {
        Ok((served_leaf(&ca, &base).await? == third.der).then_some(()))
    })
    .await
    .unwrap();

    stop.store(true, Ordering::Relaxed);
    for l in loops {
        let errors = l.await.unwrap();
        assert!(
            errors.is_empty(),
            "requests failed through the swap: {errors:?}"
        );
    }
    assert_eq!(failures.load(Ordering::Relaxed), 0);
    assert!(done.load(Ordering::Relaxed) > 10, "the clients hardly ran");

    // A half-written certificate: not served, the old one stays, and the operator is told.
    std::fs::write(&c3, &third.pem[..third.pem.len() / 2]).unwrap();
    collector
        .wait_for_line("TLS certificate not reloaded", WAIT)
        .unwrap();
    assert_eq!(served_leaf(&ca, &base).await.unwrap(), third.der);
    let failed = metric(&ca, &base, "lookout_tls_certificate_reload_failures_total")
        .await
        .unwrap()
        .unwrap();
    assert!(failed >= 1.0, "{failed}");
    // A certificate whose key is another's: the same.
    let fourth = ca.leaf(&names, 400, 2099);
    std::fs::write(&c3, &fourth.pem).unwrap();
    collector
        .wait_for_line("does not fit the certificate", WAIT)
        .unwrap();
    assert_eq!(served_leaf(&ca, &base).await.unwrap(), third.der);
    // SIGHUP reads the files too: still the mismatched pair, so one more failure.
    let before = metric(&ca, &base, "lookout_tls_certificate_reload_failures_total")
        .await
        .unwrap()
        .unwrap();
    collector.signal("HUP").unwrap();
    eventually("SIGHUP re-read the files", WAIT, || async {
        let now = metric(&ca, &base, "lookout_tls_certificate_reload_failures_total").await?;
        Ok(now.filter(|n| *n > before).map(|_| ()))
    })
    .await
    .unwrap();
    assert!(collector.log_text().contains("SIGHUP"));
    // The matching key arrives: served.
    std::fs::write(&k3, &fourth.key).unwrap();
    eventually("the repaired pair served", WAIT, || async {
        Ok((served_leaf(&ca, &base).await? == fourth.der).then_some(()))
    })
    .await
    .unwrap();
    collector.signal("TERM").unwrap();
    assert!(collector.wait_exit(WAIT).unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_serves_a_renewed_certificate_the_watch_cannot_see() {
    let ca = Ca::new("Lookout test CA");
    let names = ["localhost", "127.0.0.1"];
    let first = ca.leaf(&names, 1, 2099);
    // The collector reads served/; the renewal is written through hard links in elsewhere/,
    // a folder it does not watch, so the files change without a watch event: only SIGHUP
    // can make the collector read them (the oracle that it was SIGHUP, not the watch).
    let pki = tempfile::tempdir().unwrap();
    let served = pki.path().join("served");
    let elsewhere = pki.path().join("elsewhere");
    std::fs::create_dir_all(&served).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    let (cert, key) = first.write(&served, "c");
    let (cert_link, key_link) = (elsewhere.join("c.pem"), elsewhere.join("c.key"));
    std::fs::hard_link(&cert, &cert_link).unwrap();
    std::fs::hard_link(&key, &key_link).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (mut collector, base) = tls_collector(dir.path(), &cert, &key, "", "");
    assert_eq!(served_leaf(&ca, &base).await.unwrap(), first.der);

    let second = ca.leaf(&names, 2, 2099);
    // In place (truncate and write): the same inodes, so served/ holds the new pair too.
    std::fs::write(&key_link, &second.key).unwrap();
    std::fs::write(&cert_link, &second.pem).unwrap();
    assert_eq!(std::fs::read_to_string(&cert).unwrap(), second.pem);
    collector.signal("HUP").unwrap();
    eventually(
        "the renewed certificate served after SIGHUP",
        WAIT,
        || async { Ok((served_leaf(&ca, &base).await? == second.der).then_some(())) },
    )
    .await
    .unwrap();
    let line = collector
        .wait_for_line("TLS certificate reloaded", WAIT)
        .unwrap();
    assert!(line.contains("SIGHUP"), "{line}");
    assert!(
        !collector.log_text().contains("file change"),
        "{}",
        collector.log_text()
    );
    collector.signal("TERM").unwrap();
    assert!(collector.wait_exit(WAIT).unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_certificate_at_start_is_a_clear_start_up_error() {
    let ca = Ca::new("Lookout test CA");
    let pki = tempfile::tempdir().unwrap();
    let good = ca.leaf(&["localhost"], 1, 2099);
    let other = ca.leaf(&["localhost"], 2, 2099);
    let (cert, key) = good.write(pki.path(), "good");
    let garbage = pki.path().join("garbage.pem");
    std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap();
    let (_, other_key) = other.write(pki.path(), "other");
    let cases = [
        (garbage.clone(), key.clone(), "garbage.pem is not valid PEM"),
        (pki.path().join("missing.pem"), key.clone(), "cannot read"),
        (cert.clone(), other_key, "does not fit the certificate"),
        (cert.clone(), cert.clone(), "holds no private key"),
    ];
    for (cert, key, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n[server.tls]\ncert = \"{}\"\nkey = \"{}\"\n",
            dir.path().display(),
            cert.display(),
            key.display()
        );
        let path = dir.path().join("collector.toml");
        std::fs::write(&path, config).unwrap();
        let mut d = Daemon::start(
            &lookout_tests::bin("lookout-collector"),
            &["--config", path.to_str().unwrap()],
            &[],
        )
        .unwrap();
        let status = d.wait_exit(WAIT).unwrap();
        assert!(!status.success(), "{want}: started");
        let log = d.log_text();
        assert!(
            log.contains("[server.tls]") && log.contains(want),
            "{want} not in {log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_does_not_hold_a_tls_connection_past_the_header_timeout() {
    use tokio::io::AsyncReadExt as _;
    let ca = Ca::new("Lookout test CA");
    let pki = tempfile::tempdir().unwrap();
    let (cert, key) = ca.leaf(&["localhost"], 1, 2099).write(pki.path(), "c");
    let dir = tempfile::tempdir().unwrap();
    let (_collector, base) = tls_collector(dir.path(), &cert, &key, "", "");
    let addr = base.trim_start_matches("https://").to_string();
    let started = std::time::Instant::now();
    let mut silent = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut buf = [0u8; 64];
    // header_timeout is 2 s: closed after it (EOF or reset), not held.
    let read = tokio::time::timeout(Duration::from_secs(10), silent.read(&mut buf)).await;
    let waited = started.elapsed();
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "the silent connection was not closed: {read:?}"
    );
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(6),
        "closed after {waited:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_binds_the_client_certificate_to_the_agent_its_token_names() {
    let ca = Ca::new("Lookout test CA");
    let agents_ca = Ca::new("Lookout agents CA");
    let stranger = Ca::new("Someone else's CA");
    let pki = tempfile::tempdir().unwrap();
    std::fs::write(pki.path().join("ca.pem"), &ca.pem).unwrap();
    std::fs::write(pki.path().join("agents-ca.pem"), &agents_ca.pem).unwrap();
    let (cert, key) = ca
        .leaf(&["localhost", "127.0.0.1"], 1, 2099)
        .write(pki.path(), "server");
    let (a1_cert, a1_key) = agents_ca.leaf(&["a1"], 10, 2099).write(pki.path(), "a1");
    let (a3_cert, a3_key) = agents_ca.leaf(&["a3"], 12, 2099).write(pki.path(), "a3");
    let a1_stranger = stranger.leaf(&["a1"], 11, 2099);
    let dir = tempfile::tempdir().unwrap();
    let (_collector, base) = tls_collector(
        dir.path(),
        &cert,
        &key,
        &format!(
            "client_ca = \"{}\"",
            pki.path().join("agents-ca.pem").display()
        ),
        &format!("[enrollment]\ntoken = \"{ENROLL_TOKEN}\"\n"),
    );
    let target = base.trim_start_matches("https://").to_string();
    let ca_key = format!("ca = \"{}\"", pki.path().join("ca.pem").display());
    let with_a1_cert = format!(
        "{ca_key}\ncert = \"{}\"\nkey = \"{}\"",
        a1_cert.display(),
        a1_key.display()
    );

    // a1 with its certificate ships.
    let a1_dir = tempfile::tempdir().unwrap();
    let a1 = agent(
        a1_dir.path(),
        "a1",
        &token(A1_TOKEN),
        &base,
        &with_a1_cert,
        &target,
    );
    check_reported(&ca, &base, "reach-a1", &a1).await;

    // a3 enrols with the fleet token over mTLS, under the name its certificate gives, and
    // ships on the credential it was given (bound to the same certificate).
    let a3_dir = tempfile::tempdir().unwrap();
    let a3 = agent(
        a3_dir.path(),
        "a3",
        &format!("enroll_token = \"{ENROLL_TOKEN}\""),
        &base,
        &format!(
            "{ca_key}\ncert = \"{}\"\nkey = \"{}\"",
            a3_cert.display(),
            a3_key.display()
        ),
        &target,
    );
    check_reported(&ca, &base, "reach-a3", &a3).await;
    let a3_credential = std::fs::read_to_string(a3_dir.path().join("credential")).unwrap();
    let a3_credential = a3_credential.trim();

    // a1 without a certificate: 401, saying what to set.
    let bare_dir = tempfile::tempdir().unwrap();
    let bare = agent(
        bare_dir.path(),
        "a1",
        &token(A1_TOKEN),
        &base,
        &ca_key,
        &target,
    );
    bare.wait_for_line("401", WAIT).unwrap();
    bare.wait_for_line("present a client certificate", WAIT)
        .unwrap();
    // a2 with a1's certificate: 403, naming both.
    let a2_dir = tempfile::tempdir().unwrap();
    let a2 = agent(
        a2_dir.path(),
        "a2",
        &token(A2_TOKEN),
        &base,
        &with_a1_cert,
        &target,
    );
    let line = a2.wait_for_line("403", WAIT).unwrap();
    assert!(
        line.contains("the client certificate names") && line.contains("a2"),
        "{line}"
    );

    // The same with a plain client, for each route level: agent routes need the certificate
    // of their agent; the status page and the reader API take connections without one.
    let plain = client(&ca, true);
    let with_cert = |leaf_pem: &str, key_pem: &str| {
        reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap()])
            .identity(
                reqwest::Identity::from_pem(format!("{leaf_pem}\n{key_pem}").as_bytes()).unwrap(),
            )
            .pool_max_idle_per_host(0)
            .build()
            .unwrap()
    };
    let a1_pem = std::fs::read_to_string(&a1_cert).unwrap();
    let a1_key_pem = std::fs::read_to_string(&a1_key).unwrap();
    let a1_client = with_cert(&a1_pem, &a1_key_pem);
    let assignments = format!("{base}/v1/assignments");
    let ingest = format!("{base}/v1/ingest");
    let checks = format!("{base}/api/v1/checks");
    let enroll = format!("{base}/v1/enroll");
    let home = format!("{base}/");
    let (get, post) = (reqwest::Method::GET, reqwest::Method::POST);
    let (enrol_a1, enrol_a4) = (Some(r#"{"name": "a1"}"#), Some(r#"{"name": "a4"}"#));
    let cases = [
        // Agent routes: the token's agent must be the certificate's.
        (&plain, &get, &assignments, Some(A1_TOKEN), None, 401),
        (&a1_client, &get, &assignments, Some(A2_TOKEN), None, 403),
        (&a1_client, &get, &assignments, Some(A1_TOKEN), None, 200),
        (&a1_client, &get, &assignments, None, None, 401),
        (&plain, &post, &ingest, Some(A1_TOKEN), None, 401),
        (&a1_client, &post, &ingest, Some(A2_TOKEN), None, 403),
        // An enrolled agent's credential is bound the same way.
        (&plain, &get, &assignments, Some(a3_credential), None, 401),
        (
            &a1_client,
            &get,
            &assignments,
            Some(a3_credential),
            None,
            403,
        ),
        // Past the credentials: the empty body is what is refused.
        (&a1_client, &post, &ingest, Some(A1_TOKEN), None, 400),
        // Enrolment: under the certificate's name only.
        (&plain, &post, &enroll, Some(ENROLL_TOKEN), enrol_a4, 401),
        (
            &a1_client,
            &post,
            &enroll,
            Some(ENROLL_TOKEN),
            enrol_a4,
            403,
        ),
        // Past the certificate: a1 is configured already.
        (
            &a1_client,
            &post,
            &enroll,
            Some(ENROLL_TOKEN),
            enrol_a1,
            409,
        ),
        // Public and reader routes: no certificate needed, their credentials as ever.
        (&plain, &get, &home, None, None, 200),
        (&plain, &get, &checks, None, None, 401),
        (&plain, &get, &checks, Some(READ_TOKEN), None, 200),
        (&a1_client, &get, &checks, Some(READ_TOKEN), None, 200),
    ];
    for (http, method, url, token, body, want) in cases {
        let mut req = http.request(method.clone(), url.as_str());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap();
        assert_eq!(status, want, "{method} {url} with {token:?}: {body}");
    }
    // A certificate from a CA that is not client_ca fails the handshake, whoever it names.
    let stranger_client = with_cert(&a1_stranger.pem, &a1_stranger.key);
    let r = stranger_client
        .get(&assignments)
        .bearer_auth(A1_TOKEN)
        .send()
        .await;
    assert!(r.is_err(), "a stranger's certificate was taken: {r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_beyond_loopback_is_warned_about_on_both_sides() {
    // The collector on every address, without TLS.
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[server]\nlisten = \"0.0.0.0:0\"\ndata_dir = \"{}\"\n[[agents]]\nname = \"a1\"\ntoken = \"{A1_TOKEN}\"\n",
        dir.path().display()
    );
    let (collector, _) = start_collector(dir.path(), &config).unwrap();
    let line = collector
        .wait_for_line("without [server.tls]", WAIT)
        .unwrap();
    for exposed in ["agent tokens", "database passwords", "admin login sessions"] {
        assert!(line.contains(exposed), "{exposed} not in {line}");
    }
    // A loopback collector: no warning.
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n",
        dir.path().display()
    );
    let (quiet, _) = start_collector(dir.path(), &config).unwrap();
    assert!(!quiet.log_text().contains("without [server.tls]"));

    // Agents: http:// to another machine warns once at start and sets the gauge; to loopback
    // neither. An agent that is to enrol warns before its first attempt (the fleet token is
    // what would cross in clear), and while it still tries to enrol.
    let dead = lookout_tests::free_port();
    let remote = "http://192.0.2.10:7700".to_string();
    let cases = [
        (
            remote.clone(),
            format!("token = \"{A1_TOKEN}\""),
            "agent started",
            true,
        ),
        (
            format!("http://127.0.0.1:{dead}"),
            format!("token = \"{A1_TOKEN}\""),
            "agent started",
            false,
        ),
        (
            remote,
            format!("enroll_token = \"{ENROLL_TOKEN}\""),
            "cannot enrol yet",
            true,
        ),
    ];
    for (collector, credential, running, plaintext) in cases {
        let agent_dir = tempfile::tempdir().unwrap();
        let port = lookout_tests::free_port();
        let path = agent_dir.path().join("agent.toml");
        std::fs::write(
            &path,
            format!(
                "name = \"a1\"\ncollector = \"{collector}\"\n{credential}\n\
                 data_dir = \"{}\"\n[host_metrics]\nenabled = false\n\
                 [shipping]\nmax_backoff = \"1s\"\nrequest_timeout = \"1s\"\n\
                 assignments_interval = \"1s\"\n[telemetry]\nmetrics_listen = \"127.0.0.1:{}\"\n",
                agent_dir.path().display(),
                port.get()
            ),
        )
        .unwrap();
        let a = lookout_tests::start_agent(&path).unwrap();
        a.wait_for_line(running, WAIT).unwrap();
        let text = reqwest::get(format!("http://127.0.0.1:{}/metrics", port.get()))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let want = format!("lookout_agent_plaintext_collector {}", u8::from(plaintext));
        assert!(text.contains(&want), "{collector}: {want} not in {text}");
        // Once: still once after the agent failed to reach its collector twice.
        if plaintext {
            let retry = if credential.starts_with("token") {
                "cannot fetch assignments"
            } else {
                "cannot enrol yet"
            };
            eventually("two failed attempts", WAIT, || async {
                Ok((a.log_text().matches(retry).count() >= 2).then_some(()))
            })
            .await
            .unwrap_or_else(|e| panic!("{collector}: {e}\n{}", a.log_text()));
        }
        let log = a.log_text();
        assert_eq!(
            log.matches("cross the network in clear").count(),
            usize::from(plaintext),
            "{collector} with {credential}: {log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_built_in_agent_reaches_its_collector_over_tls_even_with_client_certificates_required()
{
    let ca = Ca::new("Lookout test CA");
    let agents_ca = Ca::new("Lookout agents CA");
    let pki = tempfile::tempdir().unwrap();
    std::fs::write(pki.path().join("agents-ca.pem"), &agents_ca.pem).unwrap();
    // A certificate for a public name, as in production: not for the loopback the built-in
    // agent connects to.
    let (cert, key) = ca
        .leaf(&["status.example.com", "127.0.0.1"], 1, 2099)
        .write(pki.path(), "server");
    let dir = tempfile::tempdir().unwrap();
    let (collector, base) = tls_collector(
        dir.path(),
        &cert,
        &key,
        &format!(
            "client_ca = \"{}\"",
            pki.path().join("agents-ca.pem").display()
        ),
        "[local_agent]\nname = \"local\"\n[local_agent.host_metrics]\ninterval = \"1s\"\n",
    );
    eventually("the local agent's host metrics", WAIT, || async {
        let j = read_json(&ca, &format!("{base}/api/v1/hosts")).await?;
        Ok(j["hosts"]
            .as_array()
            .and_then(|a| a.iter().find(|h| h["name"] == "local"))
            .and_then(|h| h["metrics"].as_array())
            .filter(|m| !m.is_empty())
            .map(|_| ()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\ncollector:\n{}", collector.log_text()));
}
