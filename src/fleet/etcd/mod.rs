//! An etcd v3 client over the JSON gateway (`POST /v3/...`) and the hyper client already in the
//! tree: no protobuf toolchain, no new transport stack (see `docs/fleet.md` for the measured
//! comparison with the `etcd-client` crate). Every call carries its own timeout, because a
//! stopped etcd accepts connections and never answers; a failed call moves on to the next
//! endpoint so a cluster survives the loss of one member.

pub mod txn;
mod watch;
pub mod wire;

pub use watch::{Event, Watch, WatchBatch};
pub use wire::Kv;

use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Why a store call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreError {
    /// No answer: refused, reset, or no reply within the timeout.
    #[error("etcd unreachable: {0}")]
    Unreachable(String),
    /// etcd answered with an error status.
    #[error("etcd answered {status}: {body}")]
    Status {
        /// HTTP status.
        status: u16,
        /// Error body.
        body: String,
    },
    /// The answer was not what the gateway documents.
    #[error("etcd answer unreadable: {0}")]
    Decode(String),
    /// The watch start revision was compacted away; read again and watch from there.
    #[error("watch start revision compacted (oldest kept {0})")]
    Compacted(i64),
}

/// Result of a compare-and-swap.
#[derive(Debug, Clone, PartialEq)]
pub enum Cas {
    /// Written; the store's new revision.
    Written(i64),
    /// Someone wrote first: the key as it is now (None when it does not exist).
    Conflict(Option<Kv>),
}

/// A connection-pooled client for one etcd cluster.
pub struct Etcd {
    endpoints: Vec<Uri>,
    /// Index of the endpoint that answered last: calls stick to a working member.
    current: AtomicUsize,
    http: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

impl Etcd {
    /// A client for `endpoints` (`http://host:port`), every unary call bounded by `timeout`.
    pub fn new(endpoints: Vec<Uri>, timeout: Duration) -> Etcd {
        let mut conn = HttpConnector::new();
        conn.set_connect_timeout(Some(timeout));
        conn.set_nodelay(true);
        let http = Client::builder(TokioExecutor::new()).build(conn);
        Etcd { endpoints, current: AtomicUsize::new(0), http, timeout }
    }

    /// Sends one request to the current endpoint, falling over to the next on failure.
    async fn call(&self, path: &str, body: &Value) -> Result<Value, StoreError> {
        let mut last = StoreError::Unreachable("no endpoints".into());
        for _ in 0..self.endpoints.len() {
            let i = self.current.load(Ordering::Relaxed) % self.endpoints.len();
            match tokio::time::timeout(self.timeout, self.call_one(&self.endpoints[i], path, body)).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e @ (StoreError::Status { .. } | StoreError::Decode(_)))) => return Err(e),
                Ok(Err(e)) => last = e,
                Err(_) => last = StoreError::Unreachable(format!("{path}: no answer within {:?}", self.timeout)),
            }
            self.current.store(i + 1, Ordering::Relaxed);
        }
        Err(last)
    }

    async fn call_one(&self, base: &Uri, path: &str, body: &Value) -> Result<Value, StoreError> {
        let resp = self.post(base, path, body).await?;
        let status = resp.status();
        let bytes =
            resp.into_body().collect().await.map_err(|e| StoreError::Unreachable(format!("{path}: {e}")))?.to_bytes();
        if !status.is_success() {
            return Err(StoreError::Status { status: status.as_u16(), body: String::from_utf8_lossy(&bytes).into() });
        }
        // Streaming endpoints (lease keepalive) answer one JSON object per line; the first is ours.
        let first = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
        let v: Value = serde_json::from_slice(first).map_err(|e| StoreError::Decode(format!("{path}: {e}")))?;
        Ok(if v.get("result").is_some() { v["result"].clone() } else { v })
    }

    async fn post(
        &self,
        base: &Uri,
        path: &str,
        body: &Value,
    ) -> Result<http::Response<hyper::body::Incoming>, StoreError> {
        let uri = format!("{}{}", base.to_string().trim_end_matches('/'), path);
        let req = Request::post(uri)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| StoreError::Decode(format!("request: {e}")))?;
        self.http.request(req).await.map_err(|e| StoreError::Unreachable(format!("{path}: {e}")))
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

    /// Watches every key under `prefix` from `start_revision` (the read revision + 1, so nothing
    /// written between the read and the watch is missed).
    pub async fn watch(&self, prefix: &str, start_revision: i64) -> Result<Watch, StoreError> {
        let body = json!({"create_request": {
            "key": wire::b64(prefix.as_bytes()),
            "range_end": wire::b64(&wire::prefix_end(prefix)),
            "start_revision": start_revision.to_string(),
        }});
        let mut last = StoreError::Unreachable("no endpoints".into());
        for _ in 0..self.endpoints.len() {
            let i = self.current.load(Ordering::Relaxed) % self.endpoints.len();
            match tokio::time::timeout(self.timeout, self.open_watch(&self.endpoints[i], &body)).await {
                Ok(Ok(w)) => return Ok(w),
                Ok(Err(e @ StoreError::Compacted(_))) => return Err(e),
                Ok(Err(e)) => last = e,
                Err(_) => last = StoreError::Unreachable("watch: no answer".into()),
            }
            self.current.store(i + 1, Ordering::Relaxed);
        }
        Err(last)
    }

    async fn open_watch(&self, base: &Uri, body: &Value) -> Result<Watch, StoreError> {
        let resp = self.post(base, "/v3/watch", body).await?;
        if !resp.status().is_success() {
            return Err(StoreError::Status { status: resp.status().as_u16(), body: String::new() });
        }
        let mut w = Watch::new(resp.into_body());
        // The first message confirms creation (or reports a compacted start revision).
        w.next().await?;
        Ok(w)
    }
}
