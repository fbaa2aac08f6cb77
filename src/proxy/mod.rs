//! One request's path, as named phases of a request context (`exchange`): admit → pick →
//! attempt → respond. A green attempt that fails before any response byte reached the client is
//! sent once to blue when that is safe (budgeted); a green attempt still waiting when green is
//! rolled back is re-sent to blue; a slow green may be hedged. Failed green attempts still count
//! against green so the control loop sees what users were spared.

pub mod admit;
mod attempt;
mod exchange;
pub mod headers;
pub mod respond;

use crate::body::{BodyCut, Exchange, ResponseBody};
use crate::error::ProxyError;
use crate::observe::Telemetry;
use crate::route::{Route, Router, ServiceKey};
use crate::upstream::client::UpstreamClient;
use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What every request of one listener shares.
pub struct ServiceCtx {
    /// The route snapshot.
    pub router: Arc<Router>,
    /// Which route.
    pub key: ServiceKey,
    /// Name for error bodies.
    pub name: Arc<str>,
    /// Pooled upstream client.
    pub client: UpstreamClient,
    /// Data-path alarm to the control loop: a green response failed the hash check.
    pub alarms: mpsc::Sender<ServiceKey>,
    /// `http` or `https`, for `X-Forwarded-Proto`.
    pub proto: HeaderValue,
    /// Request ids, the access log and traces (one per app).
    pub telemetry: Arc<Telemetry>,
}

/// Per-connection context: the peer address rendered once, not per request.
pub struct ConnCtx {
    /// Listener context.
    pub svc: Arc<ServiceCtx>,
    /// Client address.
    pub peer: SocketAddr,
    /// Client IP as a header value.
    pub peer_value: HeaderValue,
    /// The listener's tasks: an upgrade tunnel outlives its request and its connection task, so
    /// it joins them here to be waited for (and ended) when the listener drains.
    pub tasks: TaskTracker,
    /// Cancelled when the drain timeout has passed: whatever is still open is closed.
    pub closing: CancellationToken,
    /// Which request (if any) had ambiguous framing, written by the connection's byte watcher.
    pub framing: Arc<admit::Ambiguous>,
    /// Requests seen on this connection, in arrival order (the watcher's index).
    requests: std::sync::atomic::AtomicU64,
    /// The TLS version negotiated, set once by `serve` after the handshake (for the access log).
    pub tls_version: std::sync::OnceLock<&'static str>,
}

impl ConnCtx {
    /// Context for a new connection of a listener whose tasks are `tasks`.
    pub fn new(svc: Arc<ServiceCtx>, peer: SocketAddr, tasks: TaskTracker, closing: CancellationToken) -> Self {
        let peer_value = HeaderValue::from_str(&peer.ip().to_string()).expect("an IP is a valid header value");
        let (framing, requests) = (admit::Ambiguous::new(), std::sync::atomic::AtomicU64::new(0));
        ConnCtx { svc, peer, peer_value, tasks, closing, framing, requests, tls_version: Default::default() }
    }
}

/// Serves one request; never fails (errors become responses). The response body holds
/// `exchange` (HTTP/1.1's idle tracking) until hyper drops it.
pub async fn handle(
    conn: Arc<ConnCtx>,
    mut req: Request<Incoming>,
    exchange: Option<Exchange>,
) -> Result<Response<ResponseBody>, Infallible> {
    let tel = &conn.svc.telemetry;
    let request_id = tel.request_id(req.headers_mut());
    let tls = conn.tls_version.get().copied();
    let obs = tel.begin(conn.peer, tls, &conn.svc.name, &req, &request_id);
    // A body still arriving when the response has ended is no longer relayed (`BodyCut`).
    let cut = (!http_body::Body::is_end_stream(req.body()) && !headers::is_upgrade(req.headers())).then(BodyCut::new);
    if let Some(c) = &cut {
        req.extensions_mut().insert(c.clone());
    }
    let mut resp = match admitted(&conn, &mut req) {
        Ok(route) => exchange::run(&conn, route, req, obs, &request_id).await,
        Err((e, service)) => {
            let r = respond::error_response(&e, &service, &request_id);
            if let Some(o) = obs {
                o.finish_now(&r, respond::reason(&e));
            }
            r
        }
    };
    resp.headers_mut().insert(tel.request_id.clone(), request_id);
    resp.body_mut().keep(exchange);
    resp.body_mut().cut_when_done(cut);
    Ok(resp)
}

/// The request's route, or why it is refused and the service name for the error body.
fn admitted(conn: &ConnCtx, req: &mut Request<Incoming>) -> Result<Arc<Route>, (ProxyError, Arc<str>)> {
    // HTTP/1 requests reach the service one at a time, in the order their heads arrived.
    if conn.framing.is(conn.requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed)) {
        req.extensions_mut().insert(admit::AmbiguousFraming);
    }
    let svc = &conn.svc;
    let Some(route) = svc.router.load().get(svc.key).cloned() else {
        return Err((ProxyError::NoRoute, svc.name.clone()));
    };
    match admit::admit(req, &route) {
        Ok(()) => Ok(route),
        Err(e) => Err((e, route.name.clone())),
    }
}
