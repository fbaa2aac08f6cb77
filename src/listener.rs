//! One accept loop per service: connection limit, optional TLS, HTTP/1.1 + HTTP/2 (h2c and ALPN),
//! header limits and timeouts, and structural draining: every connection task is tracked and told
//! to finish gracefully when the listener stops.

mod framing;

use crate::config::Limits;
use crate::proxy::{self, ConnCtx, ServiceCtx};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A running listener.
pub struct Listener {
    /// Bound address (useful with port 0).
    pub addr: SocketAddr,
    /// The bound socket, shared so a reload can hand it to a new accept loop (a service renamed
    /// on the same port, TLS switched on) without closing the port: both loops may accept for a
    /// moment, each connection is served by exactly one of them.
    socket: Arc<TcpListener>,
    stop: CancellationToken,
    done: tokio::task::JoinHandle<()>,
}

impl Listener {
    /// Binds `addr` with a backlog large enough for bursts; excess connections wait there.
    pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
        let sock = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
        sock.set_reuseaddr(true)?;
        sock.set_nodelay(true)?;
        sock.bind(addr)?;
        sock.listen(4096)
    }

    /// Starts serving on an already bound socket.
    pub fn start(socket: Arc<TcpListener>, svc: Arc<ServiceCtx>, tls: Option<TlsAcceptor>, limits: Limits) -> Listener {
        let addr = socket.local_addr().expect("bound socket has an address");
        let stop = CancellationToken::new();
        let done = tokio::spawn(accept_loop(socket.clone(), svc, tls, limits, stop.clone()));
        Listener { addr, socket, stop, done }
    }

    /// The bound socket, for handing over to a new accept loop on reload.
    pub fn socket(&self) -> Arc<TcpListener> {
        self.socket.clone()
    }

    /// Stops accepting and waits until in-flight requests finish or `limits.drain_timeout` passes.
    pub async fn drain(self) {
        let Listener { socket, stop, done, .. } = self;
        // Release our handle first: the port closes as soon as the accept loop lets go of it
        // (unless a reload handed it to a new loop).
        drop(socket);
        stop.cancel();
        let _ = done.await;
    }
}

fn builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_h2_streams)
        .max_header_list_size(limits.max_header_bytes as u32)
        .keep_alive_interval(Some(limits.idle_timeout / 2))
        .keep_alive_timeout(Duration::from_secs(20));
    b
}

async fn accept_loop(
    listener: Arc<TcpListener>,
    svc: Arc<ServiceCtx>,
    tls: Option<TlsAcceptor>,
    limits: Limits,
    stop: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let tracker = TaskTracker::new();
    let closing = CancellationToken::new();
    let builder = builder(&limits);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.expect("semaphore never closed"),
            _ = stop.cancelled() => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends are transient: back off briefly and keep accepting.
                    tracing::warn!(service = %svc.name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let conn = Arc::new(ConnCtx::new(svc.clone(), peer, tracker.clone(), closing.clone()));
        let (tls, builder, stop, hs_timeout) = (tls.clone(), builder.clone(), stop.clone(), limits.header_read_timeout);
        let closing = closing.clone();
        tracker.spawn(async move {
            let _permit = permit;
            tokio::select! {
                _ = serve(stream, conn, tls, builder, stop, hs_timeout) => {}
                // Dropping the connection future closes the socket and cancels its requests.
                _ = closing.cancelled() => {}
            }
        });
    }
    drop(listener);
    tracker.close();
    if tokio::time::timeout(limits.drain_timeout, tracker.wait()).await.is_err() {
        tracing::warn!(service = %svc.name, remaining = tracker.len(), "drain timeout: closing remaining connections");
        closing.cancel();
        tracker.wait().await;
    }
}

async fn serve(
    stream: TcpStream,
    conn: Arc<ConnCtx>,
    tls: Option<TlsAcceptor>,
    builder: auto::Builder<TokioExecutor>,
    stop: CancellationToken,
    hs_timeout: Duration,
) {
    let found = framing::Ambiguous::new();
    match tls {
        None => {
            let io = TokioIo::new(framing::Watched::new(stream, found.clone()));
            serve_io(io, conn, found, builder, stop, hs_timeout).await
        }
        Some(acceptor) => match tokio::time::timeout(hs_timeout, acceptor.accept(stream)).await {
            Ok(Ok(s)) => {
                let io = TokioIo::new(framing::Watched::new(s, found.clone()));
                serve_io(io, conn, found, builder, stop, hs_timeout).await
            }
            Ok(Err(e)) => tracing::debug!(peer = %conn.peer, error = %e, "TLS handshake failed"),
            Err(_) => tracing::debug!(peer = %conn.peer, "TLS handshake timed out"),
        },
    }
}

async fn serve_io<I>(
    io: TokioIo<I>,
    conn: Arc<ConnCtx>,
    ambiguous: Arc<framing::Ambiguous>,
    builder: auto::Builder<TokioExecutor>,
    stop: CancellationToken,
    head_timeout: Duration,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let peer = conn.peer;
    let first = Arc::new(AtomicBool::new(false));
    let seen = first.clone();
    let index = std::sync::atomic::AtomicU64::new(0);
    let service = service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
        if !seen.load(Ordering::Relaxed) {
            seen.store(true, Ordering::Relaxed);
        }
        // Requests reach the service in the order their heads arrived (one at a time on HTTP/1).
        if ambiguous.is(index.fetch_add(1, Ordering::Relaxed)) {
            req.extensions_mut().insert(proxy::admit::AmbiguousFraming);
        }
        proxy::handle(conn.clone(), req)
    });
    let c = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(c);
    let res = tokio::select! {
        r = c.as_mut() => r,
        _ = stop.cancelled() => {
            c.as_mut().graceful_shutdown();
            c.await
        }
        _ = first_request_deadline(&first, head_timeout) => {
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
/// hyper's `header_read_timeout` only runs inside its HTTP/1 parser, but hyper-util's auto
/// builder first reads bytes to tell HTTP/1 from an HTTP/2 preface, without a timeout: a client
/// that connects and sends nothing (or a partial preface) would hold a connection slot forever.
/// This closes that gap for the first request; later ones are covered by hyper (HTTP/1) and the
/// HTTP/2 keep-alive pings.
///
/// The connection's `select!` polls this on every wake-up of the connection, i.e. several
/// times per request: once a request has been seen it answers `Pending` after one atomic
/// load instead of polling the timer (the timer still fires once, as a spurious wake-up).
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
