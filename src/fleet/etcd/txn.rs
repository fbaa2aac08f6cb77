//! Fenced writes and reads that say which store answered. A leader's write compares the
//! leader key's create revision as well as the written key's revision, so a leader that lost
//! its lease (paused past its TTL, cut off) cannot write even if it still believes it leads
//! (etcd's `concurrency.Election` does the same). A range returns its response header: the
//! cluster id and revision tell a wiped or restored store from the one read before.

use super::{wire, Etcd, Kv, StoreError};
use serde_json::{json, Value};

/// Result of a fenced compare-and-swap.
#[derive(Debug, Clone, PartialEq)]
pub enum Fenced {
    /// Written; the store's new revision.
    Written(i64),
    /// The key changed first: its current value (None when absent). The fence held.
    Conflict(Option<Kv>),
    /// The fence key no longer has the expected create revision: the writer lost its role.
    Fenced(Option<Kv>),
}

/// The response header of a read: which store, at which revision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Header {
    /// Identity of the cluster (a fresh data dir gets a new one).
    pub cluster_id: u64,
    /// The member that answered.
    pub member_id: u64,
    /// Store revision the answer reflects.
    pub revision: i64,
}

fn uint(v: &Value, field: &str) -> u64 {
    match &v[field] {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_u64().unwrap_or(0),
        _ => 0,
    }
}

fn header(v: &Value) -> Header {
    let h = &v["header"];
    Header { cluster_id: uint(h, "cluster_id"), member_id: uint(h, "member_id"), revision: wire::int(h, "revision") }
}

impl Etcd {
    /// Every key under `prefix` and the header of the answer.
    pub async fn range_with_header(&self, prefix: &str) -> Result<(Vec<Kv>, Header), StoreError> {
        let body = json!({"key": wire::b64(prefix.as_bytes()), "range_end": wire::b64(&wire::prefix_end(prefix))});
        let v = self.call("/v3/kv/range", &body).await?;
        Ok((wire::kvs(&v)?, header(&v)))
    }

    /// Every key under `prefix` as it was at store revision `rev` (history read; `Status` when
    /// `rev` was compacted away).
    pub async fn range_at(&self, prefix: &str, rev: i64) -> Result<Vec<Kv>, StoreError> {
        let body = json!({
            "key": wire::b64(prefix.as_bytes()),
            "range_end": wire::b64(&wire::prefix_end(prefix)),
            "revision": rev.to_string(),
        });
        wire::kvs(&self.call("/v3/kv/range", &body).await?)
    }

    /// Writes `key` only if its `mod_revision` is still `expect` (0 = absent) and, when `fence`
    /// is `Some((fence_key, create_revision))`, the fence key still has that create revision.
    pub async fn fenced_cas(
        &self,
        key: &str,
        value: &[u8],
        expect: i64,
        fence: Option<(&str, i64)>,
    ) -> Result<Fenced, StoreError> {
        let k = wire::b64(key.as_bytes());
        let mut compare =
            vec![json!({"key": k, "target": "MOD", "result": "EQUAL", "mod_revision": expect.to_string()})];
        let mut failure = vec![json!({"request_range": {"key": k}})];
        if let Some((fk, rev)) = fence {
            let f = wire::b64(fk.as_bytes());
            compare.push(json!({"key": f, "target": "CREATE", "result": "EQUAL", "create_revision": rev.to_string()}));
            failure.push(json!({"request_range": {"key": f}}));
        }
        let body = json!({
            "compare": compare,
            "success": [{"request_put": wire::put_request(key, value, 0)}],
            "failure": failure,
        });
        let v = self.call("/v3/kv/txn", &body).await?;
        if v["succeeded"].as_bool().unwrap_or(false) {
            return Ok(Fenced::Written(wire::revision(&v)));
        }
        let now = wire::kvs(&v["responses"][0]["response_range"])?.into_iter().next();
        if let Some((_, rev)) = fence {
            let holder = wire::kvs(&v["responses"][1]["response_range"])?;
            let create =
                holder.first().map(|_| wire::int(&v["responses"][1]["response_range"]["kvs"][0], "create_revision"));
            if create != Some(rev) {
                return Ok(Fenced::Fenced(holder.into_iter().next()));
            }
        }
        Ok(Fenced::Conflict(now))
    }

    /// Creates `key` under `lease` only if it does not exist: `Ok(Ok(revision))` = created,
    /// `Ok(Err(kv))` = someone holds it.
    pub async fn create(&self, key: &str, value: &[u8], lease: i64) -> Result<Result<i64, Kv>, StoreError> {
        let k = wire::b64(key.as_bytes());
        let body = json!({
            "compare": [{"key": k, "target": "CREATE", "result": "EQUAL", "create_revision": "0"}],
            "success": [{"request_put": wire::put_request(key, value, lease)}],
            "failure": [{"request_range": {"key": k}}],
        });
        let v = self.call("/v3/kv/txn", &body).await?;
        if v["succeeded"].as_bool().unwrap_or(false) {
            return Ok(Ok(wire::revision(&v)));
        }
        match wire::kvs(&v["responses"][0]["response_range"])?.into_iter().next() {
            Some(kv) => Ok(Err(kv)),
            None => Err(StoreError::Decode("create lost to a key that is not there".into())),
        }
    }

    /// Compacts the store's history up to `rev` (tests and the fault schedules).
    pub async fn compact(&self, rev: i64) -> Result<(), StoreError> {
        self.call("/v3/kv/compaction", &json!({"revision": rev.to_string(), "physical": true})).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_keeps_uint64_ids_that_do_not_fit_an_i64() {
        let v = json!({"header": {"cluster_id": "14841639068965178418", "member_id": "10276657743932975437", "revision": "12"}});
        let h = header(&v);
        assert_eq!((h.cluster_id, h.revision), (14841639068965178418, 12));
    }
}
