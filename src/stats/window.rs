//! The measurement window. One task owns every hdrhistogram: it ingests samples from the data
//! path, and when the control loop asks, closes the current interval into a ring of
//! `window / interval` slots and returns a `Measurement` per service and color over the ring.
//! Nothing here is shared, so nothing here locks.

use super::{HashCheck, Sample, SampleKind};
use crate::types::ServiceKey;
use hdrhistogram::Histogram;
use std::collections::{HashMap, VecDeque};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Latency histogram bounds: 1 µs .. 60 s, 2 significant digits (~1 % error, ~20 KiB each).
fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 2).expect("static bounds are valid")
}

/// Counters of one color over one interval.
#[derive(Default)]
struct Acc {
    hist: Option<Histogram<u64>>,
    requests: u64,
    errors: u64,
    unavailable: u64,
    probes: u64,
    probes_failed: u64,
    compliance_sum: f64,
    compliance_n: u64,
    hash_mismatches: u64,
    statuses: Vec<(u16, u64)>,
}

impl Acc {
    fn ingest(&mut self, s: &Sample) {
        let unavailable = s.error.is_some() || matches!(s.status, 0 | 502..=504);
        if s.kind == SampleKind::Probe {
            self.probes += 1;
            self.probes_failed += u64::from(unavailable || !(200..300).contains(&s.status));
            return;
        }
        self.requests += 1;
        self.hist.get_or_insert_with(new_hist).saturating_record(s.latency_us.max(1));
        self.errors += u64::from(s.error.is_some() || s.status >= 500 || s.status == 0);
        self.unavailable += u64::from(unavailable);
        if let Some(c) = s.compliance {
            self.compliance_sum += f64::from(c);
            self.compliance_n += 1;
        }
        self.hash_mismatches += u64::from(s.hash == HashCheck::Mismatch);
        if s.status != 0 {
            match self.statuses.iter_mut().find(|(st, _)| *st == s.status) {
                Some((_, n)) => *n += 1,
                None => self.statuses.push((s.status, 1)),
            }
        }
    }

    fn merge(&mut self, o: &Acc) {
        if let Some(h) = &o.hist {
            self.hist.get_or_insert_with(new_hist).add(h).expect("same bounds");
        }
        self.requests += o.requests;
        self.errors += o.errors;
        self.unavailable += o.unavailable;
        self.probes += o.probes;
        self.probes_failed += o.probes_failed;
        self.compliance_sum += o.compliance_sum;
        self.compliance_n += o.compliance_n;
        self.hash_mismatches += o.hash_mismatches;
        for &(st, n) in &o.statuses {
            match self.statuses.iter_mut().find(|(s, _)| *s == st) {
                Some((_, m)) => *m += n,
                None => self.statuses.push((st, n)),
            }
        }
    }

    fn measure(&self, covered: Duration) -> Measurement {
        let q = |p: f64| Duration::from_micros(self.hist.as_ref().map_or(0, |h| h.value_at_quantile(p)));
        let total = self.requests + self.probes;
        Measurement {
            samples: self.requests,
            p50: q(0.50),
            p95: q(0.95),
            p99: q(0.99),
            max: Duration::from_micros(self.hist.as_ref().map_or(0, |h| h.max())),
            error_rate: ratio(self.errors, self.requests, 0.0),
            availability: 1.0 - ratio(self.unavailable + self.probes_failed, total, 0.0),
            compliance: (self.compliance_n > 0).then(|| self.compliance_sum / self.compliance_n as f64),
            hash_mismatches: self.hash_mismatches,
            statuses: self.statuses.clone(),
            rps: if covered.is_zero() { 0.0 } else { self.requests as f64 / covered.as_secs_f64() },
        }
    }
}

fn ratio(n: u64, d: u64, empty: f64) -> f64 {
    if d == 0 {
        empty
    } else {
        n as f64 / d as f64
    }
}

