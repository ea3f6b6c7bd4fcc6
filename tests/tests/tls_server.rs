//! The collector's certificate, end to end (issue #29): `[server.tls]` renewed on disk (in
//! place, by a certbot-style symlink swap) and on SIGHUP with no failed request, a bad new
//! file kept out, bad files at start, and the handshake's deadline. Certificates are made
//! here ([`lookout_tests::tls`]). The agent's side is `tls.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use lookout_tests::tls::*;
use lookout_tests::{Daemon, eventually};

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
