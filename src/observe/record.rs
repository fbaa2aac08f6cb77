//! One request as the access log and the trace see it: filled in by the proxy's phases and
//! finished once, when the response body ends (or the error response is built).

use super::Telemetry;
use crate::Color;
use http::{HeaderValue, Method, Uri, Version};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

/// Attempts kept per request: a first attempt, a hedge and a retry at most; more are not logged.
pub const MAX_ATTEMPTS: usize = 4;

/// Room for the usual one or two attempts, reserved with the first.
const ATTEMPTS_RESERVED: usize = 2;

/// Why an attempt was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    First,
    /// The candidate failed before any byte reached the client; sent again to the live color.
    Retry,
    /// The candidate was slow; the live color was asked too.
    Hedge,
    /// The candidate was rolled back while this request waited on it.
    Rescue,
}

impl Why {
    pub fn as_str(self) -> &'static str {
        match self {
            Why::First => "first",
            Why::Retry => "retry",
            Why::Hedge => "hedge",
            Why::Rescue => "rescue",
        }
    }
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptEnd {
    /// Still running (the winner, until the body ends).
    Open,
    /// A response head with this status.
    Status(u16),
    /// No response head: the upstream error kind, or the proxy's reason.
    Failed(&'static str),
    /// Dropped unfinished (the losing side of a hedge).
    Cancelled,
}

/// One upstream attempt: a client span and an entry of the log line's `attempts`.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub color: Color,
    /// `live` or `candidate`.
    pub role: &'static str,
    pub release: Option<Arc<str>>,
    pub endpoint: http::uri::Authority,
    pub why: Why,
    pub span_id: [u8; 8],
    /// µs after the request started.
    pub start_us: u64,
    /// µs from the attempt's start to the response head, when one came.
    pub ttfb_us: Option<u64>,
    /// µs spent opening a new upstream connection (`None`: a kept-alive one was reused).
    pub connect_us: Option<u64>,
    /// µs after the request started (0 while open).
    pub end_us: u64,
    pub end: AttemptEnd,
}

/// Our part of the trace of a request (only when tracing is configured).
#[derive(Debug, Clone, Copy)]
pub struct TraceIds {
    pub trace_id: [u8; 16],
    /// The server span: this request inside Switchyard.
    pub span_id: [u8; 8],
    /// The caller's span, when it sent a valid `traceparent`.
    pub parent: Option<[u8; 8]>,
    pub sampled: bool,
}

/// What the request said about itself, read once when it arrived.
#[derive(Debug)]
pub struct RequestData {
    pub start_unix_ns: u64,
    pub service: Arc<str>,
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub host: Option<HeaderValue>,
    pub user_agent: Option<HeaderValue>,
    pub forwarded_for: Option<HeaderValue>,
    pub client: SocketAddr,
    pub tls: Option<&'static str>,
    pub request_id: HeaderValue,
    pub trace: Option<TraceIds>,
    /// The caller's trace id when Switchyard does not take part in traces (logged only).
    pub caller_trace: Option<[u8; 16]>,
    /// Declared request body size (`Content-Length`).
    pub bytes_in: Option<u64>,
    pub attempts: Vec<Attempt>,
    pub status: u16,
    pub bytes_out: u64,
    pub duration_us: u64,
    /// Why no upstream answered (`error.type`), if so.
    pub error: Option<&'static str>,
}

/// A request being observed. Small (48 bytes, carried inline rather than boxed: the allocation
/// was ~130 instructions a request): an unsampled request with the log off, the common case at
/// a low sampling share, carries its trace ids and nothing else (no clock read, no copy of its
/// head, no reference to the telemetry).
pub struct Observed {
    /// Our trace ids (tracing configured): an unsampled request still forwards its context.
    trace: Option<TraceIds>,
    /// What the log line and the spans are made of, `None` when neither will be written (the
    /// log off and the trace not sampled). Taken when the request finishes; still here when it
    /// is dropped unfinished.
    rec: Option<Box<Recorded>>,
}