/// One color of one service over the window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Measurement {
    /// Requests in the window.
    pub samples: u64,
    /// Latency p50.
    pub p50: Duration,
    /// Latency p95.
    pub p95: Duration,
    /// Latency p99.
    pub p99: Duration,
    pub max: Duration,
    /// (5xx + transport failures) / requests.
    pub error_rate: f64,
    /// Share of requests and probes that reached a live upstream without 502/503/504.
    pub availability: f64,
    /// Mean compliance header, `None` when no response carried one.
    pub compliance: Option<f64>,
    /// Green responses with a wrong or missing hash.
    pub hash_mismatches: u64,
    /// Count per response status.
    pub statuses: Vec<(u16, u64)>,
    /// Requests per second over the covered time.
    pub rps: f64,
}

/// A measurement as shown in `/status`, incidents and the status page.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MeasurementView {
    pub samples: u64,
    /// p50 in ms.
    pub p50_ms: f64,
    /// p95 in ms.
    pub p95_ms: f64,
    /// p99 in ms.
    pub p99_ms: f64,
    pub max_ms: f64,
    pub error_rate: f64,
    pub availability: f64,
    pub compliance: Option<f64>,
    pub rps: f64,
    pub hash_mismatches: u64,
}

impl Measurement {
    pub fn view(&self) -> MeasurementView {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        MeasurementView {
            samples: self.samples,
            p50_ms: ms(self.p50),
            p95_ms: ms(self.p95),
            p99_ms: ms(self.p99),
            max_ms: ms(self.max),
            error_rate: self.error_rate,
            availability: self.availability,
            compliance: self.compliance,
            rps: self.rps,
            hash_mismatches: self.hash_mismatches,
        }
    }

    /// Share of requests answered with one of `statuses`.
    pub fn status_rate(&self, statuses: &[u16]) -> f64 {
        let n: u64 = self.statuses.iter().filter(|(s, _)| statuses.contains(s)).map(|(_, n)| n).sum();
        ratio(n, self.samples, 0.0)
    }
}

/// What one close returns: per service, `[blue, green]` over the window.
pub type WindowReport = Vec<(ServiceKey, [Measurement; 2])>;

/// Owner of all histograms.
pub struct Aggregator {
    current: HashMap<ServiceKey, [Acc; 2]>,
    ring: VecDeque<HashMap<ServiceKey, [Acc; 2]>>,
}

impl Default for Aggregator {
    fn default() -> Self {
        Self::new()
    }
}

impl Aggregator {
    pub fn new() -> Self {
        Aggregator { current: HashMap::new(), ring: VecDeque::new() }
    }

    /// Adds one sample to the open interval.
    pub fn ingest(&mut self, s: &Sample) {
        self.current.entry(s.service).or_default()[s.color.index()].ingest(s);
    }

    /// Adds a batch: one (SipHash) map lookup per run of samples of the same service rather than
    /// one per sample; a batch is mostly one service's.
    pub fn ingest_all(&mut self, samples: &[Sample]) {
        let mut rest = samples;
        while let Some(first) = rest.first() {
            let accs = self.current.entry(first.service).or_default();
            let run = rest.iter().take_while(|s| s.service == first.service).count();
            for s in &rest[..run] {
                accs[s.color.index()].ingest(s);
            }
            rest = &rest[run..];
        }
    }

    /// Closes the open interval, keeps the last `slots` intervals and measures over them.
    pub fn close(&mut self, slots: usize, interval: Duration) -> WindowReport {
        let (sum, covered) = self.close_sum(slots, interval);
        sum.into_iter().map(|(k, [b, g])| (k, [b.measure(covered), g.measure(covered)])).collect()
    }

    /// Like `close`, and also returns the window's mergeable summaries (fleet mode).
    pub fn close_summarized(&mut self, slots: usize, interval: Duration) -> (WindowReport, SummaryReport) {
        let (sum, covered) = self.close_sum(slots, interval);
        let summaries = sum.iter().map(|(k, [b, g])| (*k, [b.summary(covered), g.summary(covered)])).collect();
        (sum.into_iter().map(|(k, [b, g])| (k, [b.measure(covered), g.measure(covered)])).collect(), summaries)
    }

