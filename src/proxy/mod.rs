//! One request's path: load the route once, pick a color, forward, stream the response back,
//! record on body end. Failed green attempts may be retried once on blue (budgeted); the failed
//! attempt still counts against green so the control loop sees what users were spared.

pub mod headers;
pub mod respond;

use crate::body::{Recording, RequestBody, ResponseBody};
use crate::error::{ProxyError, UpstreamErrorKind};
use crate::route::{Route, Router, ServiceKey};
use crate::stats::{HashCheck, InFlight, Sample, SampleKind};
use crate::upstream::client::{self, UpstreamClient};
use crate::Color;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, Uri, Version};
use http_body::Body as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::time::Instant;

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
}

/// Per-connection context: the peer address rendered once, not per request.
pub struct ConnCtx {
    /// Listener context.
    pub svc: Arc<ServiceCtx>,
    /// Client address.
    pub peer: SocketAddr,
    /// Client IP as a header value.
    pub peer_value: HeaderValue,
}

impl ConnCtx {
    /// Context for a new connection.
    pub fn new(svc: Arc<ServiceCtx>, peer: SocketAddr) -> Self {
        let peer_value = HeaderValue::from_str(&peer.ip().to_string()).expect("an IP is a valid header value");
        ConnCtx { svc, peer, peer_value }
    }
}

/// Serves one request; never fails (errors become responses).
pub async fn handle(conn: Arc<ConnCtx>, req: Request<Incoming>) -> Result<Response<ResponseBody>, Infallible> {
    let svc = &conn.svc;
    let route = match svc.router.load().get(svc.key) {
        Some(r) => r.clone(),
        None => return Ok(respond::error_response(&ProxyError::NoRoute, &svc.name)),
    };
    if let Err(e) = admit(&req, &route) {
        return Ok(respond::error_response(&e, &route.name));
    }
    Ok(forward(&conn, &route, req).await)
}

/// Refuses what a reverse proxy must never do: CONNECT, absolute-form URIs to other hosts,
/// declared bodies over the limit.
fn admit(req: &Request<Incoming>, route: &Route) -> Result<(), ProxyError> {
    if req.method() == Method::CONNECT {
        return Err(ProxyError::BadRequest("CONNECT is not supported"));
    }
    if req.version() <= Version::HTTP_11 {
        if let Some(auth) = req.uri().authority() {
            let host = req.headers().get(header::HOST).map(|h| h.as_bytes());
            // Without a Host line there is nothing to check the authority against (and HTTP/1.1
            // requires one): only a forward-proxy client sends that, so refuse it too.
            if host.is_none_or(|h| !h.eq_ignore_ascii_case(auth.as_str().as_bytes())) {
                return Err(ProxyError::BadRequest("absolute-form URI names another host"));
            }
        }
    }
    if let (Some(limit), Some(len)) = (route.policy.max_body_bytes, content_length(req)) {
        if len > limit {
            return Err(ProxyError::BodyTooLarge);
        }
    }
    Ok(())
}

