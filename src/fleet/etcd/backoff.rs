//! Reconnect delays: exponential with jitter, so replicas that lost etcd together (a member
//! restart, a partition healing) do not reconnect in lock-step and hit the new member at once.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;

/// Delays for successive reconnect attempts: attempt `n` waits a uniformly random time in
/// `[d/2, d]` where `d = min(base · 2ⁿ, max)` ("equal jitter": never less than half the step,
/// so a failing store is not hammered, never all replicas at the same instant).
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
    rng: SmallRng,
}

impl Backoff {
    /// Starts at `base` and doubles up to `max`.
    pub fn new(base: Duration, max: Duration) -> Backoff {
        Backoff::seeded(base, max, rand::random())
    }

    /// Reproducible delays (tests and seeded fault schedules).
    pub fn seeded(base: Duration, max: Duration, seed: u64) -> Backoff {
        Backoff { base, max: max.max(base), attempt: 0, rng: SmallRng::seed_from_u64(seed) }
    }

    /// The delay before the next attempt; each call counts one more failed attempt.
    pub fn next_delay(&mut self) -> Duration {
        let step = self.base.saturating_mul(1u32 << self.attempt.min(20)).min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let half = step / 2;
        half + self.rng.random_range(Duration::ZERO..=step - half)
    }

    /// Sleeps for [`Backoff::next_delay`].
    pub async fn wait(&mut self) {
        tokio::time::sleep(self.next_delay()).await;
    }

    /// Back to `base` after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Failed attempts since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

impl Default for Backoff {
    /// 100 ms doubling to 5 s: the first retry is quick (a member restart takes ~1 s), and a long
    /// outage costs each replica one attempt every few seconds.
    fn default() -> Backoff {
        Backoff::new(Duration::from_millis(100), Duration::from_secs(5))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_within_half_to_full_step_and_stop_at_max() {
        let (base, max) = (Duration::from_millis(100), Duration::from_millis(1600));
        let mut b = Backoff::seeded(base, max, 7);
        for step in [100, 200, 400, 800, 1600, 1600, 1600] {
            let d = b.next_delay();
            let step = Duration::from_millis(step);
            assert!(d >= step / 2 && d <= step, "{d:?} outside [{:?}, {step:?}]", step / 2);
        }
        b.reset();
        assert!(b.next_delay() <= base);
    }

    #[test]
    fn two_replicas_do_not_retry_in_lock_step() {
        let (base, max) = (Duration::from_millis(100), Duration::from_secs(5));
        let (mut a, mut b) = (Backoff::seeded(base, max, 1), Backoff::seeded(base, max, 2));
        let same = (0..10).filter(|_| a.next_delay() == b.next_delay()).count();
        assert!(same < 2, "{same} of 10 delays identical");
    }

    #[test]
    fn huge_attempt_counts_do_not_overflow() {
        let mut b = Backoff::seeded(Duration::from_secs(1), Duration::from_secs(30), 3);
        for _ in 0..100 {
            assert!(b.next_delay() <= Duration::from_secs(30));
        }
        assert_eq!(b.attempts(), 100);
    }
}