    fn close_sum(&mut self, slots: usize, interval: Duration) -> (HashMap<ServiceKey, [Acc; 2]>, Duration) {
        self.ring.push_back(std::mem::take(&mut self.current));
        while self.ring.len() > slots.max(1) {
            self.ring.pop_front();
        }
        let mut sum: HashMap<ServiceKey, [Acc; 2]> = HashMap::new();
        for slot in &self.ring {
            for (k, accs) in slot {
                let s = sum.entry(*k).or_default();
                s[0].merge(&accs[0]);
                s[1].merge(&accs[1]);
            }
        }
        (sum, interval * self.ring.len() as u32)
    }

    /// Forgets everything recorded for a service.
    pub fn forget(&mut self, key: ServiceKey) {
        self.current.remove(&key);
        for slot in &mut self.ring {
            slot.remove(&key);
        }
    }

    /// Runs the aggregator until both channels close.
    /// Samples are collected on a short tick rather than awaited: a receiver that waits registers
    /// a waker, and then every `try_send` from a worker thread wakes this thread (an eventfd write
    /// and a context switch per request under load). Polled, the senders find no waker and the
    /// channel (64 Ki samples) absorbs a tick's worth at well over a million requests a second.
    pub async fn run(mut self, mut samples: mpsc::Receiver<Sample>, mut closes: mpsc::Receiver<CloseRequest>) {
        let mut buf = Vec::with_capacity(512);
        let mut tick = tokio::time::interval(INGEST_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                req = closes.recv() => match req {
                    Some(CloseRequest::Close { slots, interval, reply }) => {
                        // Take what already arrived so the interval includes it.
                        while let Ok(s) = samples.try_recv() {
                            self.ingest(&s);
                        }
                        let _ = reply.send(self.close(slots, interval));
                    }
                    Some(CloseRequest::CloseSummarized { slots, interval, reply }) => {
                        while let Ok(s) = samples.try_recv() {
                            self.ingest(&s);
                        }
                        let _ = reply.send(self.close_summarized(slots, interval));
                    }
                    Some(CloseRequest::Forget(key)) => self.forget(key),
                    None => return,
                },
                _ = tick.tick() => loop {
                    match samples.try_recv() {
                        Ok(s) => buf.push(s),
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => {
                            self.ingest_all(&buf);
                            return;
                        }
                    }
                    if buf.len() == buf.capacity() {
                        self.ingest_all(&buf);
                        buf.clear();
                    }
                },
            }
            if !buf.is_empty() {
                self.ingest_all(&buf);
                buf.clear();
            }
        }
    }
}

/// How often the aggregator collects samples (see `Aggregator::run`).
const INGEST_TICK: Duration = Duration::from_millis(20);

/// A request from the control loop.
pub enum CloseRequest {
    /// Close the interval and measure.
    Close {
        slots: usize,
        interval: Duration,
        /// Where the report goes.
        reply: oneshot::Sender<WindowReport>,
    },
    /// Close, measure, and summarise for the fleet.
    CloseSummarized {
        /// Intervals kept.
        slots: usize,
        /// Interval length.
        interval: Duration,
        /// Where the report and summaries go.
        reply: oneshot::Sender<(WindowReport, SummaryReport)>,
    },
    /// Drop a service's history (a new candidate gets a fresh analysis).
    Forget(ServiceKey),
}

/// The control loop's handle on the aggregator.
#[derive(Clone)]
pub struct WindowHandle {
    tx: mpsc::Sender<CloseRequest>,
}

impl WindowHandle {
    /// Starts an aggregator task; returns the sample sink for `ServiceStats` and this handle.
    pub fn spawn(capacity: usize) -> (mpsc::Sender<Sample>, WindowHandle) {
        let (stx, srx) = mpsc::channel(capacity);
        let (ctx, crx) = mpsc::channel(4);
        tokio::spawn(Aggregator::new().run(srx, crx));
        (stx, WindowHandle { tx: ctx })
    }

    /// Closes the interval; `window / interval` slots are kept.
    pub async fn close(&self, interval: Duration, window: Duration) -> Option<WindowReport> {
        let slots = (window.as_nanos() / interval.as_nanos().max(1)).max(1) as usize;
        let (reply, rx) = oneshot::channel();
        self.tx.send(CloseRequest::Close { slots, interval, reply }).await.ok()?;
        rx.await.ok()
    }

