//! The collector names the batch versions it reads on every answer to an agent, refusals
//! included, and refuses a batch of another version with 400 and that header: what an agent of
//! another release needs to pick its version, and to keep a batch refused for it
//! (lookout_protocol::version).

mod support;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use lookout_protocol::http::VERSIONS_HEADER;
use lookout_protocol::version::Versions;
use lookout_protocol::{Batch, Encoding, PROTOCOL_VERSION, encode_batch};
use tower::ServiceExt;

const TOKEN: &str = "web-1-token-0123456789abcdef";
const READ: &str = "versions-read-token-0123456789";

const CONFIG: &str = r#"
[server]
read_tokens = ["versions-read-token-0123456789"]

[[agents]]
name = "web-1"
token = "web-1-token-0123456789abcdef"
"#;

async fn call(
    state: &std::sync::Arc<lookout_collector::state::AppState>,
    req: Request<Body>,
) -> (StatusCode, HeaderMap, String) {
    let resp = lookout_collector::router(state.clone())
        .oneshot(req)
        .await
        .unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

/// The versions an answer advertises, read as an agent reads them.
fn advertised(headers: &HeaderMap) -> Versions {
    let value = headers
        .get(VERSIONS_HEADER)
        .unwrap_or_else(|| panic!("no {VERSIONS_HEADER} in {headers:?}"));
    Versions::parse(value.to_str().unwrap()).unwrap()
}

fn ingest(token: &str, version: u32, id: &str) -> Request<Body> {
    let batch = Batch {
        version,
        agent: "web-1".into(),
        batch_id: id.into(),
        records: vec![],
    };
    Request::post("/v1/ingest")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_ENCODING, "zstd")
        .body(Body::from(encode_batch(&batch, Encoding::Zstd).unwrap()))
        .unwrap()
}

#[tokio::test]
async fn every_answer_to_an_agent_names_the_versions_read() {
    let dir = tempfile::tempdir().unwrap();
    let state = support::collector_state(dir.path(), CONFIG).await;
    // What this build reads, independently of Versions::supported: 1 up to PROTOCOL_VERSION.
    let expected: Vec<u32> = (1..=PROTOCOL_VERSION).collect();

    let assignments = |token: &str, etag: Option<&str>| {
        let mut r = Request::get("/v1/assignments")
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        if let Some(e) = etag {
            r = r.header(header::IF_NONE_MATCH, e);
        }
        r.body(Body::empty()).unwrap()
    };
    let (s, h, _) = call(&state, assignments(TOKEN, None)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(advertised(&h).as_slice(), expected);
    let etag = h[header::ETAG].to_str().unwrap().to_string();
    let (s, h, _) = call(&state, assignments(TOKEN, Some(&etag))).await;
    assert_eq!(s, StatusCode::NOT_MODIFIED);
    assert_eq!(advertised(&h).as_slice(), expected);
    let (s, h, _) = call(&state, assignments("not-a-token-0123456789abcdef", None)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(advertised(&h).as_slice(), expected);

    let (s, h, body) = call(&state, ingest(TOKEN, 1, "v1")).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(advertised(&h).as_slice(), expected);

    let goodbye = Request::post("/v1/goodbye")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    let (s, h, _) = call(&state, goodbye).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(advertised(&h).as_slice(), expected);

    // Not an agent's route: nothing to negotiate there.
    let (_, h, _) = call(
        &state,
        Request::get("/healthz").body(Body::empty()).unwrap(),
    )
    .await;
    assert!(h.get(VERSIONS_HEADER).is_none());
}

#[tokio::test]
async fn a_batch_of_a_version_not_read_is_refused_with_the_versions_that_are() {
    let dir = tempfile::tempdir().unwrap();
    let state = support::collector_state(dir.path(), CONFIG).await;
    for version in [0, PROTOCOL_VERSION + 1, u32::MAX] {
        let (s, h, body) = call(&state, ingest(TOKEN, version, &format!("v{version}"))).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
        let read = advertised(&h);
        assert!(!read.contains(version), "{read} names {version}");
        let error: serde_json::Value = serde_json::from_str(&body).unwrap();
        let error = error["error"].as_str().unwrap();
        assert!(
            error.contains(&format!("unsupported protocol version {version}"))
                && error.contains(&read.header_value()),
            "{error}"
        );
    }
    // Counted under its own reason, and nothing stored.
    let metrics = Request::get("/metrics")
        .header(header::AUTHORIZATION, format!("Bearer {READ}"))
        .body(Body::empty())
        .unwrap();
    let (_, _, text) = call(&state, metrics).await;
    assert!(
        text.lines()
            .any(|l| l == "lookout_ingest_rejects_total{reason=\"unsupported_version\"} 3"),
        "{text}"
    );
    assert!(
        !text.contains("lookout_ingest_batches_total{outcome=\"stored\"}")
            || text.contains("lookout_ingest_batches_total{outcome=\"stored\"} 0"),
        "{text}"
    );
}
