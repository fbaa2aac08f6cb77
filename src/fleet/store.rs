//! What the fleet needs from a store: keys under a prefix, compare-and-swap on a key's
//! revision, leases that take keys with them, and a watch that resumes from a revision. etcd
//! implements it (`etcd::Etcd`); a Kubernetes-API store (Leases + a ConfigMap with
//! resourceVersion as the CAS token) could implement the same contract later.

use super::etcd::{Cas, Etcd, Kv, StoreError, Watch, WatchBatch};
use std::future::Future;
use std::time::Duration;

/// A strongly consistent key-value store with leases and watches. Every call must end within
/// a bounded time (an unreachable store is an error, never a hang).
pub trait Store: Send + Sync + 'static {
    /// An open watch.
    type Watch: WatchStream;
    /// Every key under `prefix` and the revision the read reflects.
    fn range_prefix(&self, prefix: &str) -> impl Future<Output = Result<(Vec<Kv>, i64), StoreError>> + Send;
    /// Unconditional write (lease 0 = none); the new revision.
    fn put(&self, key: &str, value: &[u8], lease: i64) -> impl Future<Output = Result<i64, StoreError>> + Send;
    /// Write only if the key's revision is still `expect` (0 = must not exist).
    fn cas(
        &self,
        key: &str,
        value: &[u8],
        expect: i64,
        lease: i64,
    ) -> impl Future<Output = Result<Cas, StoreError>> + Send;
    /// A lease of `ttl`.
    fn lease_grant(&self, ttl: Duration) -> impl Future<Output = Result<i64, StoreError>> + Send;
    /// Refreshes a lease; false when it already expired.
    fn lease_keepalive(&self, id: i64) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Ends a lease and its keys now.
    fn lease_revoke(&self, id: i64) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Changes under `prefix` from `start_revision` on.
    fn watch(&self, prefix: &str, start_revision: i64) -> impl Future<Output = Result<Self::Watch, StoreError>> + Send;
}

/// The changes of an open watch, batch by batch.
pub trait WatchStream: Send {
    /// The next batch; an error ends the watch.
    fn next(&mut self) -> impl Future<Output = Result<WatchBatch, StoreError>> + Send;
}

impl WatchStream for Watch {
    fn next(&mut self) -> impl Future<Output = Result<WatchBatch, StoreError>> + Send {
        Watch::next(self)
    }
}

impl Store for Etcd {
    type Watch = Watch;
    fn range_prefix(&self, prefix: &str) -> impl Future<Output = Result<(Vec<Kv>, i64), StoreError>> + Send {
        Etcd::range_prefix(self, prefix)
    }
    fn put(&self, key: &str, value: &[u8], lease: i64) -> impl Future<Output = Result<i64, StoreError>> + Send {
        Etcd::put(self, key, value, lease)
    }
    fn cas(
        &self,
        key: &str,
        value: &[u8],
        expect: i64,
        lease: i64,
    ) -> impl Future<Output = Result<Cas, StoreError>> + Send {
        Etcd::cas(self, key, value, expect, lease)
    }
    fn lease_grant(&self, ttl: Duration) -> impl Future<Output = Result<i64, StoreError>> + Send {
        Etcd::lease_grant(self, ttl)
    }
    fn lease_keepalive(&self, id: i64) -> impl Future<Output = Result<bool, StoreError>> + Send {
        Etcd::lease_keepalive(self, id)
    }
    fn lease_revoke(&self, id: i64) -> impl Future<Output = Result<(), StoreError>> + Send {
        Etcd::lease_revoke(self, id)
    }
    fn watch(&self, prefix: &str, start_revision: i64) -> impl Future<Output = Result<Watch, StoreError>> + Send {
        Etcd::watch(self, prefix, start_revision)
    }
}
