//! Config reloads: a `notify` watcher on the config's *directory* (so editors' write-and-rename
//! and Kubernetes ConfigMap `..data` symlink swaps are seen), debounced; SIGHUP; and `POST /reload`.
//! The file is parsed and validated completely before the control loop sees it; a bad file is
//! logged with file, line and key, counted, and shown in `/status`, and the old config keeps running.

use crate::config::ConfigError;
use crate::control::{Command, CommandError, ControlHandle};
use notify_debouncer_full::{new_debouncer, notify::RecursiveMode, DebounceEventResult};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Why a reload left the running config in place. The texts are what `POST /reload` answers.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file did not parse, validate or pass `run`'s checks (`file:line: key: message`); the
    /// loop never saw it.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The control loop could not apply it, or is not running.
    #[error(transparent)]
    Apply(#[from] CommandError),
    /// The blocking read was cancelled or panicked.
    #[error("{0}")]
    Read(#[from] tokio::task::JoinError),
}

/// Reads, judges (as `run` would) and applies the config at `path`; an applied file becomes the
/// last good copy a restart falls back to.
pub async fn reload_once(path: &Path, control: &ControlHandle) -> Result<serde_json::Value, ReloadError> {
    let p = path.to_path_buf();
    let env = std::env::var("SWITCHYARD_ADMIN_TOKEN").ok();
    match tokio::task::spawn_blocking(move || crate::preflight::judge(&p, env)).await? {
        Ok(a) => {
            let state_dir = a.config.state_dir.clone();
            let cfg = Box::new(a.config);
            let r = control.call(|reply| Command::ApplyConfig(cfg, reply)).await;
            mark_refused(r.is_err());
            if r.is_ok() {
                tracing::info!(path = %path.display(), "config reloaded");
                keep_last_good(&state_dir, &a.source);
            }
            Ok(r?)
        }
        Err(e) => {
            mark_refused(true);
            control.reload_failed(e.to_string()).await;
            Err(e.into())
        }
    }
}

/// Sets the gauge an alert watches: 1 while the file on disk is refused and an older config runs.
pub fn mark_refused(refused: bool) {
    metrics::gauge!(crate::stats::names::CONFIG_LAST_RELOAD_FAILED).set(if refused { 1.0 } else { 0.0 });
}

/// Stores an accepted config as the last good copy; failing to is logged, never fatal (the
/// running config is fine, only a later restart with a broken file would lack the fallback).
pub fn keep_last_good(state_dir: &Path, source: &str) {
    if let Err(e) = crate::config::last_good::save(state_dir, source) {
        tracing::warn!(error = %e, "cannot keep the last good config copy");
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
