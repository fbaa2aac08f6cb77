//! The access log's writer thread: the only owner of the file (or stdout). Lines arrive
//! preformatted through a bounded channel; the thread writes what is queued, then flushes, so a
//! burst costs one write call. SIGUSR1 asks it to reopen the file (after logrotate moved it).
//!
//! The thread drains the queue on a short tick instead of blocking on it: a receiver blocked in
//! `recv` is woken (a futex call from the worker, a context switch here) by the first line after
//! every lull, which under load is close to once per request. Polled, the workers' `try_send`
//! never finds anyone to wake; a tick's worth of lines fits the queue (8192 by default) at well
//! over a hundred thousand requests a second.

use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::Duration;

/// How often the thread drains the queue (and looks at the reopen flag).
const TICK: Duration = Duration::from_millis(25);

/// How long the app's end waits for the writer to write what is queued.
pub const DRAIN_AT_EXIT: Duration = Duration::from_secs(1);

/// Starts the writer. Returns the flag that asks it to reopen `path`, and a receiver that
/// disconnects once the writer has written everything queued after the last sender went away.
pub fn spawn(path: Option<PathBuf>, rx: Receiver<Vec<u8>>) -> (Arc<AtomicBool>, Receiver<()>) {
    let reopen = Arc::new(AtomicBool::new(false));
    let flag = reopen.clone();
    let (done_tx, done) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("access-log".into())
        .spawn(move || {
            run(path, rx, &flag);
            drop(done_tx);
        })
        .expect("spawn the access log writer");
    (reopen, done)
}

/// Sets `flag` on every SIGUSR1 (a task of the runtime the app runs on).
pub fn reopen_on_sigusr1(flag: Arc<AtomicBool>) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut sig = match signal(SignalKind::user_defined1()) {
        Ok(s) => s,
        Err(e) => return tracing::warn!(error = %e, "SIGUSR1 unavailable: the access log is not reopened on rotation"),
    };
    tokio::spawn(async move {
        while sig.recv().await.is_some() {
            flag.store(true, Ordering::Release);
        }
    });
}

fn run(path: Option<PathBuf>, rx: Receiver<Vec<u8>>, reopen: &AtomicBool) {
    let mut out = open(path.as_ref());
    loop {
        std::thread::sleep(TICK);
        if reopen.swap(false, Ordering::AcqRel) && path.is_some() {
            let _ = out.flush();
            out = open(path.as_ref());
            tracing::info!(path = %path.as_ref().map(|p| p.display().to_string()).unwrap_or_default(), "access log reopened");
        }
        let mut wrote = false;
        loop {
            match rx.try_recv() {
                Ok(line) => {
                    let _ = out.write_all(&line);
                    wrote = true;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    let _ = out.flush();
                    return;
                }
            }
        }
        if wrote {
            let _ = out.flush();
        }
    }
}

fn open(path: Option<&PathBuf>) -> BufWriter<Box<dyn Write + Send>> {
    let sink: Box<dyn Write + Send> = match path {
        None => Box::new(std::io::stdout()),
        Some(p) => match OpenOptions::new().create(true).append(true).open(p) {
            Ok(f) => Box::new(f) as Box<dyn Write + Send>,
            Err(e) => {
                tracing::error!(path = %p.display(), error = %e, "access log file unusable: lines are discarded until it reopens");
                Box::new(std::io::sink())
            }
        },
    };
    BufWriter::with_capacity(64 * 1024, sink)
}
