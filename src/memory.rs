//! Which allocations last as long as a connection: the marker the binary's global allocator
//! (`src/allocator.rs`) reads to place them on pages of their own.
//!
//! Why: mimalloc (like any size-class allocator) returns a page to the OS only once every
//! object on it is free. A connection's long-lived objects (its task, its context, the
//! reactor's registration, the TLS session) were allocated between the short-lived objects of
//! the requests of the connections around it. When a burst of busy connections went idle and
//! parked (`serve::h1`), the request objects were freed but every page kept one live
//! connection object: 10 000 idle HTTP/1.1 connections held 5.3 KiB each where their live
//! state is about 0.7 KiB. Allocations made inside [`long_lived`] (or while polling a
//! [`LongLived`] future) come from a separate heap whose pages hold nothing else, so idle
//! connections pack densely and the pages the request path churns can all be returned.
//!
//! Outside the binary (tests, benches) nothing reads the marker, which costs one thread-local
//! store.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

thread_local! {
    static LONG_LIVED: Cell<bool> = const { Cell::new(false) };
}

/// Whether this thread allocates long-lived right now (read by the global allocator).
#[inline]
pub fn long_lived_now() -> bool {
    LONG_LIVED.with(Cell::get)
}

/// Runs `f` with its allocations placed among other connections' long-lived state.
pub fn long_lived<R>(f: impl FnOnce() -> R) -> R {
    let before = LONG_LIVED.with(|c| c.replace(true));
    // Restored on unwind too: a panic must not leave the thread allocating long-lived.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            LONG_LIVED.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(before);
    f()
}

pin_project_lite::pin_project! {
    /// A future whose polls allocate long-lived, for code that sets up a connection's lasting
    /// state: the accept loop (task, context, registration) and the TLS handshake (the session).
    pub struct LongLived<F> {
        #[pin]
        inner: F,
    }
}

impl<F> LongLived<F> {
    pub fn new(inner: F) -> Self {
        LongLived { inner }
    }
}

impl<F: Future> Future for LongLived<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let inner = self.project().inner;
        long_lived(|| inner.poll(cx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_is_restored_after_a_panic_and_when_nested() {
        long_lived(|| {
            long_lived(|| assert!(long_lived_now()));
            assert!(long_lived_now());
        });
        assert!(!long_lived_now());
        let r = std::panic::catch_unwind(|| long_lived(|| panic!("inside")));
        assert!(r.is_err());
        assert!(!long_lived_now());
    }

    #[tokio::test]
    async fn a_long_lived_future_marks_only_its_own_polls() {
        let f = LongLived::new(async {
            assert!(long_lived_now());
            tokio::task::yield_now().await;
            assert!(long_lived_now());
        });
        f.await;
        assert!(!long_lived_now());
    }
}
