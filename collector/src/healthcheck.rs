//! `lookout-collector healthcheck`: asks a collector's `/healthz` whether it answers, and exits
//! 0 when it does. It exists for the container image's `HEALTHCHECK` (deploy/container/): the
//! image carries no curl or shell tools, and the binary already holds an HTTP client.
//!
//! Without `--url` it asks the collector its configuration describes, on loopback (a collector
//! bound to every address is asked at 127.0.0.1), so the image's health check follows
//! `LOOKOUT_PORT` and a mounted configuration alike. A collector serving HTTPS
//! (`[server.tls]`) must be asked by the name its certificate carries, which the configuration
//! does not say: then `--url` is required and the error says so.
//!
//! Healthy means: `200` with a body that begins `ok`, within the timeout (connection, request
//! and the first bytes of the body together). Only the first [`MAX_BODY_BYTES`] of the body are
//! read, so a wrong server answering on the port cannot make the check hold memory or hang.

use std::time::Duration;

use lookout_config::CollectorConfig;

/// The timeout when none is given.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest timeout taken: a health check that waits longer tells an orchestrator nothing.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);

/// The most of the answer's body read.
pub const MAX_BODY_BYTES: usize = 256;

/// Why the collector is not healthy, or could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// The configuration serves HTTPS and no URL was given.
    #[error(
        "the collector serves HTTPS ([server.tls]): give --url (or LOOKOUT_HEALTHCHECK_URL) \
         with the name its certificate carries, such as https://status.example.com:7700/healthz"
    )]
    NeedsUrl,
    /// The URL given is not an http:// or https:// URL.
    #[error("{url:?} is not an http:// or https:// URL")]
    BadUrl {
        /// The URL as given.
        url: String,
    },
    /// No answer within the timeout.
    #[error("{url}: no answer within {timeout:?}")]
    Timeout {
        /// Where it asked.
        url: String,
        /// How long it waited.
        timeout: Duration,
    },
    /// The request failed (refused, reset, TLS).
    #[error("{url}: {source}")]
    Request {
        /// Where it asked.
        url: String,
        /// The cause.
        source: reqwest::Error,
    },
    /// An answer that is not a healthy collector's.
    #[error("{url}: answered {status} {body:?}, not 200 \"ok\"")]
    Unhealthy {
        /// Where it asked.
        url: String,
        /// The status.
        status: u16,
        /// The start of the body.
        body: String,
    },
}

/// `Err` with a sentence when `timeout` is outside 1 ms to [`MAX_TIMEOUT`]; the command line's
/// `--timeout` goes through it.
pub fn parse_timeout(text: &str) -> Result<Duration, String> {
    let d = lookout_config::duration::parse(text)?;
    if d.is_zero() || d > MAX_TIMEOUT {
        return Err(format!("must be more than 0 and at most {MAX_TIMEOUT:?}"));
    }
    Ok(d)
}

/// The `/healthz` URL of the collector `config` describes, reached on loopback.
pub fn url_for(config: &CollectorConfig) -> Result<String, HealthError> {
    if config.server.tls.is_some() {
        return Err(HealthError::NeedsUrl);
    }
    Ok(format!(
        "http://{}/healthz",
        crate::loopback_for(config.server.listen)
    ))
}

