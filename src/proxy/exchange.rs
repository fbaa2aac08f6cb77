//! The request context and its phases after admission: pick a color, attempt, maybe try again
//! on blue (retry, rescue after a rollback, hedge), respond. What decides a second attempt is
//! read from the failure itself (`ProxyError::retryable`) and from whether the body can still be
//! replayed, never from a flag carried beside them.

use super::attempt::{Answer, Failure, Outcome};
use super::{headers, respond, ConnCtx};
use crate::body::{ReplayBody, RequestBody, ResponseBody};
use crate::config::HedgeAfter;
use crate::error::UpstreamErrorKind;
use crate::observe::{Observed, Why};
use crate::route::{Route, Weight};
use crate::stats::InFlight;
use crate::Color;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, Uri};
use hyper::body::Incoming;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// The request body as the attempts see it.
enum Source {
    /// Only one attempt can ever be made (blue, an upgrade, retries off): streamed as is.
    Once(Option<RequestBody>),
    /// Kept while it streams so a second attempt can send it again.
    Replay(ReplayBody),
}

/// One request's context, shared by its attempts.
pub(super) struct Exchange<'a> {
    pub conn: &'a ConnCtx,
    pub route: Arc<Route>,
    pub start: Instant,
    pub method: Method,
    /// Origin-form target sent upstream.
    pub uri: Uri,
    headers: HeaderMap,
    /// Whether `headers` has a `Host` (known once, instead of a lookup per attempt).
    pub has_host: bool,
    source: Source,
    /// The request's unit of `switchyard_in_flight_requests`, handed to the response that
    /// reaches the client.
    in_flight: Option<InFlight>,
    /// Green's give-up signal, subscribed before the route was last confirmed current (`None`
    /// when the route cannot send to green).
    pub abandon: Option<watch::Receiver<u64>>,
    /// The request as the access log and the trace see it (`None`: both off).
    pub obs: Option<Observed>,
    pub request_id: &'a HeaderValue,
}

/// The route to use and green's give-up signal, without a gap between them: the signal is
/// subscribed first, then the route confirmed current. A rollback stores its table before it
/// signals, so either this request sees the new table or its subscription sees the signal.
fn settle(conn: &ConnCtx, mut route: Arc<Route>) -> (Arc<Route>, Option<watch::Receiver<u64>>) {
    for _ in 0..3 {
        let Some(candidate) = route.candidate else { return (route, None) };
        let share = if candidate == Color::Green { route.weight } else { route.weight.complement() };
        if share == Weight::ZERO && route.force_header.is_none() {
            return (route, None);
        }
        let rx = route.pool(candidate).abandoned();
        match conn.svc.router.load().get(route.key) {
            Some(now) if !Arc::ptr_eq(now, &route) => route = now.clone(),
            _ => return (route, Some(rx)),
        }
    }
    let rx = route.candidate.map(|c| route.pool(c).abandoned());
    (route, rx)
}

/// Runs every phase after admission.
pub(super) async fn run(
    conn: &ConnCtx,
    route: Arc<Route>,
    req: Request<Incoming>,
    obs: Option<Observed>,
    request_id: &HeaderValue,
) -> Response<ResponseBody> {
    // A recorded request read the clock as it began: one read serves both.
    let start = obs.as_ref().and_then(Observed::started).unwrap_or_else(Instant::now);
    let (route, abandon) = settle(conn, route);
    route.stats.budget.deposit();
    let in_flight = Some(InFlight::enter(&route.stats));
    let color = route.pick(req.headers(), conn.peer);
    let (mut parts, body) = req.into_parts();
    let body = crate::body::ClientBody::new(body, parts.extensions.get::<crate::body::BodyCut>().cloned());
    let (headers, has_host, upgrade) = forwarded_headers(conn, parts.headers, &parts.uri, route.policy.via);
    // What `hyper::upgrade::on` does, on the parts.
    let client_upgrade = if upgrade { parts.extensions.remove::<hyper::upgrade::OnUpgrade>() } else { None };
    let retry = &route.policy.retry;
    let limit = route.policy.max_body_bytes;
    let source = if retry.enabled && route.judged(color) && !upgrade {
        Source::Replay(ReplayBody::new(body, retry.max_body_bytes, limit))
    } else {
        Source::Once(Some(RequestBody::stream(body, limit)))
    };
    let mut x = Exchange {
        conn,
        uri: origin_form(&parts.uri),
        method: parts.method,
        route,
        start,
        headers,
        has_host,
        source,
        in_flight,
        abandon,
        obs,
        request_id,
    };
    let out = x.forward(color).await;
    x.respond(out, client_upgrade)
}

