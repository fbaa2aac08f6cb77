//! One accept loop per service: connection limit, optional TLS, HTTP/1.1 + HTTP/2 (h2c and ALPN),
//! header limits and timeouts, and structural draining: every connection task is tracked and told
//! to finish gracefully when the listener stops.

use crate::config::Limits;
use crate::memory::LongLived;
use crate::proxy::{ConnCtx, ServiceCtx};
use crate::serve::{self, ServeCfg};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
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
        // What the accept loop allocates (each connection's task, context and reactor
        // registration) lasts as long as the connection: kept on pages of its own (`memory`).
        let done = tokio::spawn(LongLived::new(accept_loop(socket.clone(), svc, tls, limits, stop.clone())));
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
    let cfg = Arc::new(ServeCfg::new(&limits));
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
        let (tls, cfg, stop, closing) = (tls.clone(), cfg.clone(), stop.clone(), closing.clone());
        tracker.spawn(async move {
            // Borrowed rather than moved into a local: a moved copy would be kept beside the
            // captured one for the life of the connection.
            let _permit = &permit;
            tokio::select! {
                _ = serve::connection(stream, conn, tls, cfg, stop) => {}
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
