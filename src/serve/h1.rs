//! HTTP/1.1 connections that give their buffers back while idle.
//!
//! hyper keeps an 8 KiB read buffer, an 8 KiB write buffer and its connection state for as long
//! as a connection lives; an idle keep-alive client would hold them for `idle_timeout`. Instead,
//! a connection that stays idle for `idle_grace` is *parked*: hyper is stopped without closing
//! the socket (`ParkIo` swallows its shutdown), its state is freed, and the task waits for the
//! socket to become readable with nothing but the socket itself. The next request gets a fresh
//! hyper connection. Busy connections never park (the check runs once per grace period and sees
//! requests started since the last one), so the request path pays one atomic store per read,
//! write and flush.
//!
//! Timeouts fall out of the same loop: waiting for the first byte of a connection is bounded by
//! `header_read_timeout`, waiting while parked by `idle_timeout`, and a request head by
//! `header_read_timeout` too: a connection waiting on a partial head is idle, parks with the bytes
//! it has, and the head keeps its deadline across every later park (checked at each grace tick,
//! so a head is cut off within one grace period after its deadline).

use super::io::{ParkIo, Signals};
use super::{ServeCfg, Socket};
use crate::proxy::{self, ConnCtx};
use bytes::{Bytes, BytesMut};
use futures_util::task::AtomicWaker;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How one hyper connection on the socket ended.
enum Ended<S> {
    /// Idle: the socket and any bytes of a partial request head hyper had read.
    Parked(S, Bytes),
    /// Closed, upgraded, failed, or stopped for shutdown.
    Done,
}

/// Serves HTTP/1.1 on `io` until the client leaves, a timeout passes, or `stop` fires.
///
/// A function returning an `async move` block rather than an `async fn`: an `async fn` keeps
/// its arguments twice in its future (as arguments, and again as the body's locals), and this
/// future is what a parked connection costs.
#[allow(clippy::manual_async_fn)] // not an `async fn`: see above
pub(super) fn serve<S: Socket>(
    mut io: S,
    conn: Arc<ConnCtx>,
    cfg: Arc<ServeCfg>,
    stop: CancellationToken,
) -> impl std::future::Future<Output = ()> + use<S> {
    async move {
        let signals = Arc::new(Signals::default());
        let mut pre = Bytes::new();
        let mut wait = cfg.header_read_timeout;
        let mut head_deadline: Option<Instant> = None;
        // After a park the stream holds nothing (hyper's last read found it empty), so only the
        // socket can wake it.
        let mut await_socket = !S::READ_AHEAD;
        loop {
            let limit = head_deadline.map_or(wait, |d| d.saturating_duration_since(Instant::now()));
            if await_socket {
                tokio::select! {
                    r = io.tcp().readable() => if r.is_err() { return },
                    _ = tokio::time::sleep(limit) => {
                        tracing::debug!(peer = %conn.peer, "connection idle past its timeout: closing");
                        return;
                    }
                    _ = stop.cancelled() => return,
                }
            }
            await_socket = true;
            // Boxed: its state (hyper's connection, the idle timer) is freed when it parks.
            match Box::pin(hyper_conn(io, pre, &signals, &conn, &cfg, &stop, head_deadline)).await {
                Ended::Parked(i, p) => {
                    // The connection was idle for at least one grace period before it parked.
                    wait = cfg.idle_timeout.saturating_sub(cfg.idle_grace);
                    head_deadline = match p.is_empty() {
                        true => None,
                        // The head began at least a grace period ago.
                        false => Some(head_deadline.unwrap_or_else(|| {
                            Instant::now() + cfg.header_read_timeout.saturating_sub(cfg.idle_grace)
                        })),
                    };
                    (io, pre) = (i, p);
                }
                Ended::Done => return,
            }
        }
    }
}

/// What woke the connection task, as far as `hyper_conn` cares.
enum Event {
    /// hyper's connection future finished.
    Conn(hyper::Result<()>),
    /// The listener is draining.
    Stop,
    /// An idle-grace period passed.
    Tick,
}

/// Wakes the connection task on behalf of the futures beside hyper's connection (the idle tick
/// and the stop signal) and remembers that it did. hyper wakes the task two or more times per
/// request; polling the tick and the cancellation future on each of those wake-ups (a
/// `select!`) cost ~540 instructions per request under callgrind, this ~60.
#[derive(Default)]
struct SideWake {
    fired: AtomicBool,
    task: AtomicWaker,
}

impl std::task::Wake for SideWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Release);
        self.task.wake();
    }
}

