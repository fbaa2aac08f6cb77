//! Wiring: config → control loop (routes, listeners, health) → admin API → reload watcher.
//! Owns shutdown: cancelling stops accepting everywhere and drains in-flight requests.

use crate::admin::{self, Admin, Token};
use crate::alerts::Alerter;
use crate::config::Config;
use crate::control::{ControlHandle, Controller, StatusDoc};
use crate::error::ServeError;
use crate::route::Router;
use crate::workers::Workers;
use metrics_exporter_prometheus::PrometheusHandle;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Clone, Debug)]
pub struct AppOptions {
    /// Config file (for reloads and `/status`).
    pub config_path: PathBuf,
    /// Watch the config file and SIGHUP.
    pub watch: bool,
    pub token: Option<Token>,
    /// Debounce of file events.
    pub debounce: Duration,
    /// Runtimes that accept and serve connections: one `current_thread` runtime per core
    /// (`--threads N`), or by default the runtime `App::start` is called on.
    pub workers: Option<Workers>,
}

impl AppOptions {
    /// Options for a config file, watching it, without a token.
    pub fn new(config_path: impl Into<PathBuf>) -> Self {
        AppOptions {
            config_path: config_path.into(),
            watch: true,
            token: None,
            debounce: Duration::from_millis(200),
            workers: None,
        }
    }
}

/// The process-wide Prometheus recorder, installed on first use (the `metrics` facade is global).
pub fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let h = crate::stats::names::install_recorder().expect("first and only recorder install");
            let up = h.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(Duration::from_secs(5));
                    up.run_upkeep();
                })
                .expect("spawn upkeep thread");
            h
        })
        .clone()
}

/// A running Switchyard.
pub struct App {
    pub control: ControlHandle,
    pub admin_addr: SocketAddr,
    stop: CancellationToken,
    /// Every task the app spawns directly (control loop, admin server, reload watcher): shutdown
    /// waits for all of them. The control loop in turn drains its listeners, whose trackers hold
    /// every connection and upgrade tunnel.
    tasks: TaskTracker,
}

impl App {
    /// Starts everything; returns once every listener is bound.
    pub async fn start(cfg: Config, opts: AppOptions) -> Result<App, ServeError> {
        crate::tls::install_provider();
        let metrics = prometheus();
        if !cfg.admin.listen.ip().is_loopback() && opts.token.is_none() {
            return Err(ServeError::Unsafe(format!(
                "admin.listen {} is not loopback and no admin token is set (SWITCHYARD_ADMIN_TOKEN or admin.token_file)",
                cfg.admin.listen
            )));
        }
        let admin_listener = tokio::net::TcpListener::bind(cfg.admin.listen)
            .await
            .map_err(|source| ServeError::Bind { addr: cfg.admin.listen, what: "admin".into(), source })?;
        let admin_addr = admin_listener.local_addr()?;
        let alerter = Alerter::spawn(cfg.alerts.clone());
        let router = Arc::new(Router::new());
        let workers = opts.workers.clone().unwrap_or_else(Workers::current);
        let (controller, control, inbox) = Controller::start(cfg, router, alerter, workers).await?;
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        tasks.spawn(controller.run(inbox, stop.clone()));
        let reload: admin::ReloadFn = {
            let (path, control) = (opts.config_path.clone(), control.clone());
            Arc::new(move || {
                let (path, control) = (path.clone(), control.clone());
                Box::pin(async move { crate::reload::reload_once(&path, &control).await })
            })
        };
        let admin = Arc::new(Admin { control: control.clone(), metrics, token: opts.token.clone(), reload });
        tasks.spawn(admin::serve(admin_listener, admin, stop.clone()));
        if opts.watch {
            let path = opts.config_path.clone();
            if let Err(e) = crate::reload::spawn(path, control.clone(), opts.debounce, stop.clone(), &tasks) {
                tracing::warn!(error = %e, "config watcher unavailable; reload with SIGHUP or POST /reload");
            }
        }
        tracing::debug!(admin = %admin_addr, "app started");
        tasks.close();
        Ok(App { control, admin_addr, stop, tasks })
    }

    /// The published `/status` document.
    pub fn status_doc(&self) -> Arc<StatusDoc> {
        self.control.published.status.load_full()
    }

    /// Every incident the loop knows (in a fleet: the fleet's), oldest first.
    pub fn incidents(&self) -> Arc<Vec<crate::control::incident::Incident>> {
        self.control.published.incidents.load_full()
    }

    /// The published `/status` document as the admin endpoint serves it, for readers that
    /// treat it as the external JSON contract (tests, scripts embedding the app).
    pub fn status(&self) -> serde_json::Value {
        serde_json::to_value(&*self.status_doc()).expect("the status document serializes")
    }

    /// Bound address of a service's listener.
    pub fn service_addr(&self, name: &str) -> Option<SocketAddr> {
        self.status_doc().service(name)?.listen.parse().ok()
    }

    /// Stops accepting, drains in-flight requests (up to `limits.drain_timeout`, then closes
    /// what is left), stops the loop, and returns once every task it started has ended.
    pub async fn shutdown(self) {
        self.stop.cancel();
        self.tasks.wait().await;
    }
}
