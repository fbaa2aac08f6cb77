//! One accept loop per service and worker: connection limit, optional TLS, HTTP/1.1 + HTTP/2
//! (h2c and ALPN), header limits and timeouts, and structural draining: every connection task is
//! tracked and told to finish gracefully when the listener stops.

use crate::config::Limits;
use crate::proxy::{ConnCtx, ServiceCtx};
use crate::serve::{self, ServeCfg};
use crate::workers::{Sockets, Workers};
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
    /// The bound sockets (one per worker), shared so a reload can hand them to a new accept loop
    /// (a service renamed on the same port, TLS switched on) without closing the port: both loops
    /// may accept for a moment, each connection is served by exactly one of them.
    sockets: Sockets,
    stop: CancellationToken,
    done: tokio::task::JoinHandle<()>,
}

/// What every worker's accept loop of one listener shares: the connection limit is the
/// listener's, not a worker's, and draining waits for the connections of every worker.
struct Shared {
    svc: Arc<ServiceCtx>,
    tls: Option<TlsAcceptor>,
    permits: Arc<Semaphore>,
    tracker: TaskTracker,
    closing: CancellationToken,
    cfg: Arc<ServeCfg>,
}

impl Listener {
    /// Binds `addr` on every worker (`SO_REUSEPORT` when there are several) with a backlog large
    /// enough for bursts; excess connections wait there.
    pub fn bind(workers: &Workers, addr: SocketAddr) -> std::io::Result<Sockets> {
        workers.bind(addr)
    }

    /// Starts serving on already bound sockets: one accept loop per socket, on its worker.
    pub fn start(sockets: Sockets, svc: Arc<ServiceCtx>, tls: Option<TlsAcceptor>, limits: Limits) -> Listener {
        let addr = sockets.addr;
        let stop = CancellationToken::new();
        let shared = Arc::new(Shared {
            svc,
            tls,
            permits: Arc::new(Semaphore::new(limits.max_connections)),
            tracker: TaskTracker::new(),
            closing: CancellationToken::new(),
            cfg: Arc::new(ServeCfg::new(&limits)),
        });
        let loops: Vec<_> = sockets
            .iter()
            .map(|(rt, socket)| rt.spawn(accept_loop(socket.clone(), shared.clone(), stop.clone())))
            .collect();
        let done = tokio::spawn(async move {
            for l in loops {
                let _ = l.await;
            }
            drain(&shared, limits.drain_timeout).await;
        });
        Listener { addr, sockets, stop, done }
    }

    /// The bound sockets, for handing over to a new accept loop on reload.
    pub fn sockets(&self) -> Sockets {
        self.sockets.clone()
    }

    /// Stops accepting and waits until in-flight requests finish or `limits.drain_timeout` passes.
    pub async fn drain(self) {
        let Listener { sockets, stop, done, .. } = self;
        // Release our handles first: the port closes as soon as the accept loops let go of it
        // (unless a reload handed it to a new loop).
        drop(sockets);
        stop.cancel();
        let _ = done.await;
    }
}

async fn accept_loop(listener: Arc<TcpListener>, shared: Arc<Shared>, stop: CancellationToken) {
    let accepted = metrics::counter!(
        crate::stats::names::WORKER_CONNECTIONS_TOTAL,
        "service" => shared.svc.name.to_string(),
        "worker" => crate::workers::current_index().to_string()
    );
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends are transient: back off briefly and keep accepting.
                    tracing::warn!(service = %shared.svc.name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => break,
        };
        accepted.increment(1);
        // The permit is taken after the accept: taken before, with several workers, the last free
        // permit could wait in the accept of a worker whose socket gets nothing while connections
        // queue on another's (with `max_connections = 1` about half were never served). So each
        // worker holds at most one accepted connection past the limit, waiting here; the rest wait
        // in the kernel's backlog.
        let permit = tokio::select! {
            p = shared.permits.clone().acquire_owned() => p.expect("semaphore never closed"),
            _ = stop.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let conn = Arc::new(ConnCtx::new(shared.svc.clone(), peer, shared.tracker.clone(), shared.closing.clone()));
        let (tls, cfg, stop, closing) = (shared.tls.clone(), shared.cfg.clone(), stop.clone(), shared.closing.clone());
        shared.tracker.spawn(async move {
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
}

/// After every accept loop stopped: wait for the connections of every worker, then close what
/// is left after `timeout`.
async fn drain(shared: &Shared, timeout: Duration) {
    shared.tracker.close();
    if tokio::time::timeout(timeout, shared.tracker.wait()).await.is_err() {
        tracing::warn!(service = %shared.svc.name, remaining = shared.tracker.len(), "drain timeout: closing remaining connections");
        shared.closing.cancel();
        shared.tracker.wait().await;
    }
}
