//! The lease keep-alive, in its own task so that no slow call or CAS retry of the runtime can
//! delay it. A leader that has not renewed within the renew deadline (two thirds of the TTL)
//! stops leading on its own, before the lease can expire and anyone else be elected
//! (client-go's `leaderelection` renew deadline); a resumed process whose last renewal is
//! older than that knows at once, from its monotonic clock, that it may no longer lead.

use super::etcd::{Etcd, StoreError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// When the lease was last renewed, shared by the runtime, the keep-alive task and the loop.
#[derive(Debug)]
pub struct Renewal {
    origin: Instant,
    /// Milliseconds after `origin` of the last successful renewal (0 = never).
    last_ms: AtomicU64,
    /// Longest time since a renewal during which this replica may act as leader.
    pub deadline: Duration,
}

impl Renewal {
    pub fn new(ttl: Duration) -> Renewal {
        Renewal { origin: Instant::now(), last_ms: AtomicU64::new(0), deadline: ttl * 2 / 3 }
    }

    /// Records a renewal (or a fresh grant) now.
    pub fn mark(&self) {
        let ms = self.origin.elapsed().as_millis() as u64;
        self.last_ms.store(ms.max(1), Ordering::Release);
    }

    /// Renewed within the deadline.
    pub fn fresh(&self) -> bool {
        let last = self.last_ms.load(Ordering::Acquire);
        last != 0 && (self.origin.elapsed().as_millis() as u64).saturating_sub(last) < self.deadline.as_millis() as u64
    }
}

/// Keeps `lease` alive every `every` until the receiver is dropped; reports on `lost` when the
/// lease expired or no renewal succeeded within the deadline.
pub fn spawn(
    etcd: Arc<Etcd>,
    lease: i64,
    every: Duration,
    renewal: Arc<Renewal>,
    lost: mpsc::Sender<StoreError>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = lost.closed() => return,
            }
            // Bounded here too: however the client retries, a renewal that cannot finish within
            // the deadline is a failed one.
            let call = tokio::time::timeout(renewal.deadline, etcd.lease_keepalive(lease));
            let r = call.await.unwrap_or_else(|_| Err(StoreError::Unreachable("lease renewal: no answer".into())));
            let why = match r {
                Ok(true) => {
                    renewal.mark();
                    continue;
                }
                Ok(false) => StoreError::Unreachable("lease expired: membership lost".into()),
                Err(e) if renewal.fresh() => {
                    tracing::debug!(error = %e, "lease renewal failed; retrying within the renew deadline");
                    continue;
                }
                Err(e) => e,
            };
            let _ = lost.send(why).await;
            return;
        }
    })
}