    /// Closes the interval and also returns mergeable summaries (fleet mode).
    pub async fn close_summarized(
        &self,
        interval: Duration,
        window: Duration,
    ) -> Option<(WindowReport, SummaryReport)> {
        let slots = (window.as_nanos() / interval.as_nanos().max(1)).max(1) as usize;
        let (reply, rx) = oneshot::channel();
        self.tx.send(CloseRequest::CloseSummarized { slots, interval, reply }).await.ok()?;
        rx.await.ok()
    }

    /// Drops a service's history.
    pub async fn forget(&self, key: ServiceKey) {
        let _ = self.tx.send(CloseRequest::Forget(key)).await;
    }
}

/// Per service, `[blue, green]` window summaries that other replicas can merge.
pub type SummaryReport = Vec<(ServiceKey, [WindowSummary; 2])>;

/// One color's window in a form another process can merge: the histogram as its recorded
/// buckets (value at the bucket's top, count) plus every counter. Rebuilt with the same bounds,
/// each value lands in the bucket it came from, so merging is exact. (hdrhistogram's V2
/// serializer would need its `serialization` feature, which adds flate2 and nom.)
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WindowSummary {
    /// `(value µs, count)` per recorded bucket.
    pub buckets: Vec<(u64, u64)>,
    /// Requests.
    pub requests: u64,
    /// 5xx and transport failures.
    pub errors: u64,
    /// Requests that reached no live upstream.
    pub unavailable: u64,
    /// Health probes.
    pub probes: u64,
    /// Failed probes.
    pub probes_failed: u64,
    /// Sum of compliance header values.
    pub compliance_sum: f64,
    /// Responses with a compliance header.
    pub compliance_n: u64,
    /// Green responses with a wrong hash.
    pub hash_mismatches: u64,
    /// Count per status.
    pub statuses: Vec<(u16, u64)>,
    /// Time the window covers, ms.
    pub covered_ms: u64,
}

impl Acc {
    fn summary(&self, covered: Duration) -> WindowSummary {
        WindowSummary {
            buckets: self
                .hist
                .as_ref()
                .map(|h| h.iter_recorded().map(|v| (v.value_iterated_to(), v.count_at_value())).collect())
                .unwrap_or_default(),
            requests: self.requests,
            errors: self.errors,
            unavailable: self.unavailable,
            probes: self.probes,
            probes_failed: self.probes_failed,
            compliance_sum: self.compliance_sum,
            compliance_n: self.compliance_n,
            hash_mismatches: self.hash_mismatches,
            statuses: self.statuses.clone(),
            covered_ms: covered.as_millis() as u64,
        }
    }

    fn from_summary(s: &WindowSummary) -> Acc {
        let mut hist = None;
        for &(v, n) in &s.buckets {
            hist.get_or_insert_with(new_hist).saturating_record_n(v.max(1), n);
        }
        Acc {
            hist,
            requests: s.requests,
            errors: s.errors,
            unavailable: s.unavailable,
            probes: s.probes,
            probes_failed: s.probes_failed,
            compliance_sum: s.compliance_sum,
            compliance_n: s.compliance_n,
            hash_mismatches: s.hash_mismatches,
            statuses: s.statuses.clone(),
        }
    }
}

