//! The socket as hyper sees it, instrumented so the connection task can tell when hyper sits idle
//! between requests, and can take the socket back without closing it.

use crate::body::Exchange;
use bytes::{Buf, Bytes};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What the idle check reads, written by [`ParkIo`] and by the service. Shared by `Arc` because
/// hyper owns both the socket wrapper and the service while the connection task polls it; all
/// three run on the connection's task, so `Relaxed` suffices (the atomics only make it `Sync`).
#[derive(Default)]
pub struct Signals {
    /// Requests whose response body hyper still holds (counted by `Exchange`).
    in_flight: Arc<AtomicU32>,
    /// Requests started on this connection (wrapping): a change between two idle checks means
    /// the connection was busy in between.
    started: AtomicU32,
    /// hyper's last read found nothing to read.
    read_blocked: AtomicBool,
    /// Bytes were written and not yet flushed.
    unflushed: AtomicBool,
    /// The task asked hyper to stop in order to park the socket: shutting the socket down
    /// then would close it.
    parking: AtomicBool,
}

impl Signals {
    /// hyper has nothing to do until the client sends: no response pending, everything
    /// written, and its last read found the socket empty.
    pub fn idle(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) == 0
            && self.read_blocked.load(Ordering::Relaxed)
            && !self.unflushed.load(Ordering::Relaxed)
    }

    /// Requests started so far (wrapping).
    pub fn started(&self) -> u32 {
        self.started.load(Ordering::Relaxed)
    }

    /// Marks the start of an exchange; the guard ends it when dropped with the response body.
    pub fn begin(&self) -> Exchange {
        self.started.fetch_add(1, Ordering::Relaxed);
        Exchange::begin(&self.in_flight)
    }

    /// Makes hyper's shutdown of the socket a no-op from now on.
    pub fn set_parking(&self, on: bool) {
        self.parking.store(on, Ordering::Relaxed);
    }

    /// Whether the socket is being taken back.
    pub fn parking(&self) -> bool {
        self.parking.load(Ordering::Relaxed)
    }
}

/// The client socket lent to one hyper connection: bytes hyper had read but not parsed when it
/// was last stopped come first, and `Signals` records what hyper last did.
pub struct ParkIo<S> {
    io: S,
    pre: Bytes,
    signals: Arc<Signals>,
}

impl<S> ParkIo<S> {
    /// Lends `io` (after `pre`) to hyper.
    pub fn new(io: S, pre: Bytes, signals: Arc<Signals>) -> Self {
        ParkIo { io, pre, signals }
    }

    /// The socket and the bytes hyper did not take.
    pub fn into_parts(self) -> (S, Bytes) {
        (self.io, self.pre)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ParkIo<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if !self.pre.is_empty() {
            let n = self.pre.len().min(buf.remaining());
            buf.put_slice(&self.pre[..n]);
            self.pre.advance(n);
            return Poll::Ready(Ok(()));
        }
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        self.signals.read_blocked.store(r.is_pending(), Ordering::Relaxed);
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ParkIo<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.signals.unflushed.store(true, Ordering::Relaxed);
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.signals.unflushed.store(true, Ordering::Relaxed);
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_flush(cx);
        if let Poll::Ready(Ok(())) = r {
            self.signals.unflushed.store(false, Ordering::Relaxed);
        }
        r
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.signals.parking() {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn bytes_left_by_hyper_come_before_the_socket() {
        let (a, mut b) = tokio::io::duplex(64);
        let signals = Arc::new(Signals::default());
        let mut io = ParkIo::new(a, Bytes::from_static(b"GE"), signals.clone());
        b.write_all(b"T /").await.unwrap();
        let mut got = [0u8; 5];
        io.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"GET /");
    }

    #[tokio::test]
    async fn idle_needs_an_empty_read_a_flush_and_no_exchange() {
        let (a, mut b) = tokio::io::duplex(64);
        let signals = Arc::new(Signals::default());
        let mut io = ParkIo::new(a, Bytes::new(), signals.clone());
        let exchange = signals.begin();
        io.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        assert!(!signals.idle(), "nothing read yet, write unflushed, exchange open");
        io.flush().await.unwrap();
        let mut buf = [0u8; 8];
        assert!(tokio::time::timeout(std::time::Duration::from_millis(20), io.read(&mut buf)).await.is_err());
        assert!(!signals.idle(), "exchange still open");
        drop(exchange);
        assert!(signals.idle());
        b.write_all(b"G").await.unwrap();
        assert_eq!(io.read(&mut buf).await.unwrap(), 1);
        assert!(!signals.idle(), "the client spoke");
        assert_eq!(signals.started(), 1);
    }

    #[tokio::test]
    async fn shutdown_while_parking_leaves_the_socket_open() {
        let (a, mut b) = tokio::io::duplex(64);
        let signals = Arc::new(Signals::default());
        let mut io = ParkIo::new(a, Bytes::new(), signals.clone());
        signals.set_parking(true);
        io.shutdown().await.unwrap();
        let (mut a, _) = io.into_parts();
        a.write_all(b"x").await.unwrap();
        let mut buf = [0u8; 1];
        b.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"x");
    }
}
