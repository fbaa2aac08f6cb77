//! A request body that can be sent again while it streams (linkerd2-proxy's `ReplayBody` idea):
//! the first attempt starts at once and every frame it takes is also kept, up to a cap, so a
//! retry replays the kept prefix and then continues from the client's stream. Nothing is read
//! ahead of the upstream; once more than the cap has gone out the kept prefix is dropped and the
//! body is no longer replayable (a retry is then only possible if nothing was sent).
//!
//! Every copy shares one state; only the newest copy may read the client's stream. An older copy
//! still held by an abandoned upstream connection gets an error if it reaches past what was
//! kept, which closes that connection instead of letting it steal frames from the retry.

use super::{ClientBody, RequestBodyError};
use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

/// One copy of a replayable request body.
pub struct ReplayBody {
    shared: Arc<Mutex<Shared>>,
    /// Which copy this is; only `Shared::active` may poll.
    id: u32,
    /// Index of the next kept frame this copy replays.
    pos: usize,
}

/// A frame kept for replay (`Frame` itself is not `Clone`).
enum Kept {
    Data(Bytes),
    Trailers(HeaderMap),
}

struct Shared {
    /// The client's stream; `None` once it ended or failed.
    inner: Option<ClientBody>,
    kept: Vec<Kept>,
    kept_bytes: usize,
    cap: usize,
    /// More than `cap` was read: `kept` is gone and no new copy can be made.
    overflowed: bool,
    /// The client's body failed or exceeded `limit`; every copy reports it.
    failed: bool,
    ended: bool,
    seen: u64,
    limit: u64,
    active: u32,
    size: SizeHint,
}

impl ReplayBody {
    /// Wraps the client's body: keeps up to `cap` bytes for replay, refuses more than `limit`.
    pub fn new(inner: impl Into<ClientBody>, cap: usize, limit: Option<u64>) -> Self {
        let inner = inner.into();
        let size = inner.size_hint();
        let ended = inner.is_end_stream();
        let shared = Shared {
            inner: (!ended).then_some(inner),
            kept: Vec::new(),
            kept_bytes: 0,
            cap,
            overflowed: false,
            failed: false,
            ended,
            seen: 0,
            limit: limit.unwrap_or(u64::MAX),
            active: 0,
            size,
        };
        ReplayBody { shared: Arc::new(Mutex::new(shared)), id: 0, pos: 0 }
    }

    /// A copy that starts again from the first byte, or `None` when what was already sent can
    /// no longer be replayed. The new copy supersedes every earlier one.
    pub fn replay(&self) -> Option<ReplayBody> {
        let mut s = self.lock();
        if s.overflowed || s.failed {
            return None;
        }
        s.active += 1;
        Some(ReplayBody { shared: self.shared.clone(), id: s.active, pos: 0 })
    }

    /// Whether a copy could still be made.
    pub fn is_replayable(&self) -> bool {
        let s = self.lock();
        !s.overflowed && !s.failed
    }

    /// Whether the whole body has arrived and is kept (a copy can be sent concurrently without
    /// waiting on the client).
    pub fn is_complete(&self) -> bool {
        let s = self.lock();
        s.ended && !s.overflowed && !s.failed
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Shared {
    /// Reads the client's next frame, keeping a copy while under the cap.
    fn poll_inner(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, RequestBodyError>>> {
        let Some(inner) = self.inner.as_mut() else { return Poll::Ready(None) };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                self.inner = None;
                self.ended = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                self.fail();
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    self.seen += d.len() as u64;
                    if self.seen > self.limit {
                        self.fail();
                        return Poll::Ready(Some(Err(RequestBodyError::TooLarge)));
                    }
                }
                self.keep(&frame);
                Poll::Ready(Some(Ok(frame)))
            }
        }
    }

    fn keep(&mut self, frame: &Frame<Bytes>) {
        if self.overflowed {
            return;
        }
        let kept = match (frame.data_ref(), frame.trailers_ref()) {
            (Some(d), _) => {
                self.kept_bytes += d.len();
                Kept::Data(d.clone())
            }
            (_, Some(t)) => Kept::Trailers(t.clone()),
            _ => return,
        };
        if self.kept_bytes > self.cap {
            self.overflowed = true;
            self.kept = Vec::new();
        } else {
            self.kept.push(kept);
        }
    }

