//! Fleet mode: several Switchyard replicas act as one through etcd. Without `[fleet]` none of
//! this runs.
//!
//! # Layout
//! - `etcd/` the store client (JSON gateway over hyper): range, put, CAS txn, leases, watch.
//! - `shared` the per-service rollout state every replica agrees on, and how it merges.
//! - `runtime` the task that owns the store connection: lease, election, watch, writes.
//!
//! The control loop stays the only writer of routes: the runtime turns store events into
//! control commands, and the loop hands the runtime what it changed after each commit.

pub mod etcd;