fn content_length<B>(req: &Request<B>) -> Option<u64> {
    req.headers().get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

struct Head {
    method: Method,
    uri: Uri,
    headers: http::HeaderMap,
}

async fn forward(conn: &ConnCtx, route: &Arc<Route>, mut req: Request<Incoming>) -> Response<ResponseBody> {
    let start = Instant::now();
    let stats = &route.stats;
    stats.budget.deposit();
    let mut in_flight = Some(InFlight::enter(stats));
    let color = route.pick(req.headers(), conn.peer);
    let upgrade = headers::is_upgrade(req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (parts, body) = req.into_parts();
    let mut head = Head { method: parts.method, uri: parts.uri, headers: parts.headers };
    headers::strip_hop_by_hop(&mut head.headers, upgrade);
    let host = head.headers.get(header::HOST).cloned();
    let host = host.or_else(|| head.uri.authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok()));
    if let (None, Some(h)) = (head.headers.get(header::HOST), &host) {
        head.headers.insert(header::HOST, h.clone());
    }
    headers::add_forwarded(&mut head.headers, &conn.peer_value, &conn.svc.proto, host);

    let policy = &route.policy;
    let retry = policy.retry.enabled && route.judged(color) && !upgrade && head.method.is_idempotent();
    let (body, replay) = if retry && body.is_end_stream() {
        (RequestBody::full(Bytes::new()), Some(Bytes::new()))
    } else if retry && content_length_of(&head).is_some_and(|l| l <= policy.retry.max_body_bytes as u64) {
        match http_body_util::Limited::new(body, policy.retry.max_body_bytes).collect().await {
            Ok(c) => {
                let b = c.to_bytes();
                (RequestBody::full(b.clone()), Some(b))
            }
            Err(_) => {
                return respond::error_response(&ProxyError::BadRequest("unreadable request body"), &route.name);
            }
        }
    } else {
        (RequestBody::stream(body, policy.max_body_bytes), None)
    };

    // Only a retry needs the headers again; without one the first attempt takes them.
    let headers = if replay.is_some() { head.headers.clone() } else { std::mem::take(&mut head.headers) };
    let first = attempt(conn, route, color, &head, headers, body, start, replay.is_none(), &mut in_flight).await;
    let out = match (first, replay) {
        (Attempt::Retryable(rec), Some(bytes)) if stats.try_retry(policy.retry.budget) => {
            rec.finish(None);
            let headers = std::mem::take(&mut head.headers);
            attempt(conn, route, route.live, &head, headers, RequestBody::full(bytes), start, true, &mut in_flight)
                .await
        }
        (first, _) => first,
    };
    match out {
        Attempt::Done(resp, up) => finish_upgrade(resp, client_upgrade, up),
        Attempt::Retryable(rec) => {
            // No retry after all (budget spent); `in_flight` is released when this returns.
            let e = rec.sample.error;
            let status = rec.sample.status;
            rec.finish(None);
            match e {
                Some(kind) => respond::error_response(&upstream_err(kind, "retry budget exhausted"), &route.name),
                None => synthetic_status(status, &route.name),
            }
        }
    }
}

fn content_length_of(head: &Head) -> Option<u64> {
    head.headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

fn upstream_err(kind: UpstreamErrorKind, msg: &'static str) -> ProxyError {
    ProxyError::Upstream { kind, source: msg.into() }
}

fn synthetic_status(status: u16, service: &str) -> Response<ResponseBody> {
    let mut r = respond::error_response(&upstream_err(UpstreamErrorKind::Reset, "retry"), service);
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_GATEWAY);
    r
}

/// Outcome of one attempt.
enum Attempt {
    /// A response for the client (possibly an error response already recorded), with the
    /// upstream side of an accepted upgrade.
    Done(Response<ResponseBody>, Option<hyper::upgrade::OnUpgrade>),
    /// Failed in a way a retry on blue could fix; the recording is not yet finished.
    Retryable(Recording),
}

#[allow(clippy::too_many_arguments)]
async fn attempt(
    conn: &ConnCtx,
    route: &Arc<Route>,
    color: Color,
    head: &Head,
    headers: http::HeaderMap,
    body: RequestBody,
    start: Instant,
    last: bool,
    in_flight: &mut Option<InFlight>,
) -> Attempt {
    let stats = &route.stats;
    let Some(ep) = route.pool(color).pick().cloned() else {
        // Load shedding, not an upstream failure: nothing is charged to the color.
        return Attempt::Done(respond::error_response(&ProxyError::Saturated, &route.name), None);
    };
    stats.started(color);
    ep.in_flight.fetch_add(1, Ordering::Relaxed);
    let mut rec = Recording {
        stats: stats.clone(),
        endpoint: ep.clone(),
        sample: Sample {
            service: route.key,
            color,
            kind: SampleKind::Request,
            status: 0,
            latency_us: 0,
            error: None,
            hash: HashCheck::NotChecked,
            compliance: None,
        },
        start,
        in_flight: None,
        green_slot: route.judged(color).then(|| stats.green_inflight.enter()),
    };
    let mut up = Request::new(body);
    *up.method_mut() = head.method.clone();
    let pool = route.pool(color);
    *up.uri_mut() = origin_form(&head.uri);
    *up.headers_mut() = headers;
    if !up.headers().contains_key(header::HOST) {
        // Only an HTTP/1.0 client without Host gets here; name the endpoint, as curl would.
        if let Ok(v) = HeaderValue::from_str(ep.authority.as_str()) {
            up.headers_mut().insert(header::HOST, v);
        }
    }
    let upstream = pool.tls_client.as_ref().unwrap_or(&conn.svc.client);
    let result = tokio::time::timeout(route.policy.response_timeout, upstream.send(&ep, up)).await;
    let (mut resp, upstream_conn) = match result {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            if let Some(too_large) = client::is_client_body_error(&e) {
                // The client's fault, not the upstream's: do not count it against the color.
                rec.sample.status = if too_large { 413 } else { 400 };
                rec.in_flight = in_flight.take();
                rec.finish(None);
                let err =
                    if too_large { ProxyError::BodyTooLarge } else { ProxyError::BadRequest("request body failed") };
                return Attempt::Done(respond::error_response(&err, &route.name), None);
            }
            let kind = client::classify(&e);
            return fail(route, pool, rec, kind, &e.to_string(), last, in_flight);
        }
        Err(_) => return fail(route, pool, rec, UpstreamErrorKind::Timeout, "response timeout", last, in_flight),
    };
    let status = resp.status().as_u16();
    rec.sample.status = status;
    if matches!(status, 502..=504) {
        pool.report_failure(&ep);
    } else {
        pool.report_success(&ep);
    }
    inspect_constitutional(conn, route, color, resp.headers(), &mut rec.sample);
    if !last && route.policy.retry.on.contains(&status) {
        return Attempt::Retryable(rec);
    }
    // From here the response goes to the client: it holds the request's in-flight unit.
    rec.in_flight = in_flight.take();
    let upstream_upgrade = (status == 101).then(|| hyper::upgrade::on(&mut resp));
    if status != 101 {
        headers::strip_hop_by_hop(resp.headers_mut(), false);
    }
    let (parts, incoming) = resp.into_parts();
    if status == 101 {
        rec.finish(None);
        let r = Response::from_parts(parts, ResponseBody::full(Bytes::new()));
        return Attempt::Done(r, upstream_upgrade);
    }
    Attempt::Done(Response::from_parts(parts, ResponseBody::upstream(incoming, rec, upstream_conn)), None)
}

