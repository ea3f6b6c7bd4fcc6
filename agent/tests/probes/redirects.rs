//! Redirects and a check's secrets: the configured headers reach only the check's origin. Each
//! test's servers log what they received, and the assertions are on those logs.

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::{Value, json};

use super::{Pki, probe, tls_acceptor};

/// Headers that carry a check's secrets, as the tests configure them.
const SECRETS: [(&str, &str); 4] = [
    ("Authorization", "Bearer s3cret"),
    ("Proxy-Authorization", "Basic czNjcmV0"),
    ("Cookie", "session=s3cret"),
    ("X-Api-Key", "s3cret"),
];

/// One request as a server received it: scheme, path, and which of [`SECRETS`] it carried.
#[derive(Debug, PartialEq)]
struct Received {
    scheme: &'static str,
    path: String,
    secrets: Vec<&'static str>,
}

fn got(scheme: &'static str, path: &str, secrets: &[&'static str]) -> Received {
    Received {
        scheme,
        path: path.to_string(),
        secrets: secrets.to_vec(),
    }
}

/// The names of [`SECRETS`]: what a request that carried every one is logged with.
const ALL: [&str; 4] = [SECRETS[0].0, SECRETS[1].0, SECRETS[2].0, SECRETS[3].0];

/// Every request a [`logging_server`] received, in order.
#[derive(Clone, Default)]
struct Log(Arc<std::sync::Mutex<Vec<Received>>>);

impl Log {
    fn take(&self) -> Vec<Received> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// An HTTP/1.1 server on `ip` that logs every request and answers `?to=URL` with a 302 to URL,
/// anything else with 200. With `tls` it speaks HTTPS and plain HTTP on the same port (told
/// apart by the first byte, 0x16 for a TLS handshake), so a redirect can change the scheme
/// alone.
async fn logging_server(ip: &str, tls: Option<tokio_rustls::TlsAcceptor>) -> (SocketAddr, Log) {
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = Log::default();
    let logged = log.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (tls, log) = (tls.clone(), logged.clone());
            tokio::spawn(async move {
                let mut first = [0u8; 1];
                let handshake = tls.is_some() && tcp.peek(&mut first).await.is_ok_and(|n| n == 1);
                match tls {
                    Some(acceptor) if handshake && first[0] == 0x16 => {
                        if let Ok(stream) = acceptor.accept(tcp).await {
                            serve_logged(stream, "https", log).await;
                        }
                    }
                    _ => serve_logged(tcp, "http", log).await,
                }
            });
        }
    });
    (addr, log)
}

async fn serve_logged<I>(io: I, scheme: &'static str, log: Log)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let secrets = SECRETS
            .iter()
            .filter(|(name, _)| req.headers().contains_key(*name))
            .map(|(name, _)| *name)
            .collect();
        log.0.lock().unwrap().push(Received {
            scheme,
            path: req.uri().path().to_string(),
            secrets,
        });
        let response = match req.uri().query().and_then(|q| q.strip_prefix("to=")) {
            Some(to) => hyper::Response::builder()
                .status(302)
                .header("location", to)
                .body(http_body_util::Full::new(bytes::Bytes::new())),
            None => hyper::Response::builder().body(http_body_util::Full::new(
                bytes::Bytes::from_static(b"seen"),
            )),
        };
        async move { Ok::<_, std::convert::Infallible>(response.unwrap()) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(io), service)
        .await;
}

/// An `http` check of `url` configured with every header of [`SECRETS`].
fn with_secrets(url: String) -> Value {
    let headers: serde_json::Map<String, Value> = SECRETS
        .iter()
        .map(|(name, value)| (name.to_string(), json!(value)))
        .collect();
    json!({"type": "http", "url": url, "headers": headers})
}

#[tokio::test]
async fn http_secrets_stay_on_the_checks_origin() {
    let (a, at_a) = logging_server("127.0.0.1", None).await;
    let (b, at_b) = logging_server("127.0.0.2", None).await;
    let (c, at_c) = logging_server("127.0.0.1", None).await;

    // A redirect on the same origin keeps every configured header.
    let r = probe(with_secrets(format!("http://{a}/from?to=/to"))).await;
    assert!(r.ok, "{r:?}");
    assert_eq!(
        at_a.take(),
        [got("http", "/from", &ALL), got("http", "/to", &ALL)]
    );

    // Another host, or the same host on another port, is another origin: none reaches it.
    for (other, at_other) in [(b, &at_b), (c, &at_c)] {
        let r = probe(with_secrets(format!(
            "http://{a}/from?to=http://{other}/to"
        )))
        .await;
        assert!(r.ok, "{r:?}");
        assert_eq!(at_a.take(), [got("http", "/from", &ALL)]);
        assert_eq!(at_other.take(), [got("http", "/to", &[])], "{other}");
    }

    // Once the chain has left the origin, coming back to it does not bring them back.
    let r = probe(with_secrets(format!(
        "http://{a}/from?to=http://{b}/via?to=http://{a}/to"
    )))
    .await;
    assert!(r.ok, "{r:?}");
    assert_eq!(
        at_a.take(),
        [got("http", "/from", &ALL), got("http", "/to", &[])]
    );
    assert_eq!(at_b.take(), [got("http", "/via", &[])]);
}

#[tokio::test]
async fn http_secrets_are_not_sent_after_a_downgrade_to_http() {
    let pki = Pki::new();
    let (chain, key, _) = pki.leaf(&["localhost"], 30);
    let (a, at_a) = logging_server("127.0.0.1", Some(tls_acceptor(chain, key))).await;
    let host = format!("localhost:{}", a.port());
    let check = |url: String| {
        let mut c = with_secrets(url);
        c["ca"] = json!(pki.ca_file());
        c["ip_version"] = json!("4");
        c
    };

    // https to https on the same origin keeps them: the server shows it would see them.
    let r = probe(check(format!("https://{host}/from?to=/to"))).await;
    assert!(r.ok, "{r:?}");
    assert_eq!(
        at_a.take(),
        [got("https", "/from", &ALL), got("https", "/to", &ALL)]
    );

    // The same host and port with only the scheme lowered to http: nothing configured is sent
    // in the clear.
    let r = probe(check(format!("https://{host}/from?to=http://{host}/to"))).await;
    assert!(r.ok, "{r:?}");
    assert_eq!(
        at_a.take(),
        [got("https", "/from", &ALL), got("http", "/to", &[])]
    );
}
