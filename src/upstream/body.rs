//! Body types of the data path. Enums instead of boxed trait objects: no allocation per request,
//! and the response body records the exchange exactly when it ends (or is dropped as cancelled).

// pin-project-lite cannot carry doc comments on enum variant fields; the variants are documented.
#![allow(missing_docs)]

use crate::error::UpstreamErrorKind;
use crate::stats::{Sample, ServiceStats};
use crate::upstream::Endpoint;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use pin_project_lite::pin_project;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::time::Instant;

/// Why a request body could not be forwarded.
#[derive(Debug, thiserror::Error)]
pub enum RequestBodyError {
    /// The client's body failed (reset, malformed chunking).
    #[error("client body: {0}")]
    Client(#[from] hyper::Error),
    /// More than `limits.max_body_bytes`.
    #[error("request body exceeds the configured limit")]
    TooLarge,
    /// The client's body had already failed when this copy of it was read.
    #[error("client body failed")]
    ClientFailed,
    /// A newer copy of the body went to another attempt; this one's connection is abandoned.
    #[error("request body superseded by a retry")]
    Superseded,
    /// The client's response has ended: the rest of the body is not relayed (`cut`).
    #[error("response ended before the request body")]
    ResponseEnded,
}

mod cut;
mod replay;
pub use cut::{BodyCut, ClientBody, CutGuard};
pub use replay::ReplayBody;

pin_project! {
    /// Body sent upstream: the client's stream (with an optional size limit) or buffered bytes
    /// that can be replayed on a retry.
    #[project = RequestBodyProj]
    pub enum RequestBody {
        /// Streamed from the client in constant memory.
        Stream {
            #[pin] inner: ClientBody,
            limit: u64,
            seen: u64,
        },
        /// Fully buffered (replayable).
        Full {
            data: Option<Bytes>,
        },
        /// Streamed while keeping a prefix for a retry.
        Replay {
            body: ReplayBody,
        },
    }
}

impl RequestBody {
    /// A streamed body with an optional limit.
    pub fn stream(inner: impl Into<ClientBody>, limit: Option<u64>) -> Self {
        RequestBody::Stream { inner: inner.into(), limit: limit.unwrap_or(u64::MAX), seen: 0 }
    }