fn fail(
    route: &Route,
    pool: &crate::upstream::Pool,
    mut rec: Recording,
    kind: UpstreamErrorKind,
    msg: &str,
    last: bool,
    in_flight: &mut Option<InFlight>,
) -> Attempt {
    pool.report_failure(&rec.endpoint);
    rec.sample.error = Some(kind);
    tracing::debug!(service = %route.name, color = rec.sample.color.as_str(), endpoint = %rec.endpoint.authority, error = msg, "upstream attempt failed");
    if !last {
        return Attempt::Retryable(rec);
    }
    rec.in_flight = in_flight.take();
    rec.finish(None);
    Attempt::Done(respond::error_response(&upstream_err(kind, "upstream failed"), &route.name), None)
}

/// Checks the constitutional headers of a response; a green hash mismatch raises the data-path
/// alarm at once (the control loop trips without waiting for the interval).
fn inspect_constitutional(conn: &ConnCtx, route: &Route, color: Color, h: &http::HeaderMap, s: &mut Sample) {
    let p = &route.policy;
    s.compliance = h.get(&p.compliance_header).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok());
    if let Some(v) = h.get(&p.principles_header) {
        route.stats.record_principles(color, v.as_bytes());
    }
    if route.judged(color) && p.check_hash {
        let ok = h.get(&p.hash_header).is_some_and(|v| v.as_bytes() == p.expected_hash.as_bytes());
        s.hash = if ok { HashCheck::Match } else { HashCheck::Mismatch };
        if !ok {
            let _ = conn.svc.alarms.try_send(route.key);
        }
    }
}

/// The request target sent upstream: origin-form (`/path?query`), which is what an HTTP/1.1
/// origin server expects from a gateway (RFC 9112 §3.2.1); the endpoint is named by `Host`.
fn origin_form(orig: &Uri) -> Uri {
    match orig.path_and_query() {
        Some(pq) => Uri::from(pq.clone()),
        None => Uri::from_static("/"),
    }
}

/// Splices the client's and the upstream's upgraded connections together.
fn finish_upgrade(
    resp: Response<ResponseBody>,
    client: Option<hyper::upgrade::OnUpgrade>,
    upstream: Option<hyper::upgrade::OnUpgrade>,
) -> Response<ResponseBody> {
    if let (Some(client), Some(upstream)) = (client, upstream) {
        tokio::spawn(async move {
            if let (Ok(c), Ok(u)) = (client.await, upstream.await) {
                let mut c = hyper_util::rt::TokioIo::new(c);
                let mut u = hyper_util::rt::TokioIo::new(u);
                let _ = tokio::io::copy_bidirectional(&mut c, &mut u).await;
            }
        });
    }
    resp
}
