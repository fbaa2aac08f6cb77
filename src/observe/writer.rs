//! The access log's queue and writer thread, the only owner of the file (or stdout).
//!
//! Each worker formats its lines straight into its own shard of the queue, a growing byte
//! buffer behind an uncontended lock; the writer thread swaps every shard's buffer for an empty
//! one on a short tick and writes what it took in one call. A line costs no allocation, no
//! channel message and no copy on its way to the file (Envoy's access loggers buffer per worker
//! and flush on an interval for the same reason). Before, each line was its own `Vec` sent
//! through a bounded channel and copied into a `BufWriter`: allocated on the worker, freed on
//! the writer thread. With the log on every request, this and unescaped trusted values took a
//! request from 40 962 to 40 394 instructions (`CALLGRIND=1 CG_CONNS=1 ACCESS_LOG=json
//! loadtest/profile`, one run each, ±200 run to run) and the JSON log from 0.888× to 0.910× of
//! the requests per CPU-second with it off (`loadtest/paired`, `loadtest/RESULTS.md`).
//!
//! The thread polls on a tick instead of being woken: a woken writer costs the worker a futex
//! call and the core a context switch after every lull, which under load is close to once per
//! request. A tick's worth of lines fits a shard (8192 lines by default) at well over a hundred
//! thousand requests a second per worker. SIGUSR1 asks the thread to reopen the file (after
//! logrotate moved it).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the thread takes what the shards hold (and looks at the reopen flag).
const TICK: Duration = Duration::from_millis(25);

/// How long the app's end waits for the writer to write what is queued.
pub const DRAIN_AT_EXIT: Duration = Duration::from_secs(1);

/// Shards, indexed by worker: more workers than this share shards (correct, just contended).
const SHARDS: usize = 16;

/// Lines waiting for the writer thread, one shard per worker.
pub struct Queue {
    shards: Box<[Shard]>,
    /// Lines a shard holds before new ones are dropped.
    limit: usize,
    /// Set when the app ends: the writer writes what is queued and stops.
    closing: AtomicBool,
}

/// A cache line (two, for the adjacent-line prefetcher) per shard, so that two workers
/// appending never share one.
#[repr(align(128))]
#[derive(Default)]
struct Shard(Mutex<Pending>);

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    lines: usize,
}

impl Queue {
    /// Appends the line `line` writes to the calling worker's shard. `false` (and nothing
    /// written) when that shard is full: the writer is behind, and the line is dropped.
    pub fn push(&self, line: impl FnOnce(&mut Vec<u8>)) -> bool {
        let shard = &self.shards[crate::workers::current_index() % self.shards.len()];
        let mut p = shard.0.lock().unwrap_or_else(|e| e.into_inner());
        if p.lines >= self.limit {
            return false;
        }
        line(&mut p.bytes);
        p.lines += 1;
        true
    }

    /// Asks the writer to write what is queued and stop.
    pub fn close(&self) {
        self.closing.store(true, Ordering::Release);
    }
}

/// Starts the writer for a queue of `limit` lines per worker. Returns the queue, the flag that
/// asks the writer to reopen `path`, and a receiver that disconnects once the writer has
/// written everything queued before [`Queue::close`].
pub fn spawn(path: Option<PathBuf>, limit: usize) -> (Arc<Queue>, Arc<AtomicBool>, std::sync::mpsc::Receiver<()>) {
    let queue = Arc::new(Queue {
        shards: (0..SHARDS).map(|_| Shard::default()).collect(),
        limit: limit.max(1),
        closing: AtomicBool::new(false),
    });
    let reopen = Arc::new(AtomicBool::new(false));
    let (q, flag) = (queue.clone(), reopen.clone());
    let (done_tx, done) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("access-log".into())
        .spawn(move || {
            run(path, &q, &flag);
            drop(done_tx);
        })
        .expect("spawn the access log writer");
    (queue, reopen, done)
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

fn run(path: Option<PathBuf>, queue: &Queue, reopen: &AtomicBool) {
    let mut out = open(path.as_ref());
    // The buffer handed to the next shard taken: buffers circulate, keeping their capacity, so
    // a steady load allocates nothing.
    let mut spare = Vec::new();
    loop {
        std::thread::sleep(TICK);
        // Read before taking the shards: whatever was queued before `close` is then written.
        let closing = queue.closing.load(Ordering::Acquire);
        if reopen.swap(false, Ordering::AcqRel) && path.is_some() {
            let _ = out.flush();
            out = open(path.as_ref());
            tracing::info!(path = %path.as_ref().map(|p| p.display().to_string()).unwrap_or_default(), "access log reopened");
        }
        for shard in queue.shards.iter() {
            {
                let mut p = shard.0.lock().unwrap_or_else(|e| e.into_inner());
                if p.lines == 0 {
                    continue;
                }
                std::mem::swap(&mut p.bytes, &mut spare);
                p.lines = 0;
            }
            let _ = out.write_all(&spare);
            spare.clear();
        }
        let _ = out.flush();
        if closing {
            return;
        }
    }
}

/// The sink, unbuffered: every write is a shard's whole take.
fn open(path: Option<&PathBuf>) -> Box<dyn Write + Send> {
    match path {
        None => Box::new(std::io::stdout()),
        Some(p) => match OpenOptions::new().create(true).append(true).open(p) {
            Ok(f) => Box::new(f),
            Err(e) => {
                tracing::error!(path = %p.display(), error = %e, "access log file unusable: lines are discarded until it reopens");
                Box::new(std::io::sink())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_shard_refuses_lines_until_the_writer_takes_them_and_close_writes_the_rest() {
        use std::io::{BufRead, BufReader};
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("stuck.log");
        // A FIFO nobody reads yet: the writer blocks opening it, so it takes nothing until then.
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let (queue, _reopen, done) = spawn(Some(fifo.clone()), 2);
        let line = |c: u8| move |out: &mut Vec<u8>| out.extend_from_slice(&[c, b'\n']);
        assert!(queue.push(line(b'a')));
        assert!(queue.push(line(b'b')));
        assert!(!queue.push(line(b'c')), "two lines a shard: the third is refused");
        let mut reader = BufReader::new(std::fs::File::open(&fifo).unwrap());
        let mut next = || {
            let mut l = String::new();
            reader.read_line(&mut l).unwrap();
            l
        };
        assert_eq!((next(), next()), ("a\n".to_string(), "b\n".to_string()));
        // The writer emptied the shard before writing what it took.
        assert!(queue.push(line(b'd')), "taken lines free the shard");
        queue.close();
        assert_eq!(next(), "d\n", "close writes what is queued");
        let stopped = done.recv_timeout(Duration::from_secs(10));
        assert_eq!(stopped, Err(std::sync::mpsc::RecvTimeoutError::Disconnected), "the writer stops after close");
        assert_eq!(next(), "", "and nothing else: the refused line is gone");
    }
}