/// The part of an [`Observed`] that is written out: only built for a request that will be
/// logged or exported.
struct Recorded {
    tel: Arc<Telemetry>,
    start: Instant,
    data: RequestData,
    /// Attempts run side by side (a hedge) and report through `&self`; the lock is only ever
    /// taken by the request's own task, so it is never contended. Moved into the record at the
    /// end, so the list is allocated once.
    attempts: Mutex<Vec<Attempt>>,
}

impl std::fmt::Debug for Observed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observed")
            .field("request_id", &self.rec.as_ref().map(|r| &r.data.request_id))
            .finish_non_exhaustive()
    }
}

/// An attempt in progress; dropped before `end`, it is recorded as cancelled.
pub struct AttemptGuard<'a> {
    /// The record, the attempt's place in it and when it started; `None`: the attempt is not
    /// recorded (nothing is written for the request, or it is past `MAX_ATTEMPTS`), so its end
    /// costs nothing.
    rec: Option<(&'a Recorded, usize, Instant)>,
    /// The attempt's client span (zero when tracing is off: the log names it only with a trace).
    pub span_id: [u8; 8],
}

impl Observed {
    /// `data`: `None` when nothing will be written for the request (see [`Observed::rec`]).
    pub(super) fn new(tel: &Arc<Telemetry>, trace: Option<TraceIds>, data: Option<(Instant, RequestData)>) -> Self {
        let rec = data.map(|(start, data)| {
            Box::new(Recorded { tel: tel.clone(), start, data, attempts: Mutex::new(Vec::new()) })
        });
        Observed { trace, rec }
    }

    /// The `traceparent` an attempt with span `span_id` forwards (`None`: pass the caller's).
    pub fn traceparent(&self, span_id: &[u8; 8]) -> Option<HeaderValue> {
        let t = self.trace.as_ref()?;
        Some(super::w3c::header(&t.trace_id, span_id, t.sampled))
    }

    /// The trace id as hex: ours, or the caller's when Switchyard does not take part in traces.
    pub fn trace_id_hex(&self) -> Option<String> {
        let id = self.trace.map(|t| t.trace_id).or(self.rec.as_ref().and_then(|r| r.data.caller_trace))?;
        Some(String::from_utf8_lossy(&super::ids::hex16(&id)).into_owned())
    }

    /// When the request started, if it is recorded: the exchange's own clock read (one read
    /// serves both).
    pub fn started(&self) -> Option<Instant> {
        self.rec.as_ref().map(|r| r.start)
    }

    /// Counts response body bytes sent to the client.
    pub fn sent(&mut self, n: usize) {
        if let Some(r) = self.rec.as_mut() {
            r.data.bytes_out += n as u64;
        }
    }

    /// Finishes a request answered by Switchyard itself (an error response).
    pub fn finish_now<B: http_body::Body>(mut self, resp: &http::Response<B>, error: &'static str) {
        if let Some(r) = self.rec.as_mut() {
            r.data.bytes_out = resp.body().size_hint().exact().unwrap_or(0);
        }
        self.finish(resp.status().as_u16(), Some(error));
    }

