//! An HTTP server on loopback that records every request and answers the scripted answers in
//! turn, then whatever its judge says.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// One request as received.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// The query string, without `?` (empty without one).
    pub query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }
}

/// What to answer.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    /// Wait this long before answering.
    pub delay: Duration,
}

impl Answer {
    pub fn new(status: u16, body: &str) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_string()));
        self
    }
}

type Judge = dyn Fn(&Request) -> Answer + Send + Sync;

// std's Mutex: held for a push or a pop, never across an await.
#[derive(Clone)]
struct Shared {
    requests: Arc<Mutex<Vec<Request>>>,
    script: Arc<Mutex<VecDeque<Answer>>>,
    judge: Arc<Judge>,
}

/// The running server; it stops with the test's runtime.
pub struct Peer {
    pub addr: SocketAddr,
    shared: Shared,
}

impl Peer {
    pub async fn start(judge: impl Fn(&Request) -> Answer + Send + Sync + 'static) -> Peer {
        let shared = Shared {
            requests: Arc::default(),
            script: Arc::default(),
            judge: Arc::new(judge),
        };
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Peer { addr, shared }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The next request gets `answer` (after those scripted before it).
    pub fn then_answer(&self, answer: Answer) {
        self.shared.script.lock().unwrap().push_back(answer);
    }

    pub fn requests(&self) -> Vec<Request> {
        self.shared.requests.lock().unwrap().clone()
    }
}

async fn handle(
    State(s): State<Shared>,
    method: axum::http::Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = Request {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or_default().to_string(),
        headers,
        body,
    };
    let scripted = s.script.lock().unwrap().pop_front();
    let answer = scripted.unwrap_or_else(|| (s.judge)(&req));
    s.requests.lock().unwrap().push(req);
    tokio::time::sleep(answer.delay).await;
    let mut resp = (
        StatusCode::from_u16(answer.status).unwrap(),
        answer.body.clone(),
    )
        .into_response();
    for (k, v) in &answer.headers {
        resp.headers_mut().insert(*k, v.parse().unwrap());
    }
    resp
}
