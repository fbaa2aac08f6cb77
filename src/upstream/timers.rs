//! Response-timeout timers of one endpoint's attempts, kept for the next attempt instead of made
//! and dropped with each one.
//!
//! A fresh `tokio::time::sleep` per attempt looked up the runtime handle, registered the timer
//! with the driver under its lock on first poll, and took the lock again to deregister it when
//! dropped: ~750 instructions per proxied request under callgrind. A kept timer stays registered;
//! moving its deadline later (every attempt's is later than the one before) is one
//! compare-and-swap, and the driver re-files it if it comes due before its new deadline. An
//! earlier deadline (a shorter timeout after a reload) takes the driver's lock, as a new timer
//! would.

use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use tokio::time::{Instant, Sleep};

/// Kept per worker, like idle connections (`client::IdleConns`), so an attempt resets a timer
/// of its own runtime's driver; workers past the last shard share one (correct, only less local).
const SHARDS: usize = 16;
/// At most this many idle timers are kept per shard (the endpoint's peak of concurrent attempts
/// on one worker); more are dropped.
const MAX_KEPT: usize = 1024;

/// The idle timers of one endpoint.
#[derive(Default)]
pub struct ResponseTimers {
    shards: [Mutex<Vec<Pin<Box<Sleep>>>>; SHARDS],
}

impl std::fmt::Debug for ResponseTimers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseTimers").finish_non_exhaustive()
    }
}

impl ResponseTimers {
    fn mine(&self) -> std::sync::MutexGuard<'_, Vec<Pin<Box<Sleep>>>> {
        self.shards[crate::workers::current_index() % SHARDS].lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A timer due at `deadline`, given back for the next attempt when dropped.
    pub fn due(&self, deadline: Instant) -> ResponseTimer<'_> {
        let kept = self.mine().pop();
        let sleep = match kept {
            Some(mut s) => {
                s.as_mut().reset(deadline);
                s
            }
            None => Box::pin(tokio::time::sleep_until(deadline)),
        };
        ResponseTimer { timers: self, sleep: Some(sleep) }
    }
}

/// A response timer in use by one attempt.
pub struct ResponseTimer<'a> {
    timers: &'a ResponseTimers,
    /// Always `Some` until dropped.
    sleep: Option<Pin<Box<Sleep>>>,
}

impl ResponseTimer<'_> {
    /// The timer to wait on.
    pub fn sleep(&mut self) -> Pin<&mut Sleep> {
        self.sleep.as_mut().expect("taken only when dropped").as_mut()
    }
}

impl Drop for ResponseTimer<'_> {
    fn drop(&mut self) {
        let Some(sleep) = self.sleep.take() else { return };
        // It keeps the attempt's waker until the next attempt polls it: swapping in a no-op
        // waker here cost another poll (~110 instructions). The most it does is wake that
        // task once, spuriously, if no attempt reuses the timer before it comes due.
        let mut kept = self.timers.mine();
        if kept.len() < MAX_KEPT {
            kept.push(sleep);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_kept_timer_fires_at_its_new_deadline_not_its_old_one() {
        let timers = ResponseTimers::default();
        drop(timers.due(Instant::now() + Duration::from_secs(1)));
        let mut t = timers.due(Instant::now() + Duration::from_secs(5));
        assert_eq!(timers.mine().len(), 0, "the kept timer was reused");
        let start = Instant::now();
        t.sleep().await;
        assert_eq!(start.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_kept_timer_moved_earlier_or_after_firing_fires_on_time() {
        let timers = ResponseTimers::default();
        let mut t = timers.due(Instant::now() + Duration::from_secs(1));
        t.sleep().await;
        drop(t);
        let mut t = timers.due(Instant::now() + Duration::from_secs(3));
        t.sleep().await;
        drop(t);
        let start = Instant::now();
        let mut t = timers.due(start + Duration::from_secs(10));
        drop(t);
        t = timers.due(start + Duration::from_secs(2));
        t.sleep().await;
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }
}
