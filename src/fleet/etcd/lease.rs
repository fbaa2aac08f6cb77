//! A lease kept alive by a task of its own. Renewal must not wait behind CAS retries, a slow
//! range or a watch reconnect in the caller's `select!`: a lease that lapses while its holder
//! is busy hands leadership away. The task renews every TTL/3 and publishes what it knows in a
//! `watch` channel the holder reads whenever it likes.

use super::{Backoff, Etcd, StoreError};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// What the keeper knows about its lease.
#[derive(Debug, Clone, PartialEq)]
pub enum LeaseState {
    /// Renewed at this instant; etcd keeps the lease at least until `renewed + ttl`.
    Alive {
        /// When etcd last confirmed it.
        renewed: Instant,
    },
    /// Renewals have failed for longer than the renew deadline (2/3 of the TTL): the lease may
    /// lapse any moment and someone else may hold what it guarded. A leader steps down now,
    /// before anyone else can be elected. The keeper goes on trying; `Alive` may follow.
    Lapsing(StoreError),
    /// etcd says the lease is gone (expired or revoked): its keys are deleted. Final.
    Expired,
}

/// Keeps one lease alive until dropped (dropping does not revoke: call [`Etcd::lease_revoke`]
/// on a clean shutdown so leadership moves at once instead of after the TTL).
pub struct LeaseKeeper {
    /// The lease.
    pub id: i64,
    state: watch::Receiver<LeaseState>,
    task: tokio::task::JoinHandle<()>,
}

impl LeaseKeeper {
    /// The latest state.
    pub fn state(&self) -> LeaseState {
        self.state.borrow().clone()
    }

    /// A receiver to `select!` on (`changed()`), for holders that react at once.
    pub fn subscribe(&self) -> watch::Receiver<LeaseState> {
        self.state.clone()
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Etcd {
    /// Starts renewing lease `id` (granted with `ttl`) on a task of its own.
    pub fn keep_lease_alive(&self, id: i64, ttl: Duration) -> LeaseKeeper {
        let (tx, state) = watch::channel(LeaseState::Alive { renewed: Instant::now() });
        let task = tokio::spawn(renew(self.clone(), id, ttl, tx));
        LeaseKeeper { id, state, task }
    }
}

async fn renew(etcd: Etcd, id: i64, ttl: Duration, tx: watch::Sender<LeaseState>) {
    let every = ttl / 3;
    let deadline = ttl * 2 / 3;
    let mut backoff = Backoff::new(Duration::from_millis(50), every);
    let mut renewed = Instant::now();
    loop {
        let lapsing = matches!(*tx.borrow(), LeaseState::Lapsing(_));
        let attempt = etcd.lease_keepalive(id);
        // Before the deadline, a renewal that hangs (a paused member) must not hide it passing.
        let r = if lapsing {
            attempt.await
        } else {
            let late = || StoreError::Unreachable(format!("lease {id}: not renewed within {deadline:?}"));
            tokio::time::timeout_at(renewed + deadline, attempt).await.unwrap_or_else(|_| Err(late()))
        };
        match r {
            Ok(true) => {
                renewed = Instant::now();
                backoff.reset();
                tx.send_replace(LeaseState::Alive { renewed });
                tokio::time::sleep_until(renewed + every).await;
            }
            Ok(false) => {
                tx.send_replace(LeaseState::Expired);
                return;
            }
            Err(e) => {
                if renewed.elapsed() >= deadline && !lapsing {
                    tracing::warn!(lease = id, error = %e, "lease not renewed within its deadline");
                    tx.send_replace(LeaseState::Lapsing(e));
                }
                backoff.wait().await;
            }
        }
    }
}
