//! TLS on the agent's hop, end to end (issue #29): the real agent verifying the real
//! collector's `[server.tls]` with certificates made here ([`lookout_tests::tls`]): a CA, a
//! leaf for 127.0.0.1 and localhost, an expired leaf, a leaf for another name, a leaf from a
//! CA the agent does not trust; client certificates for agents (mTLS, enrolment included);
//! the warnings about plaintext; the built-in agent over TLS; the agent's `ca`, `cert` and
//! `key` files read again on `SIGHUP`. The collector's own side (renewal, SIGHUP, bad files,
//! the handshake's deadline) is `tls_server.rs`.

use lookout_tests::tls::*;
use lookout_tests::{READ_TOKEN, eventually, start_collector};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_ships_over_tls_and_names_why_it_refuses_a_collector() {
    let ca = Ca::new("Lookout test CA");
    let stranger = Ca::new("Someone else's CA");
    let pki = tempfile::tempdir().unwrap();
    std::fs::write(pki.path().join("ca.pem"), &ca.pem).unwrap();
    let ca_path = pki.path().join("ca.pem");
    let trusted = format!("ca = \"{}\"", ca_path.display());
    // Without `ca`: the system's roots, which do not hold the test's CA.
    let system_roots = String::new();
    let cases = [
        (
            "good",
            ca.leaf(&["localhost", "127.0.0.1"], 1, 2099),
            &trusted,
            None,
        ),
        (
            "expired",
            ca.leaf(&["localhost", "127.0.0.1"], 2, 2021),
            &trusted,
            Some("certificate expired"),
        ),
        (
            "wrong-name",
            ca.leaf(&["collector.example"], 3, 2099),
            &trusted,
            Some("name mismatch"),
        ),
        (
            "unknown-ca",
            stranger.leaf(&["localhost", "127.0.0.1"], 4, 2099),
            &trusted,
            Some("unknown issuer"),
        ),
        (
            "system-roots",
            ca.leaf(&["localhost", "127.0.0.1"], 5, 2099),
            &system_roots,
            Some("unknown issuer"),
        ),
    ];
    let mut running = Vec::new();
    for (name, leaf, keys, refusal) in cases {
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
            keys,
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
    // Waited for by their sentences: a status alone ("401", "403") also matches a log line
    // naming the collector's address when its port holds those digits (40315).
    let line = bare
        .wait_for_line("present a client certificate", WAIT)
        .unwrap();
    assert!(line.contains("401"), "{line}");
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
    let line = a2
        .wait_for_line("the client certificate names", WAIT)
        .unwrap();
    assert!(line.contains("403") && line.contains("a2"), "{line}");

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
    let goodbye = format!("{base}/v1/goodbye");
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
        // A goodbye too: another's cannot stop an agent (none here is accepted).
        (&plain, &post, &goodbye, Some(A1_TOKEN), None, 401),
        (&a1_client, &post, &goodbye, Some(A2_TOKEN), None, 403),
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
    // Every address with TLS: no warning either.
    let ca = Ca::new("Lookout test CA");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = ca.leaf(&["localhost"], 1, 2099).write(dir.path(), "c");
    let config = format!(
        "[server]\nlisten = \"0.0.0.0:0\"\ndata_dir = \"{}\"\n\
         [server.tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        dir.path().display(),
        cert.display(),
        key.display()
    );
    let (tls, _) = start_collector(dir.path(), &config).unwrap();
    // Started (start_collector saw it listening), and said nothing of plaintext.
    let log = tls.log_text();
    assert!(!log.contains("without [server.tls]"), "{log}");

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_makes_the_agent_read_its_ca_file_again_and_keeps_the_old_one_when_it_is_bad() {
    let ca = Ca::new("Lookout test CA");
    let stranger = Ca::new("Someone else's CA");
    let pki = tempfile::tempdir().unwrap();
    let (cert, key) = ca
        .leaf(&["localhost", "127.0.0.1"], 1, 2099)
        .write(pki.path(), "collector");
    let dir = tempfile::tempdir().unwrap();
    let (_collector, base) = tls_collector(dir.path(), &cert, &key, "", "");
    // The agent trusts the wrong CA at first: it cannot ship.
    let agent_ca = pki.path().join("agent-ca.pem");
    std::fs::write(&agent_ca, &stranger.pem).unwrap();
    let agent_dir = tempfile::tempdir().unwrap();
    let target = base.trim_start_matches("https://").to_string();
    let a = agent(
        agent_dir.path(),
        "a1",
        &token(A1_TOKEN),
        &base,
        &format!("ca = \"{}\"", agent_ca.display()),
        &target,
    );
    a.wait_for_line("TLS handshake failed: unknown issuer", WAIT)
        .unwrap();

    // The CA file replaced, the configuration file unchanged: SIGHUP reads the file again.
    std::fs::write(&agent_ca, &ca.pem).unwrap();
    a.signal("HUP").unwrap();
    a.wait_for_line("configuration reloaded", WAIT).unwrap();
    check_reported(&ca, &base, "reach-a1", &a).await;

    // A CA file that is no PEM: refused, saying which file; the agent ships on with the CA it
    // read before.
    std::fs::write(&agent_ca, "not a certificate\n").unwrap();
    a.signal("HUP").unwrap();
    let line = a.wait_for_line("configuration not reloaded", WAIT).unwrap();
    assert!(line.contains("agent-ca.pem"), "{line}");
    let results = || async {
        read_json(
            &ca,
            &format!("{base}/api/v1/checks/reach-a1/results?agent=a1"),
        )
        .await
        .ok()
        .and_then(|j| j["results"].as_array().map(Vec::len))
        .unwrap_or(0)
    };
    let before = results().await;
    eventually("results after the refused reload", WAIT, || async {
        Ok((results().await > before).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\nagent:\n{}", a.log_text()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_makes_the_agent_present_the_client_certificate_its_files_hold_now() {
    let ca = Ca::new("Lookout test CA");
    let agents_ca = Ca::new("Lookout agents CA");
    let stranger = Ca::new("Someone else's CA");
    let pki = tempfile::tempdir().unwrap();
    std::fs::write(pki.path().join("ca.pem"), &ca.pem).unwrap();
    std::fs::write(pki.path().join("agents-ca.pem"), &agents_ca.pem).unwrap();
    let (cert, key) = ca
        .leaf(&["localhost", "127.0.0.1"], 1, 2099)
        .write(pki.path(), "server");
    let dir = tempfile::tempdir().unwrap();
    let (_collector, base) = tls_collector(
        dir.path(),
        &cert,
        &key,
        &format!(
            "client_ca = \"{}\"",
            pki.path().join("agents-ca.pem").display()
        ),
        "",
    );
    // At first a1's files hold a certificate the collector does not accept.
    let (a1_cert, a1_key) = stranger.leaf(&["a1"], 10, 2099).write(pki.path(), "a1");
    let agent_dir = tempfile::tempdir().unwrap();
    let target = base.trim_start_matches("https://").to_string();
    let a = agent(
        agent_dir.path(),
        "a1",
        &token(A1_TOKEN),
        &base,
        &format!(
            "ca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"",
            pki.path().join("ca.pem").display(),
            a1_cert.display(),
            a1_key.display()
        ),
        &target,
    );
    a.wait_for_line("shipping failed; will retry", WAIT)
        .unwrap();

    // The files renewed in place by the agents' CA, the configuration unchanged: SIGHUP.
    agents_ca.leaf(&["a1"], 11, 2099).write(pki.path(), "a1");
    a.signal("HUP").unwrap();
    a.wait_for_line("configuration reloaded", WAIT).unwrap();
    check_reported(&ca, &base, "reach-a1", &a).await;
}
