//! When the run measures and when it stops, shared read-only by every worker.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::cli::Args;

/// The run's bounds; the only mutable part is the request budget, claimed atomically.
#[derive(Debug)]
pub struct Plan {
    /// When traffic starts (warmup included).
    pub start: Instant,
    /// When recording starts: `start + warmup`.
    pub measure_start: Instant,
    /// No request is started at or after this instant; `None` means bounded by count only.
    pub end: Option<Instant>,
    /// Per-request deadline.
    pub timeout: Duration,
    /// `--requests`, or `u64::MAX`.
    limit: u64,
    /// Measured requests claimed so far; shared by all workers.
    claimed: AtomicU64,
}

impl Plan {
    /// Bounds for a run starting now.
    pub fn new(args: &Args) -> Self {
        let start = Instant::now();
        let measure_start = start + args.warmup;
        Self {
            start,
            measure_start,
            end: args.measured_duration().map(|d| measure_start + d),
            timeout: args.timeout,
            limit: args.requests.unwrap_or(u64::MAX),
            claimed: AtomicU64::new(0),
        }
    }

    /// Whether a request due at `at` is past the time bound.
    pub fn is_over(&self, at: Instant) -> bool {
        self.end.is_some_and(|end| at >= end)
    }

    /// Takes one measured request from the budget; `false` once it is spent.
    pub fn claim(&self) -> bool {
        self.claimed.fetch_add(1, Ordering::Relaxed) < self.limit
    }

    /// `--requests`, when given.
    pub fn limit(&self) -> u64 {
        self.limit
    }
}
