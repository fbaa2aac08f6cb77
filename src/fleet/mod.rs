//! Fleet mode: several Switchyard replicas act as one through etcd. Without `[fleet]` none of
//! this runs.
//!
//! # Layout
//! - `etcd/` the store client (JSON gateway over hyper): range, put, CAS txn, leases, watch.
//! - `shared` the per-service rollout state every replica agrees on, and how a lost CAS merges.
//! - `runtime` the task that owns the store connection: membership, election, watch; `write`
//!   its fenced, rebased writes; `keepalive` the lease renewal in its own task.
//! - `link` the control loop's end: publish, claim a rollback, the fleet view.
//!
//! ```text
//! control loop ─commit→ Link::publish ─→ runtime ─CAS txn→ etcd ─watch→ every runtime
//!      ↑                                                                    │
//!      └────────────── FromFleet::State → one route swap ←──────────────────┘
//! ```
//! The control loop stays the only writer of routes: the runtime turns store events into
//! `FromFleet` messages the loop applies, and the loop hands the runtime what it changed.

pub mod etcd;
mod keepalive;
pub mod link;
mod runtime;
pub mod shared;
mod write;

pub use link::{Claim, FleetStatus, FleetView, FromFleet, Link};
pub use shared::SharedService;

use crate::config::FleetConfig;
use arc_swap::ArcSwap;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Wall-clock unix milliseconds: shared state is compared across processes and hosts.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

/// Starts the fleet runtime; store events arrive on the returned receiver. Dropping the `Link`
/// stops the runtime, which revokes its lease; `Link::close` also waits for that.
pub fn spawn(cfg: &FleetConfig) -> (Link, mpsc::Receiver<FromFleet>) {
    let (out_tx, out_rx) = mpsc::channel(1024);
    let (tx, rx) = mpsc::unbounded_channel();
    let view = Arc::new(ArcSwap::from_pointee(FleetView { replica: cfg.replica.clone(), ..Default::default() }));
    let stop = CancellationToken::new();
    let windows = Arc::new(link::Windows::default());
    // A call longer than a third of the lease would let the lease lapse while it waits.
    let timeout = (cfg.lease_ttl / 3).clamp(std::time::Duration::from_millis(200), std::time::Duration::from_secs(2));
    let store = Arc::new(etcd::Etcd::from_config(cfg, timeout));
    let renewal = Arc::new(keepalive::Renewal::new(cfg.lease_ttl));
    let rt = runtime::Runtime::new(store, cfg.clone(), out_tx, view.clone(), windows.clone(), renewal.clone());
    let task = tokio::spawn(rt.run(rx, stop.clone()));
    let writer = format!("{}/{:08x}", cfg.replica, rand::random::<u32>());
    let link = Link {
        tx,
        view,
        writer,
        last: Default::default(),
        confirmed: Default::default(),
        seq: Default::default(),
        windows,
        synced: false,
        skew: Default::default(),
        renewal,
        stop,
        task: Some(task),
    };
    (link, out_rx)
}
