//! The retry budget: retries allowed are `ratio × requests + min_per_second × WINDOW_SLOTS` over
//! a sliding window of `WINDOW_SLOTS` one-second slots (linkerd's shape and defaults: 20 % and
//! 10 per second over 10 s). The floor lets a thin canary's death be covered too: at 2 requests a
//! second a ratio alone would allow almost nothing. A budget over the whole life of the process would not bound anything: after
//! an hour of healthy traffic a failing green could have every one of its requests retried on
//! blue for as long again.
//!
//! Lock-free: each slot packs its epoch (seconds, mod 2^24) and its count in one `AtomicU64`, so
//! a slot is recycled and counted with one compare-and-swap and never loses a count to a reset.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use tokio::time::Instant;

/// Slots in the window; each covers one second.
pub const WINDOW_SLOTS: u64 = 10;

const EPOCH_BITS: u32 = 24;
const COUNT_MASK: u64 = (1 << (64 - EPOCH_BITS)) - 1;

fn now_epoch() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    let base = *BASE.get_or_init(Instant::now);
    // +WINDOW_SLOTS so that the first seconds never look like "stale slot 0".
    Instant::now().saturating_duration_since(base).as_secs() + WINDOW_SLOTS
}

/// Counts per second over the last `WINDOW_SLOTS` seconds.
#[derive(Debug)]
struct Window([AtomicU64; WINDOW_SLOTS as usize]);

impl Window {
    fn new() -> Self {
        Window(std::array::from_fn(|_| AtomicU64::new(0)))
    }

    fn add(&self, epoch: u64) {
        let slot = &self.0[(epoch % WINDOW_SLOTS) as usize];
        let tag = (epoch & ((1 << EPOCH_BITS) - 1)) << (64 - EPOCH_BITS);
        let mut cur = slot.load(Ordering::Relaxed);
        loop {
            let next = if cur & !COUNT_MASK == tag { cur + 1 } else { tag | 1 };
            match slot.compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(v) => cur = v,
            }
        }
    }

    /// Takes back one `add` at `epoch` (a reservation over the budget); nothing if the slot has
    /// moved on to a later second since.
    fn remove(&self, epoch: u64) {
        let slot = &self.0[(epoch % WINDOW_SLOTS) as usize];
        let tag = (epoch & ((1 << EPOCH_BITS) - 1)) << (64 - EPOCH_BITS);
        let mut cur = slot.load(Ordering::Relaxed);
        while cur & !COUNT_MASK == tag && cur & COUNT_MASK > 0 {
            match slot.compare_exchange_weak(cur, cur - 1, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(v) => cur = v,
            }
        }
    }

    fn sum(&self, epoch: u64) -> u64 {
        let live = |e: u64| (e & ((1 << EPOCH_BITS) - 1)) << (64 - EPOCH_BITS);
        (0..WINDOW_SLOTS)
            .filter_map(|back| epoch.checked_sub(back))
            .map(|e| {
                let v = self.0[(e % WINDOW_SLOTS) as usize].load(Ordering::Relaxed);
                if v & !COUNT_MASK == live(e) {
                    v & COUNT_MASK
                } else {
                    0
                }
            })
            .sum()
    }
}

/// Requests and retries of one service over the window.
#[derive(Debug)]
pub struct RetryBudget {
    requests: Window,
    retries: Window,
}

impl Default for RetryBudget {
    fn default() -> Self {
        RetryBudget { requests: Window::new(), retries: Window::new() }
    }
}

impl RetryBudget {
    /// Counts a request (the base of the budget).
    #[inline]
    pub fn deposit(&self) {
        self.requests.add(now_epoch());
    }

    /// Counts a retry that is never refused (a rescue after a rollback): later retries see it.
    pub fn spend(&self) {
        self.retries.add(now_epoch());
    }

    /// Takes one retry if `ratio × requests + min_per_second × WINDOW_SLOTS` over the window
    /// allows it.
    ///
    /// The retry is counted first and given back if it was one too many. Checked first, two
    /// worker threads (`--threads N`) could both see room for the last retry and both take it
    /// (11 of 10 with four threads: `threads_withdrawing_at_once_never_take_more_than_the_budget`);
    /// counted first, two racing for the last one may both give it back: one retry fewer at
    /// worst, never one more.
    pub fn withdraw(&self, ratio: f64, min_per_second: u32) -> bool {
        let e = now_epoch();
        let allowed = (u64::from(min_per_second) * WINDOW_SLOTS) as f64 + ratio * self.requests.sum(e) as f64;
        self.retries.add(e);
        let before = self.retries.sum(e).saturating_sub(1);
        if before as f64 >= allowed {
            self.retries.remove(e);
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn retries_are_bounded_by_the_ratio_plus_the_minimum() {
        let b = RetryBudget::default();
        for _ in 0..1000 {
            b.deposit();
        }
        let granted = (0..1000).filter(|_| b.withdraw(0.2, 1)).count();
        assert_eq!(granted, 210);
    }

    #[tokio::test(start_paused = true)]
    async fn old_traffic_does_not_fund_retries_forever() {
        let b = RetryBudget::default();
        for _ in 0..100_000 {
            b.deposit();
        }
        tokio::time::advance(Duration::from_secs(WINDOW_SLOTS + 1)).await;
        let granted = (0..1000).filter(|_| b.withdraw(0.2, 10)).count();
        assert_eq!(granted, 100, "only the floor (10/s over 10 s) is left once the window has passed");
    }

    #[tokio::test(start_paused = true)]
    async fn a_thin_service_still_gets_the_floor() {
        let b = RetryBudget::default();
        b.deposit();
        b.deposit();
        // 0.2 × 2 requests allows 0.4 of a retry (rounded up to one); the floor allows 100.
        assert_eq!((0..1000).filter(|_| b.withdraw(0.2, 10)).count(), 101);
    }

    #[test]
    fn threads_withdrawing_at_once_never_take_more_than_the_budget() {
        // Worker threads (`--threads N`) withdraw in parallel: the last retry goes to one of them.
        for _ in 0..2000 {
            let b = RetryBudget::default();
            let start = std::sync::Barrier::new(4);
            let granted: usize = std::thread::scope(|s| {
                let tasks: Vec<_> = (0..4)
                    .map(|_| {
                        s.spawn(|| {
                            start.wait();
                            (0..20).filter(|_| b.withdraw(0.0, 1)).count()
                        })
                    })
                    .collect();
                tasks.into_iter().map(|t| t.join().unwrap()).sum()
            });
            assert_eq!(granted, 10, "a floor of 1 a second allows 10 over the window");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_window_slides_one_second_at_a_time() {
        let b = RetryBudget::default();
        for _ in 0..100 {
            b.deposit();
        }
        tokio::time::advance(Duration::from_secs(WINDOW_SLOTS - 1)).await;
        assert_eq!(b.requests.sum(now_epoch()), 100);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(b.requests.sum(now_epoch()), 0);
    }
}
