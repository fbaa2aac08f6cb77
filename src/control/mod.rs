//! The control loop: the only writer of the route table. Every interval it closes the stats
//! window, judges each service's candidate (`decide`), advances plans, completes them (the
//! candidate becomes live) and rolls back; between ticks it applies commands (admin API,
//! reloads) and data-path hash alarms, in order, so a reload racing a rollback can never undo it.
//! Every change ends in one `commit` (`commit.rs`): swap the routes, persist, publish a status
//! snapshot that the admin API reads without asking the loop.
//!
//! Layout, by what each file holds:
//! - pure policy: `decide` (verdicts and decisions), `alert_rules` (duration-based alerts),
//!   `sequence` (which plans may run), `progress` (why a plan holds);
//! - state: `service` (resources, live color, candidate), `candidate`;
//! - shell: `measure` (the tick), `live` (a dead live pool, a dead candidate), `rollback`, `actions` (operator commands), `reconfigure`
//!   (config diff as a plan, then executed), `persist`, `commit`, `status`, `incident`.
//!
//! Hook points for other writers (fleet state, etc.): send a `Command`; every state change goes
//! through `Controller::commit`, the single place routes are stored, persisted and published.

mod actions;
pub mod alert_rules;
mod candidate;
mod commit;
pub mod decide;
mod error;
mod escalate;
mod fleet;
mod gauges;
mod health;
pub mod incident;
mod live;
mod measure;
mod persist;
pub mod progress;
mod reconfigure;
mod rollback;
mod sequence;
pub mod service;
pub mod status;

pub use error::{CommandError, Conflict};

use crate::alerts::Alerter;
use crate::config::Config;
use crate::route::{Router, ServiceKey};
use crate::stats::{Sample, WindowHandle};
use crate::upstream::client::UpstreamClient;
use crate::workers::Workers;
use arc_swap::ArcSwap;
pub use escalate::AckRequest;
use incident::Incident;
use service::ServiceControl;
pub use status::StatusDoc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// An operator's action on one service.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Action {
    /// Set green's weight: a temporary override of the plan and the file (`Resume` ends it).
    Weight(crate::route::Weight),
    /// Roll back now (trigger `manual`).
    Rollback,
    /// Clear the latch, any override and pause; a plan restarts from step 1.
    Reset,
    /// Freeze the plan where it is, hold clock included.
    Pause,
    /// End a pause (the hold clock runs on), or hand an override back to the plan at the step
    /// nearest below it.
    Resume,
    /// The next step now, with its weight (ends an override or a pause).
    Advance,
    /// The candidate is live now: the release is finished.
    Promote,
}

/// Reply channel of a command.
pub type Reply = oneshot::Sender<Result<serde_json::Value, CommandError>>;

/// Commands to the control loop.
pub enum Command {
    /// Apply a validated config (from the reloader).
    ApplyConfig(Box<Config>, Reply),
    /// A reload failed before reaching us: remember the error for `/status`.
    ReloadFailed(String),
    /// An operator's action.
    Act(String, Action, Reply),
    /// An operator acknowledges an incident (stops its escalation).
    Ack(String, AckRequest, Reply),
}

/// What the loop publishes for readers (admin API, demo).
#[derive(Default)]
pub struct Published {
    /// The `/status` document.
    pub status: ArcSwap<status::StatusDoc>,
    /// All incidents, oldest first.
    pub incidents: ArcSwap<Vec<Incident>>,
    /// Config loaded and every listener bound.
    pub ready: AtomicBool,
}

/// Handle to send commands and read what the loop published.
#[derive(Clone)]
pub struct ControlHandle {
    tx: mpsc::Sender<Command>,
    /// Published snapshots.
    pub published: Arc<Published>,
}

impl ControlHandle {
    /// Sends a command and waits for its reply.
    pub async fn call(&self, make: impl FnOnce(Reply) -> Command) -> Result<serde_json::Value, CommandError> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).await.map_err(|_| CommandError::NotRunning)?;
        rx.await.map_err(|_| CommandError::NotRunning)?
    }

    /// Reports a failed reload.
    pub async fn reload_failed(&self, err: String) {
        let _ = self.tx.send(Command::ReloadFailed(err)).await;
    }

    /// Whether `/readyz` should answer 200.
    pub fn ready(&self) -> bool {
        self.published.ready.load(Ordering::Acquire)
    }
}

/// The loop's state. Only `run` touches it.
pub struct Controller {
    cfg: Arc<Config>,
    services: Vec<ServiceControl>,
    router: Arc<Router>,
    window: WindowHandle,
    sink: mpsc::Sender<Sample>,
    alerter: Alerter,
    client: UpstreamClient,
    /// The runtimes listeners accept on (one per core with `--threads N`).
    workers: Workers,
    /// Request ids, access log and traces: started once, shared by every listener.
    telemetry: Arc<crate::observe::Telemetry>,
    alarms: mpsc::Sender<ServiceKey>,
    published: Arc<Published>,
    incidents: Vec<Incident>,
    next_key: u32,
    generation: u64,
    config_generation: u64,
    last_reload_error: Option<String>,
    state_error: Option<String>,
    /// `[fleet]`: the shared store's end in the loop (None = alone, state.json only).
    fleet: Option<crate::fleet::Link>,
    /// Rollback alerts waiting for the fleet store to say whose rollback it was.
    held_alerts: Vec<fleet::HeldAlerts>,
}

