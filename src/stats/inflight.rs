//! Requests in flight, bucketed by start time. A latency measurement only exists once a slow
//! response finishes, so a green that starts answering in 2.5 s would otherwise look healthy for
//! 2.5 s. The data path adds one to its start bucket and removes it at the end (two atomic
//! adds); the control loop counts how many have been running longer than the p95 threshold.

use crate::clock::now_ms;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const BUCKET_MS: u64 = 250;
/// 128 × 250 ms = 32 s of history, longer than the default response timeout (30 s).
const RING: usize = 128;

/// Start-time buckets of in-flight requests of one color.
#[derive(Debug)]
pub struct InFlightClock {
    buckets: [AtomicU32; RING],
}

impl Default for InFlightClock {
    fn default() -> Self {
        InFlightClock { buckets: std::array::from_fn(|_| AtomicU32::new(0)) }
    }
}

impl InFlightClock {
    /// A request starts; returns its bucket for `exit`.
    #[inline]
    pub fn enter(&self) -> u8 {
        let b = ((now_ms() / BUCKET_MS) % RING as u64) as usize;
        self.buckets[b].fetch_add(1, Ordering::Relaxed);
        b as u8
    }

    /// The request that entered `bucket` ended.
    #[inline]
    pub fn exit(&self, bucket: u8) {
        self.buckets[bucket as usize].fetch_sub(1, Ordering::Relaxed);
    }

    /// Requests still running that started at least `age` ago (up to the ring's 32 s).
    pub fn older_than(&self, age: Duration) -> u64 {
        let now = now_ms() / BUCKET_MS;
        let min_age = (age.as_millis() as u64).div_ceil(BUCKET_MS).max(1);
        (min_age..RING as u64)
            .filter(|a| *a <= now)
            .map(|a| u64::from(self.buckets[((now - a) % RING as u64) as usize].load(Ordering::Relaxed)))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn only_requests_older_than_the_age_are_counted() {
        let c = InFlightClock::default();
        let old = c.enter();
        tokio::time::advance(Duration::from_millis(2_600)).await;
        let young = c.enter();
        assert_eq!(c.older_than(Duration::from_secs(2)), 1);
        tokio::time::advance(Duration::from_millis(2_600)).await;
        assert_eq!(c.older_than(Duration::from_secs(2)), 2);
        c.exit(old);
        c.exit(young);
        assert_eq!(c.older_than(Duration::from_secs(2)), 0);
    }
}