    /// A buffered body.
    pub fn full(data: Bytes) -> Self {
        RequestBody::Full { data: (!data.is_empty()).then_some(data) }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = RequestBodyError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.project() {
            RequestBodyProj::Stream { inner, limit, seen } => match ready!(inner.poll_frame(cx)) {
                Some(Ok(f)) => {
                    if let Some(d) = f.data_ref() {
                        *seen += d.len() as u64;
                        if *seen > *limit {
                            return Poll::Ready(Some(Err(RequestBodyError::TooLarge)));
                        }
                    }
                    Poll::Ready(Some(Ok(f)))
                }
                Some(Err(e)) => Poll::Ready(Some(Err(e))),
                None => Poll::Ready(None),
            },
            RequestBodyProj::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            RequestBodyProj::Replay { body } => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Stream { inner, .. } => inner.is_end_stream(),
            RequestBody::Full { data } => data.is_none(),
            RequestBody::Replay { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Stream { inner, .. } => inner.size_hint(),
            RequestBody::Full { data } => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            RequestBody::Replay { body } => body.size_hint(),
        }
    }
}

/// One unit of an endpoint's in-flight count, taken when an attempt picks it and released when
/// dropped, so the count comes back down on every path (error, retry, cancelled body).
#[derive(Debug)]
pub struct EndpointSlot(Arc<Endpoint>);

impl EndpointSlot {
    /// Counts an attempt in on `ep` if it has fewer than `max` in flight. The check and the count
    /// are one compare-and-swap: checked first and counted after, two worker threads could both
    /// take an endpoint's last slot.
    pub fn try_enter(ep: &Arc<Endpoint>, max: u32) -> Option<Self> {
        ep.in_flight.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| (n < max).then_some(n + 1)).ok()?;
        Some(EndpointSlot(ep.clone()))
    }
}

impl std::ops::Deref for EndpointSlot {
    type Target = Arc<Endpoint>;
    fn deref(&self) -> &Arc<Endpoint> {
        &self.0
    }
}

impl Drop for EndpointSlot {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A candidate attempt's place in `ServiceStats::candidate_inflight` (the stall detector), left when
/// dropped: an attempt cancelled by a hedge or a client that went away must not look like a
/// candidate request stuck forever.
pub struct CandidateSlot {
    stats: Arc<ServiceStats>,
    bucket: u8,
}

impl CandidateSlot {
    /// Counts a candidate attempt in.
    pub fn enter(stats: &Arc<ServiceStats>) -> Self {
        CandidateSlot { stats: stats.clone(), bucket: stats.candidate_inflight.enter() }
    }
}

impl Drop for CandidateSlot {
    fn drop(&mut self) {
        self.stats.candidate_inflight.exit(self.bucket);
    }
}

/// What is needed to record an exchange when its response body ends. Dropped without `finish`
/// (an attempt cancelled before its head arrived), it records nothing and its guards release
/// the counts it held.
pub struct Recording {
    /// Service statistics.
    pub stats: Arc<ServiceStats>,
    /// The endpoint, counted in flight there until the recording is dropped.
    pub endpoint: EndpointSlot,
    /// Sample, completed with the latency at the end.
    pub sample: Sample,
    /// Request start.
    pub start: Instant,
    /// The request's in-flight unit, held by the attempt whose response reaches the client and
    /// released (dropped) when the recording finishes.
    pub in_flight: Option<crate::stats::InFlight>,
    /// Set for candidate attempts.
    pub candidate_slot: Option<CandidateSlot>,
    /// The request's access log and trace record, held by the attempt whose response reaches
    /// the client and finished with the exchange.
    pub observed: Option<crate::observe::Observed>,
}

impl Recording {
    /// The response was read to its end: hand `conn` (the connection it came on) back to the
    /// endpoint's keep-alive pool, then record the exchange.
    pub fn finish_exchange(self, conn: Option<crate::upstream::client::Sender>) {
        let now = Instant::now();
        if let Some(tx) = conn {
            self.endpoint.idle.put(tx, now);
        }
        self.finish_at(None, now);
    }

    /// Records the exchange now.
    pub fn finish(self, error: Option<UpstreamErrorKind>) {
        self.finish_at(error, Instant::now());
    }

