//! Config reloads: a `notify` watcher on the config's *directory* (so editors' write-and-rename
//! and Kubernetes ConfigMap `..data` symlink swaps are seen), debounced; SIGHUP; and `POST /reload`.
//! The file is parsed and validated completely before the control loop sees it; a bad file is
//! logged with file, line and key, counted, and shown in `/status`, and the old config keeps running.

use crate::control::{Command, ControlHandle};
use notify_debouncer_full::{new_debouncer, notify::RecursiveMode, DebounceEventResult};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Reads, validates and applies the config at `path`.
pub async fn reload_once(path: &Path, control: &ControlHandle) -> Result<serde_json::Value, String> {
    let p = path.to_path_buf();
    let parsed = tokio::task::spawn_blocking(move || crate::config::load(&p)).await.map_err(|e| e.to_string())?;
    match parsed {
        Ok(cfg) => {
            let r = control.call(|reply| Command::ApplyConfig(Box::new(cfg), reply)).await.map_err(|e| e.to_string());
            if r.is_ok() {
                tracing::info!(path = %path.display(), "config reloaded");
            }
            r
        }
        Err(e) => {
            let msg = e.to_string();
            control.reload_failed(msg.clone()).await;
            Err(msg)
        }
    }
}

fn content_hash(path: &Path) -> Option<u64> {
    let bytes = std::fs::read(path).ok()?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    Some(h.finish())
}

/// Watches the config's directory and SIGHUP until `stop`; reloads when the content changes.
/// Its tasks join `tasks`, so shutdown can wait for them.
pub fn spawn(
    path: PathBuf,
    control: ControlHandle,
    debounce: Duration,
    stop: CancellationToken,
    tasks: &TaskTracker,
) -> notify::Result<()> {
    let (tx, mut rx) = mpsc::channel::<bool>(16); // true = forced (SIGHUP)
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
    let file_tx = tx.clone();
    let mut debouncer = new_debouncer(debounce, None, move |r: DebounceEventResult| {
        if r.is_ok() {
            let _ = file_tx.try_send(false);
        }
    })?;
    debouncer.watch(&dir, RecursiveMode::NonRecursive)?;
    // The baseline is taken now, after the watch is armed and before we return: taken later in
    // the task, a change made in between would become the baseline and never be applied.
    let mut last = content_hash(&path);
    #[cfg(unix)]
    {
        let (tx, stop) = (tx.clone(), stop.clone());
        tasks.spawn(async move {
            let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else { return };
            loop {
                tokio::select! {
                    Some(()) = hup.recv() => { let _ = tx.send(true).await; }
                    _ = stop.cancelled() => return,
                }
            }
        });
    }
    tasks.spawn(async move {
        let _keep = debouncer;
        loop {
            let forced = tokio::select! {
                Some(f) = rx.recv() => f,
                _ = stop.cancelled() => return,
            };
            let now = content_hash(&path);
            if !forced && (now.is_none() || now == last) {
                continue;
            }
            last = now;
            if let Err(e) = reload_once(&path, &control).await {
                tracing::error!(path = %path.display(), error = %e, "reload failed");
            }
        }
    });
    Ok(())
}
