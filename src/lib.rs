//! Switchyard: a blue/green reverse proxy that measures its own traffic and rolls back by itself.
//!
//! # Layout
//! Each module uses only the modules below it in this list (`tests/it/layers.rs` fails on a
//! cycle; ARCHITECTURE.md has the rule):
//! - `app` wires everything and owns shutdown; the binary's `cli` and `demo` sit on top of it.
//! - `admin` and `reload` talk to `control`, the only writer of routes: ticks, commands (admin,
//!   reload, data-path hash alarms), the pure `decide` function, rollout plans, incidents.
//! - `workers` are the runtimes connections live on (one per core, sharing nothing on the
//!   request path); `listener` accepts connections on each of them; `serve` runs one connection (TLS, HTTP/1.1 parking while
//!   idle, HTTP/2); `proxy` serves one request.
//! - `route` is the lock-free snapshot a request loads once; `alerts` delivers webhooks
//!   (http/https) off the loop; `escalation` (paging schedule, acknowledgement) and
//!   `health_score` are pure arithmetic the control loop applies.
//! - `upstream` holds pools, the client, health checks and the exchange bodies; `stats` records
//!   on the data path and aggregates windows.
//! - `observe` makes every request visible: request ids, W3C trace context, the access log (a
//!   writer thread behind a bounded queue) and OTLP span export (a task behind another).
//! - `error`, `tls`, `config` (parse, validate), `state`, `clock`; `types` at the bottom is the
//!   vocabulary (`Color`, `ServiceKey`, `Weight`, `TriggerId`) and uses nothing in the crate.
//!
//! ```text
//! listener → proxy ─load()→ RouteTable → pick color → upstream client → response streams back
//!              └→ stats (metrics handles + try_send sample) → window aggregator
//! control ─tick→ aggregator.close() → Measurement → decide() → store(new RouteTable)
//! ```
#![forbid(unsafe_code)]

pub mod admin;
pub mod alerts;
pub mod app;
pub mod clock;
pub mod config;
pub mod control;
pub mod error;
pub mod escalation;
pub mod fleet;
pub mod health_score;
pub mod listener;
pub mod observe;
pub mod preflight;
pub mod proxy;
pub mod reload;
pub mod route;
pub mod serve;
pub mod state;
pub mod stats;
pub mod tls;
pub mod types;
pub mod upstream;
pub mod workers;

/// `crate::body` predates the move under `upstream` (which breaks the body ↔ upstream cycle).
pub use upstream::body;

/// Kept at the crate root because every layer and every test names it.
pub use types::Color;
