//! Every request visible: request ids, W3C trace context, the access log and OTLP span export.
//!
//! The request path only fills in an [`Observed`] and, when the response ends, formats one log
//! line and hands it (and, when sampled, the request's spans) to bounded queues with `try_send`.
//! A writer thread owns the log file; an exporter task batches spans into OTLP/HTTP protobuf
//! requests. A full queue drops and counts (`switchyard_access_log_dropped_total`,
//! `switchyard_trace_spans_dropped_total`): a slow disk or a collector that is down never slows
//! a request. With the log off and no tracing endpoint nothing is allocated per request beyond
//! the request id.

mod ids;
mod line;
mod otlp;
mod record;
mod time;
pub mod w3c;
mod writer;

pub use record::{AttemptEnd, AttemptGuard, AttemptStart, Observed, RequestData, TraceIds, Why};

use crate::config::{AccessLogConfig, Config, TracingConfig};
use crate::stats::names;
use http::header::Entry;
use http::{header, HeaderMap, HeaderName, HeaderValue, Request};
use metrics::Counter;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::time::Instant;

/// The observability of one running app, shared by every listener.
pub struct Telemetry {
    /// Header carrying the request id (`X-Request-Id` unless configured).
    pub request_id: HeaderName,
    /// Trace UI base URL, for links from incidents.
    pub ui: Option<String>,
    log: Option<LogSink>,
    tracer: Option<Tracer>,
}

struct LogSink {
    cfg: AccessLogConfig,
    queue: Arc<writer::Queue>,
    dropped: Counter,
    /// Disconnects when the writer has finished (a `Mutex` only to make the handle `Sync`).
    done: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
}

impl Drop for LogSink {
    /// The process exits soon after the app stops: give the writer a moment to write what is
    /// queued (bounded, so a stuck file cannot hold up the exit).
    fn drop(&mut self) {
        self.queue.close();
        if let Ok(done) = self.done.get_mut() {
            let _ = done.recv_timeout(writer::DRAIN_AT_EXIT);
        }
    }
}

struct Tracer {
    sample: f64,
    tx: tokio::sync::mpsc::Sender<RequestData>,
    dropped: Counter,
}

impl Telemetry {
    /// Starts the log writer thread and the span exporter task the config asks for.
    pub fn start(cfg: &Config) -> Arc<Telemetry> {
        // Resolved whether or not the log and tracing are on, so that `/metrics` always lists
        // the families (at 0) that dashboards and alerts name.
        let log_dropped = metrics::counter!(names::ACCESS_LOG_DROPPED_TOTAL);
        let spans_dropped = metrics::counter!(names::TRACE_SPANS_DROPPED_TOTAL);
        let failures = metrics::counter!(names::TRACE_EXPORT_FAILURES_TOTAL);
        let log = cfg.access_log.enabled.then(|| start_log(&cfg.access_log, log_dropped));
        let tracer =
            cfg.tracing.endpoint.as_ref().map(|e| start_tracer(&cfg.tracing, e.clone(), spans_dropped, failures));
        Arc::new(Telemetry {
            request_id: cfg.tracing.request_id_header.clone(),
            ui: cfg.tracing.ui.clone(),
            log,
            tracer,
        })
    }

    /// No log, no tracing; request ids only.
    pub fn off() -> Arc<Telemetry> {
        Arc::new(Telemetry { request_id: HeaderName::from_static("x-request-id"), ui: None, log: None, tracer: None })
    }

    /// The request's id: the client's when sane, else a new one written into `headers` (so it
    /// goes upstream). One hashed lookup of the (custom, so hashed byte by byte) name, not a
    /// `get` and then an `insert`.
    pub fn request_id(&self, headers: &mut HeaderMap) -> HeaderValue {
        let fresh = || HeaderValue::from_bytes(&ids::new_request_id()).expect("hex is a valid header value");
        match headers.entry(&self.request_id) {
            Entry::Occupied(e) if ids::sane_request_id(e.get().as_bytes()) => e.get().clone(),
            Entry::Occupied(mut e) => {
                let v = fresh();
                e.insert(v.clone());
                v
            }
            Entry::Vacant(e) => e.insert(fresh()).clone(),
        }
    }