/// Channels the loop reads.
pub struct Inbox {
    commands: mpsc::Receiver<Command>,
    alarms: mpsc::Receiver<ServiceKey>,
    fleet: Option<mpsc::Receiver<crate::fleet::FromFleet>>,
}

/// Receives fleet store events, or waits forever without a fleet.
async fn fleet_event(rx: &mut Option<mpsc::Receiver<crate::fleet::FromFleet>>) -> Option<crate::fleet::FromFleet> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

impl Controller {
    /// Builds the loop with its first config: binds every listener and restores persisted
    /// state. Fails (binding nothing) if a listener cannot be bound or TLS material is bad.
    pub async fn start(
        cfg: Config,
        router: Arc<Router>,
        alerter: Alerter,
        workers: Workers,
    ) -> Result<(Controller, ControlHandle, Inbox), crate::error::ApplyError> {
        let (window_sink, window) = WindowHandle::spawn(1 << 16);
        let (tx, commands) = mpsc::channel(64);
        let (alarms_tx, alarms) = mpsc::channel(1024);
        let published = Arc::new(Published::default());
        let client = crate::upstream::client::build(&cfg.limits);
        let mut c = Controller {
            cfg: Arc::new(cfg.clone()),
            services: Vec::new(),
            router,
            window,
            sink: window_sink,
            alerter,
            client,
            workers,
            telemetry: crate::observe::Telemetry::start(&cfg),
            alarms: alarms_tx,
            published: published.clone(),
            incidents: Vec::new(),
            next_key: 1,
            generation: 0,
            config_generation: 0,
            last_reload_error: None,
            state_error: None,
            fleet: None,
            held_alerts: Vec::new(),
        };
        // HOOK(fleet): the store replaces state.json as the source of rollout state; until it
        // is read every service serves its live color only.
        let fleet_rx = cfg.fleet.as_ref().map(|f| {
            let (link, rx) = crate::fleet::spawn(f);
            c.fleet = Some(link);
            rx
        });
        c.incidents = incident::load(&cfg.state_dir);
        let saved = match crate::state::load(&cfg.state_dir) {
            Ok(_) if c.fleet.is_some() => None,
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(error = %e, "state file unusable; every service starts safe on blue");
                c.state_error = Some(e.to_string());
                None
            }
        };
        c.reconfigure(cfg, saved).await?;
        published.ready.store(true, Ordering::Release);
        Ok((c, ControlHandle { tx, published }, Inbox { commands, alarms, fleet: fleet_rx }))
    }

    /// Runs until `shutdown`, then drains every listener.
    pub async fn run(mut self, mut inbox: Inbox, shutdown: CancellationToken) {
        let mut interval = self.cfg.control.interval;
        let mut tick = ticker(interval);
        loop {
            tokio::select! {
                _ = tick.tick() => self.on_tick().await,
                Some(key) = inbox.alarms.recv() => self.on_hash_alarm(key).await,
                Some(cmd) = inbox.commands.recv() => self.on_command(cmd).await,
                Some(ev) = fleet_event(&mut inbox.fleet) => self.on_fleet(ev).await,
                _ = sleep_until(self.next_escalation()) => self.escalate_due().await,
                _ = shutdown.cancelled() => break,
            }
            if self.cfg.control.interval != interval {
                interval = self.cfg.control.interval;
                tick = ticker(interval);
            }
        }
        self.published.ready.store(false, Ordering::Release);
        // HOOK(fleet): revoke the lease first, so leadership moves while this replica drains.
        if let Some(link) = self.fleet.take() {
            link.close().await;
        }
        let listeners: Vec<_> = self.services.iter_mut().filter_map(|s| s.res.listener.take()).collect();
        for s in &self.services {
            s.res.health.cancel();
        }
        futures_util::future::join_all(listeners.into_iter().map(|l| l.drain())).await;
    }

    async fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::ApplyConfig(cfg, reply) => {
                let r = self.reconfigure(*cfg, None).await.map_err(CommandError::Invalid);
                if let Err(e) = &r {
                    self.reload_error(e.to_string());
                }
                let _ = reply.send(r.map(|_| serde_json::json!({"generation": self.config_generation})));
            }
            Command::ReloadFailed(e) => self.reload_error(e),
            Command::Act(name, action, reply) => {
                let r = self.act(&name, action).await;
                let _ = reply.send(r);
            }
            Command::Ack(id, req, reply) => {
                let r = self.acknowledge(&id, req).await;
                let _ = reply.send(r);
            }
        }
    }

    fn reload_error(&mut self, e: String) {
        metrics::counter!(crate::stats::names::CONFIG_RELOADS_TOTAL, "result" => "error").increment(1);
        tracing::error!(error = %e, "config reload rejected; keeping the running config");
        self.last_reload_error = Some(e);
        self.publish();
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.services.iter().position(|s| &*s.cfg.name == name)
    }

    fn by_name(&self, name: &str) -> Option<&ServiceControl> {
        self.services.iter().find(|s| &*s.cfg.name == name)
    }
}

fn ticker(every: std::time::Duration) -> tokio::time::Interval {
    let mut t = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    t
}

/// Sleeps until `at`, or forever when there is nothing to wait for.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
