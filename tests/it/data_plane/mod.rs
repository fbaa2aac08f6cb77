//! Integration tests for the data plane, against real sockets on 127.0.0.1: an
//! in-process app (or the real binary, for SIGTERM) in front of in-process mock upstreams.
//!
//! - `routing`: exact split, monotone stickiness, force header, weight change under load.
//! - `failures`: 502/504 error bodies, passive ejection and active health checks with recovery.
//! - `wire`: hop-by-hop stripping and forwarded headers, a 256 MiB streamed upload (the 1 GiB
//!   case is left to the load tests: it only adds run time), Upgrade tunnelling, malformed requests.
//! - `pooling`: upstream keep-alive reuse, bounded by concurrency; a stale pooled connection
//!   never fails a request.
//! - `protocols`: h2c with prior knowledge, TLS with ALPN h2 and http/1.1, `min_version = "1.3"`.
//! - `lifecycle`: graceful drain of the real binary on SIGTERM, `/metrics` counts.

pub(crate) mod failures;
mod lifecycle;
pub(crate) mod pooling;
mod protocols;
mod routing;
pub(crate) mod support;
mod wire;
