//! Active health checks: every `health.interval`, probe each endpoint of both colors. A probe
//! passes on 2xx and, for green, the expected constitutional hash. Results set the endpoint's
//! health and feed availability as probe samples. Green keeps being probed after a rollback.

use super::client::UpstreamClient;
use super::Pool;
use crate::body::RequestBody;
use crate::config::HealthConfig;
use crate::error::UpstreamErrorKind;
use crate::stats::{HashCheck, Sample, SampleKind, ServiceStats};
use crate::types::ServiceKey;
use crate::Color;
use bytes::Bytes;
use http::header::HeaderName;
use std::sync::Arc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What a health task needs.
pub struct HealthTarget {
    /// Service key for samples.
    pub key: ServiceKey,
    /// Probe settings.
    pub cfg: HealthConfig,
    /// Blue and green pools.
    pub pools: [Arc<Pool>; 2],
    /// Stats sink.
    pub stats: Arc<ServiceStats>,
    /// Expected hash and its header.
    pub expected_hash: (HeaderName, Arc<str>),
}

/// Spawns the probe loop; it stops when `stop` is cancelled.
pub fn spawn(t: HealthTarget, stop: CancellationToken) {
    if !t.cfg.enabled {
        return;
    }
    // Each probe opens its own connection (as HAProxy's checks do): it proves a new connection
    // can be made and never touches the request path's pooled ones. TLS pools use their client.
    let plain = super::client::plain(t.cfg.timeout);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(t.cfg.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {},
                _ = stop.cancelled() => return,
            }
            // Concurrently: one endpoint hanging until the probe timeout delays no other.
            let probes = t.pools.iter().flat_map(|pool| pool.endpoints.iter().map(move |ep| (pool, ep)));
            futures_util::future::join_all(probes.map(|(pool, ep)| check(&plain, &t, pool, ep))).await;
        }
    });
}

/// Probes one endpoint and records the verdict.
async fn check(plain: &UpstreamClient, t: &HealthTarget, pool: &Pool, ep: &super::Endpoint) {
    let s = probe(pool.tls_client.as_ref().unwrap_or(plain), t, pool, &ep.authority).await;
    let ok = s.error.is_none()
        && (200..300).contains(&s.status)
        && (pool.color == Color::Blue || !t.cfg.require_hash || s.hash == HashCheck::Match);
    if ok != ep.healthy() {
        tracing::info!(endpoint = %ep.authority, color = pool.color.as_str(), healthy = ok, "health changed");
    }
    ep.set_healthy(ok);
    t.stats.record(s);
    ep.idle.reap();
}

async fn probe(client: &UpstreamClient, t: &HealthTarget, pool: &Pool, ep: &http::uri::Authority) -> Sample {
    let color = pool.color;
    let start = Instant::now();
    let mut s = Sample {
        service: t.key,
        color,
        kind: SampleKind::Probe,
        status: 0,
        latency_us: 0,
        error: None,
        hash: HashCheck::NotChecked,
        compliance: None,
    };
    let req = http::Request::get(&*t.cfg.path)
        .header(http::header::HOST, ep.as_str())
        .body(RequestBody::full(Bytes::new()))
        .expect("valid probe request");
    match tokio::time::timeout(t.cfg.timeout, client.send_once(ep, req)).await {
        Ok(Ok(r)) => {
            s.status = r.status().as_u16();
            let ok = r.headers().get(&t.expected_hash.0).is_some_and(|v| v.as_bytes() == t.expected_hash.1.as_bytes());
            s.hash = if ok { HashCheck::Match } else { HashCheck::Mismatch };
        }
        Ok(Err(e)) => s.error = Some(super::client::classify(&e)),
        Err(_) => s.error = Some(UpstreamErrorKind::Timeout),
    }
    // A probe's hash verdict feeds endpoint health only; `Acc` ignores it for probes.
    s.latency_us = start.elapsed().as_micros() as u64;
    s
}
