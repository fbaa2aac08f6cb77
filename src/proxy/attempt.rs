//! The attempt phase: one try at one endpoint of one color, up to the response head. It reports
//! what happened as a typed outcome; whether to try again is the exchange's decision.

use super::exchange::Exchange;
use crate::body::{CandidateSlot, EndpointSlot, Recording, RequestBody};
use crate::error::{Progress, ProxyError, UpstreamErrorKind};
use crate::observe::{w3c, AttemptGuard, AttemptStart, Why};
use crate::stats::{HashCheck, Sample, SampleKind};
use crate::upstream::client::{self, Sender, UpstreamClient, UpstreamError};
use crate::upstream::Endpoint;
use crate::Color;
use http::{header, HeaderMap, HeaderValue, Request, Response};
use hyper::body::Incoming;

/// How an attempt ended.
pub(super) enum Outcome {
    /// The upstream sent a response head.
    Answered(Answer),
    /// No response head.
    Failed(Failure),
}

/// A response head, not yet handed to the client (a retryable status may still be replaced).
pub(super) struct Answer {
    pub resp: Response<Incoming>,
    pub conn: Sender,
    pub rec: Recording,
}

/// An attempt that got no response head; `rec` is `None` when no endpoint could be picked.
pub(super) struct Failure {
    pub err: ProxyError,
    pub rec: Option<Recording>,
}

impl Outcome {
    /// The color that produced it (`None`: nothing was attempted).
    pub fn color(&self) -> Option<Color> {
        match self {
            Outcome::Answered(a) => Some(a.rec.sample.color),
            Outcome::Failed(f) => f.rec.as_ref().map(|r| r.sample.color),
        }
    }
}

impl Failure {
    /// Records the failed attempt: an upstream failure against its color, a client's body
    /// failure as the 4xx it becomes.
    pub fn record(&mut self) {
        let Some(mut rec) = self.rec.take() else { return };
        match self.err.upstream_kind() {
            Some(kind) => rec.finish(Some(kind)),
            None => {
                rec.sample.status = super::respond::status_of(&self.err).as_u16();
                rec.finish(None);
            }
        }
    }
}

fn upstream(kind: UpstreamErrorKind, progress: Progress, msg: &'static str) -> ProxyError {
    ProxyError::Upstream { kind, progress, source: msg.into() }
}

/// Maps a send failure: the client's own body failing is the client's fault, not the upstream's.
fn send_error(e: UpstreamError) -> ProxyError {
    match client::is_client_body_error(&e) {
        Some(true) => ProxyError::BodyTooLarge,
        Some(false) => ProxyError::BadRequest("request body failed"),
        None => e.into_proxy(),
    }
}

