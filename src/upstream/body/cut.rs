//! Ends the relay of a client's request body once the client's response has ended.
//!
//! An upstream may answer before it has read the whole request body (a refusal, a redirect);
//! the HTTP/1.1 connection carrying the request then keeps forwarding the client's body for as
//! long as the client sends it, although no one is waiting for it any more. Over HTTP/2 this
//! also decided what the client saw: `h2` sends RST_STREAM(NO_ERROR) to end the client's upload
//! (RFC 9113 §8.1) only when the proxy drops the body, so with an upstream that kept reading
//! the client got no reset at all, and with one that closed it got one at a moment that
//! depended on the upstream. Cut, the body ends with an error where it is polled: the upstream
//! connection (mid-request, never reusable) is closed, the client's body is dropped, and `h2`
//! resets the stream right after the response's last frame.

use futures_util::task::AtomicWaker;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

/// The signal shared by a request's body and its response: cut when the response ends.
#[derive(Clone, Default)]
pub struct BodyCut(Arc<CutState>);

#[derive(Default)]
struct CutState {
    done: AtomicBool,
    waker: AtomicWaker,
}

impl BodyCut {
    /// A signal not yet given.
    pub fn new() -> Self {
        BodyCut::default()
    }

    /// Whether the body is cut; if not, the task is woken when it is.
    fn poll_cut(&self, cx: &mut Context<'_>) -> bool {
        if self.0.done.load(Ordering::Acquire) {
            return true;
        }
        self.0.waker.register(cx.waker());
        self.0.done.load(Ordering::Acquire)
    }
}

/// Cuts the body when dropped: held by the response body that reaches the client, which hyper
/// drops after writing its last frame (or when the client goes away).
pub struct CutGuard(pub BodyCut);

impl Drop for CutGuard {
    fn drop(&mut self) {
        self.0 .0.done.store(true, Ordering::Release);
        self.0 .0.waker.wake();
    }
}

/// The client's request body, ending in [`super::RequestBodyError::ResponseEnded`] once cut.
pub struct ClientBody {
    inner: Incoming,
    cut: Option<BodyCut>,
}

impl ClientBody {
    /// `inner`, ended early when `cut` is given.
    pub fn new(inner: Incoming, cut: Option<BodyCut>) -> Self {
        ClientBody { inner, cut }
    }
}

impl From<Incoming> for ClientBody {
    fn from(inner: Incoming) -> Self {
        ClientBody { inner, cut: None }
    }
}

impl Body for ClientBody {
    type Data = bytes::Bytes;
    type Error = super::RequestBodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        if self.cut.as_ref().is_some_and(|c| c.poll_cut(cx)) {
            return Poll::Ready(Some(Err(super::RequestBodyError::ResponseEnded)));
        }
        Pin::new(&mut self.inner).poll_frame(cx).map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
