//! HTTP/2 connections: ALPN `h2`, or cleartext that began with the preface's `PRI ` (h2c prior
//! knowledge). Served by hyper's HTTP/2 builder alone, never a builder that falls back to
//! HTTP/1.1: on a connection that must be HTTP/2 a bad preface ends in a close (h2 reads it after
//! sending its SETTINGS and gives up), never in an HTTP/1.1 answer (RFC 9113 §3.4), and a plain
//! `GET / HTTP/1.1` on a TLS connection whose ALPN chose `h2` is not served: the negotiated
//! protocol is the one spoken.
//!
//! A request body the upstream answered early: once the response has ended and the proxy has
//! dropped the body, the `h2` crate sends RST_STREAM(NO_ERROR) (RFC 9113 §8.1). DATA the client
//! still sends on that stream gets RST_STREAM(STREAM_CLOSED) from `h2` once it has forgotten the
//! stream; while it remembers it (1 s, at most 50 streams: `h2`'s defaults, not configurable
//! through hyper) the frames are ignored, which RFC 9113 §5.1 also allows. Never a GOAWAY: see
//! `tests/it/protocol_edges.rs`.

use super::{ServeCfg, Socket};
use crate::proxy::{self, ConnCtx};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Serves HTTP/2 on `io` until the client leaves, the first request is late, or `stop` drains it.
pub(super) async fn serve<S: Socket>(io: S, conn: Arc<ConnCtx>, cfg: Arc<ServeCfg>, stop: CancellationToken) {
    let peer = conn.peer;
    let first = Arc::new(AtomicBool::new(false));
    let seen = first.clone();
    let service = service_fn(move |req| {
        if !seen.load(Ordering::Relaxed) {
            seen.store(true, Ordering::Relaxed);
        }
        proxy::handle(conn.clone(), req, None)
    });
    let c = cfg.h2.serve_connection(TokioIo::new(io), service);
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
/// hyper reads the client's preface without a timeout: a client that sends a partial preface
/// would hold a connection slot forever. This closes that gap for the first request; later ones
/// are covered by the HTTP/2 keep-alive pings.
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
