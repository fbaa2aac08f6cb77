//! The routing snapshot. Everything a request needs to route lives in one immutable
//! `RouteTable` behind one `ArcSwap`: a request calls `load()` once and sees a consistent
//! generation; the control loop, the only writer, builds a new table and stores it in one step.

use super::pick;
use crate::config::{ForceHeader, Sticky};
use crate::stats::ServiceStats;
use crate::types::{Color, ServiceKey, Weight};
use crate::upstream::Pool;
use arc_swap::ArcSwap;
use http::header::HeaderName;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Per-request policy that comes from config rather than from routing decisions.
#[derive(Debug)]
pub struct Policy {
    /// Expected constitutional hash of green responses.
    pub expected_hash: Arc<str>,
    /// Whether green responses are checked for it at all: off with the `hash_mismatch` trigger,
    /// so a service that does not speak the hash neither counts mismatches nor raises alarms.
    pub check_hash: bool,
    /// Header carrying the hash.
    pub hash_header: HeaderName,
    pub compliance_header: HeaderName,
    /// Header carrying per-principle compliance.
    pub principles_header: HeaderName,
    pub retry: crate::config::RetryConfig,
    pub max_body_bytes: Option<u64>,
    /// Upstream response-head timeout.
    pub response_timeout: std::time::Duration,
    /// `[proxy] via`: whether forwarded requests carry `Via`.
    pub via: bool,
    /// `[blue, green]` release names, for the access log and spans.
    pub releases: [Option<Arc<str>>; 2],
}

/// One service's route in one generation.
#[derive(Debug)]
pub struct Route {
    pub key: ServiceKey,
    /// Name (metrics label, logs).
    pub name: Arc<str>,
    pub weight: Weight,
    pub sticky: Option<Sticky>,
    /// Force header.
    pub force_header: Option<ForceHeader>,
    /// `[blue, green]`: which colors a force header may select. Set by the control loop: a
    /// rolled-back or paused candidate and a retired release are never forcible.
    pub forcible: [bool; 2],
    /// The color that takes traffic when no candidate does; retries go here.
    pub live: Color,
    /// The color under judgement: its responses are hash-checked, its stalls watched, and its
    /// failures retried onto `live`.
    pub candidate: Option<Color>,
    /// Blue endpoints (shared across generations while unchanged, so ejection state survives).
    pub blue: Arc<Pool>,
    pub green: Arc<Pool>,
    /// Counter behind the exact split; shared across generations so a swap does not restart it.
    pub split: Arc<AtomicU64>,
    /// Resolved metric handles and the sample sink.
    pub stats: Arc<ServiceStats>,
    pub policy: Arc<Policy>,
}

impl Route {
    /// Chooses blue or green for a request.
    pub fn pick(&self, headers: &http::HeaderMap, peer: SocketAddr) -> Color {
        if let Some(f) = &self.force_header {
            let forced = headers.get(&f.name).and_then(|v| pick::forced(v.as_bytes(), f.token.as_deref()));
            if let Some(c) = forced.filter(|c| self.forcible[c.index()]) {
                return c;
            }
        }
        if self.weight == Weight::ZERO {
            return Color::Blue;
        }
        if self.weight == Weight::FULL {
            return Color::Green;
        }
        let bucket = match &self.sticky {
            Some(Sticky::Header(h)) => headers.get(h).map(|v| pick::key_bucket(v.as_bytes())),
            Some(Sticky::Cookie(name)) => headers
                .get_all(http::header::COOKIE)
                .iter()
                .find_map(|v| pick::cookie(v.as_bytes(), name.as_bytes()))
                .map(pick::key_bucket),
            Some(Sticky::ClientIp) => Some(match peer.ip() {
                std::net::IpAddr::V4(ip) => pick::key_bucket(&ip.octets()),
                std::net::IpAddr::V6(ip) => pick::key_bucket(&ip.octets()),
            }),
            None => None,
        };
        let bucket = bucket.unwrap_or_else(|| pick::sequence_bucket(self.split.fetch_add(1, Ordering::Relaxed)));
        pick::color_for(bucket, self.weight)
    }

    /// Whether `c` is the color under judgement.
    #[inline]
    pub fn judged(&self, c: Color) -> bool {
        self.candidate == Some(c)
    }

    /// The pool of a color.
    pub fn pool(&self, c: Color) -> &Arc<Pool> {
        match c {
            Color::Blue => &self.blue,
            Color::Green => &self.green,
        }
    }
}

/// All routes of one generation.
#[derive(Debug, Default)]
pub struct RouteTable {
    /// Config generation plus control changes; increases on every store.
    pub generation: u64,
    /// Routes, few enough that a linear scan beats hashing.
    pub routes: Vec<Arc<Route>>,
}

impl RouteTable {
    /// The route of a service, if it still exists.
    #[inline]
    pub fn get(&self, key: ServiceKey) -> Option<&Arc<Route>> {
        self.routes.iter().find(|r| r.key == key)
    }
}

/// The shared handle: readers `load`, the control loop `store`s.
#[derive(Debug, Default)]
pub struct Router {
    table: ArcSwap<RouteTable>,
}

impl Router {
    pub fn new() -> Self {
        Self::default()
    }

    /// The current snapshot (lock-free).
    #[inline]
    pub fn load(&self) -> arc_swap::Guard<Arc<RouteTable>> {
        self.table.load()
    }

    /// Replaces the table. Only the control loop calls this.
    pub fn store(&self, table: RouteTable) {
        self.table.store(Arc::new(table));
    }
}