/// The measurement of several replicas' windows taken together (the fleet leader's view).
pub fn measure_merged<'a>(parts: impl IntoIterator<Item = &'a WindowSummary>) -> Measurement {
    let mut sum = Acc::default();
    let mut covered = 0;
    for p in parts {
        sum.merge(&Acc::from_summary(p));
        covered = covered.max(p.covered_ms);
    }
    sum.measure(Duration::from_millis(covered))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::UpstreamErrorKind;
    use crate::Color;

    fn sample(color: Color, status: u16, ms: u64) -> Sample {
        Sample {
            service: ServiceKey(1),
            color,
            kind: SampleKind::Request,
            status,
            latency_us: ms * 1000,
            error: None,
            hash: HashCheck::NotChecked,
            compliance: Some(0.9),
        }
    }

    #[test]
    fn percentiles_and_rates_come_from_the_window() {
        let mut a = Aggregator::new();
        for i in 0..100 {
            a.ingest(&sample(Color::Green, if i < 5 { 500 } else { 200 }, i + 1));
        }
        let r = a.close(3, Duration::from_secs(1));
        let g = &r[0].1[1];
        assert_eq!(g.samples, 100);
        assert!((g.error_rate - 0.05).abs() < 1e-9);
        assert!((94..=96).contains(&(g.p95.as_millis() as u64)), "{:?}", g.p95);
        assert_eq!(g.compliance.map(|c| (c * 100.0).round()), Some(90.0));
        assert!((g.rps - 100.0).abs() < 1e-9);
        assert_eq!(g.status_rate(&[500]), 0.05);
    }

    #[test]
    fn merged_summaries_measure_like_one_window_over_all_samples() {
        let (mut one, mut a, mut b) = (Aggregator::new(), Aggregator::new(), Aggregator::new());
        for i in 0..200u64 {
            let s = sample(Color::Green, if i % 50 == 0 { 503 } else { 200 }, 1 + i * 7 % 300);
            one.ingest(&s);
            if i % 3 == 0 {
                a.ingest(&s)
            } else {
                b.ingest(&s)
            }
        }
        let whole = one.close(1, Duration::from_secs(1))[0].1[1].clone();
        let (_, sa) = a.close_summarized(1, Duration::from_secs(1));
        let (_, sb) = b.close_summarized(1, Duration::from_secs(1));
        let json: WindowSummary = serde_json::from_str(&serde_json::to_string(&sa[0].1[1]).unwrap()).unwrap();
        let merged = measure_merged([&json, &sb[0].1[1]]);
        assert_eq!(merged, whole);
    }

    #[test]
    fn a_batch_counts_like_its_samples_one_by_one() {
        let (mut one, mut batch) = (Aggregator::new(), Aggregator::new());
        let samples: Vec<Sample> = (0..60u64)
            .map(|i| {
                let mut s = sample(if i % 4 == 0 { Color::Blue } else { Color::Green }, 200 + (i % 3) as u16, i + 1);
                // Runs of one service, interleaved with another's.
                s.service = ServiceKey(if (i / 7) % 2 == 0 { 1 } else { 2 });
                s
            })
            .collect();
        samples.iter().for_each(|s| one.ingest(s));
        batch.ingest_all(&samples);
        let sorted = |mut r: WindowReport| {
            r.sort_by_key(|(k, _)| k.0);
            r
        };
        let (a, b) = (one.close(1, Duration::from_secs(1)), batch.close(1, Duration::from_secs(1)));
        assert_eq!(a.len(), 2);
        assert_eq!(sorted(a), sorted(b));
    }

    #[test]
    fn old_intervals_leave_the_window() {
        let mut a = Aggregator::new();
        a.ingest(&sample(Color::Blue, 500, 1));
        assert_eq!(a.close(2, Duration::from_secs(1))[0].1[0].samples, 1);
        a.ingest(&sample(Color::Blue, 200, 1));
        assert_eq!(a.close(2, Duration::from_secs(1))[0].1[0].samples, 2);
        a.ingest(&sample(Color::Blue, 200, 1));
        let r = a.close(2, Duration::from_secs(1));
        assert_eq!(r[0].1[0].samples, 2);
        assert_eq!(r[0].1[0].error_rate, 0.0);
    }

    #[test]
    fn transport_failures_and_failed_probes_cost_availability() {
        let mut a = Aggregator::new();
        let mut s = sample(Color::Green, 0, 1);
        s.error = Some(UpstreamErrorKind::Connect);
        a.ingest(&s);
        a.ingest(&sample(Color::Green, 200, 1));
        let mut p = sample(Color::Green, 503, 1);
        p.kind = SampleKind::Probe;
        a.ingest(&p);
        a.ingest(&sample(Color::Green, 200, 1));
        let g = &a.close(1, Duration::from_secs(1))[0].1[1];
        assert_eq!(g.samples, 3);
        assert!((g.availability - 0.5).abs() < 1e-9);
        assert!((g.error_rate - 1.0 / 3.0).abs() < 1e-9);
    }
}
