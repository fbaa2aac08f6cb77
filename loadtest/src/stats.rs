//! Per-worker measurements, merged once at the end so the hot path shares nothing
//! except the two progress counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use http::HeaderValue;

/// Highest latency the histogram resolves (1 h in µs); larger values saturate.
const MAX_LATENCY_US: u64 = 3_600_000_000;
/// Status codes are indexed directly; anything above is clamped into the last slot.
const STATUS_SLOTS: usize = 600;

/// Why an attempt produced no HTTP response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// TCP connect or handshake failed.
    Connect,
    /// No complete response within `--timeout`.
    Timeout,
    /// The peer reset the connection.
    Reset,
    /// The connection closed before a response (or mid-body).
    Closed,
    /// The bytes received were not HTTP.
    Parse,
    /// Anything else hyper reported.
    Other,
}

impl ErrorKind {
    /// Every kind, in report order.
    pub const ALL: [ErrorKind; 6] = [
        ErrorKind::Connect,
        ErrorKind::Timeout,
        ErrorKind::Reset,
        ErrorKind::Closed,
        ErrorKind::Parse,
        ErrorKind::Other,
    ];

    /// Key used in the JSON summary.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Reset => "reset",
            ErrorKind::Closed => "closed",
            ErrorKind::Parse => "parse",
            ErrorKind::Other => "other",
        }
    }

    /// Maps a hyper error to a kind, preferring the underlying IO error when there is one.
    pub fn classify(e: &hyper::Error) -> Self {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(err) = source {
            if let Some(io) = err.downcast_ref::<std::io::Error>() {
                return match io.kind() {
                    std::io::ErrorKind::ConnectionReset => ErrorKind::Reset,
                    std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::UnexpectedEof => ErrorKind::Closed,
                    std::io::ErrorKind::TimedOut => ErrorKind::Timeout,
                    _ => ErrorKind::Other,
                };
            }
            source = err.source();
        }
        if e.is_parse() || e.is_parse_status() {
            ErrorKind::Parse
        } else if e.is_timeout() {
            ErrorKind::Timeout
        } else if e.is_incomplete_message() || e.is_closed() || e.is_canceled() {
            ErrorKind::Closed
        } else {
            ErrorKind::Other
        }
    }
}

/// One worker's measurements; merged with [`Stats::merge`] after the run.
#[derive(Debug)]
pub struct Stats {
    /// Response latency in microseconds.
    pub latency: Histogram<u64>,
    /// Responses per status code.
    pub status: Vec<u64>,
    /// Transport errors per [`ErrorKind`] (indexed by `kind as usize`).
    pub errors: [u64; ErrorKind::ALL.len()],
    /// Responses per `x-switchyard-mock` value; a short list beats a map for a handful of
    /// upstreams and allocates only when a new value appears.
    pub upstreams: Vec<(HeaderValue, u64)>,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            latency: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("static histogram bounds are valid"),
            status: vec![0; STATUS_SLOTS],
            errors: [0; ErrorKind::ALL.len()],
            upstreams: Vec::new(),
        }
    }
}

impl Stats {
    /// Records a response, its latency and which upstream answered it.
    pub fn response(&mut self, status: u16, latency: Duration, upstream: Option<&HeaderValue>) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency.saturating_record(us.max(1));
        self.status[usize::from(status).min(STATUS_SLOTS - 1)] += 1;
        if let Some(name) = upstream {
            match self.upstreams.iter_mut().find(|(n, _)| n == name) {
                Some((_, count)) => *count += 1,
                None => self.upstreams.push((name.clone(), 1)),
            }
        }
    }

    /// Records a transport error.
    pub fn error(&mut self, kind: ErrorKind) {
        self.errors[kind as usize] += 1;
    }

    /// Responses plus errors.
    pub fn attempts(&self) -> u64 {
        self.status.iter().sum::<u64>() + self.errors.iter().sum::<u64>()
    }

    /// Folds `other` into `self`.
    pub fn merge(&mut self, other: Stats) {
        self.latency.add(&other.latency).expect("histograms share bounds");
        for (a, b) in self.status.iter_mut().zip(other.status) {
            *a += b;
        }
        for (a, b) in self.errors.iter_mut().zip(other.errors) {
            *a += b;
        }
        for (name, n) in other.upstreams {
            match self.upstreams.iter_mut().find(|(m, _)| *m == name) {
                Some((_, count)) => *count += n,
                None => self.upstreams.push((name, n)),
            }
        }
    }
}

/// Counters the progress line reads while the run is going; atomics because every
/// worker bumps them and the reporter only samples.
#[derive(Debug, Default)]
pub struct Live {
    /// Finished attempts, warmup included.
    pub done: AtomicU64,
    /// Transport errors, warmup included.
    pub errors: AtomicU64,
}

impl Live {
    /// Counts one finished attempt.
    pub fn finished(&self, error: bool) {
        self.done.fetch_add(1, Ordering::Relaxed);
        if error {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_counts_and_upstreams() {
        let blue = HeaderValue::from_static("auth-blue");
        let green = HeaderValue::from_static("auth-green");
        let mut a = Stats::default();
        a.response(200, Duration::from_millis(1), Some(&blue));
        let mut b = Stats::default();
        b.response(200, Duration::from_millis(3), Some(&blue));
        b.response(500, Duration::from_millis(2), Some(&green));
        b.error(ErrorKind::Reset);
        a.merge(b);
        assert_eq!(a.status[200], 2);
        assert_eq!(a.status[500], 1);
        assert_eq!(a.attempts(), 4);
        assert_eq!(a.upstreams, vec![(blue, 2), (green, 1)]);
        assert_eq!(a.latency.len(), 3);
    }
}
