//! Measurement on the data path. `ServiceStats` holds metric handles resolved once per service
//! and color, so recording is a few atomic adds; each exchange is also sent, without waiting, to
//! the `window::Aggregator` task that owns the hdrhistograms. A full channel drops the sample and
//! counts the drop rather than slowing a request.

pub mod budget;
pub mod examples;
pub mod inflight;
pub mod names;
pub mod process;
pub mod roles;
pub mod window;

use crate::error::UpstreamErrorKind;
use crate::types::ServiceKey;
use crate::Color;
use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use tokio::sync::mpsc;

pub use window::{Aggregator, Measurement, MeasurementView, WindowHandle, WindowSummary};

/// Was this a proxied request or a health probe (probes count toward availability only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SampleKind {
    /// A client request.
    Request,
    /// An active health probe.
    Probe,
}

/// Result of the constitutional hash check on a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashCheck {
    /// Not checked (blue, or no response).
    NotChecked,
    /// Present and equal to the expected hash.
    Match,
    /// Missing or different.
    Mismatch,
}

/// One finished exchange.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub service: ServiceKey,
    /// Color that served it.
    pub color: Color,
    /// Request or probe.
    pub kind: SampleKind,
    /// Response status, 0 when there was none.
    pub status: u16,
    /// Start → body end.
    pub latency_us: u64,
    /// Transport failure, if any.
    pub error: Option<UpstreamErrorKind>,
    pub hash: HashCheck,
    pub compliance: Option<f32>,
}

struct ColorHandles {
    by_class: [Counter; 6],
    duration: Histogram,
    errors: [Counter; UpstreamErrorKind::ALL.len()],
    hash_mismatch: Counter,
}

impl ColorHandles {
    fn new(service: &str, color: Color) -> Self {
        let (s, c) = (service.to_string(), color.as_str());
        let class = |cl: &'static str| counter!(names::REQUESTS_TOTAL, "service" => s.clone(), "color" => c, "status_class" => cl);
        ColorHandles {
            by_class: [class("1xx"), class("2xx"), class("3xx"), class("4xx"), class("5xx"), class("error")],
            duration: histogram!(names::REQUEST_DURATION, "service" => s.clone(), "color" => c),
            errors: UpstreamErrorKind::ALL.map(
                |k| counter!(names::UPSTREAM_ERRORS_TOTAL, "service" => s.clone(), "color" => c, "kind" => k.as_str()),
            ),
            hash_mismatch: counter!(names::HASH_MISMATCHES_TOTAL, "service" => s.clone(), "color" => c),
        }
    }
}

/// One unit of `switchyard_in_flight_requests`, released when dropped. A request owns exactly
/// one from arrival until its response body ends (or the response is synthetic), whatever path
/// it takes through retries and errors.
pub struct InFlight(Arc<ServiceStats>);

impl InFlight {
    /// Counts a request in.
    pub fn enter(stats: &Arc<ServiceStats>) -> InFlight {
        stats.in_flight.increment(1.0);
        InFlight(stats.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.decrement(1.0);
    }
}

/// Hot-path statistics of one service; lives as long as the service exists across reloads.
pub struct ServiceStats {
    pub key: ServiceKey,
    pub name: Arc<str>,
    colors: [ColorHandles; 2],
    /// Requests currently being served.
    pub in_flight: Gauge,
    /// Current green weight (set by the control loop).
    pub green_weight: Gauge,
    /// Requests sent to each color so far; incidents use the candidate's to count its requests
    /// served between the first bad measurement and the swap, and to confirm none arrive after it.
    pub started: [AtomicU64; 2],
    /// Requests in flight on the judged (candidate) color by start time (the control loop sees a
    /// stall before it ends); the proxy enters it for whichever color the route judges.
    pub candidate_inflight: inflight::InFlightClock,
    pub retries: Counter,
    /// Blue's p99 over the last closed window in µs (0: no samples yet), for `hedge.after = "p99"`:
    /// written by the control loop on each tick, read by the data path without waiting on it.
    pub live_p99_us: AtomicU64,
    /// Per-principle histogram handles by color, created on first sight: the data path takes a
    /// read lock and scans a few entries instead of resolving labels (and allocating) per
    /// response. Only the data path touches it; the control loop never holds it.
    principle_handles: [RwLock<PrincipleHandles>; 2],
    /// Requests and retries over the last seconds: the retry budget.
    pub budget: budget::RetryBudget,
    /// Recent failing candidate requests, for the examples of a rollback report: offered by
    /// the data path on failures only, read by the control loop when it rolls back.
    pub examples: examples::Examples,
    sink: mpsc::Sender<Sample>,
    dropped: Counter,
}

impl std::fmt::Debug for ServiceStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceStats").field("name", &self.name).finish_non_exhaustive()
    }
}