    /// Records the start, at `started`, of an attempt. `a` is called only when the attempt is
    /// recorded (an unsampled request with the log off only needs a span id).
    pub fn attempt(&self, started: Instant, a: impl FnOnce() -> AttemptStart) -> AttemptGuard<'_> {
        let span_id = if self.trace.is_some() { super::ids::span_id() } else { [0; 8] };
        let Some(rec) = self.rec.as_deref() else {
            // Nothing is written: the attempt only needs its span id for `traceparent`.
            return AttemptGuard { rec: None, span_id };
        };
        let a = a();
        let entry = Attempt {
            color: a.color,
            role: a.role,
            release: a.release,
            endpoint: a.endpoint,
            why: a.why,
            span_id,
            start_us: micros(started.saturating_duration_since(rec.start)),
            ttfb_us: None,
            connect_us: None,
            end_us: 0,
            end: AttemptEnd::Open,
        };
        let mut list = rec.attempts.lock().unwrap_or_else(|e| e.into_inner());
        let index = list.len();
        if index < MAX_ATTEMPTS {
            if index == 0 {
                list.reserve_exact(ATTEMPTS_RESERVED);
            }
            list.push(entry);
        }
        // Past `MAX_ATTEMPTS` the attempt is not recorded: nothing to do when it ends.
        AttemptGuard { rec: (index < MAX_ATTEMPTS).then_some((rec, index, started)), span_id }
    }

    /// Finishes the request: one log line (if logged) and its spans (if sampled), both handed
    /// to their queues without waiting.
    pub fn finish(self, status: u16, error: Option<&'static str>) {
        self.finish_at(status, error, Instant::now());
    }

    /// [`Observed::finish`] with the clock already read at `now`.
    pub fn finish_at(mut self, status: u16, error: Option<&'static str>, now: Instant) {
        self.complete(status, error, now);
    }

    fn complete(&mut self, status: u16, error: Option<&'static str>, now: Instant) {
        let Some(rec) = self.rec.take() else { return };
        let Recorded { tel, start, mut data, attempts } = *rec;
        let end = micros(now.saturating_duration_since(start));
        data.attempts = attempts.into_inner().unwrap_or_else(|e| e.into_inner());
        // The winner is the answered attempt whose head came last (a retried status came
        // before its retry's; a hedge's loser was cancelled): it lasts until the body ends.
        let winner = data
            .attempts
            .iter()
            .enumerate()
            .filter(|(_, a)| matches!(a.end, AttemptEnd::Status(_)) && a.end_us == 0)
            .max_by_key(|(_, a)| a.start_us + a.ttfb_us.unwrap_or(0))
            .map(|(i, _)| i);
        for (i, a) in data.attempts.iter_mut().enumerate() {
            if a.end_us == 0 {
                a.end_us = if Some(i) == winner { end } else { a.start_us + a.ttfb_us.unwrap_or(0) };
            }
        }
        data.status = status;
        data.error = error;
        data.duration_us = end;
        tel.finish(data);
    }
}

impl Recorded {
    fn set(&self, index: usize, f: impl FnOnce(&mut Attempt)) {
        let mut list = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(a) = list.get_mut(index) {
            f(a)
        }
    }
}

/// Status logged for a request whose client went away before its response ended (nginx's 499).
pub const CLIENT_CLOSED: u16 = 499;

impl Drop for Observed {
    /// A request dropped unfinished (the client closed the connection, or the listener closed it
    /// after the drain timeout) is still logged, as nginx logs 499.
    fn drop(&mut self) {
        if self.rec.is_some() {
            self.complete(CLIENT_CLOSED, Some("client closed"), Instant::now());
        }
    }
}

/// What an attempt is, known before it starts.
pub struct AttemptStart {
    pub color: Color,
    pub role: &'static str,
    pub release: Option<Arc<str>>,
    pub endpoint: http::uri::Authority,
    pub why: Why,
}

impl AttemptGuard<'_> {
    /// The response head arrived; `connect_us` is 0 when a kept-alive connection was reused.
    pub fn answered(mut self, status: u16, connect_us: u64) {
        let Some((rec, index, started)) = self.rec.take() else { return }; // not recorded: no clock read
        let ttfb = micros(started.elapsed());
        rec.set(index, |a| {
            a.ttfb_us = Some(ttfb);
            a.connect_us = (connect_us > 0).then_some(connect_us);
            a.end = AttemptEnd::Status(status);
        });
    }

    /// No response head.
    pub fn failed(mut self, reason: &'static str) {
        let Some((rec, index, _)) = self.rec.take() else { return }; // not recorded: no clock read
        let end = micros(rec.start.elapsed());
        rec.set(index, |a| {
            a.end_us = end.max(1);
            a.end = AttemptEnd::Failed(reason);
        });
    }
}

