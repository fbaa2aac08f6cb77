//! Upstreams: endpoint pools with ejection, the pooled client, active health checks.

pub mod client;
pub mod health;
pub mod pool;

pub use pool::{Endpoint, Pool};
