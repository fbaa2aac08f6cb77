//! Thread per core: N single-threaded runtimes that share nothing on the request path.
//!
//! tokio's work-stealing scheduler wakes a client connection's task and its upstream
//! connection's task on different threads; measured here (`loadtest/ctxswitch`), two stealing
//! workers served fewer requests per CPU-second than one. Like Pingora's no-steal runtime and
//! Envoy's workers, each worker is a `current_thread` runtime on its own OS thread: it accepts on
//! its own `SO_REUSEPORT` socket per service (the kernel spreads connections), and everything a
//! connection spawns — its requests, its upstream connections' tasks, its timers — stays on that
//! thread. What must be global (the route snapshot, retry budget, in-flight caps, the connection
//! limit) is already atomics shared by every worker; the control loop and the admin server run
//! beside the workers on the process's main runtime.
//!
//! With one thread there are no extra threads at all: the single worker *is* the runtime the
//! caller runs on, exactly the one-thread process as before.

use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

thread_local! {
    /// This thread's worker index (0 on threads that are not workers, and on the one worker of a
    /// one-thread process): what per-worker state such as idle upstream connections is keyed by.
    static WORKER: Cell<usize> = const { Cell::new(0) };
}

/// How often each worker runs the [housekeeping](set_housekeeping) hook.
pub const HOUSEKEEPING_TICK: Duration = Duration::from_millis(100);

/// What every worker runs on its own thread each [`HOUSEKEEPING_TICK`]. The binary sets it: its
/// allocator's per-thread heaps can only be collected by their own thread, and a worker that
/// goes quiet after a burst makes no further allocation that would return what it freed.
static HOUSEKEEPING: OnceLock<fn()> = OnceLock::new();

thread_local! {
    /// Whether this thread's runtime already runs the housekeeping task (`Workers::current` may
    /// be called more than once on one runtime).
    static KEEPING: Cell<bool> = const { Cell::new(false) };
}

/// Sets the per-worker housekeeping hook (once, before the workers start; later calls are
/// ignored). Without it workers run no housekeeping task.
pub fn set_housekeeping(hook: fn()) {
    let _ = HOUSEKEEPING.set(hook);
}

/// Spawns the housekeeping task on `handle` (whose tasks run on one thread) if a hook is set.
fn start_housekeeping(handle: &Handle) {
    let Some(&hook) = HOUSEKEEPING.get() else { return };
    handle.spawn(async move {
        let mut tick = tokio::time::interval(HOUSEKEEPING_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            hook();
        }
    });
}

/// The current thread's worker index; see [`WORKER`].
pub fn current_index() -> usize {
    WORKER.with(Cell::get)
}

/// The runtimes that accept and serve connections.
#[derive(Clone)]
pub struct Workers {
    handles: Arc<[Handle]>,
    /// Ends the worker threads (their runtimes drop on their own threads, never inside a task).
    _stop: Option<Arc<StopOnDrop>>,
}

struct StopOnDrop(CancellationToken);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers").field("count", &self.handles.len()).finish()
    }
}

impl Workers {
    /// One worker: the runtime this is called on (no threads are started).
    pub fn current() -> Workers {
        let handle = Handle::current();
        if !KEEPING.with(|k| k.replace(true)) {
            start_housekeeping(&handle);
        }
        Workers { handles: Arc::from([handle]), _stop: None }
    }

    /// `n` workers, each a `current_thread` runtime on its own thread named `switchyard-w{i}`;
    /// `n <= 1` is [`Workers::current`]. The threads end when the last clone is dropped.
    pub fn spawn(n: usize) -> std::io::Result<Workers> {
        if n <= 1 {
            return Ok(Workers::current());
        }
        let stop = CancellationToken::new();
        let mut handles = Vec::with_capacity(n);
        for i in 0..n {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            handles.push(rt.handle().clone());
            start_housekeeping(rt.handle());
            let stop = stop.clone();
            std::thread::Builder::new().name(format!("switchyard-w{i}")).spawn(move || {
                // 1-based so that index 0 keeps meaning "not a worker thread".
                WORKER.with(|w| w.set(i + 1));
                rt.block_on(stop.cancelled());
                // Connections still open here were past their drain: dropped with the runtime.
                rt.shutdown_background();
            })?;
        }
        Ok(Workers { handles: handles.into(), _stop: Some(Arc::new(StopOnDrop(stop))) })
    }