impl Exchange<'_> {
    /// Sends the request to `color` and waits for the response head, the response timeout, or
    /// (candidate only) the signal that the candidate was given up on.
    pub(super) async fn attempt(&self, color: Color, mut headers: HeaderMap, body: RequestBody, why: Why) -> Outcome {
        let route = &self.route;
        let pool = route.pool(color);
        let abandoned = if route.judged(color) && self.replayable() { self.abandon.clone() } else { None };
        let Some(slot) = pool.pick() else {
            // Load shedding, not an upstream failure: nothing is charged to the color.
            return Outcome::Failed(Failure { err: ProxyError::Saturated, rec: None });
        };
        route.stats.started(color);
        let mut rec = self.recording(color, slot);
        let ep: &std::sync::Arc<Endpoint> = &rec.endpoint;
        // The first attempt starts as the request does: its clock read will do.
        let sent = if why == Why::First { self.start } else { tokio::time::Instant::now() };
        let seen = self.observe(color, ep, why, sent, &mut headers);
        let req = self.upstream_request(ep, headers, body);
        let client = pool.tls_client.as_ref().unwrap_or(&self.conn.svc.client);
        let connect_us = std::sync::atomic::AtomicU64::new(0);
        let (resp, conn) = match self.wait(client, ep, req, abandoned, &connect_us, sent).await {
            Ok(r) => r,
            Err(err) => {
                if err.upstream_kind().is_some_and(|k| k != UpstreamErrorKind::Abandoned) {
                    pool.report_failure(ep);
                }
                tracing::debug!(service = %route.name, color = color.as_str(), endpoint = %ep.authority, error = %err, "upstream attempt failed");
                if let Some(g) = seen {
                    g.failed(super::respond::reason(&err));
                }
                if route.judged(color) {
                    self.example(err.upstream_kind().is_some());
                }
                return Outcome::Failed(Failure { err, rec: Some(rec) });
            }
        };
        let status = resp.status().as_u16();
        rec.sample.status = status;
        if let Some(g) = seen {
            g.answered(status, connect_us.into_inner());
        }
        if status >= 500 && route.judged(color) {
            self.example(true);
        }
        if matches!(status, 502..=504) {
            pool.report_failure(ep);
        } else {
            pool.report_success(ep);
        }
        self.inspect_constitutional(color, resp.headers(), &mut rec.sample);
        Outcome::Answered(Answer { resp, conn, rec })
    }

    /// Opens the attempt's client span and forwards its `traceparent` (replacing any other, so
    /// exactly one goes upstream).
    fn observe(
        &self,
        color: Color,
        ep: &Endpoint,
        why: Why,
        sent: tokio::time::Instant,
        headers: &mut HeaderMap,
    ) -> Option<AttemptGuard<'_>> {
        let obs = self.obs.as_ref()?;
        let route = &self.route;
        let g = obs.attempt(sent, || AttemptStart {
            color,
            role: if route.judged(color) { "candidate" } else { "live" },
            release: route.policy.releases[color.index()].clone(),
            endpoint: ep.authority.clone(),
            why,
        });
        if let Some(tp) = obs.traceparent(&g.span_id) {
            headers.insert(w3c::TRACEPARENT, tp);
        }
        Some(g)
    }

    /// Keeps this request's ids as an example of a failing candidate request (incidents list
    /// the first ones that fed a rollback). Upstream failures and 5xx only: a client's own
    /// broken body says nothing about the release.
    fn example(&self, upstream: bool) {
        if !upstream {
            return;
        }
        let trace = self.obs.as_ref().and_then(|o| o.trace_id_hex());
        self.route.stats.examples.offer(self.request_id.to_str().unwrap_or(""), trace.as_deref());
    }

    fn recording(&self, color: Color, endpoint: EndpointSlot) -> Recording {
        let stats = &self.route.stats;
        Recording {
            stats: stats.clone(),
            endpoint,
            sample: Sample {
                service: self.route.key,
                color,
                kind: SampleKind::Request,
                status: 0,
                latency_us: 0,
                error: None,
                hash: HashCheck::NotChecked,
                compliance: None,
            },
            start: self.start,
            in_flight: None,
            observed: None,
            candidate_slot: self.route.judged(color).then(|| CandidateSlot::enter(stats)),
        }
    }

    fn upstream_request(&self, ep: &Endpoint, headers: HeaderMap, body: RequestBody) -> Request<RequestBody> {
        let mut up = Request::new(body);
        *up.method_mut() = self.method.clone();
        *up.uri_mut() = self.uri.clone();
        *up.headers_mut() = headers;
        if !self.has_host {
            // Only an HTTP/1.0 client without Host gets here; name the endpoint, as curl would.
            if let Ok(v) = HeaderValue::from_str(ep.authority.as_str()) {
                up.headers_mut().insert(header::HOST, v);
            }
        }
        up
    }

    /// The response head, or why there is none. `abandoned` fires when the candidate is given up on; the
    /// attempt then stops waiting only if the request can still be re-sent.
    async fn wait(
        &self,
        client: &UpstreamClient,
        ep: &Endpoint,
        req: Request<RequestBody>,
        mut abandoned: Option<tokio::sync::watch::Receiver<u64>>,
        connect_us: &std::sync::atomic::AtomicU64,
        sent: tokio::time::Instant,
    ) -> Result<(Response<Incoming>, Sender), ProxyError> {
        // The send future is built where it stays pinned: built by the caller and passed in, it
        // was copied (hundreds of bytes) on its way into this future.
        let mut send = std::pin::pin!(client.send(ep, req, connect_us, self.start, (&self.method, &self.uri)));
        let mut timer = ep.timers.due(sent + self.route.policy.response_timeout);
        loop {
            let signal = async {
                match abandoned.as_mut() {
                    Some(rx) => rx.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            };
            // Biased: no random branch order to draw per poll; the response, when there is one,
            // wins over a timeout due at the same instant.
            tokio::select! {
                biased;
                r = &mut send => return r.map_err(send_error),
                _ = timer.sleep() => {
                    return Err(upstream(UpstreamErrorKind::Timeout, Progress::SentNoResponse, "response timeout"))
                }
                live = signal => {
                    if live && self.replayable() {
                        return Err(upstream(UpstreamErrorKind::Abandoned, Progress::SentNoResponse, "candidate given up"));
                    }
                    abandoned = None;
                }
            }
        }
    }

    /// Checks the constitutional headers of a response; a green hash mismatch raises the
    /// data-path alarm at once (the control loop trips without waiting for the interval).
    fn inspect_constitutional(&self, color: Color, h: &HeaderMap, s: &mut Sample) {
        let route = &self.route;
        let p = &route.policy;
        // One pass comparing names instead of three hashed lookups: the names are custom, so
        // each lookup hashed them byte by byte (~190 instructions apiece). The first value of a
        // name is what `get` would have returned.
        let (mut compliance, mut principles, mut hash) = (None, None, None);
        for (k, v) in h.iter() {
            // Not `else if`: nothing stops two settings from naming the same header.
            if *k == p.compliance_header {
                compliance = compliance.or(Some(v));
            }
            if *k == p.principles_header {
                principles = principles.or(Some(v));
            }
            if *k == p.hash_header {
                hash = hash.or(Some(v));
            }
        }
        s.compliance = compliance.and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok());
        if let Some(v) = principles {
            route.stats.record_principles(color, v.as_bytes());
        }
        if route.judged(color) && p.check_hash {
            let ok = hash.is_some_and(|v| v.as_bytes() == p.expected_hash.as_bytes());
            s.hash = if ok { HashCheck::Match } else { HashCheck::Mismatch };
            if !ok {
                let _ = self.conn.svc.alarms.try_send(route.key);
            }
        }
    }
}
