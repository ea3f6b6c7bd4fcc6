//! A client of the Docker Engine API on a unix socket (Docker's `/var/run/docker.sock`, or
//! podman's `podman system service`, which serves the same API): HTTP/1.1 through the agent's
//! hyper, one connection a request. Every JSON answer is read up to a size and refused past it;
//! a streamed answer (logs) is handed over as a body the caller reads frame by frame.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;

/// Why a request to the API gave nothing.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// The socket could not be reached.
    #[error("connecting to {socket}: {reason}")]
    Connect {
        /// The socket's path.
        socket: String,
        /// What the system said.
        reason: String,
    },
    /// The request broke off, or the answer was not HTTP.
    #[error("{0}")]
    Http(String),
    /// The API answered with an error status (404: no such container).
    #[error("{path} answered {status}: {message}")]
    Status {
        /// The path asked for.
        path: String,
        /// The HTTP status.
        status: u16,
        /// The API's own message, cut to 200 bytes.
        message: String,
    },
    /// The answer is larger than the bound.
    #[error("{path} answered more than {max} bytes")]
    TooLarge {
        /// The path asked for.
        path: String,
        /// The bound, in bytes.
        max: usize,
    },
    /// The answer is not the JSON expected.
    #[error("{path} answered JSON the agent cannot read: {reason}")]
    Json {
        /// The path asked for.
        path: String,
        /// serde's description.
        reason: String,
    },
}

/// The API at one socket.
#[derive(Debug, Clone)]
pub struct Api {
    socket: PathBuf,
}

impl Api {
    /// The API at `url` (`unix:///var/run/docker.sock`); `None` when it is not a unix URL.
    pub fn new(url: &str) -> Option<Self> {
        let u = url::Url::parse(url).ok()?;
        (u.scheme() == "unix" && u.path().starts_with('/')).then(|| Self {
            socket: PathBuf::from(u.path()),
        })
    }

    /// The socket's path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Sends `GET path`, and returns the answer's head and body once the head is in; a status
    /// other than 2xx is an error with the API's message.
    pub async fn get(&self, path: &str) -> Result<hyper::Response<Incoming>, ApiError> {
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|e| ApiError::Connect {
                socket: self.socket.display().to_string(),
                reason: e.to_string(),
            })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ApiError::Http(format!("HTTP: {e}")))?;
        // The connection ends when the body is read or dropped.
        tokio::spawn(conn);
        let request = hyper::Request::builder()
            .uri(path)
            .header(hyper::header::HOST, "docker")
            .header(hyper::header::CONNECTION, "close")
            .body(Empty::<Bytes>::new())
            .map_err(|e| ApiError::Http(format!("building the request: {e}")))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| ApiError::Http(format!("{path}: {}", lookout_runtime::error_chain(&e))))?;
        if !response.status().is_success() {
            let status = response.status().as_u16();
            let body = read_body(path, response.into_body(), 4096)
                .await
                .unwrap_or_default();
            return Err(ApiError::Status {
                path: path.to_string(),
                status,
                message: api_message(&body),
            });
        }
        Ok(response)
    }

    /// `GET path` read as JSON, up to `max` bytes.
    pub async fn json<T: DeserializeOwned>(&self, path: &str, max: usize) -> Result<T, ApiError> {
        let body = read_body(path, self.get(path).await?.into_body(), max).await?;
        serde_json::from_slice(&body).map_err(|e| ApiError::Json {
            path: path.to_string(),
            reason: e.to_string(),
        })
    }
}

/// The whole body, refused past `max` bytes.
async fn read_body(path: &str, mut body: Incoming, max: usize) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::Http(format!("reading {path}: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > max {
                return Err(ApiError::TooLarge {
                    path: path.to_string(),
                    max,
                });
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}

/// The `message` of an error answer (`{"message": "no such container"}`), cut to 200 bytes.
fn api_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Message {
        message: String,
    }
    let text = match serde_json::from_slice::<Message>(body) {
        Ok(m) => m.message,
        Err(_) => String::from_utf8_lossy(body).trim().to_string(),
    };
    let mut end = text.len().min(200);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// A container's id as the API gives it: hex, so it can go in a path as it is. Anything else is
/// refused (the id comes from the API's own answer, but a path is no place to trust one).
pub fn safe_id(id: &str) -> Option<&str> {
    (!id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unix_urls_and_hex_ids_are_taken() {
        assert_eq!(
            Api::new("unix:///run/podman/podman.sock").unwrap().socket(),
            Path::new("/run/podman/podman.sock")
        );
        assert!(Api::new("http://h:2375").is_none());
        assert_eq!(safe_id("ab12"), Some("ab12"));
        assert_eq!(safe_id("../info"), None);
        assert_eq!(safe_id(""), None);
        assert_eq!(
            api_message(br#"{"message":"no such container"}"#),
            "no such container"
        );
        assert_eq!(api_message(&[b'x'; 300]).len(), 200);
    }

    /// A socket answering each connection with `answer` (a whole HTTP/1.1 response).
    fn serve(dir: &Path, answer: Vec<u8>) -> Api {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let socket = dir.join("api.sock");
        let listener = tokio::net::UnixListener::bind(&socket).unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let answer = answer.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = s.read(&mut buf).await;
                    let _ = s.write_all(&answer).await;
                });
            }
        });
        Api::new(&format!("unix://{}", socket.display())).unwrap()
    }

    #[tokio::test]
    async fn an_answer_past_its_bound_or_an_error_status_is_an_error_saying_so() {
        let dir = tempfile::tempdir().unwrap();
        let body = format!("[{}]", vec!["{}"; 5000].join(","));
        let api = serve(
            dir.path(),
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes(),
        );
        let e = api
            .json::<Vec<serde_json::Value>>("/containers/json?all=1", 1000)
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "/containers/json?all=1 answered more than 1000 bytes"
        );
        let all: Vec<serde_json::Value> = api.json("/containers/json", 1 << 20).await.unwrap();
        assert_eq!(all.len(), 5000);

        let dir = tempfile::tempdir().unwrap();
        let msg = r#"{"message":"no container with name or ID \"web\" found: no such container","response":404}"#;
        let api = serve(
            dir.path(),
            format!(
                "HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\n\r\n{msg}",
                msg.len()
            )
            .into_bytes(),
        );
        let e = api
            .json::<serde_json::Value>("/containers/web/json", 1000)
            .await
            .unwrap_err();
        assert!(matches!(e, ApiError::Status { status: 404, .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "/containers/web/json answered 404: no container with name or ID \"web\" found: no such container"
        );
        let gone = Api::new(&format!("unix://{}/none.sock", dir.path().display())).unwrap();
        let e = gone
            .json::<serde_json::Value>("/_ping", 10)
            .await
            .unwrap_err();
        assert!(matches!(e, ApiError::Connect { .. }), "{e:?}");
    }
}