    /// Records the exchange as ended at `now` (one clock read for the latency and the pool).
    fn finish_at(mut self, error: Option<UpstreamErrorKind>, now: Instant) {
        self.sample.latency_us = now.saturating_duration_since(self.start).as_micros() as u64;
        if error.is_some() {
            self.sample.error = error;
        }
        if let Some(o) = self.observed.take() {
            o.finish_at(self.sample.status, error.map(UpstreamErrorKind::as_str), now);
        }
        self.stats.record(self.sample);
    }
}

/// One HTTP/1.1 request/response exchange counted open on its client connection (the idle
/// check of `serve::h1`), from where it starts until hyper drops the response body holding it
/// (after the last byte was handed over, or on abort). It lives here, in the body, rather than
/// in a wrapper body: the wrapper's extra future made hyper copy each request's future again.
pub struct Exchange(Arc<AtomicU32>);

impl Exchange {
    /// Counts one more exchange open on `open`.
    pub fn begin(open: &Arc<AtomicU32>) -> Exchange {
        open.fetch_add(1, Ordering::Relaxed);
        Exchange(open.clone())
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

pin_project! {
    /// Body returned to the client.
    #[project = ResponseBodyProj]
    pub enum ResponseBody {
        /// Streamed from the upstream; records the exchange when it ends or is dropped, and
        /// hands the connection back to its endpoint's keep-alive pool only when the body was
        /// read to its end (a half-read connection cannot carry another request).
        Upstream {
            #[pin] inner: Incoming,
            rec: Option<Recording>,
            conn: Option<crate::upstream::client::Sender>,
            exchange: Option<Exchange>,
            cut: Option<CutGuard>,
        },
        /// Synthetic (errors, admin).
        Full {
            data: Option<Bytes>,
            exchange: Option<Exchange>,
            cut: Option<CutGuard>,
        },
    }

    impl PinnedDrop for ResponseBody {
        fn drop(this: Pin<&mut Self>) {
            if let ResponseBodyProj::Upstream { inner, rec, conn, .. } = this.project() {
                if let Some(r) = rec.take() {
                    // hyper drops a body without polling it when there is nothing to write (HEAD,
                    // 204, 304, `Content-Length: 0`): the exchange is complete and the connection
                    // reusable. Otherwise the client went away mid-body (not the upstream's
                    // fault) and the half-read connection is closed with `conn`.
                    r.finish_exchange(if inner.is_end_stream() { conn.take() } else { None });
                }
            }
        }
    }
}

impl ResponseBody {
    /// A synthetic body.
    pub fn full(data: impl Into<Bytes>) -> Self {
        let data = data.into();
        ResponseBody::Full { data: (!data.is_empty()).then_some(data), exchange: None, cut: None }
    }

    /// A streamed upstream body that records on completion and then returns `conn` (the
    /// connection it arrives on) to the endpoint's pool.
    pub fn upstream(inner: Incoming, rec: Recording, conn: crate::upstream::client::Sender) -> Self {
        ResponseBody::Upstream { inner, rec: Some(rec), conn: Some(conn), exchange: None, cut: None }
    }

    /// Holds the connection's `exchange` until hyper drops this body (fields drop after the
    /// recording in `PinnedDrop`, as a wrapping body's would).
    pub fn keep(&mut self, exchange: Option<Exchange>) {
        match self {
            ResponseBody::Upstream { exchange: e, .. } | ResponseBody::Full { exchange: e, .. } => *e = exchange,
        }
    }

    /// Cuts the request's body (`BodyCut`) when hyper drops this body: after its last frame.
    pub fn cut_when_done(&mut self, cut: Option<BodyCut>) {
        match self {
            ResponseBody::Upstream { cut: c, .. } | ResponseBody::Full { cut: c, .. } => *c = cut.map(CutGuard),
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.project() {
            ResponseBodyProj::Upstream { mut inner, rec, conn, .. } => {
                let r = ready!(inner.as_mut().poll_frame(cx));
                if let (Some(Ok(f)), Some(Recording { observed: Some(o), .. })) = (&r, rec.as_mut()) {
                    o.sent(f.data_ref().map_or(0, |d| d.len()));
                }
                match &r {
                    // The last frame of a sized body already ends the exchange: hyper stops
                    // polling a body once its Content-Length is written, so waiting for `None`
                    // would miss the end (and the chance to reuse the connection).
                    Some(Ok(_)) if !inner.is_end_stream() => {}
                    None | Some(Ok(_)) => {
                        if let Some(rec) = rec.take() {
                            rec.finish_exchange(conn.take());
                        }
                    }
                    Some(Err(_)) => {
                        if let Some(rec) = rec.take() {
                            rec.finish(Some(UpstreamErrorKind::Reset));
                        }
                    }
                }
                Poll::Ready(r)
            }
            ResponseBodyProj::Full { data, .. } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            // Report the end only through poll_frame so the recording always runs there.
            ResponseBody::Upstream { rec, inner, .. } => rec.is_none() && inner.is_end_stream(),
            ResponseBody::Full { data, .. } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Upstream { inner, .. } => inner.size_hint(),
            ResponseBody::Full { data, .. } => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
        }
    }
}
