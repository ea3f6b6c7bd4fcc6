//! The time a client has for a request's headers, told apart from the time a kept-alive
//! connection waits, idle, for its next request.
//!
//! hyper's HTTP/1 server starts its header timer as soon as it waits for a request head: on a
//! new connection, and right after each answer on a kept-alive one. Its one deadline would make
//! `[server] header_timeout` (10 s) the idle limit too, and an agent that sends every 10 s
//! would race the collector's close on every reused connection. So the timer hyper is given
//! here ([`HeaderTimer`]) watches the connection's reads ([`CountingIo`]):
//! - a connection that has received nothing yet gets `header_timeout` from its start (a client
//!   that connects and stalls is closed after it); over TLS, the start is the TCP
//!   connection's, so the handshake and the first head share that one deadline;
//! - a kept-alive connection waits up to `idle_timeout` while nothing arrives, checked every
//!   `header_timeout`; once bytes of a new head arrive, it has one more `header_timeout`.
//!
//! hyper drops the timer's sleep as soon as a head is read whole, so none of this runs while a
//! request is handled.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A connection's stream, counting the reads that brought bytes.
#[derive(Debug)]
pub struct CountingIo<T> {
    inner: T,
    reads: Arc<AtomicU64>,
}

impl<T> CountingIo<T> {
    /// `inner`, its reads counted in `reads`.
    pub fn new(inner: T, reads: Arc<AtomicU64>) -> Self {
        Self { inner, reads }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for CountingIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = ready!(Pin::new(&mut self.inner).poll_read(cx, buf));
        if buf.filled().len() > before {
            self.reads.fetch_add(1, Ordering::Relaxed);
        }
        Poll::Ready(result)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for CountingIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The timer one connection's hyper uses: only for its header deadline.
#[derive(Debug, Clone)]
pub struct HeaderTimer {
    /// The connection's reads ([`CountingIo`]).
    pub reads: Arc<AtomicU64>,
    /// `[server] header_timeout`.
    pub header: Duration,
    /// `[server] idle_timeout`.
    pub idle: Duration,
    /// When the connection was accepted: the first head is due `header` after it.
    pub opened: Instant,
}

impl hyper::rt::Timer for HeaderTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(PlainSleep(Box::pin(tokio::time::sleep(duration))))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        let now = Instant::now();
        let reads = self.reads.load(Ordering::Relaxed);
        let deadline = if reads == 0 {
            deadline.min(self.opened + self.header)
        } else {
            deadline
        };
        Box::pin(HeaderSleep {
            reads: self.reads.clone(),
            seen: reads,
            kept_alive: reads > 0,
            head_begun: false,
            period: self.header,
            idle_until: tokio::time::Instant::from_std(now + self.idle),
            sleep: Box::pin(tokio::time::sleep_until(tokio::time::Instant::from_std(
                deadline,
            ))),
        })
    }
}

/// A plain sleep, for any other timer hyper might ask for.
struct PlainSleep(Pin<Box<tokio::time::Sleep>>);

impl Future for PlainSleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0.as_mut().poll(cx)
    }
}

impl hyper::rt::Sleep for PlainSleep {}

/// The header deadline of one wait for a request head.
struct HeaderSleep {
    reads: Arc<AtomicU64>,
    /// The reads counted at the last check.
    seen: u64,
    /// The connection had received something before this wait: it answered a request.
    kept_alive: bool,
    /// Bytes of the head have arrived, and this is their last period.
    head_begun: bool,
    period: Duration,
    idle_until: tokio::time::Instant,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl Future for HeaderSleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            ready!(self.sleep.as_mut().poll(cx));
            if !self.kept_alive || self.head_begun {
                return Poll::Ready(());
            }
            let now = tokio::time::Instant::now();
            let reads = self.reads.load(Ordering::Relaxed);
            let next = if reads != self.seen {
                // A head has begun since the last check: one full period for the rest of it.
                self.head_begun = true;
                now + self.period
            } else if now >= self.idle_until {
                return Poll::Ready(());
            } else {
                (now + self.period).min(self.idle_until)
            };
            self.seen = reads;
            self.sleep.as_mut().reset(next);
        }
    }
}

impl hyper::rt::Sleep for HeaderSleep {}
