//! Thread per core (`--threads 2`): every data-plane promise made on one thread holds when two
//! worker runtimes accept on the same port, and what must be global stays global.
//!
//! What is exact, per worker and overall:
//! - The unkeyed split's sequence is one atomic shared by both workers: the split is exact over
//!   the whole run (400 green of 4 000 at 10 %), whichever worker served each request; per worker
//!   it is only close to the weight (the kernel's `SO_REUSEPORT` hash decides which requests a
//!   worker sees, so its share of the sequence is not a contiguous run).
//! - A sticky key's color is a pure function of the key and the weight: exact on every worker.
//! - The retry budget, the per-endpoint in-flight cap, ejection and health state, the route
//!   snapshot, the rollback's abandon signal and the served certificate are one value shared by
//!   both workers: exact overall, and there is no per-worker figure to state.
//! - What is per worker: idle upstream connections (a request reuses one its own thread owns)
//!   and `switchyard_worker_connections_total{worker}`.
//!
//! The tests learn which worker accepted a connection from that counter, opening one connection
//! at a time (`support::Attribution`), and insist that each worker served its share.
//!
//! - `routing`: the exact split, sticky keys across workers, weight changes by reload and admin.
//! - `limits`: the retry budget and the in-flight cap are global.
//! - `pooling`: each worker reuses idle upstream connections of its own.
//! - `endpoints`: passive ejection and active health seen by both workers.
//! - `inflight`: rollback rescue of waiting candidate attempts and hedging on both workers.
//! - `drain`: shutdown waits for both workers' requests, and closes the rest after the timeout.
//! - `tls`: certificate reload and a reload switching TLS on reach both workers.
//! - `fleet`: the real binary with `--threads 2` in a fleet.

mod drain;
mod endpoints;
mod fleet;
mod inflight;
mod limits;
mod pooling;
mod routing;
mod support;
mod tls;
