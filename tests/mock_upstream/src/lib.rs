//! A real HTTP backend for demos, integration tests, load tests and docker.
//!
//! The mock speaks HTTP/1.1 and h2c on one port, identifies itself in every response
//! (`x-switchyard-mock`, the constitutional hash and compliance headers) and can be told at
//! runtime, through [`MockHandle::set`] or `POST /__mock`, to slow down, fail an exact share of
//! requests, or misbehave at the connection level ([`Fault`]).
//!
//! # Paths
//! - `GET /health`: `200 ok` with the hash header; not counted, no latency, no injected errors.
//! - `POST /__mock`: applies a JSON [`MockPatch`], answers with the current config as JSON.
//! - Every other path is a *served request*: it is counted, subject to the fault, the latency
//!   and the error rate, and carries the identity headers. Then:
//!   - `/__echo`: the request's method, URI, version and headers as JSON;
//!   - `/__upload` (POST/PUT): streams the body in constant memory, answers `{"bytes": N}`;
//!   - `/__sleep?ms=N`: sleeps N ms more;
//!   - `Connection: upgrade` with an `Upgrade` header: `101`, then echoes raw bytes;
//!   - anything else: `200` with body `"{name}\n"`.
//!
//! # Error injection is exact
//! Served request number `i` (0-based) fails with `500` iff `floor((i+1)·rate) > floor(i·rate)`,
//! so a rate of 0.05 fails exactly 5 of every 100 and tests can assert exact counts.
//!
//! # Layout
//! `state` holds the settings snapshot and counters, `service` answers requests, `conn` owns
//! sockets: the accept loop, the per-connection fault wrapper and shutdown.

mod conn;
mod service;
mod state;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use state::Shared;

/// Initial settings of a mock upstream; [`MockConfig::new`] gives a healthy, fast backend.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MockConfig {
    /// Identity echoed in the body and in `x-switchyard-mock`, e.g. `auth-blue`.
    pub name: String,
    /// Delay before answering a served request, so tests can exercise latency triggers.
    pub latency_ms: u64,
    /// Share of served requests answered with `500`, applied exactly (see module docs).
    pub error_rate: f64,
    /// `X-Constitutional-Hash` value; `None` omits the header so health checks can fail it.
    pub hash: Option<String>,
    /// `X-Constitutional-Compliance` value; `None` omits the header.
    pub compliance: Option<f64>,
    /// `X-Constitutional-Principles` value (`name=score, ...`); `None` omits the header.
    pub principles: Option<String>,
    /// Connection-level misbehaviour injected into served requests.
    pub fault: Fault,
}

impl MockConfig {
    /// A healthy backend named `name`: no latency, no errors, the expected hash, compliance 0.99.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            latency_ms: 0,
            error_rate: 0.0,
            hash: Some("cdd01ef066bc6cf2".to_owned()),
            compliance: Some(0.99),
            principles: Some("transparency=0.99, fairness=0.98, accountability=0.99".to_owned()),
            fault: Fault::None,
        }
    }
}

/// Ways a backend breaks that status codes cannot express; the proxy must survive each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// Behave normally.
    None,
    /// Never answer; the request stays open until the client gives up or the mock shuts down.
    Hang,
    /// Drop the connection with a TCP RST (`SO_LINGER` 0) and no response.
    Reset,
    /// Write non-HTTP bytes instead of the response, then close.
    Garbage,
    /// Answer normally but with `Connection: close` (HTTP/1), so pooled connections die.
    CloseAfterResponse,
}

/// A partial update of the runtime settings: the JSON body of `POST /__mock`.
///
/// Absent fields are left alone; `"hash": null` and `"compliance": null` remove the header,
/// which is why those two are double options. Unknown fields are rejected so a typo in a test
/// fails loudly instead of silently changing nothing.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MockPatch {
    /// New latency in milliseconds.
    pub latency_ms: Option<u64>,
    /// New error rate, clamped to `0.0..=1.0`.
    pub error_rate: Option<f64>,
    /// `Some(None)` removes the hash header, `Some(Some(h))` sets it.
    #[serde(default, deserialize_with = "present")]
    pub hash: Option<Option<String>>,
    /// `Some(None)` removes the compliance header, `Some(Some(c))` sets it.
    #[serde(default, deserialize_with = "present")]
    pub compliance: Option<Option<f64>>,
    /// `Some(None)` removes the principles header, `Some(Some(p))` sets it.
    #[serde(default, deserialize_with = "present")]
    pub principles: Option<Option<String>>,
    /// New fault.
    pub fault: Option<Fault>,
}

/// Maps a present field (even `null`) to `Some`, so `null` can mean "remove".
fn present<'de, T, D>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}

/// A running mock upstream started by [`spawn`]; dropping it leaves the server running until
/// the runtime stops, so call [`MockHandle::shutdown`] for a clean stop.
#[derive(Debug)]
pub struct MockHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl MockHandle {
    /// The bound address (useful after binding port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Applies `patch` exactly as `POST /__mock` would; takes effect for the next request.
    pub fn set(&self, patch: MockPatch) {
        self.shared.apply(patch);
    }

    /// Served requests so far (everything except `/health` and `/__mock`).
    pub fn requests(&self) -> u64 {
        self.shared.requests()
    }

    /// Stops accepting, drains open connections briefly, then closes whatever is left.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "mock upstream ended with an error"),
            Err(e) => tracing::warn!(error = %e, "mock upstream task failed"),
        }
    }
}

/// Binds `listen` (port 0 allowed) and serves in a spawned task until [`MockHandle::shutdown`].
pub async fn spawn(listen: SocketAddr, cfg: MockConfig) -> std::io::Result<MockHandle> {
    let shared = Arc::new(Shared::new(cfg)?);
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(conn::serve(listener, Arc::clone(&shared), async move {
        let _ = stopped.await;
    }));
    Ok(MockHandle { addr, shared, stop, task })
}

/// Binds `listen` and serves until `shutdown` completes; the entry point of the CLI subcommand.
pub async fn run(listen: SocketAddr, cfg: MockConfig, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
    let shared = Arc::new(Shared::new(cfg)?);
    let listener = TcpListener::bind(listen).await?;
    tracing::info!(addr = %listener.local_addr()?, name = %shared.settings.load().cfg.name, "mock upstream listening");
    conn::serve(listener, shared, shutdown).await
}