/// Runs one hyper connection on `io` until it ends or has been idle for a grace period.
///
/// hyper's own header read timer is off (`ServeCfg`): it armed, boxed and dropped a timer for
/// every request head (~720 instructions per request). A head is bounded here instead, at the
/// grace tick: a connection waiting on a partial head is idle, so it is asked to park. hyper
/// then stops at once if it had served a request (the head's bytes go with the parked socket,
/// and the head keeps its deadline, `serve`), or else finishes the head first, and the tick
/// gives the head its deadline and closes the connection when it passes.
async fn hyper_conn<S: Socket>(
    io: S,
    pre: Bytes,
    signals: &Arc<Signals>,
    conn: &Arc<ConnCtx>,
    cfg: &ServeCfg,
    stop: &CancellationToken,
    mut head_deadline: Option<Instant>,
) -> Ended<S> {
    signals.set_parking(false);
    let service = {
        let (conn, signals) = (conn.clone(), signals.clone());
        service_fn(move |req| proxy::handle(conn.clone(), req, Some(signals.begin())))
    };
    let io = TokioIo::new(ParkIo::new(io, pre, signals.clone()));
    // Boxed so that parking frees it: the task's own future stays small.
    let mut c = Box::pin(cfg.h1.serve_connection(io, service).with_upgrades());
    let first = signals.started();
    let mut seen = first;
    let tick = tokio::time::sleep(cfg.idle_grace);
    tokio::pin!(tick);
    let stopped = stop.cancelled();
    tokio::pin!(stopped);
    let side = Arc::new(SideWake::default());
    let side_waker = Waker::from(side.clone());
    let mut stopping = false;
    loop {
        // Poll the side futures at least once per turn: a reset tick must register again.
        side.fired.store(true, Ordering::Relaxed);
        let event = std::future::poll_fn(|cx| {
            if let Poll::Ready(r) = c.as_mut().poll(cx) {
                return Poll::Ready(Event::Conn(r));
            }
            side.task.register(cx.waker());
            if side.fired.swap(false, Ordering::Acquire) {
                let mut side_cx = Context::from_waker(&side_waker);
                if !stopping && stopped.as_mut().poll(&mut side_cx).is_ready() {
                    return Poll::Ready(Event::Stop);
                }
                if tick.as_mut().poll(&mut side_cx).is_ready() {
                    return Poll::Ready(Event::Tick);
                }
            }
            Poll::Pending
        })
        .await;
        match event {
            Event::Conn(r) => {
                if let Err(e) = r {
                    tracing::debug!(peer = %conn.peer, error = %e, "connection ended with an error");
                    return Ended::Done;
                }
                if !signals.parking() {
                    return Ended::Done;
                }
                let Some(parts) = std::pin::Pin::into_inner(c).into_parts() else { return Ended::Done };
                let (io, unread) = parts.io.into_inner().into_parts();
                return Ended::Parked(io, join(parts.read_buf, unread));
            }
            Event::Stop => {
                stopping = true;
                signals.set_parking(false);
                c.as_mut().graceful_shutdown();
            }
            Event::Tick => {
                let now = Instant::now();
                tick.as_mut().reset(now + cfg.idle_grace);
                let started = signals.started();
                if started == first && head_deadline.is_some_and(|d| now >= d) {
                    tracing::debug!(peer = %conn.peer, "request head not complete within the header read timeout");
                    return Ended::Done;
                }
                if stopping || signals.parking() {
                    // Asked to stop a grace period ago and still running with no request
                    // started: hyper is inside a request head (a fresh hyper connection finishes
                    // a partial head before it stops). The head had been pending for a grace
                    // period before that, so it began at least two grace periods ago.
                    if started == first && head_deadline.is_none() {
                        head_deadline = Some(now + cfg.header_read_timeout.saturating_sub(2 * cfg.idle_grace));
                    }
                } else if started == seen && signals.idle() {
                    // hyper closes an idle connection at once on graceful shutdown; had a
                    // request slipped in, it would finish it with `Connection: close` and the
                    // client would see an ordinary close.
                    signals.set_parking(true);
                    c.as_mut().graceful_shutdown();
                } else {
                    seen = started;
                }
            }
        }
    }
}

/// hyper's unparsed bytes, then any it never read from the wrapper, copied out: both are views
/// of hyper's 8 KiB read buffer (or of an earlier one), which an empty view would keep alive
/// for as long as the connection stays parked.
fn join(parsed_from: Bytes, unread: Bytes) -> Bytes {
    if parsed_from.is_empty() && unread.is_empty() {
        return Bytes::new();
    }
    let mut b = BytesMut::with_capacity(parsed_from.len() + unread.len());
    b.extend_from_slice(&parsed_from);
    b.extend_from_slice(&unread);
    b.freeze()
}
