//! An etcd v3 client over the JSON gateway (`POST /v3/...`) and the hyper client already in the
//! tree: no protobuf toolchain, no new transport stack (see `docs/fleet.md`, "Client choice",
//! for the measured comparison with the `etcd-client` crate). It behaves like etcd's own client
//! where the fleet depends on it:
//! - every call carries its own timeout, because a stopped etcd accepts connections and never
//!   answers;
//! - a member that cannot answer (connection error, timeout, 5xx, 429) is skipped for the next
//!   one; other 4xx are returned at once (they would fail the same everywhere);
//! - `https://` members with a CA and a client certificate; username/password auth with the
//!   token refreshed when etcd refuses it;
//! - watches ask for progress notifications and notice silence ([`Watch`]), and a compacted
//!   watch is a typed resync ([`StoreError::Compacted`]), never an outage;
//! - [`Backoff`] spaces reconnects with jitter.
//!
//! # Layout
//! - `error` [`StoreError`] and its retry classes.
//! - `transport` the pooled http/https client, one POST, gateway error bodies.
//! - `auth` the token: authenticate, refresh once on refusal.
//! - `watch` the watch stream and its silence watchdog.
//! - `backoff` reconnect delays with jitter.
//! - `wire` the gateway's JSON shapes.

mod auth;
mod backoff;
mod error;
mod transport;
pub mod txn;
mod watch;
pub mod wire;

pub use backoff::Backoff;
pub use error::StoreError;
pub use transport::tls_config;
pub use watch::{Event, Watch, WatchBatch};
pub use wire::Kv;

use crate::config::{EtcdCredentials, FleetConfig, FleetTls};
use http::Uri;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Result of a compare-and-swap.
#[derive(Debug, Clone, PartialEq)]
pub enum Cas {
    /// Written; the store's new revision.
    Written(i64),
    /// Someone wrote first: the key as it is now (None when it does not exist).
    Conflict(Option<Kv>),
}

/// How to reach the cluster beyond its endpoints.
#[derive(Debug, Clone)]
pub struct Options {
    /// CA and client certificate for `https://` members.
    pub tls: FleetTls,
    /// etcd user (clusters with auth enabled).
    pub credentials: Option<EtcdCredentials>,
    /// A watch silent this long (see [`Watch::next`]) ends with [`StoreError::WatchSilent`].
    pub watch_silence: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options { tls: FleetTls::default(), credentials: None, watch_silence: Duration::from_secs(10) }
    }
}

/// A connection-pooled client for one etcd cluster. Cloning shares the pool, the current member
/// and the auth token (a lease keep-alive task can own a clone).
#[derive(Clone)]
pub struct Etcd {
    shared: Arc<Shared>,
}

struct Shared {
    endpoints: Vec<Uri>,
    /// Member that answered last (modulo the count): calls stick to a working member.
    current: AtomicUsize,
    http: transport::HttpClient,
    timeout: Duration,
    watch_silence: Duration,
    auth: Option<auth::Auth>,
    /// TLS files that failed to load after validation passed (changed on disk since): every
    /// call reports it, so the runtime shows why the store is away.
    broken: Option<StoreError>,
}

impl Etcd {
    /// A client for plain `http://` endpoints, every unary call bounded by `timeout`.
    pub fn new(endpoints: Vec<Uri>, timeout: Duration) -> Etcd {
        Etcd::with_options(endpoints, timeout, Options::default())
    }

    /// The client `[fleet]` describes.
    pub fn from_config(cfg: &FleetConfig, timeout: Duration) -> Etcd {
        let opts =
            Options { tls: cfg.tls.clone(), credentials: cfg.credentials.clone(), watch_silence: cfg.watch_silence };
        Etcd::with_options(cfg.endpoints.clone(), timeout, opts)
    }

    /// Like [`Etcd::build`], but TLS files that do not load make every call fail with
    /// [`StoreError::Tls`] instead (validation already read them; this is the rare file replaced
    /// in between, and the proxy must keep serving).
    pub fn with_options(endpoints: Vec<Uri>, timeout: Duration, opts: Options) -> Etcd {
        Etcd::build(endpoints.clone(), timeout, opts.clone()).unwrap_or_else(|e| {
            tracing::error!(error = %e, "etcd client unusable");
            let mut plain = Options { tls: FleetTls::default(), ..opts };
            plain.credentials = None;
            let mut etcd = Etcd::build(endpoints, timeout, plain).expect("a client without TLS files always builds");
            Arc::get_mut(&mut etcd.shared).expect("not shared yet").broken = Some(e);
            etcd
        })
    }

    /// A client, or why its TLS files are unusable.
    pub fn build(endpoints: Vec<Uri>, timeout: Duration, opts: Options) -> Result<Etcd, StoreError> {
        let http = transport::client(&opts.tls, timeout)?;
        let shared = Shared {
            endpoints,
            current: AtomicUsize::new(0),
            http,
            timeout,
            watch_silence: opts.watch_silence,
            auth: opts.credentials.map(auth::Auth::new),
            broken: None,
        };
        Ok(Etcd { shared: Arc::new(shared) })
    }

    /// Sends one request, authenticated when credentials are set; see [`Etcd::call_as`] for
    /// failover.
    async fn call(&self, path: &str, body: &Value) -> Result<Value, StoreError> {
        let held = self.token().await?;
        match self.call_as(path, body, held.token()).await {
            Err(e) if e.is_stale_token() => {
                let fresh = self.refresh_stale(e, &held).await?;
                self.call_as(path, body, fresh.token()).await
            }
            r => r,
        }
    }

