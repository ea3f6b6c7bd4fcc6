//! A collector played from a script: an HTTP server on loopback that keeps every request and
//! answers what the test's function says. For what no real collector of this release does: a
//! collector of another release (one that reads other protocol versions, or the previous
//! release's answers replayed from tests/fixtures/).

use std::sync::{Arc, Mutex};

use anyhow::Result;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// One request as received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Its method.
    pub method: Method,
    /// Its path (and query).
    pub path: String,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body, as sent (compressed if it was).
    pub body: Bytes,
    /// When it arrived.
    pub at: std::time::Instant,
}

impl Seen {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What to answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status.
    pub status: u16,
    /// Headers, beyond the connection's own.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Answer {
    /// `status` with a JSON body.
    pub fn json(status: u16, body: &str) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    /// The same answer with one more header.
    pub fn with(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

type Script = dyn Fn(&Seen) -> Answer + Send + Sync;

/// The server: its URL, what it was sent, and the script it answers by.
pub struct Scripted {
    /// Its base URL.
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Arc<Mutex<Arc<Script>>>,
    _task: tokio::task::JoinHandle<()>,
}

impl Scripted {
    /// Starts it on a loopback port, answering by `script`.
    pub async fn start(script: impl Fn(&Seen) -> Answer + Send + Sync + 'static) -> Result<Self> {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Mutex<Arc<Script>>> = Arc::new(Mutex::new(Arc::new(script)));
        let (keep, by) = (seen.clone(), script.clone());
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let (keep, by) = (keep.clone(), by.clone());
                async move {
                    let request = Seen {
                        method,
                        path: uri.to_string(),
                        headers,
                        body,
                        at: std::time::Instant::now(),
                    };
                    let script = by.lock().unwrap().clone();
                    let answer = script(&request);
                    keep.lock().unwrap().push(request);
                    respond(answer)
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            url,
            seen,
            script,
            _task: task,
        })
    }

    /// Answers by `script` from now on.
    pub fn answer_by(&self, script: impl Fn(&Seen) -> Answer + Send + Sync + 'static) {
        *self.script.lock().unwrap() = Arc::new(script);
    }

    /// Every request so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The requests so far to `path`.
    pub fn seen_at(&self, path: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.path.split('?').next() == Some(path))
            .collect()
    }
}

fn respond(answer: Answer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, answer.body).into_response();
    for (name, value) in answer.headers {
        if let (Ok(n), Ok(v)) = (
            axum::http::HeaderName::from_bytes(name.as_bytes()),
            axum::http::HeaderValue::from_str(&value),
        ) {
            resp.headers_mut().append(n, v);
        }
    }
    resp
}
