//! The JSON shapes of etcd's gRPC gateway (etcd 3.4+). The gateway renders int64 fields as
//! strings and omits zero values, and keys and values travel base64-encoded; these helpers
//! hide all three so the client speaks in `&str`, bytes and `i64`.

use super::StoreError;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::{json, Value};

/// One key as etcd returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct Kv {
    /// Full key (prefix included).
    pub key: String,
    /// Raw value.
    pub value: Vec<u8>,
    /// Revision of the last write: the CAS token.
    pub mod_revision: i64,
    /// Lease the key is attached to (0 = none).
    pub lease: i64,
}

/// Base64 of a key or value, as every request field expects.
pub fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// The `range_end` that makes a range cover every key starting with `prefix`.
pub fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// An int64 field, which the gateway sends as a string (or omits when zero).
pub fn int(v: &Value, field: &str) -> i64 {
    match &v[field] {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

/// `header.revision` of any response: the store revision the answer reflects.
pub fn revision(v: &Value) -> i64 {
    int(&v["header"], "revision")
}

fn decode(field: &Value) -> Result<Vec<u8>, StoreError> {
    match field.as_str() {
        None => Ok(Vec::new()),
        Some(s) => B64.decode(s).map_err(|e| StoreError::Decode(format!("base64: {e}"))),
    }
}

/// Parses one `kv` object.
pub fn kv(v: &Value) -> Result<Kv, StoreError> {
    let key = String::from_utf8(decode(&v["key"])?).map_err(|e| StoreError::Decode(format!("key: {e}")))?;
    Ok(Kv { key, value: decode(&v["value"])?, mod_revision: int(v, "mod_revision"), lease: int(v, "lease") })
}

/// Parses the `kvs` array of a range response (absent when nothing matched).
pub fn kvs(v: &Value) -> Result<Vec<Kv>, StoreError> {
    v["kvs"].as_array().map_or(Ok(Vec::new()), |a| a.iter().map(kv).collect())
}

/// A `request_put` body.
pub fn put_request(key: &str, value: &[u8], lease: i64) -> Value {
    let mut put = json!({"key": b64(key.as_bytes()), "value": b64(value)});
    if lease != 0 {
        put["lease"] = json!(lease.to_string());
    }
    put
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_the_last_byte() {
        assert_eq!(prefix_end("/a/"), b"/a0".to_vec());
        assert_eq!(prefix_end(""), vec![0]);
    }

    #[test]
    fn int64_fields_arrive_as_strings_or_not_at_all() {
        let v = json!({"a": "42", "b": 7});
        assert_eq!((int(&v, "a"), int(&v, "b"), int(&v, "missing")), (42, 7, 0));
    }

    #[test]
    fn kv_decodes_base64_and_defaults_missing_fields() {
        let v = json!({"key": b64(b"/p/k"), "value": b64(b"{}"), "mod_revision": "9"});
        assert_eq!(kv(&v).unwrap(), Kv { key: "/p/k".into(), value: b"{}".to_vec(), mod_revision: 9, lease: 0 });
    }
}