impl Exchange<'_> {
    /// First attempt (hedged if configured), then at most one more on blue.
    async fn forward(&mut self, color: Color) -> Outcome {
        let (headers, body) = self.first_parts();
        let first = match self.hedge_delay(color) {
            // Boxed: two attempts side by side would double every request's future.
            Some(after) => Box::pin(self.hedged(color, headers, body, after)).await,
            None => self.attempt(color, headers, body, Why::First).await,
        };
        if !first.color().is_some_and(|c| self.route.judged(c)) || !self.route.policy.retry.enabled {
            return first;
        }
        match first {
            Outcome::Failed(mut f) if self.should_retry(&f) => {
                let Some((headers, body)) = self.replay_parts() else { return Outcome::Failed(f) };
                let why =
                    if f.err.upstream_kind() == Some(UpstreamErrorKind::Abandoned) { Why::Rescue } else { Why::Retry };
                f.record();
                self.attempt(self.route.live, headers, body, why).await
            }
            Outcome::Answered(a) if self.retry_status(&a) => {
                let Some((headers, body)) = self.replay_parts() else { return Outcome::Answered(a) };
                // Unread, its connection cannot be reused: dropped with it.
                a.rec.finish(None);
                self.attempt(self.route.live, headers, body, Why::Retry).await
            }
            other => other,
        }
    }

    /// Whether a failed green attempt goes to blue: the error allows it and, except for a rescue
    /// after a rollback (bounded by what was in flight, so never a storm), the budget too.
    fn should_retry(&self, f: &Failure) -> bool {
        if !f.err.retryable(self.replayable()) {
            return false;
        }
        let stats = &self.route.stats;
        if f.err.upstream_kind() == Some(UpstreamErrorKind::Abandoned) {
            stats.budget.spend();
            stats.retries.increment(1);
            return true;
        }
        self.take_budget()
    }

    /// A green status listed in `retry.on`, for a request that can be sent again in full.
    fn retry_status(&self, a: &Answer) -> bool {
        let policy = &self.route.policy;
        policy.retry.on.contains(&a.rec.sample.status) && self.replayable() && self.take_budget()
    }

    fn take_budget(&self) -> bool {
        let r = &self.route.policy.retry;
        self.route.stats.try_retry(r.budget, r.min_per_second)
    }

    /// Whether the upstream may be sent this request again after it has seen (some of) it:
    /// an idempotent method whose body is still kept in full.
    pub(super) fn replayable(&self) -> bool {
        self.method.is_idempotent() && matches!(&self.source, Source::Replay(b) if b.is_replayable())
    }

    /// Headers and body for the first attempt (taken when it is the only one).
    fn first_parts(&mut self) -> (HeaderMap, RequestBody) {
        match &mut self.source {
            Source::Once(body) => {
                (std::mem::take(&mut self.headers), body.take().expect("the first attempt takes the body"))
            }
            Source::Replay(b) => {
                let copy = b.replay().expect("nothing has been read before the first attempt");
                (self.headers.clone(), RequestBody::Replay { body: copy })
            }
        }
    }

    /// Headers and a fresh copy of the body for another attempt, if the body can be replayed.
    fn replay_parts(&self) -> Option<(HeaderMap, RequestBody)> {
        match &self.source {
            Source::Once(_) => None,
            Source::Replay(b) => Some((self.headers.clone(), RequestBody::Replay { body: b.replay()? })),
        }
    }

    /// The hedge delay for a green request that may be hedged.
    fn hedge_delay(&self, color: Color) -> Option<Duration> {
        let after = self.route.policy.retry.hedge?;
        if !self.route.judged(color) || !self.replayable() {
            return None;
        }
        match after {
            HedgeAfter::Fixed(d) => Some(d),
            HedgeAfter::BlueP99 => match self.route.stats.live_p99_us.load(Ordering::Relaxed) {
                0 => None,
                us => Some(Duration::from_micros(us)),
            },
        }
    }

    /// Green first; if it has no response head after `after`, blue too; the first head wins and
    /// the other attempt is dropped (cancelled). Only a body already received in full is hedged:
    /// two attempts cannot both wait on the client's stream.
    async fn hedged(&self, candidate: Color, headers: HeaderMap, body: RequestBody, after: Duration) -> Outcome {
        let green = self.attempt(candidate, headers, body, Why::First);
        tokio::pin!(green);
        tokio::select! {
            out = &mut green => return out,
            _ = tokio::time::sleep(after) => {}
        }
        let complete = matches!(&self.source, Source::Replay(b) if b.is_complete());
        if !complete || !self.take_budget() {
            return green.await;
        }
        let Some((headers, body)) = self.replay_parts() else { return green.await };
        let blue = self.attempt(self.route.live, headers, body, Why::Hedge);
        tokio::pin!(blue);
        tokio::select! {
            g = &mut green => match g {
                Outcome::Answered(a) if !self.route.policy.retry.on.contains(&a.rec.sample.status) => Outcome::Answered(a),
                Outcome::Answered(a) => { a.rec.finish(None); blue.await }
                Outcome::Failed(mut f) => { f.record(); blue.await }
            },
            b = &mut blue => match b {
                Outcome::Answered(_) => b,
                Outcome::Failed(mut f) => { f.record(); green.await }
            },
        }
    }

    /// The respond phase: the upstream's response as it was sent (whatever its status), or the
    /// one error response for a failure.
    fn respond(mut self, out: Outcome, client_upgrade: Option<hyper::upgrade::OnUpgrade>) -> Response<ResponseBody> {
        let Answer { mut resp, conn, mut rec } = match out {
            Outcome::Answered(a) => a,
            Outcome::Failed(mut f) => {
                let r = respond::error_response(&f.err, &self.route.name, self.request_id);
                f.record();
                if let Some(o) = self.obs.take() {
                    o.finish_now(&r, respond::reason(&f.err));
                }
                return r;
            }
        };
        // From here the response goes to the client: it holds the request's in-flight unit.
        rec.in_flight = self.in_flight.take();
        rec.observed = self.obs.take();
        if resp.status() == http::StatusCode::SWITCHING_PROTOCOLS {
            let upstream_upgrade = hyper::upgrade::on(&mut resp);
            rec.finish(None);
            let (parts, _) = resp.into_parts();
            splice(self.conn, client_upgrade, upstream_upgrade);
            return Response::from_parts(parts, ResponseBody::full(Bytes::new()));
        }
        headers::strip_hop_by_hop(resp.headers_mut(), false);
        let (parts, incoming) = resp.into_parts();
        Response::from_parts(parts, ResponseBody::upstream(incoming, rec, conn))
    }
}