impl ServiceStats {
    /// Resolves every handle for a service (control plane, once per service).
    pub fn new(key: ServiceKey, name: Arc<str>, sink: mpsc::Sender<Sample>) -> Self {
        let s = name.to_string();
        ServiceStats {
            key,
            colors: [ColorHandles::new(&s, Color::Blue), ColorHandles::new(&s, Color::Green)],
            in_flight: gauge!(names::IN_FLIGHT, "service" => s.clone()),
            green_weight: gauge!(names::GREEN_WEIGHT, "service" => s.clone()),
            started: Default::default(),
            retries: counter!(names::RETRIES_TOTAL, "service" => s),
            live_p99_us: AtomicU64::new(0),
            budget: budget::RetryBudget::default(),
            examples: Default::default(),
            candidate_inflight: Default::default(),
            principle_handles: Default::default(),
            dropped: counter!(names::STATS_DROPPED_TOTAL),
            name,
            sink,
        }
    }

    /// Takes one retry from the budget: `budget` × requests plus a floor of `min_per_second`
    /// over a sliding window (linkerd's budget shape, see `budget`). Returns false when spent.
    pub fn try_retry(&self, budget: f64, min_per_second: u32) -> bool {
        if !self.budget.withdraw(budget, min_per_second) {
            return false;
        }
        self.retries.increment(1);
        true
    }

    /// Records an `X-Constitutional-Principles` header (`name=score, ...`) into
    /// `switchyard_principle_compliance{service,color,principle}`.
    pub fn record_principles(&self, color: Color, value: &[u8]) {
        let slot = &self.principle_handles[color.index()];
        for (name, score) in principles(value) {
            let found = slot
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .find(|(n, _)| &**n == name)
                .map(|(_, h)| h.clone());
            let handle = match found {
                Some(h) => h,
                None => {
                    let mut w = slot.write().unwrap_or_else(|p| p.into_inner());
                    if w.len() >= MAX_DISTINCT_PRINCIPLES {
                        continue;
                    }
                    let h = histogram!(names::PRINCIPLE_COMPLIANCE, "service" => self.name.to_string(), "color" => color.as_str(), "principle" => name.to_string());
                    w.push((name.into(), h.clone()));
                    h
                }
            };
            handle.record(score);
        }
    }

    /// Notes that a request was sent to `color`.
    #[inline]
    pub fn started(&self, color: Color) {
        self.started[color.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Records a finished exchange: metrics first, then a non-blocking send to the aggregator.
    pub fn record(&self, s: Sample) {
        if s.kind == SampleKind::Request {
            let h = &self.colors[s.color.index()];
            let class = if s.error.is_some() || s.status == 0 { 5 } else { (s.status as usize / 100).clamp(1, 5) - 1 };
            h.by_class[class].increment(1);
            h.duration.record(s.latency_us as f64 / 1e6);
            if let Some(k) = s.error {
                h.errors[k.index()].increment(1);
            }
            if s.hash == HashCheck::Mismatch {
                h.hash_mismatch.increment(1);
            }
        }
        if self.sink.try_send(s).is_err() {
            self.dropped.increment(1);
        }
    }
}

/// Histogram handles by principle name, for one service and color.
type PrincipleHandles = Vec<(Box<str>, Histogram)>;

/// Most principles taken from one response, and most distinct principles kept per service
/// and color (bounds label cardinality and work per response).
const MAX_PRINCIPLES: usize = 16;
const MAX_DISTINCT_PRINCIPLES: usize = 32;

/// Parses `name=score, ...`; names outside `[a-z0-9_-]{1,32}` and scores outside 0..=1 are
/// skipped so an upstream cannot blow up label cardinality or poison the mean.
fn principles(value: &[u8]) -> impl Iterator<Item = (&str, f64)> {
    let text = std::str::from_utf8(value).unwrap_or("");
    text.split(',').take(MAX_PRINCIPLES).filter_map(|pair| {
        let (name, score) = pair.split_once('=')?;
        let name = name.trim();
        let ok_name = (1..=32).contains(&name.len())
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        let score: f64 = score.trim().parse().ok()?;
        (ok_name && (0.0..=1.0).contains(&score)).then_some((name, score))
    })
}