    /// Starts observing a request, or `None` when neither the log nor tracing is on.
    pub fn begin<B>(
        self: &Arc<Self>,
        peer: SocketAddr,
        tls: Option<&'static str>,
        service: &Arc<str>,
        req: &Request<B>,
        request_id: &HeaderValue,
    ) -> Option<Observed> {
        // Off: not even the id is copied.
        if self.log.is_none() && self.tracer.is_none() {
            return None;
        }
        let h = req.headers();
        let caller = h.get(w3c::TRACEPARENT).and_then(|v| w3c::parse(v.as_bytes()));
        let trace = self.tracer.as_ref().map(|t| TraceIds {
            trace_id: caller.map_or_else(ids::trace_id, |c| c.trace_id),
            span_id: ids::span_id(),
            parent: caller.map(|c| c.span_id),
            sampled: caller.map_or_else(|| ids::chance(t.sample), |c| c.sampled),
        });
        // Nothing will be written for an unsampled request when the log is off: keep its ids only.
        let keep = self.log.is_some() || trace.is_some_and(|t| t.sampled);
        let data = keep.then(|| {
            let start = Instant::now();
            let mut d = RequestData {
                start_unix_ns: time::unix_nanos_at(start.into_std()),
                service: service.clone(),
                method: req.method().clone(),
                uri: req.uri().clone(),
                version: req.version(),
                host: None,
                user_agent: None,
                forwarded_for: None,
                client: peer,
                tls,
                request_id: request_id.clone(),
                trace,
                caller_trace: caller.map(|c| c.trace_id),
                bytes_in: None,
                attempts: Vec::new(),
                status: 0,
                bytes_out: 0,
                duration_us: 0,
                error: None,
            };
            read_headers(&mut d, h);
            if d.host.is_none() {
                d.host = req.uri().authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok());
            }
            (start, d)
        });
        Some(Observed::new(self, trace, data))
    }

    /// Logs and exports a finished request, without waiting on either queue.
    fn finish(&self, mut data: RequestData) {
        if let Some(log) = &self.log {
            if log.keeps(&data) && !log.queue.push(|out| line::format(out, &data, &log.cfg)) {
                log.dropped.increment(1);
            }
        }
        if let Some(t) = &self.tracer {
            if data.trace.is_some_and(|t| t.sampled) {
                let spans = 1 + data.attempts.len() as u64;
                // A full queue (collector slow or down) drops it before the copy.
                let sent = t.tx.capacity() > 0 && {
                    data.detach();
                    t.tx.try_send(data).is_ok()
                };
                if !sent {
                    t.dropped.increment(spans);
                }
            }
        }
    }
}

/// The logged request headers, in one pass over the few a request has (four hashed lookups,
/// two of them of names hashed byte by byte, cost more than walking them).
fn read_headers(d: &mut RequestData, h: &HeaderMap) {
    for (name, value) in h {
        let slot = if name == header::HOST {
            &mut d.host
        } else if name == header::USER_AGENT {
            &mut d.user_agent
        } else if name == header::CONTENT_LENGTH {
            d.bytes_in = d.bytes_in.or_else(|| value.to_str().ok()?.parse().ok());
            continue;
        } else if name.as_str() == "x-forwarded-for" {
            &mut d.forwarded_for
        } else {
            continue;
        };
        // The first of a repeated header, as `HeaderMap::get` gives.
        if slot.is_none() {
            *slot = Some(value.clone());
        }
    }
}

impl LogSink {
    /// Errors (≥ 500, or any attempt that failed) and slow requests always; the rest sampled.
    fn keeps(&self, d: &RequestData) -> bool {
        d.status >= 500
            || d.error.is_some()
            || d.attempts
                .iter()
                .any(|a| matches!(a.end, AttemptEnd::Failed(_)) || matches!(a.end, AttemptEnd::Status(s) if s >= 500))
            || d.duration_us >= self.cfg.slow.as_micros() as u64
            || ids::chance(self.cfg.sample)
    }
}

fn start_log(cfg: &AccessLogConfig, dropped: Counter) -> LogSink {
    let (queue, reopen, done) = writer::spawn(cfg.path.clone(), cfg.queue);
    if cfg.path.is_some() {
        writer::reopen_on_sigusr1(reopen);
    }
    LogSink { cfg: cfg.clone(), queue, dropped, done: std::sync::Mutex::new(done) }
}

fn start_tracer(cfg: &TracingConfig, endpoint: http::Uri, dropped: Counter, failures: Counter) -> Tracer {
    let (tx, rx) = tokio::sync::mpsc::channel(cfg.queue);
    tokio::spawn(otlp::export(rx, otlp::Exporter::new(cfg, endpoint, dropped.clone(), failures)));
    Tracer { sample: cfg.sample, tx, dropped }
}
