//! Open loop: requests are due at a constant rate whether or not the target keeps up.
//!
//! Slot `k` is due at `start + k / rate`. Free workers claim slots in order from one atomic
//! counter, wait until the slot is due, send, and record `completion − due`. When every
//! connection is busy, slots are claimed late and that queueing delay lands in the latency,
//! which is the coordinated-omission correction: a stalled target cannot hide its stall by
//! slowing the generator down.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::conn::{Conn, Dial};
use crate::plan::Plan;
use crate::stats::{Live, Stats};
use crate::target::Target;

/// The arrival schedule: a rate and the index of the first measured slot.
#[derive(Debug)]
pub struct Schedule {
    rate: f64,
    /// Slots before this one fall in the warmup and are not recorded.
    first_measured: u64,
    /// Next unclaimed slot; shared by every worker.
    next: AtomicU64,
}

impl Schedule {
    /// A schedule at `rate` per second whose first `warmup` is not measured.
    pub fn new(rate: f64, warmup: Duration) -> Self {
        Self {
            rate,
            first_measured: (warmup.as_secs_f64() * rate).ceil() as u64,
            next: AtomicU64::new(0),
        }
    }

    /// When slot `k` is due, relative to the start of the run. Computed from `k` rather than
    /// accumulated, so rounding never drifts over a long run.
    pub fn offset(&self, k: u64) -> Duration {
        Duration::from_secs_f64(k as f64 / self.rate)
    }

    /// Whether slot `k` is recorded.
    pub fn is_measured(&self, k: u64) -> bool {
        k >= self.first_measured
    }

    fn claim(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }
}

/// Starts one worker per dial, all drawing slots from one schedule.
pub fn spawn(
    rate: f64,
    dials: Vec<Dial>,
    target: &Arc<Target>,
    plan: &Arc<Plan>,
    live: &Arc<Live>,
    warmup: Duration,
) -> Vec<JoinHandle<Stats>> {
    let schedule = Arc::new(Schedule::new(rate, warmup));
    dials
        .into_iter()
        .map(|dial| {
            let ctx = (
                Arc::clone(&schedule),
                Arc::clone(target),
                Arc::clone(plan),
                Arc::clone(live),
            );
            tokio::spawn(worker(Conn::new(dial), ctx))
        })
        .collect()
}

async fn worker(
    mut conn: Conn,
    (schedule, target, plan, live): (Arc<Schedule>, Arc<Target>, Arc<Plan>, Arc<Live>),
) -> Stats {
    let mut stats = Stats::default();
    loop {
        let k = schedule.claim();
        let due = plan.start + schedule.offset(k);
        let measured = schedule.is_measured(k);
        if plan.is_over(due) || (measured && k - schedule.first_measured >= plan.limit()) {
            break;
        }
        tokio::time::sleep_until(due).await;
        let result = conn.exchange(target.request(), plan.timeout).await;
        live.finished(result.is_err());
        if !measured {
            continue;
        }
        match result {
            Ok(answer) => stats.response(answer.status, due.elapsed(), answer.upstream.as_ref()),
            Err(kind) => stats.error(kind),
        }
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_evenly_spaced_without_drift() {
        let s = Schedule::new(1000.0, Duration::ZERO);
        assert_eq!(s.offset(0), Duration::ZERO);
        assert_eq!(s.offset(1), Duration::from_millis(1));
        assert_eq!(s.offset(1_000_000), Duration::from_secs(1000));
    }

    #[test]
    fn fractional_rates_space_slots_by_the_reciprocal() {
        let s = Schedule::new(0.5, Duration::ZERO);
        assert_eq!(s.offset(3), Duration::from_secs(6));
    }

    #[test]
    fn warmup_slots_are_not_measured() {
        let s = Schedule::new(100.0, Duration::from_millis(1005));
        assert!(!s.is_measured(100));
        assert!(s.is_measured(101));
        assert!(Schedule::new(100.0, Duration::ZERO).is_measured(0));
    }

    #[test]
    fn claims_hand_out_each_slot_once() {
        let s = Schedule::new(10.0, Duration::ZERO);
        let claimed: Vec<u64> = (0..5).map(|_| s.claim()).collect();
        assert_eq!(claimed, vec![0, 1, 2, 3, 4]);
    }
}
