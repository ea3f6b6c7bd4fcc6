//! `GET /install.sh` and `GET /downloads/{file}` through the router: the script carries the
//! collector's address (from `[server] public_url`, else a plain `Host` header only) and its
//! CA; a binary is served byte for byte with a SHA-256 that `sha256sum` (an independent
//! implementation) agrees with; a missing architecture is 404 with where to put it; neither
//! route asks for a credential, and a credential changes nothing (docs/security.md).
//! `tests/tests/install.rs` runs the script itself in a Debian root.

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use tower::ServiceExt;

const ADMIN: &str = "install-admin-token-0123456789";

async fn get(
    state: &std::sync::Arc<lookout_collector::state::AppState>,
    path: &str,
    host: Option<&str>,
    token: Option<&str>,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let mut req = Request::builder().uri(path);
    if let Some(h) = host {
        req = req.header(header::HOST, h);
    }
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let resp = lookout_collector::router(state.clone())
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 30)
        .await
        .unwrap()
        .to_vec();
    (status, headers, body)
}

fn text(body: &[u8]) -> String {
    String::from_utf8_lossy(body).into_owned()
}

#[tokio::test]
async fn the_script_names_this_collector_from_public_url_or_a_plain_host_only() {
    let dir = tempfile::tempdir().unwrap();
    let state = support::collector_state(dir.path(), "").await;
    for token in [
        None,
        Some(ADMIN),
        Some("not-a-token-of-this-collector-0000"),
    ] {
        let (status, h, body) = get(&state, "/install.sh", Some("c.example:7700"), token).await;
        assert_eq!(status, StatusCode::OK, "{token:?}: {}", text(&body));
        assert_eq!(h[header::CACHE_CONTROL], "no-store");
        let script = text(&body);
        assert!(script.starts_with("#!/bin/sh\n"), "{script}");
        assert!(
            script.contains("\nLOOKOUT_URL='http://c.example:7700'\n"),
            "{script}"
        );
        assert!(script.contains("\nLOOKOUT_CA=''\n"));
    }
    for host in ["c.example:7700'; reboot; '", "$(id)", "a b", "x\"y"] {
        let (status, _, body) = get(&state, "/install.sh", Some(host), None).await;
        let body = text(&body);
        assert_eq!(status, StatusCode::BAD_REQUEST, "{host:?}: {body}");
        assert!(body.contains("[server] public_url"), "{body}");
    }
    let (status, _, body) = get(&state, "/install.sh", None, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{}", text(&body));

    // With public_url, the Host header is not read.
    let state = support::collector_state(
        dir.path(),
        "[server]\npublic_url = \"https://lookout.example.com/\"\n",
    )
    .await;
    let (status, _, body) = get(&state, "/install.sh", Some("evil.example"), None).await;
    assert_eq!(status, StatusCode::OK);
    let script = text(&body);
    assert!(
        script.contains("\nLOOKOUT_URL='https://lookout.example.com'\n"),
        "{script}"
    );
    assert!(!script.contains("evil.example"));
}

#[tokio::test]
async fn the_script_carries_the_agent_ca_and_says_when_it_cannot() {
    let dir = tempfile::tempdir().unwrap();
    let ca = rcgen::generate_simple_self_signed(vec!["ca.example".into()]).unwrap();
    let pem = ca.cert.pem();
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, &pem).unwrap();
    let config = format!("[install]\nagent_ca = \"{}\"\n", path.display());
    let state = support::collector_state(dir.path(), &config).await;
    let (status, _, body) = get(&state, "/install.sh", Some("127.0.0.1:7700"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        text(&body).contains(&format!("\nLOOKOUT_CA='{pem}'\n")),
        "the bundle, whole, quoted"
    );
    // Replaced on disk by something that is no CA: refused, not served.
    std::fs::write(&path, "not a certificate\n").unwrap();
    let (status, _, body) = get(&state, "/install.sh", Some("127.0.0.1:7700"), None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        text(&body).contains("[install] agent_ca"),
        "{}",
        text(&body)
    );
}

/// `sha256sum FILE`'s digest.
fn sha256sum(path: &std::path::Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum (coreutils)");
    assert!(out.status.success());
    text(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn binaries_are_served_whole_with_their_checksum_and_a_missing_one_says_where_to_put_it() {
    let dir = tempfile::tempdir().unwrap();
    let bins = dir.path().join("bins");
    std::fs::create_dir(&bins).unwrap();
    // 3 MiB and a bit, not a multiple of the read size.
    let bytes: Vec<u8> = (0..3 * 1024 * 1024 + 12_345)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(bins.join("lookout-agent-linux-aarch64"), &bytes).unwrap();
    let config = format!("[install]\nbinaries = \"{}\"\n", bins.display());
    let state = support::collector_state(dir.path(), &config).await;
    for token in [None, Some(ADMIN)] {
        let (status, h, body) = get(
            &state,
            "/downloads/lookout-agent-linux-aarch64",
            None,
            token,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(h[header::CONTENT_LENGTH], bytes.len().to_string().as_str());
        assert_eq!(h[header::CONTENT_TYPE], "application/octet-stream");
        assert!(body == bytes, "the file, byte for byte");
        let (status, _, sum) = get(
            &state,
            "/downloads/lookout-agent-linux-aarch64.sha256",
            None,
            token,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            text(&sum),
            format!(
                "{}  lookout-agent-linux-aarch64\n",
                sha256sum(&bins.join("lookout-agent-linux-aarch64"))
            )
        );
    }
    // Gzip is not applied to a binary, even for a client that takes it.
    let resp = lookout_collector::router(state.clone())
        .oneshot(
            Request::builder()
                .uri("/downloads/lookout-agent-linux-aarch64")
                .header(header::ACCEPT_ENCODING, "gzip")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert!(resp.headers().get(header::CONTENT_ENCODING).is_none());

    let (status, _, body) = get(&state, "/downloads/lookout-agent-linux-riscv64", None, None).await;
    let body = text(&body);
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body.contains(&format!(
            "put the agent built for it at {}",
            bins.join("lookout-agent-linux-riscv64").display()
        )) && body.contains("[install] binaries"),
        "{body}"
    );
    for bad in [
        "/downloads/lookout-collector",
        "/downloads/lookout-agent-linux-..%2Fx",
        "/downloads/lookout-agent-linux-",
    ] {
        let (status, _, body) = get(&state, bad, None, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{bad}: {}", text(&body));
    }
}
