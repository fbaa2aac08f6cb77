//! The access log's writer thread: the only owner of the file (or stdout). Lines arrive
//! preformatted through a bounded channel; the thread writes what is queued, then flushes, so a
//! burst costs one write call. SIGUSR1 asks it to reopen the file (after logrotate moved it).

use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

/// How long the thread waits for a line before it looks at the reopen flag again.
const REOPEN_CHECK: Duration = Duration::from_millis(100);

/// Starts the writer; the flag it returns asks it to reopen `path`.
pub fn spawn(path: Option<PathBuf>, rx: Receiver<String>) -> Arc<AtomicBool> {
    let reopen = Arc::new(AtomicBool::new(false));
    let flag = reopen.clone();
    std::thread::Builder::new()
        .name("access-log".into())
        .spawn(move || run(path, rx, &flag))
        .expect("spawn the access log writer");
    reopen
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

fn run(path: Option<PathBuf>, rx: Receiver<String>, reopen: &AtomicBool) {
    let mut out = open(path.as_ref());
    loop {
        let line = match rx.recv_timeout(REOPEN_CHECK) {
            Ok(l) => Some(l),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        if reopen.swap(false, Ordering::AcqRel) && path.is_some() {
            let _ = out.flush();
            out = open(path.as_ref());
            tracing::info!(path = %path.as_ref().map(|p| p.display().to_string()).unwrap_or_default(), "access log reopened");
        }
        let Some(line) = line else { continue };
        let _ = out.write_all(line.as_bytes());
        while let Ok(more) = rx.try_recv() {
            let _ = out.write_all(more.as_bytes());
        }
        let _ = out.flush();
    }
    let _ = out.flush();
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
