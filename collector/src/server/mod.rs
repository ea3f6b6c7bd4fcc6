//! The HTTP server: the accept loop, each connection's HTTP/1.1 with its deadlines, and the
//! limits every request is held to.
//!
//! `axum::serve` has no header deadline and no cap on connections: a client that opens
//! connections and sends a byte a second holds them, and the collector's file descriptors, for
//! as long as it likes. So the collector runs its own accept loop over hyper:
//! - at most `[server] max_open_connections` connections at once; one beyond it is answered
//!   503 (as far as the socket takes it at once, without waiting) and closed;
//! - with `[server.tls]`, each connection's TLS handshake comes first ([`tls`]), within the
//!   connection cap and within `header_timeout` from the connection's start, which holds the
//!   handshake and the first request's headers together;
//! - each connection is hyper's HTTP/1.1 with keep-alive, its header deadline told apart from
//!   the idle wait of a kept-alive connection ([`header_timer`]);
//! - every request goes through [`limits`] (body size, body time, answer time);
//! - a stop closes the listener, lets each connection finish the request it is in and closes
//!   it (hyper's graceful shutdown), and waits for them all.
//!
//! [`raise_open_files`] raises the process's open-files limit so the cap can be reached.

pub mod header_timer;
pub mod limits;
pub mod tls;

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use lookout_config::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

use header_timer::{CountingIo, HeaderTimer};

/// Files the collector needs besides its connections: the database, its journal, the spool
/// of the local agent, logs.
const FILES_BESIDES_CONNECTIONS: u64 = 256;

/// What a connection beyond `max_open_connections` is told before it is closed.
const FULL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
retry-after: 5\r\nconnection: close\r\ncontent-length: 87\r\n\r\n\
{\"error\":\"the collector has too many open connections ([server] max_open_connections)\"}";

/// The connection settings `[server]` gives.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    max_open: usize,
    header_timeout: Duration,
    idle_timeout: Duration,
}

impl ConnectionLimits {
    /// The limits `[server]` sets.
    pub fn new(server: &ServerConfig) -> Self {
        Self {
            max_open: server.max_open_connections,
            header_timeout: server.header_timeout,
            idle_timeout: server.idle_timeout,
        }
    }
}

/// Connections the kernel holds for the accept loop: a burst of agents reconnecting after a
/// restart (or a slowloris client) is queued rather than made to retry a second later. The
/// kernel caps it at `net.core.somaxconn` (4096 by default).
const BACKLOG: u32 = 4096;

/// A listener on `addr` with room for [`BACKLOG`] connections not yet accepted.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As std's and tokio's own bind: a restarted collector takes its port at once.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Serves `app` on `listener` (HTTPS with `tls`, else HTTP) until `stop`, then waits for the
/// connections to finish the requests they are in (the caller bounds that wait).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    tls: Option<Arc<tls::Tls>>,
    stop: CancellationToken,
) {
    let open = Arc::new(Semaphore::new(limits.max_open));
    let connections = TaskTracker::new();
    let mut full_since_logged = false;
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            if !full_since_logged {
                tracing::warn!(
                    max = limits.max_open,
                    "connections refused: [server] max_open_connections are open"
                );
                full_since_logged = true;
            }
            // Best effort, never waiting: the answer goes if the socket's buffer takes it.
            let _ = stream.try_write(FULL);
            continue;
        };
        full_since_logged = false;
        connections.spawn(connection(
            stream,
            remote,
            app.clone(),
            limits,
            tls.clone(),
            stop.clone(),
            permit,
        ));
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// A failed accept: a connection reset before it was taken is nothing; out of file
/// descriptors or memory, wait a moment rather than spin.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::warn!(error = %e, "cannot accept a connection");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// One connection, until its client closes it, a deadline passes, or the stop: its TLS
/// handshake first when the collector serves TLS.
async fn connection(
    stream: TcpStream,
    remote: SocketAddr,
    app: Router,
    limits: ConnectionLimits,
    tls: Option<Arc<tls::Tls>>,
    stop: CancellationToken,
    _permit: OwnedSemaphorePermit,
) {
    let opened = std::time::Instant::now();
    let Some(tls) = tls else {
        return http(stream, remote, app, limits, None, opened, stop).await;
    };
    let handshake = tokio::time::timeout(limits.header_timeout, tls.acceptor().accept(stream));
    let accepted = tokio::select! {
        r = handshake => r,
        () = stop.cancelled() => return,
    };
    let stream = match accepted {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            // A client that does not trust the certificate, speaks plain HTTP, or has no
            // valid client certificate: its log says why; here it is counted.
            tls.handshake_failed();
            tracing::debug!(%remote, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tls.handshake_failed();
            tracing::debug!(%remote, "TLS handshake not done within [server] header_timeout");
            return;
        }
    };
    let certificate = tls.agent_certificate(stream.get_ref().1);
    http(stream, remote, app, limits, certificate, opened, stop).await;
}

/// A connection's HTTP/1.1, over TCP or TLS. `certificate`: its client certificate's names
/// when `[server.tls] client_ca` is set, for `auth::AgentAuth`.
async fn http<S>(
    stream: S,
    remote: SocketAddr,
    app: Router,
    limits: ConnectionLimits,
    certificate: Option<crate::auth::certificate::AgentCertificate>,
    opened: std::time::Instant,
    stop: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let reads = Arc::new(AtomicU64::new(0));
    let io = TokioIo::new(CountingIo::new(stream, reads.clone()));
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(remote));
        if let Some(c) = &certificate {
            request.extensions_mut().insert(c.clone());
        }
        app.clone().oneshot(request)
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(HeaderTimer {
        reads,
        header: limits.header_timeout,
        idle: limits.idle_timeout,
        opened,
    })
    .header_read_timeout(limits.header_timeout);
    let mut conn = pin!(http.serve_connection(io, service));
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        // A client that stalls, breaks off or sends nonsense: its own business.
        tracing::debug!(%remote, error = %e, "connection ended");
    }
}

/// Raises the soft limit on open files to the hard one, so `max_open_connections` can be
/// open; logs when even that is too low for them.
pub fn raise_open_files(max_open_connections: usize) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(error = %e, "cannot raise the open-files limit");
        }
    }
    let needed = max_open_connections as u64 + FILES_BESIDES_CONNECTIONS;
    if let Some(soft) = getrlimit(Resource::Nofile).current
        && soft < needed
    {
        tracing::warn!(
            limit = soft,
            needed,
            "the open-files limit (ulimit -n) is below [server] max_open_connections and the \
             collector's own files: connections past it fail to be accepted"
        );
    }
}
