//! Serving one accepted connection: TLS handshake, protocol choice, and the per-connection
//! timers. HTTP/1.1 (the common case) goes to [`h1`], which frees hyper's state while a
//! keep-alive connection is idle; HTTP/2 (ALPN `h2`, or the h2c preface) goes to hyper-util's
//! auto builder.

mod framing;
mod h1;
mod io;

use crate::config::Limits;
use crate::memory::{long_lived, LongLived};
use crate::proxy::{self, ConnCtx};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// Longest wait between idle checks of an HTTP/1.1 connection; shorter when the header read
/// timeout is short, so that a connection parks before hyper's head timer closes it.
const MAX_IDLE_GRACE: Duration = Duration::from_secs(1);

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Connection settings of one listener, built once and shared by its connections.
pub struct ServeCfg {
    h1: hyper::server::conn::http1::Builder,
    auto: auto::Builder<TokioExecutor>,
    header_read_timeout: Duration,
    idle_timeout: Duration,
    idle_grace: Duration,
}

impl ServeCfg {
    /// hyper builders and timers from the listener's limits.
    pub fn new(limits: &Limits) -> ServeCfg {
        let mut h1 = hyper::server::conn::http1::Builder::new();
        h1.timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(limits.max_header_bytes.max(8192))
            .keep_alive(true);
        let mut auto = auto::Builder::new(TokioExecutor::new());
        auto.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(limits.max_header_bytes.max(8192))
            .keep_alive(true);
        auto.http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(limits.max_h2_streams)
            .max_header_list_size(limits.max_header_bytes as u32)
            .keep_alive_interval(Some(limits.idle_timeout / 2))
            .keep_alive_timeout(Duration::from_secs(20));
        ServeCfg {
            h1,
            auto,
            header_read_timeout: limits.header_read_timeout,
            idle_timeout: limits.idle_timeout,
            idle_grace: MAX_IDLE_GRACE.min(limits.header_read_timeout / 4),
        }
    }
}

/// A client socket, plain or TLS, and the TCP socket under it (whose readiness wakes a parked
/// connection).
pub trait Socket: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Whether bytes may already sit above the socket when serving starts, so that waiting for
    /// the socket to become readable could wait for data that has arrived: a TLS handshake
    /// reads whatever follows the client's Finished message, often the first request.
    const READ_AHEAD: bool;

    /// The TCP socket.
    fn tcp(&self) -> &TcpStream;
}

impl Socket for TcpStream {
    const READ_AHEAD: bool = false;

    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl<S: Socket> Socket for framing::Watched<S> {
    const READ_AHEAD: bool = S::READ_AHEAD;

    fn tcp(&self) -> &TcpStream {
        self.get_ref().tcp()
    }
}

impl Socket for tokio_rustls::server::TlsStream<TcpStream> {
    const READ_AHEAD: bool = true;

    fn tcp(&self) -> &TcpStream {
        self.get_ref().0
    }
}

/// Serves one accepted connection until it closes or `stop` has drained it.
///
/// This and the cleartext path below are functions returning `async move` blocks, not `async
/// fn`s: an `async fn` keeps its arguments twice in its future (as arguments, and again as the
/// body's locals), and these futures are what every idle connection costs (issue 15).
#[allow(clippy::manual_async_fn)] // not an `async fn`: see above
pub fn connection(
    stream: TcpStream,
    conn: Arc<ConnCtx>,
    tls: Option<TlsAcceptor>,
    cfg: Arc<ServeCfg>,
    stop: CancellationToken,
) -> impl Future<Output = ()> {
    async move {
        let Some(acceptor) = tls else { return plain(stream, conn, cfg, stop).await };
        // Everything but cleartext HTTP/1.1 is boxed: the task's own future is as large as its
        // largest state, and it should be sized for a parked cleartext HTTP/1.1 connection. The
        // session the handshake builds, and the boxed connection holding it, last as long as the
        // connection (`memory`).
        let handshake = LongLived::new(long_lived(|| Box::pin(acceptor.accept(stream))));
        // The stream is moved out of a block before anything else is awaited: a local that was
        // matched on or borrowed keeps its storage (1.2 KiB, the TLS session) in the task's
        // future across every later await, i.e. for the life of every connection of the listener.
        let (s, h2) = {
            let s = match tokio::time::timeout(cfg.header_read_timeout, handshake).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return tracing::debug!(peer = %conn.peer, error = %e, "TLS handshake failed"),
                Err(_) => return tracing::debug!(peer = %conn.peer, "TLS handshake timed out"),
            };
            let h2 = s.get_ref().1.alpn_protocol() == Some(b"h2");
            if let Some(v) = s.get_ref().1.protocol_version().and_then(|v| v.as_str()) {
                let _ = conn.tls_version.set(v.trim_start_matches("TLSv"));
            }
            (s, h2)
        };
        if h2 {
            long_lived(|| Box::pin(auto_conn(s, conn, cfg, stop))).await
        } else {
            let s = framing::Watched::new(s, conn.framing.clone());
            long_lived(|| Box::pin(h1::serve(s, conn, cfg, stop))).await
        }
    }
}