    fn fail(&mut self) {
        self.failed = true;
        self.inner = None;
        self.kept = Vec::new();
    }
}

impl Body for ReplayBody {
    type Data = Bytes;
    type Error = RequestBodyError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let mut s = this.shared.lock().unwrap_or_else(PoisonError::into_inner);
        if s.failed {
            return Poll::Ready(Some(Err(RequestBodyError::ClientFailed)));
        }
        if !s.overflowed && this.pos < s.kept.len() {
            let frame = match &s.kept[this.pos] {
                Kept::Data(d) => Frame::data(d.clone()),
                Kept::Trailers(t) => Frame::trailers(t.clone()),
            };
            this.pos += 1;
            return Poll::Ready(Some(Ok(frame)));
        }
        if s.ended {
            return Poll::Ready(None);
        }
        // Copies only compete for the client's stream: a complete body replays to any of them
        // (a hedge sends two at once).
        if s.active != this.id {
            return Poll::Ready(Some(Err(RequestBodyError::Superseded)));
        }
        let r = s.poll_inner(cx);
        if !s.overflowed {
            this.pos = s.kept.len();
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        let s = self.lock();
        s.ended && (s.overflowed || self.pos >= s.kept.len())
    }

    fn size_hint(&self) -> SizeHint {
        // The whole body's size, whichever copy asks: a replay sends all of it again.
        self.lock().size
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use hyper::body::Incoming;

    /// A real `Incoming` body: a one-shot HTTP/1.1 server that hands the request body out.
    async fn incoming(chunks: Vec<&'static [u8]>) -> Incoming {
        use hyper::service::service_fn;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let tx = std::sync::Mutex::new(Some(tx));
        tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            let svc = service_fn(move |req: http::Request<Incoming>| {
                if let Some(tx) = tx.lock().unwrap().take() {
                    let _ = tx.send(req.into_body());
                }
                std::future::pending::<Result<http::Response<String>, std::convert::Infallible>>()
            });
            let _ =
                hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(s), svc).await;
        });
        let s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake::<_, http_body_util::StreamBody<_>>(hyper_util::rt::TokioIo::new(s))
                .await
                .unwrap();
        tokio::spawn(conn);
        let frames = chunks.into_iter().map(|c| Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from_static(c))));
        let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
        tokio::spawn(async move { sender.send_request(http::Request::post("/").body(body).unwrap()).await });
        rx.await.unwrap()
    }

    async fn read_all(b: ReplayBody) -> Result<Bytes, RequestBodyError> {
        Ok(b.collect().await?.to_bytes())
    }

    #[tokio::test]
    async fn a_body_under_the_cap_replays_in_full_after_being_sent() {
        let origin = ReplayBody::new(incoming(vec![b"hello ", b"world"]).await, 1024, None);
        let sent = origin.replay().unwrap();
        assert_eq!(read_all(sent).await.unwrap(), "hello world");
        assert!(origin.is_complete());
        let again = origin.replay().unwrap();
        assert_eq!(read_all(again).await.unwrap(), "hello world");
    }

    #[tokio::test]
    async fn a_copy_made_before_anything_was_read_streams_any_size() {
        let first = ReplayBody::new(incoming(vec![b"0123456789", b"abcdef"]).await, 4, None);
        let retry = first.replay().expect("nothing read yet: replayable whatever the cap");
        assert_eq!(read_all(retry).await.unwrap(), "0123456789abcdef");
        assert!(!first.is_replayable(), "16 bytes went out past a 4-byte cap");
    }

    #[tokio::test]
    async fn a_superseded_copy_can_no_longer_read() {
        let first = ReplayBody::new(incoming(vec![b"abc"]).await, 1024, None);
        let _second = first.replay().unwrap();
        assert!(matches!(read_all(first).await, Err(RequestBodyError::Superseded)));
    }

    #[tokio::test]
    async fn the_client_limit_still_applies() {
        let body = ReplayBody::new(incoming(vec![b"0123456789"]).await, 1024, Some(4));
        assert!(matches!(read_all(body).await, Err(RequestBodyError::TooLarge)));
    }
}
