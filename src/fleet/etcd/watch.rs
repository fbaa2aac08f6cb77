//! A watch stream. `POST /v3/watch` is etcd's bidirectional watch stream over HTTP/1.1: the
//! request body stays open (chunked) for further requests, the answer is one JSON object per line
//! for as long as the connection lives.
//!
//! A watch that says nothing is ambiguous: a quiet prefix, or a member that stopped answering
//! (paused, or a connection black-holed on the way). So the watch asks for server-side progress
//! notifications (`progress_notify`, every `--experimental-watch-progress-notify-interval` on the
//! member) and, after a third of the silence bound without a message, sends its own
//! `progress_request`, which a live member answers at once with its revision. Nothing at all
//! for the whole bound ends the watch with [`StoreError::WatchSilent`]. A member cut from
//! quorum is caught by the `hasleader` metadata sent with the request (see `transport`): it
//! cancels the watch with "no leader", an `{"error":…}` line.

use super::{transport, wire, Etcd, Kv, StoreError};
use bytes::{Buf, Bytes, BytesMut};
use http::Uri;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

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
    /// Changes, oldest first. Empty for a progress notification: nothing changed under the
    /// prefix up to `revision`.
    pub events: Vec<Event>,
}

impl WatchBatch {
    /// A progress notification rather than changes.
    pub fn is_progress(&self) -> bool {
        self.events.is_empty()
    }
}

/// An open watch; dropping it closes its connection.
pub struct Watch {
    body: Incoming,
    buf: BytesMut,
    /// The open request stream: progress requests go here.
    requests: mpsc::Sender<Bytes>,
    silence: Duration,
    heard: Instant,
    probed: bool,
    last_revision: i64,
}

impl Etcd {
    /// Watches every key under `prefix` from `start_revision` (the read revision + 1, so nothing
    /// written between the read and the watch is missed). Moves on to the next member like a
    /// unary call; the answer confirming creation has been read when this returns.
    pub async fn watch(&self, prefix: &str, start_revision: i64) -> Result<Watch, StoreError> {
        let create = json!({"create_request": {
            "key": wire::b64(prefix.as_bytes()),
            "range_end": wire::b64(&wire::prefix_end(prefix)),
            "start_revision": start_revision.to_string(),
            "progress_notify": true,
        }});
        let held = self.token().await?;
        match self.watch_as(&create, held.token()).await {
            Err(e) if e.is_stale_token() => {
                let fresh = self.refresh_stale(e, &held).await?;
                self.watch_as(&create, fresh.token()).await
            }
            r => r,
        }
    }

    async fn watch_as(&self, create: &Value, token: Option<&str>) -> Result<Watch, StoreError> {
        let timeout = self.shared.timeout;
        let mut last = StoreError::Unreachable("no endpoints".into());
        for _ in 0..self.shared.endpoints.len() {
            let (at, base) = self.member()?;
            let r = match tokio::time::timeout(timeout, self.open_watch(base, create, token)).await {
                Ok(r) => r,
                Err(_) => Err(StoreError::Unreachable(format!("{base}/v3/watch: no answer within {timeout:?}"))),
            };
            match r {
                Err(e) if e.fails_over() => last = self.failed(at, e),
                r => return r,
            }
        }
        Err(last)
    }

    async fn open_watch(&self, base: &Uri, create: &Value, token: Option<&str>) -> Result<Watch, StoreError> {
        let (requests, mut rx) = mpsc::channel::<Bytes>(4);
        requests.try_send(line(create)).expect("an empty channel takes one message");
        let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b)))));
        let body = StreamBody::new(stream).boxed();
        let resp = transport::post(&self.shared.http, base, "/v3/watch", body, token, Some(transport::EXPECT_CONTINUE))
            .await?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            return Err(transport::status_error(status.as_u16(), &body));
        }
        let mut w = Watch {
            body: resp.into_body(),
            buf: BytesMut::new(),
            requests,
            silence: self.shared.watch_silence,
            heard: Instant::now(),
            probed: false,
            last_revision: 0,
        };
        w.next().await?;
        Ok(w)
    }
}

