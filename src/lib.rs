//! Switchyard: a blue/green reverse proxy that measures its own traffic and rolls back by itself.
//!
//! # Layout
//! Each module uses only the modules below it in this list:
//! - `app` wires everything and owns shutdown; `demo` and `cli` sit on top of it.
//! - `control` is the only writer of routes: ticks, commands (admin, reload, data-path hash
//!   alarms), the pure `decide` function, rollout plans, incidents. `admin` and `reload` talk to it.
//! - `listener` accepts connections; `proxy` serves one request; `upstream` holds pools, the client
//!   and health checks; `stats` records on the data path and aggregates windows.
//! - `route` is the lock-free snapshot a request loads once; `config` parses and validates.
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
pub mod listener;
pub mod proxy;
pub mod reload;
pub mod route;
pub mod state;
pub mod stats;
pub mod tls;
pub mod types;
pub mod upstream;

/// `crate::body` predates the move under `upstream` (which breaks the body ↔ upstream cycle).
pub use upstream::body;

/// Kept at the crate root because every layer and every test names it.
pub use types::Color;
