//! Switchyard: a blue/green reverse proxy that measures its own traffic and rolls back by itself.
//!
//! # Layout
//! Each module uses only the modules below it in this list:
//! - `app` wires everything and owns shutdown; `demo` and `cli` sit on top of it.
//! - `control` is the only writer of routes: ticks, commands (admin, reload, data-path hash
//!   alarms), the pure `decide` function, rollout plans, incidents. `admin` and `reload` talk to it.
//! - `listener` accepts connections; `serve` runs one connection (TLS, HTTP/1.1 parking while
//!   idle, HTTP/2); `proxy` serves one request; `upstream` holds pools, the client
//!   and health checks; `stats` records on the data path and aggregates windows.
//! - `route` is the lock-free snapshot a request loads once; `config` parses and validates.
//!
//! ```text
//! listener → proxy ─load()→ RouteTable → pick color → upstream client → response streams back
//!              └→ stats (metrics handles + try_send sample) → window aggregator
//! control ─tick→ aggregator.close() → Measurement → decide() → store(new RouteTable)
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admin;
pub mod alerts;
pub mod app;
pub mod body;
pub mod clock;
pub mod config;
pub mod control;
pub mod demo;
pub mod error;
pub mod listener;
pub mod mock_upstream;
pub mod proxy;
pub mod reload;
pub mod route;
pub mod serve;
pub mod state;
pub mod stats;
pub mod tls;
pub mod upstream;

/// The two deployments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Color {
    /// The current system.
    Blue,
    /// The candidate.
    Green,
}

impl Color {
    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Color::Blue => "blue",
            Color::Green => "green",
        }
    }

    /// Index into `[blue, green]` arrays.
    pub fn index(self) -> usize {
        match self {
            Color::Blue => 0,
            Color::Green => 1,
        }
    }
}