impl Drop for AttemptGuard<'_> {
    fn drop(&mut self) {
        if let Some((rec, index, _)) = self.rec.take() {
            let end = micros(rec.start.elapsed());
            rec.set(index, |a| {
                a.end_us = end.max(1);
                a.end = AttemptEnd::Cancelled;
            });
        }
    }
}

fn micros(d: std::time::Duration) -> u64 {
    d.as_micros() as u64
}

impl RequestData {
    /// Keeps what the spans need, copied out of the connection's read buffer (hyper hands out
    /// the URI and the header values as slices of it): a record waiting in the span queue then
    /// holds its own ~100 bytes, not the 8 KiB buffer hyper read the request into (measured
    /// before this copy: 4 096 queued records with the collector stalled held ~5.3 KiB each).
    /// The spans name the path, `Host` and the request id; the headers only the log line uses
    /// are dropped rather than copied. The path is copied as bytes: formatting the whole URI
    /// and parsing it back ran `core::fmt` on the request path for every sampled request.
    pub(super) fn detach(&mut self) {
        fn own(v: &mut HeaderValue) {
            if let Ok(copy) = HeaderValue::from_bytes(v.as_bytes()) {
                *v = copy;
            }
        }
        if let Some(h) = self.host.as_mut() {
            own(h);
        }
        own(&mut self.request_id);
        self.user_agent = None;
        self.forwarded_for = None;
        let path = Uri::from_maybe_shared(bytes::Bytes::copy_from_slice(self.uri.path().as_bytes()));
        // An authority-form target (CONNECT) has no path: keep the whole target, copied.
        if let Ok(uri) = path.or_else(|_| Uri::try_from(self.uri.to_string())) {
            self.uri = uri;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn a_detached_record_keeps_nothing_of_the_connections_read_buffer() {
        let buf = Bytes::from(b"GET /a/b?q=1 HTTP/1.1\r\nhost: h\r\nuser-agent: ua\r\nx-request-id: r1\r\n".to_vec());
        let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
        let slice = |s: &str| {
            let at = buf.windows(s.len()).position(|w| w == s.as_bytes()).unwrap();
            buf.slice(at..at + s.len())
        };
        let value = |s: &str| HeaderValue::from_maybe_shared(slice(s)).unwrap();
        let mut d = RequestData {
            start_unix_ns: 0,
            service: Arc::from("s"),
            method: Method::GET,
            uri: Uri::from_maybe_shared(slice("/a/b?q=1")).unwrap(),
            version: Version::HTTP_11,
            host: Some(value("h")),
            user_agent: Some(value("ua")),
            forwarded_for: None,
            client: "127.0.0.1:1".parse().unwrap(),
            tls: None,
            request_id: value("r1"),
            trace: None,
            caller_trace: None,
            bytes_in: None,
            attempts: Vec::new(),
            status: 200,
            bytes_out: 0,
            duration_us: 0,
            error: None,
        };
        let inside = |p: *const u8| range.contains(&(p as usize));
        assert!(inside(d.user_agent.as_ref().unwrap().as_bytes().as_ptr()), "hyper's values share the buffer");
        d.detach();
        assert_eq!((d.uri.path(), d.request_id.to_str().unwrap()), ("/a/b", "r1"));
        assert!(d.user_agent.is_none(), "the spans do not name the user agent: dropped, not copied");
        for v in [d.host.as_ref().unwrap(), &d.request_id] {
            assert!(!inside(v.as_bytes().as_ptr()), "{v:?} still points into the read buffer");
        }
        assert!(!inside(d.uri.path().as_ptr()), "the URI still points into the read buffer");
    }

    #[test]
    fn an_observed_request_stays_small() {
        assert!(std::mem::size_of::<Observed>() <= 48, "{}", std::mem::size_of::<Observed>());
    }
}