    /// Sends one request to the current member, moving on to the next while the failure is one
    /// another member may not have ([`StoreError::fails_over`]).
    async fn call_as(&self, path: &str, body: &Value, token: Option<&str>) -> Result<Value, StoreError> {
        let s = &self.shared;
        let mut last = StoreError::Unreachable("no endpoints".into());
        for _ in 0..s.endpoints.len() {
            let (at, base) = self.member()?;
            let r = match tokio::time::timeout(s.timeout, self.call_one(base, path, body, token)).await {
                Ok(r) => r,
                Err(_) => Err(StoreError::Unreachable(format!("{base}{path}: no answer within {:?}", s.timeout))),
            };
            match r {
                Err(e) if e.fails_over() => last = self.failed(at, e),
                r => return r,
            }
        }
        Err(last)
    }

    /// The member to try next and its position (for [`Etcd::failed`]).
    fn member(&self) -> Result<(usize, &Uri), StoreError> {
        let s = &self.shared;
        if let Some(e) = &s.broken {
            return Err(e.clone());
        }
        let at = s.current.load(Ordering::Relaxed);
        Ok((at, &s.endpoints[at % s.endpoints.len()]))
    }

    /// Moves past the member at `at`; only the first of several concurrent failures moves on, so
    /// none skips a healthy member.
    fn failed(&self, at: usize, e: StoreError) -> StoreError {
        let s = &self.shared;
        tracing::debug!(endpoint = %s.endpoints[at % s.endpoints.len()], error = %e, "etcd member failed; trying the next");
        let _ = s.current.compare_exchange(at, at.wrapping_add(1), Ordering::Relaxed, Ordering::Relaxed);
        e
    }

    async fn call_one(&self, base: &Uri, path: &str, body: &Value, token: Option<&str>) -> Result<Value, StoreError> {
        let resp = transport::post(&self.shared.http, base, path, transport::json_body(body), token, None).await?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| StoreError::Unreachable(format!("{base}{path}: {}", transport::chain(&e))))?
            .to_bytes();
        if !status.is_success() {
            return Err(transport::status_error(status.as_u16(), &bytes));
        }
        // Streaming endpoints (lease keepalive) answer one JSON object per line; the first is ours.
        let first = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
        let v: Value = serde_json::from_slice(first).map_err(|e| StoreError::Decode(format!("{path}: {e}")))?;
        if let Some(err) = v.get("error").filter(|e| e.is_object()) {
            return Err(transport::stream_error(err));
        }
        Ok(if v.get("result").is_some() { v["result"].clone() } else { v })
    }

    /// Every key under `prefix`, and the revision the read reflects (watch from it + 1).
    pub async fn range_prefix(&self, prefix: &str) -> Result<(Vec<Kv>, i64), StoreError> {
        let body = json!({"key": wire::b64(prefix.as_bytes()), "range_end": wire::b64(&wire::prefix_end(prefix))});
        let v = self.call("/v3/kv/range", &body).await?;
        Ok((wire::kvs(&v)?, wire::revision(&v)))
    }

    /// One key, if it exists.
    pub async fn get(&self, key: &str) -> Result<Option<Kv>, StoreError> {
        let v = self.call("/v3/kv/range", &json!({"key": wire::b64(key.as_bytes())})).await?;
        Ok(wire::kvs(&v)?.into_iter().next())
    }

    /// Writes unconditionally (lease 0 = none); returns the new revision.
    pub async fn put(&self, key: &str, value: &[u8], lease: i64) -> Result<i64, StoreError> {
        let v = self.call("/v3/kv/put", &wire::put_request(key, value, lease)).await?;
        Ok(wire::revision(&v))
    }

    /// Writes only if the key's `mod_revision` is still `expect` (0 = the key must not exist).
    pub async fn cas(&self, key: &str, value: &[u8], expect: i64, lease: i64) -> Result<Cas, StoreError> {
        let k = wire::b64(key.as_bytes());
        let body = json!({
            "compare": [{"key": k, "target": "MOD", "result": "EQUAL", "mod_revision": expect.to_string()}],
            "success": [{"request_put": wire::put_request(key, value, lease)}],
            "failure": [{"request_range": {"key": k}}],
        });
        let v = self.call("/v3/kv/txn", &body).await?;
        if v["succeeded"].as_bool().unwrap_or(false) {
            return Ok(Cas::Written(wire::revision(&v)));
        }
        let now = &v["responses"][0]["response_range"];
        Ok(Cas::Conflict(wire::kvs(now)?.into_iter().next()))
    }

    /// Deletes a key if it exists.
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.call("/v3/kv/deleterange", &json!({"key": wire::b64(key.as_bytes())})).await.map(|_| ())
    }

    /// Grants a lease; keys attached to it vanish when it is not kept alive.
    pub async fn lease_grant(&self, ttl: Duration) -> Result<i64, StoreError> {
        let v = self.call("/v3/lease/grant", &json!({"TTL": ttl.as_secs().max(1).to_string()})).await?;
        match wire::int(&v, "ID") {
            0 => Err(StoreError::Decode(format!("lease grant without ID: {v}"))),
            id => Ok(id),
        }
    }

    /// Refreshes a lease; `Ok(false)` when it has already expired (its keys are gone).
    pub async fn lease_keepalive(&self, id: i64) -> Result<bool, StoreError> {
        let v = self.call("/v3/lease/keepalive", &json!({"ID": id.to_string()})).await?;
        Ok(wire::int(&v, "TTL") > 0)
    }

    /// Ends a lease now, deleting its keys (a clean shutdown frees leadership at once).
    pub async fn lease_revoke(&self, id: i64) -> Result<(), StoreError> {
        self.call("/v3/lease/revoke", &json!({"ID": id.to_string()})).await.map(|_| ())
    }
}
