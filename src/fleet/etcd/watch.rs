//! A watch stream: the gateway answers `POST /v3/watch` with one JSON object per line for as
//! long as the connection lives. A compacted start revision arrives as a cancel with
//! `compact_revision`; the caller must read again and watch from the new revision.

use super::{wire, Kv, StoreError};
use bytes::{Buf, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;

/// One change under the watched prefix.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Created or updated.
    Put(Kv),
    /// Deleted (or its lease expired); only the key and revision are known.
    Delete(Kv),
}

/// What one message carried.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WatchBatch {
    /// Store revision of the message; resume from it + 1.
    pub revision: i64,
    /// Changes, oldest first.
    pub events: Vec<Event>,
}

/// An open watch.
pub struct Watch {
    body: Incoming,
    buf: BytesMut,
}

impl Watch {
    pub(super) fn new(body: Incoming) -> Watch {
        Watch { body, buf: BytesMut::new() }
    }

    /// The next message; `Unreachable` when the stream ends. Has no timeout of its own: a
    /// quiet prefix is normal, so outages are noticed by the lease keep-alive instead.
    pub async fn next(&mut self) -> Result<WatchBatch, StoreError> {
        loop {
            if let Some(nl) = self.buf.iter().position(|b| *b == b'\n') {
                let line = self.buf.split_to(nl + 1);
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return parse(&line[..nl]);
            }
            match self.body.frame().await {
                Some(Ok(f)) => {
                    if let Ok(mut data) = f.into_data() {
                        while data.has_remaining() {
                            let chunk = data.chunk();
                            self.buf.extend_from_slice(chunk);
                            let n = chunk.len();
                            data.advance(n);
                        }
                    }
                }
                Some(Err(e)) => return Err(StoreError::Unreachable(format!("watch: {e}"))),
                None => return Err(StoreError::Unreachable("watch stream ended".into())),
            }
        }
    }
}

fn parse(line: &[u8]) -> Result<WatchBatch, StoreError> {
    let v: serde_json::Value =
        serde_json::from_slice(line).map_err(|e| StoreError::Decode(format!("watch message: {e}")))?;
    if let Some(err) = v.get("error") {
        return Err(StoreError::Decode(format!("watch error: {err}")));
    }
    let r = &v["result"];
    let compacted = wire::int(r, "compact_revision");
    if r["canceled"].as_bool().unwrap_or(false) || compacted > 0 {
        return Err(StoreError::Compacted(compacted));
    }
    let mut events = Vec::new();
    for e in r["events"].as_array().into_iter().flatten() {
        let kv = wire::kv(&e["kv"])?;
        events.push(if e["type"] == "DELETE" { Event::Delete(kv) } else { Event::Put(kv) });
    }
    Ok(WatchBatch { revision: wire::revision(r), events })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compacted_start_is_reported_so_the_caller_reads_again() {
        let line = br#"{"result":{"header":{"revision":"9"},"canceled":true,"compact_revision":"5"}}"#;
        assert_eq!(parse(line), Err(StoreError::Compacted(5)));
    }

    #[test]
    fn puts_and_deletes_are_told_apart() {
        let line = br#"{"result":{"header":{"revision":"9"},"events":[{"kv":{"key":"L2E=","mod_revision":"9"}},{"type":"DELETE","kv":{"key":"L2I="}}]}}"#;
        let b = parse(line).unwrap();
        assert_eq!(b.revision, 9);
        assert!(matches!(&b.events[0], Event::Put(kv) if kv.key == "/a"));
        assert!(matches!(&b.events[1], Event::Delete(kv) if kv.key == "/b"));
    }
}
