//! Sockets: the accept loop, structural shutdown, and the per-connection IO wrapper that lets
//! a request inject connection-level faults (garbage bytes, TCP reset) without fighting hyper.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::service;
use super::state::Shared;

/// How long shutdown waits for in-flight requests before closing connections outright
/// (a `Hang` fault would otherwise hold shutdown forever).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause after a failed accept (e.g. EMFILE) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);
/// What a `Garbage` fault writes instead of a response: not parseable as HTTP.
pub(crate) const GARBAGE: &[u8] = b"\x00\x01garbage\r\n\r\n";

const HEALTHY: u8 = 0;
const GARBAGE_PENDING: u8 = 1;
const GARBAGE_SENT: u8 = 2;
const RESET: u8 = 3;

/// A fault a request has decided to inflict on its own connection. Shared between the
/// connection's service (which decides) and its IO wrapper (which acts), hence the atomic.
#[derive(Debug, Default)]
pub(crate) struct ConnFault(AtomicU8);

impl ConnFault {
    /// Replace the next response bytes on this connection with [`GARBAGE`], then close.
    pub(crate) fn garbage(&self) {
        let _ = self.0.compare_exchange(HEALTHY, GARBAGE_PENDING, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Fail all further IO and close this connection with a TCP RST.
    pub(crate) fn reset(&self) {
        self.0.store(RESET, Ordering::Release);
    }

    fn get(&self) -> u8 {
        self.0.load(Ordering::Acquire)
    }
}

/// A `TcpStream` that obeys its [`ConnFault`]: hyper writes a normal response, the wrapper
/// swaps it for garbage or refuses it, so faults need no raw HTTP path beside hyper.
struct FaultIo {
    tcp: TcpStream,
    fault: Arc<ConnFault>,
    garbage_written: usize,
}

fn reset_error() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionReset, "injected reset fault")
}

impl AsyncRead for FaultIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.fault.get() {
            RESET => Poll::Ready(Err(reset_error())),
            // After the garbage, pretend the peer is gone so hyper ends the connection.
            GARBAGE_SENT => Poll::Ready(Ok(())),
            _ => Pin::new(&mut self.tcp).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for FaultIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        match this.fault.get() {
            RESET => Poll::Ready(Err(reset_error())),
            GARBAGE_SENT => Poll::Ready(Ok(buf.len())),
            GARBAGE_PENDING => {
                while this.garbage_written < GARBAGE.len() {
                    let rest = &GARBAGE[this.garbage_written..];
                    match Pin::new(&mut this.tcp).poll_write(cx, rest) {
                        Poll::Ready(Ok(n)) => this.garbage_written += n,
                        other => return other,
                    }
                }
                this.fault.0.store(GARBAGE_SENT, Ordering::Release);
                // Swallow hyper's real response bytes.
                Poll::Ready(Ok(buf.len()))
            }
            _ => Pin::new(&mut this.tcp).poll_write(cx, buf),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

impl Drop for FaultIo {
    fn drop(&mut self) {
        if self.fault.get() == RESET {
            // Zero linger turns the close into an RST; it never blocks, unlike a non-zero one.
            if let Err(e) = self.tcp.set_zero_linger() {
                tracing::debug!(error = %e, "mock upstream: could not set zero linger");
            }
        }
    }
}

/// Accepts until `shutdown` completes, then drains for [`DRAIN_TIMEOUT`] and aborts the rest.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: impl std::future::Future<Output = ()>,
) -> io::Result<()> {
    let builder = Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((tcp, _peer)) => {
                    conns.spawn(serve_connection(&builder, &graceful, tcp, Arc::clone(&shared)));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "mock upstream: accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
    drop(listener);
    shared.close_tunnels();
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await.is_err() {
        tracing::debug!("mock upstream: drain timed out, closing remaining connections");
    }
    conns.shutdown().await;
    Ok(())
}

fn serve_connection(
    builder: &Builder<TokioExecutor>,
    graceful: &GracefulShutdown,
    tcp: TcpStream,
    shared: Arc<Shared>,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let _ = tcp.set_nodelay(true);
    let fault = Arc::new(ConnFault::default());
    let io = TokioIo::new(FaultIo { tcp, fault: Arc::clone(&fault), garbage_written: 0 });
    let svc = service_fn(move |req| service::handle(Arc::clone(&shared), Arc::clone(&fault), req));
    let conn = builder.serve_connection_with_upgrades(io, svc).into_owned();
    let conn = graceful.watch(conn);
    async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "mock upstream: connection ended with an error");
        }
    }
}
