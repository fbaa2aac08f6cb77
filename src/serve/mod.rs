//! Serving one accepted connection: TLS handshake, protocol choice, and the per-connection
//! timers. HTTP/1.1 (the common case) goes to [`h1`], which frees hyper's state while a
//! keep-alive connection is idle; HTTP/2 (ALPN `h2`, or cleartext that begins `PRI `) goes to
//! [`h2`], hyper's HTTP/2 builder alone.

mod closed;
mod framing;
mod h1;
mod h2;
mod io;

use crate::config::Limits;
use crate::proxy::ConnCtx;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// Longest wait between idle checks of an HTTP/1.1 connection; shorter when the header read
/// timeout is short: the check also enforces that timeout on request heads, so a head is cut
/// off at most a quarter of the timeout (and half a second) after its deadline. A connection
/// parks one to two checks after its last request, and gives back hyper's buffers (~16 KiB)
/// then: at 1 s, 8 000 idle connections took 2.07–2.19 s to settle; at 500 ms the extra check
/// is one wake-up per second per busy connection.
const MAX_IDLE_GRACE: Duration = Duration::from_millis(500);

/// What decides a cleartext connection's protocol: the method RFC 9113 §3.4 reserves for the
/// HTTP/2 preface. No HTTP/1.1 request starts with it, and a connection that does must be
/// HTTP/2: a bad preface after it is an HTTP/2 protocol error, not an HTTP/1.1 request.
const H2_START: &[u8] = b"PRI ";

/// Pause between looks at a cleartext connection whose first segment was a strict prefix of
/// `PRI ` (1 to 3 bytes): a peek returns at once while bytes wait, so it cannot wait for more.
const SNIFF_RETRY: Duration = Duration::from_millis(5);

/// Connection settings of one listener, built once and shared by its connections.
pub struct ServeCfg {
    h1: hyper::server::conn::http1::Builder,
    h2: hyper::server::conn::http2::Builder<TokioExecutor>,
    header_read_timeout: Duration,
    idle_timeout: Duration,
    idle_grace: Duration,
}

impl ServeCfg {
    /// hyper builders and timers from the listener's limits.
    pub fn new(limits: &Limits) -> ServeCfg {
        let mut h1 = hyper::server::conn::http1::Builder::new();
        // No timer and no head timer of hyper's: `h1` bounds request heads with the idle tick it
        // runs anyway (hyper's boxed a timer per request head, ~720 instructions per request).
        h1.header_read_timeout(None).max_buf_size(limits.max_header_bytes.max(8192)).keep_alive(true);
        // One buffer per write: a response head and a small body are copied together instead
        // of queued for `writev` (the queue's bookkeeping cost more than the copy; see
        // `upstream::client::handshake`).
        h1.writev(false);
        let mut h2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        h2.timer(TokioTimer::new())
            .max_concurrent_streams(limits.max_h2_streams)
            .max_header_list_size(limits.max_header_bytes as u32)
            .keep_alive_interval(Some(limits.idle_timeout / 2))
            .keep_alive_timeout(Duration::from_secs(20));
        ServeCfg {
            h1,
            h2,
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
/// body's locals), and these futures are what every idle connection costs.
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
        // largest state, and it should be sized for a parked cleartext HTTP/1.1 connection.
        let handshake = Box::pin(acceptor.accept(stream));
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
            Box::pin(h2::serve(s, conn, cfg, stop)).await
        } else {
            let s = framing::Watched::new(s, conn.framing.clone());
            Box::pin(h1::serve(s, conn, cfg, stop)).await
        }
    }
}

/// Cleartext: HTTP/2 (prior knowledge) when the first bytes are `PRI `, else HTTP/1.1.
#[allow(clippy::manual_async_fn)] // not an `async fn`: see `connection`
fn plain(
    stream: TcpStream,
    conn: Arc<ConnCtx>,
    cfg: Arc<ServeCfg>,
    stop: CancellationToken,
) -> impl Future<Output = ()> {
    async move {
        let sniff = tokio::time::timeout(cfg.header_read_timeout, starts_h2(&stream));
        let h2 = tokio::select! {
            r = sniff => match r {
                Ok(Some(h2)) => h2,
                Ok(None) => return,
                Err(_) => {
                    tracing::debug!(peer = %conn.peer, "no request within the header read timeout: closing");
                    return;
                }
            },
            _ = stop.cancelled() => return,
        };
        if h2 {
            Box::pin(h2::serve(stream, conn, cfg, stop)).await
        } else {
            let stream = framing::Watched::new(stream, conn.framing.clone());
            h1::serve(stream, conn, cfg, stop).await
        }
    }
}

/// Whether the connection begins with `H2_START`, read without consuming anything; `None` when
/// the client left first. Only a first segment of 1 to 3 bytes that could still begin it (`P`,
/// `PR`, `PRI`) is looked at again; the caller bounds the wait.
async fn starts_h2(stream: &TcpStream) -> Option<bool> {
    let mut head = [0u8; H2_START.len()];
    loop {
        let n = stream.peek(&mut head).await.ok()?;
        match n {
            0 => return None,
            n if head[..n] != H2_START[..n] => return Some(false),
            n if n == H2_START.len() => return Some(true),
            _ => tokio::time::sleep(SNIFF_RETRY).await,
        }
    }
}