/// Hop-by-hop headers stripped (the upgrade pair kept for an upgrade), `Host` kept (or taken
/// from an absolute-form target), `X-Forwarded-*` and (unless `[proxy] via = false`) `Via`
/// added; whether the result has a `Host`, and whether the request asks for an upgrade.
fn forwarded_headers(conn: &ConnCtx, mut h: HeaderMap, uri: &Uri, via: bool) -> (HeaderMap, bool, bool) {
    let seen = headers::strip_request(&mut h);
    let host = match seen.host {
        Some(v) => Some(v),
        None => {
            let v = uri.authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok());
            if let Some(v) = &v {
                h.insert(header::HOST, v.clone());
            }
            v
        }
    };
    let has_host = host.is_some();
    headers::add_forwarded_via(&mut h, &conn.peer_value, &conn.svc.proto, host, via);
    (h, has_host, seen.upgrade)
}

/// The request target sent upstream: origin-form (`/path?query`), which is what an HTTP/1.1
/// origin server expects from a gateway (RFC 9112 §3.2.1); the endpoint is named by `Host`.
fn origin_form(orig: &Uri) -> Uri {
    match orig.path_and_query() {
        Some(pq) => Uri::from(pq.clone()),
        None => Uri::from_static("/"),
    }
}

/// Splices the client's and the upstream's upgraded connections together, as a task of the
/// listener that ends when the listener closes what is left after its drain timeout.
fn splice(conn: &ConnCtx, client: Option<hyper::upgrade::OnUpgrade>, upstream: hyper::upgrade::OnUpgrade) {
    let Some(client) = client else { return };
    let closing = conn.closing.clone();
    conn.tasks.spawn(async move {
        let tunnel = async {
            if let (Ok(c), Ok(u)) = (client.await, upstream.await) {
                let mut c = hyper_util::rt::TokioIo::new(c);
                let mut u = hyper_util::rt::TokioIo::new(u);
                let _ = tokio::io::copy_bidirectional(&mut c, &mut u).await;
            }
        };
        tokio::select! {
            _ = tunnel => {}
            _ = closing.cancelled() => {}
        }
    });
}