fn line(v: &Value) -> Bytes {
    let mut s = v.to_string();
    s.push('\n');
    Bytes::from(s)
}

impl Watch {
    /// The next message: changes, or a progress notification (an empty batch).
    ///
    /// Errors: [`StoreError::Compacted`] (relist), [`StoreError::WatchSilent`] after the
    /// silence bound with no message at all, [`StoreError::WatchCanceled`], an `{"error":…}`
    /// line as [`StoreError::Status`] (503 "no leader" fails over), and `Unreachable` when the
    /// stream ends. Cancel-safe: it can lose a `select!` without losing a message.
    pub async fn next(&mut self) -> Result<WatchBatch, StoreError> {
        loop {
            if let Some(nl) = self.buf.iter().position(|b| *b == b'\n') {
                let line = self.buf.split_to(nl + 1);
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let batch = parse(&line[..nl])?;
                self.last_revision = self.last_revision.max(batch.revision);
                return Ok(batch);
            }
            let deadline = self.heard + if self.probed { self.silence } else { self.silence / 3 };
            match tokio::time::timeout_at(deadline, self.body.frame()).await {
                Err(_) if self.probed => return Err(StoreError::WatchSilent(self.silence)),
                Err(_) => {
                    // A full queue means requests are already waiting: one is enough.
                    let _ = self.requests.try_send(line(&json!({"progress_request": {}})));
                    self.probed = true;
                }
                Ok(Some(Ok(f))) => {
                    (self.heard, self.probed) = (Instant::now(), false);
                    if let Ok(mut data) = f.into_data() {
                        while data.has_remaining() {
                            let chunk = data.chunk();
                            self.buf.extend_from_slice(chunk);
                            let n = chunk.len();
                            data.advance(n);
                        }
                    }
                }
                Ok(Some(Err(e))) => return Err(StoreError::Unreachable(format!("watch: {}", transport::chain(&e)))),
                Ok(None) => return Err(StoreError::Unreachable("watch stream ended".into())),
            }
        }
    }

    /// The newest revision any message reported: re-watch from it + 1 after
    /// [`StoreError::WatchSilent`] or [`StoreError::WatchCanceled`].
    pub fn last_revision(&self) -> i64 {
        self.last_revision
    }
}

fn parse(line: &[u8]) -> Result<WatchBatch, StoreError> {
    let v: Value = serde_json::from_slice(line).map_err(|e| StoreError::Decode(format!("watch message: {e}")))?;
    if let Some(err) = v.get("error") {
        return Err(transport::stream_error(err));
    }
    let r = &v["result"];
    let compacted = wire::int(r, "compact_revision");
    if compacted > 0 {
        return Err(StoreError::Compacted(compacted));
    }
    if r["canceled"].as_bool().unwrap_or(false) {
        let reason = r["cancel_reason"].as_str().unwrap_or("no reason given");
        return Err(StoreError::WatchCanceled(reason.to_string()));
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
    fn another_cancel_is_not_a_compaction() {
        let line = br#"{"result":{"header":{"revision":"9"},"canceled":true,"cancel_reason":"permission denied"}}"#;
        assert_eq!(parse(line), Err(StoreError::WatchCanceled("permission denied".into())));
    }

    #[test]
    fn an_error_line_is_an_error_with_its_status() {
        let line = br#"{"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader","http_status":"Service Unavailable"}}"#;
        let e = parse(line).unwrap_err();
        assert_eq!(e, StoreError::Status { status: 503, body: "etcdserver: no leader".into() });
        assert!(e.fails_over());
    }

    #[test]
    fn a_header_only_message_is_a_progress_notification() {
        let b = parse(br#"{"result":{"header":{"revision":"12"},"watch_id":"-1"}}"#).unwrap();
        assert!(b.is_progress());
        assert_eq!(b.revision, 12);
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
