//! Upstreams: endpoint pools with ejection, the pooled client, active health checks, and the
//! bodies of an exchange (the request body the client sends; the response body that hands the
//! connection back to its endpoint when it ends, which is why it lives beside the pool).

pub mod body;
pub mod client;
pub mod health;
pub mod pool;
pub mod timers;

pub use pool::{Endpoint, Pool};