/// Asks `url` once; `Ok` when it answers 200 with a body beginning `ok` within `timeout`.
pub async fn check(url: &str, timeout: Duration) -> Result<(), HealthError> {
    let parsed = reqwest::Url::parse(url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| HealthError::BadUrl {
            url: url.to_string(),
        })?;
    let request = |source| HealthError::Request {
        url: url.to_string(),
        source,
    };
    let client = reqwest::Client::builder()
        .user_agent(concat!(
            "lookout-collector-healthcheck/",
            env!("CARGO_PKG_VERSION")
        ))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(request)?;
    let ask = async {
        let mut answer = client.get(parsed).send().await.map_err(request)?;
        let status = answer.status().as_u16();
        let mut body = Vec::new();
        while body.len() < MAX_BODY_BYTES {
            match answer.chunk().await.map_err(request)? {
                Some(bytes) => body.extend_from_slice(&bytes),
                None => break,
            }
        }
        body.truncate(MAX_BODY_BYTES);
        let body = String::from_utf8_lossy(&body).into_owned();
        if status == 200 && body.starts_with("ok") {
            Ok(())
        } else {
            Err(HealthError::Unhealthy {
                url: url.to_string(),
                status,
                body,
            })
        }
    };
    tokio::time::timeout(timeout, ask)
        .await
        .unwrap_or_else(|_| {
            Err(HealthError::Timeout {
                url: url.to_string(),
                timeout,
            })
        })
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Instant;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;

    use super::*;

    /// A server on loopback that answers every request with `answer` (or never, when `None`),
    /// and its /healthz URL.
    async fn server(answer: Option<&'static str>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut conn, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    let _ = conn.read(&mut buf).await;
                    match answer {
                        Some(a) => conn.write_all(a.as_bytes()).await.unwrap(),
                        // Holds the connection open, answering nothing.
                        None => std::future::pending::<()>().await,
                    }
                });
            }
        });
        format!("http://{addr}/healthz")
    }

    #[tokio::test]
    async fn ok_is_healthy_and_anything_else_is_not() {
        let ok = server(Some("HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n")).await;
        check(&ok, DEFAULT_TIMEOUT).await.unwrap();

        let down = server(Some(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\n\r\ndown",
        ))
        .await;
        let err = check(&down, DEFAULT_TIMEOUT).await.unwrap_err();
        assert!(
            matches!(err, HealthError::Unhealthy { status: 503, .. }),
            "{err}"
        );

        // Another server on the port: 200, but not a collector's answer.
        let other = server(Some(
            "HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n<html>hi!",
        ))
        .await;
        let err = check(&other, DEFAULT_TIMEOUT).await.unwrap_err();
        assert!(
            matches!(err, HealthError::Unhealthy { status: 200, .. }),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_silent_server_times_out_in_time() {
        let silent = server(None).await;
        let started = Instant::now();
        let err = check(&silent, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(matches!(err, HealthError::Timeout { .. }), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn a_long_body_is_read_no_further_than_the_bound() {
        // Claims a gigabyte and sends a little: the check must not wait for the rest.
        let endless = server(Some(
            "HTTP/1.1 200 OK\r\ncontent-length: 1073741824\r\n\r\nok and then some more \
             text that goes on and on, longer than the bound on what is read of it, so that \
             the check stops reading after two hundred and fifty-six bytes and decides from \
             those alone without waiting for a gigabyte that will never come, as the test says",
        ))
        .await;
        check(&endless, Duration::from_secs(2)).await.unwrap();
    }

    #[tokio::test]
    async fn refused_and_malformed_urls_are_errors() {
        let port = lookout_tests::free_port();
        let err = check(&format!("http://127.0.0.1:{port}/healthz"), DEFAULT_TIMEOUT)
            .await
            .unwrap_err();
        assert!(matches!(err, HealthError::Request { .. }), "{err}");
        for bad in ["127.0.0.1:7700/healthz", "ftp://127.0.0.1/healthz", ""] {
            let err = check(bad, DEFAULT_TIMEOUT).await.unwrap_err();
            assert!(matches!(err, HealthError::BadUrl { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn the_url_follows_the_configuration() {
        let parse =
            |text: &str| CollectorConfig::parse(Path::new("c.toml"), text, &|_| None).unwrap();
        let any = parse("[server]\nlisten = \"0.0.0.0:7711\"\n");
        assert_eq!(url_for(&any).unwrap(), "http://127.0.0.1:7711/healthz");
        let v6 = parse("[server]\nlisten = \"[::]:7712\"\n");
        assert_eq!(url_for(&v6).unwrap(), "http://[::1]:7712/healthz");
        let one = parse("[server]\nlisten = \"127.0.0.2:7713\"\n");
        assert_eq!(url_for(&one).unwrap(), "http://127.0.0.2:7713/healthz");
        let tls = parse(
            "[server]\nlisten = \"0.0.0.0:7700\"\n[server.tls]\ncert = \"/c.pem\"\nkey = \"/k.pem\"\n",
        );
        assert!(matches!(url_for(&tls), Err(HealthError::NeedsUrl)));
    }

    #[test]
    fn timeouts_are_bounded() {
        assert_eq!(parse_timeout("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_timeout("500ms"), Ok(Duration::from_millis(500)));
        for bad in ["0s", "61s", "1h", "soon"] {
            assert!(parse_timeout(bad).is_err(), "{bad}");
        }
    }
}