    /// How many workers accept connections.
    pub fn len(&self) -> usize {
        self.handles.len()
    }

    /// Never true: there is at least one worker.
    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// Binds `addr` once per worker with `SO_REUSEPORT` (the first socket fixes the port when
    /// `addr` asks for port 0), each registered with its worker's reactor.
    pub fn bind(&self, addr: SocketAddr) -> std::io::Result<Sockets> {
        let mut out = Vec::with_capacity(self.handles.len());
        let mut at = addr;
        for h in self.handles.iter() {
            let std = bind_std(at, self.handles.len() > 1)?;
            at = std.local_addr()?;
            let _enter = h.enter();
            out.push((h.clone(), Arc::new(TcpListener::from_std(std)?)));
        }
        Ok(Sockets { addr: at, sockets: out.into() })
    }
}

/// One service's listening sockets, one per worker, each with the runtime that accepts on it.
/// Shared (`Arc`) so a reload can hand them to a new accept loop without closing the port.
#[derive(Clone)]
pub struct Sockets {
    /// The bound address (the real port when port 0 was asked for).
    pub addr: SocketAddr,
    sockets: Arc<[(Handle, Arc<TcpListener>)]>,
}

impl Sockets {
    /// Each socket with the runtime it is registered with.
    pub fn iter(&self) -> impl Iterator<Item = &(Handle, Arc<TcpListener>)> {
        self.sockets.iter()
    }
}

/// A listening socket with a backlog large enough for bursts (excess connections wait there).
fn bind_std(addr: SocketAddr, reuse_port: bool) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    sock.set_reuse_address(true)?;
    #[cfg(unix)]
    if reuse_port {
        sock.set_reuse_port(true)?;
    }
    #[cfg(not(unix))]
    let _ = reuse_port;
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    sock.listen(4096)?;
    Ok(sock.into())
}

/// The CPUs this process may use (affinity and cgroup quota included), the default `--threads`.
pub fn default_count() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn two_workers_bind_one_port_and_each_accepts_on_its_own_thread() {
        let w = Workers::spawn(2).unwrap();
        let s = w.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        assert_ne!(s.addr.port(), 0);
        let mut seen = Vec::new();
        for (h, l) in s.iter() {
            assert_eq!(l.local_addr().unwrap(), s.addr, "every worker's socket is on the same port");
            let idx = h.spawn(async { current_index() }).await.unwrap();
            seen.push(idx);
        }
        seen.sort();
        assert_eq!(seen, vec![1, 2], "each socket's runtime is a distinct worker thread");
    }

    #[tokio::test]
    async fn one_worker_is_the_calling_runtime() {
        let w = Workers::spawn(1).unwrap();
        assert_eq!(w.len(), 1);
        let s = w.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let (h, _) = s.iter().next().unwrap();
        assert_eq!(h.id(), Handle::current().id());
    }

    static KEPT_ON: std::sync::Mutex<Vec<usize>> = std::sync::Mutex::new(Vec::new());

    /// Set for the whole test binary once the test below runs, so other tests' runtimes run it
    /// too: it keeps each worker index once.
    fn record() {
        let mut kept = KEPT_ON.lock().unwrap();
        let i = current_index();
        if !kept.contains(&i) {
            kept.push(i);
        }
    }

    #[tokio::test]
    async fn housekeeping_runs_on_every_worker_thread() {
        set_housekeeping(record);
        let _w = Workers::spawn(2).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let seen = KEPT_ON.lock().unwrap().clone();
            if seen.contains(&1) && seen.contains(&2) {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "housekeeping ran on workers {seen:?} only");
            tokio::time::sleep(HOUSEKEEPING_TICK).await;
        }
    }
}