/// Cleartext: HTTP/1.1 unless the first bytes could be the HTTP/2 preface (h2c prior
/// knowledge); an ambiguous short read goes to the auto builder, which sniffs to the end.
#[allow(clippy::manual_async_fn)] // not an `async fn`: see `connection`
fn plain(
    stream: TcpStream,
    conn: Arc<ConnCtx>,
    cfg: Arc<ServeCfg>,
    stop: CancellationToken,
) -> impl Future<Output = ()> {
    async move {
        let mut head = [0u8; H2_PREFACE.len()];
        let n = tokio::select! {
            r = stream.peek(&mut head) => match r {
                Ok(n) => n,
                Err(_) => return,
            },
            _ = tokio::time::sleep(cfg.header_read_timeout) => {
                tracing::debug!(peer = %conn.peer, "no request within the header read timeout: closing");
                return;
            }
            _ = stop.cancelled() => return,
        };
        match n {
            0 => {}
            n if head[..n] == H2_PREFACE[..n] => Box::pin(auto_conn(stream, conn, cfg, stop)).await,
            _ => {
                let stream = framing::Watched::new(stream, conn.framing.clone());
                h1::serve(stream, conn, cfg, stop).await
            }
        }
    }
}

async fn auto_conn<S: Socket>(io: S, conn: Arc<ConnCtx>, cfg: Arc<ServeCfg>, stop: CancellationToken) {
    let peer = conn.peer;
    let first = Arc::new(AtomicBool::new(false));
    let seen = first.clone();
    let service = service_fn(move |req| {
        if !seen.load(Ordering::Relaxed) {
            seen.store(true, Ordering::Relaxed);
        }
        proxy::handle(conn.clone(), req, None)
    });
    let c = cfg.auto.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(c);
    let res = tokio::select! {
        r = c.as_mut() => r,
        _ = stop.cancelled() => {
            c.as_mut().graceful_shutdown();
            c.await
        }
        _ = first_request_deadline(&first, cfg.header_read_timeout) => {
            tracing::debug!(%peer, "no request head within the header read timeout: closing");
            return;
        }
    };
    if let Err(e) = res {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// Completes when `timeout` passes without a first request; pends forever once one arrived.
///
/// hyper-util's auto builder reads bytes to tell HTTP/1 from an HTTP/2 preface without a
/// timeout: a client that sends a partial preface would hold a connection slot forever. This
/// closes that gap for the first request; later ones are covered by the HTTP/2 keep-alive pings.
///
/// The connection's `select!` polls this on every wake-up of the connection: once a request
/// has been seen it answers `Pending` after one atomic load instead of polling the timer.
async fn first_request_deadline(first: &AtomicBool, timeout: Duration) {
    use std::future::Future as _;
    let sleep = tokio::time::sleep(timeout);
    tokio::pin!(sleep);
    std::future::poll_fn(|cx| {
        if first.load(Ordering::Relaxed) {
            return std::task::Poll::Pending;
        }
        sleep.as_mut().poll(cx)
    })
    .await
}
