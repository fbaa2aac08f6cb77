//! Open loop: requests are due at a constant rate whether or not the target keeps up.
//!
//! Slot `k` is due at `start + k / rate`. Free workers claim slots in order from one atomic
//! counter, wait until the slot is due, send, and record `completion − due`. When every
//! connection is busy, slots are claimed late and that queueing delay lands in the latency,
//! which is the coordinated-omission correction: a stalled target cannot hide its stall by
//! slowing the generator down.
//!
//! Sending stops at the end of the run even if slots are still queued: the run must not
//! overshoot its duration when the target is overloaded. Those slots are reported as
//! `missed` (see [`Schedule::missed`]), because hiding them would flatter the target.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::conn::{Conn, Dial};
use crate::plan::Plan;
use crate::stats::{Live, Stats};
use crate::target::Target;

/// How long past the end a backlogged run may keep sending slots that were due in time, so a
/// run at a sustainable rate finishes every slot while an overloaded one still stops promptly.
const STOP_GRACE: Duration = Duration::from_secs(1);

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
        Self { rate, first_measured: (warmup.as_secs_f64() * rate).ceil() as u64, next: AtomicU64::new(0) }
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

    /// Measured slots due in the first `elapsed` of the run that were never sent, given how
    /// many measured attempts finished and the request `limit`.
    pub fn missed(&self, elapsed: Duration, attempts: u64, limit: u64) -> u64 {
        let due = (elapsed.as_secs_f64() * self.rate).ceil() as u64;
        let measured_due = due.saturating_sub(self.first_measured).min(limit);
        measured_due.saturating_sub(attempts)
    }

    fn claim(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }
}

/// Starts one worker per dial, all drawing slots from one schedule.
pub fn spawn(
    dials: Vec<Dial>,
    target: &Arc<Target>,
    plan: &Arc<Plan>,
    live: &Arc<Live>,
    schedule: &Arc<Schedule>,
) -> Vec<JoinHandle<Stats>> {
    dials
        .into_iter()
        .map(|dial| {
            let ctx = (Arc::clone(schedule), Arc::clone(target), Arc::clone(plan), Arc::clone(live));
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
        let claimed_at = Instant::now();
        let measured = schedule.is_measured(k);
        let over_budget = measured && k - schedule.first_measured >= plan.limit();
        let too_late = plan.end.is_some_and(|end| claimed_at >= end + STOP_GRACE);
        if plan.is_over(due) || too_late || over_budget {
            break;
        }
        let start = latency_start(due, claimed_at, schedule_wait(due).await);
        let result = conn.exchange(target.request(), plan.timeout).await;
        live.finished(result.is_err());
        if !measured {
            continue;
        }
        match result {
            Ok(answer) => stats.response(answer.status, start.elapsed(), answer.upstream.as_ref()),
            Err(kind) => stats.error(kind),
        }
    }
    stats
}

/// Sleeps until `due` and returns when it actually woke up.
async fn schedule_wait(due: Instant) -> Instant {
    tokio::time::sleep_until(due).await;
    Instant::now()
}

/// Where a request's latency starts. A slot already overdue when claimed waited for a free
/// connection, which the target caused: charge from `due`. A slot claimed early was sent as
/// soon as the timer fired; tokio's timer has 1 ms granularity, and that lag is the
/// generator's, not the target's: charge from the wake-up.
fn latency_start(due: Instant, claimed_at: Instant, woke: Instant) -> Instant {
    if claimed_at >= due {
        due
    } else {
        woke.max(due)
    }
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
    fn unsent_slots_due_within_the_run_are_missed() {
        let s = Schedule::new(100.0, Duration::from_secs(1));
        // 2 s of run at 100/s = 200 slots due, 100 of them in the warmup.
        assert_eq!(s.missed(Duration::from_secs(2), 60, u64::MAX), 40);
        assert_eq!(s.missed(Duration::from_secs(2), 60, 70), 10);
        assert_eq!(s.missed(Duration::from_secs(2), 100, u64::MAX), 0);
    }

    #[test]
    fn overdue_slots_are_charged_from_their_due_time() {
        let t0 = Instant::now();
        let due = t0 + Duration::from_millis(5);
        let claimed = t0 + Duration::from_millis(9);
        assert_eq!(latency_start(due, claimed, claimed), due);
    }

    #[test]
    fn timer_lag_on_an_early_claim_is_not_charged() {
        let t0 = Instant::now();
        let due = t0 + Duration::from_millis(5);
        let woke = due + Duration::from_micros(900);
        assert_eq!(latency_start(due, t0, woke), woke);
    }

    #[test]
    fn claims_hand_out_each_slot_once() {
        let s = Schedule::new(10.0, Duration::ZERO);
        let claimed: Vec<u64> = (0..5).map(|_| s.claim()).collect();
        assert_eq!(claimed, vec![0, 1, 2, 3, 4]);
    }
}
