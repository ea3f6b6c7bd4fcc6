//! The `websocket` probe: connect to `url` (`ws://`, or `wss://` over the probes' TLS, verified
//! as for `http`), complete the opening handshake (RFC 6455: `101 Switching Protocols`),
//! optionally `send` a text message, and read the first data message that comes back as
//! `[BODY]`. Up when the handshake succeeds and, where a reply is awaited (`send` is set or a
//! condition reads `[BODY]`), a message comes before the timeout. A reply (or a frame) over
//! [`MAX_REPLY`] is refused; pings are answered and skipped; a close before the reply is a
//! failure that gives the server's reason. The connection is closed politely after.
//!
//! tokio-tungstenite does the framing only (no TLS feature of its own): the TLS stream is the
//! probes' own, so there is one rustls in the agent.

use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use lookout_config::CheckConfig;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::Outcome;
use super::net::{self, Alpn, Tls, ms_since};

/// Most bytes of a reply (and of one frame).
pub const MAX_REPLY: usize = 1 << 20;

/// Runs one probe of `check`, filling `out` (its timeout is enforced by the caller).
pub async fn probe(
    tls: &Tls,
    user_agent: &str,
    check: &CheckConfig,
    out: &mut Outcome,
) -> Result<(), String> {
    let url = url::Url::parse(check.url.as_deref().unwrap_or_default())
        .map_err(|e| format!("invalid url: {e}"))?;
    let secure = url.scheme() == "wss";
    let host = url.host_str().ok_or("the url has no host")?.to_string();
    let port = url
        .port_or_known_default()
        .unwrap_or(if secure { 443 } else { 80 });
    let tls = secure.then_some((tls, Alpn::Http1));
    let io = net::open(tls, check, (&host, port), &host, out).await?;
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| format!("building the request: {e}"))?;
    let headers = request.headers_mut();
    headers.insert(
        tokio_tungstenite::tungstenite::http::header::USER_AGENT,
        HeaderValue::from_str(user_agent).map_err(|e| format!("user agent: {e}"))?,
    );
    for (name, value) in &check.headers {
        let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) else {
            return Err(format!("header {name:?} is not a valid HTTP header"));
        };
        headers.insert(n, v);
    }
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_REPLY))
        .max_frame_size(Some(MAX_REPLY));
    let started = Instant::now();
    let (mut ws, response) =
        match tokio_tungstenite::client_async_with_config(request, io, Some(config)).await {
            Ok(done) => done,
            Err(WsError::Http(response)) => {
                let status = response.status().as_u16();
                out.status_code = Some(status);
                out.seen.status = Some(status);
                return Err(format!(
                    "status {status}, expected 101 (the server refused the WebSocket)"
                ));
            }
            Err(e) => return Err(format!("WebSocket handshake: {e}")),
        };
    out.timings.ttfb_ms = Some(ms_since(started));
    let status = response.status().as_u16();
    out.status_code = Some(status);
    out.seen.status = Some(status);
    out.seen.headers = net::header_pairs(response.headers());
    let awaits_reply = check.send.is_some() || check.conditions.iter().any(|c| c.needs_body());
    if let Some(text) = &check.send {
        ws.send(Message::text(text.as_str()))
            .await
            .map_err(|e| format!("sending the message: {e}"))?;
    }
    let reply = if awaits_reply {
        Some(first_reply(&mut ws).await)
    } else {
        None
    };
    // Politely, but without waiting on the server's part: the probe has what it came for.
    let _ = ws.close(None).await;
    if let Some(reply) = reply {
        out.seen.body = Some(reply?);
    }
    Ok(())
}

/// The first text or binary message, skipping control frames.
async fn first_reply<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> Result<Vec<u8>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return Ok(t.as_bytes().to_vec()),
            Some(Ok(Message::Binary(b))) => return Ok(b.to_vec()),
            Some(Ok(Message::Close(frame))) => {
                return Err(match frame {
                    Some(f) if !f.reason.is_empty() => format!(
                        "the server closed the connection before replying ({}: {})",
                        u16::from(f.code),
                        f.reason.as_str().chars().take(200).collect::<String>()
                    ),
                    Some(f) => format!(
                        "the server closed the connection before replying ({})",
                        u16::from(f.code)
                    ),
                    None => "the server closed the connection before replying".to_string(),
                });
            }
            Some(Ok(_)) => continue,
            Some(Err(WsError::Capacity(e))) => {
                return Err(format!("the reply is over {MAX_REPLY} bytes ({e})"));
            }
            Some(Err(e)) => return Err(format!("reading the reply: {e}")),
            None => return Err("the connection ended before a reply".to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

    /// A tungstenite server on loopback that runs `then` on its one connection.
    async fn server<F, Fut>(then: F) -> String
    where
        F: FnOnce(tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>) -> Fut
            + Send
            + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let ws = tokio_tungstenite::accept_async(stream).await.unwrap();
            then(ws).await;
        });
        url
    }

    async fn run(url: &str, send: Option<&str>) -> Result<Outcome, String> {
        let check: CheckConfig = serde_json::from_value(serde_json::json!({
            "name": "w", "type": "websocket", "url": url, "send": send,
        }))
        .unwrap();
        let mut out = Outcome::default();
        probe(&Tls::new(), "test", &check, &mut out).await?;
        Ok(out)
    }

    #[tokio::test]
    async fn a_reply_over_the_bound_is_refused() {
        let url = server(|mut ws| async move {
            let _ = ws.next().await;
            let _ = ws.send(Message::binary(vec![7u8; MAX_REPLY + 1])).await;
        })
        .await;
        let e = run(&url, Some("hi")).await.unwrap_err();
        assert!(e.starts_with("the reply is over 1048576 bytes"), "{e}");
    }

    #[tokio::test]
    async fn pings_are_skipped_and_the_reply_kept() {
        let url = server(|mut ws| async move {
            let got = ws.next().await.unwrap().unwrap();
            ws.send(Message::Ping(vec![1].into())).await.unwrap();
            ws.send(Message::text(format!("re: {}", got.to_text().unwrap())))
                .await
                .unwrap();
            let _ = ws.next().await;
        })
        .await;
        let out = run(&url, Some("hi")).await.unwrap();
        assert_eq!(out.seen.body.as_deref(), Some(&b"re: hi"[..]));
        assert_eq!(out.seen.status, Some(101));
    }

    #[tokio::test]
    async fn a_close_before_the_reply_gives_the_server_s_reason() {
        let url = server(|mut ws| async move {
            let _ = ws.next().await;
            let _ = ws
                .close(Some(CloseFrame {
                    code: CloseCode::Policy,
                    reason: "go away".into(),
                }))
                .await;
        })
        .await;
        let e = run(&url, Some("hi")).await.unwrap_err();
        assert_eq!(
            e,
            "the server closed the connection before replying (1008: go away)"
        );
    }

    #[tokio::test]
    async fn a_server_that_does_not_switch_protocols_fails_with_its_status() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
                .await;
        });
        let e = run(&url, None).await.unwrap_err();
        assert_eq!(
            e,
            "status 403, expected 101 (the server refused the WebSocket)"
        );
    }
}
