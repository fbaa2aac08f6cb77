//! Control state of one service, split by meaning: what it runs on (`Resources`: pools, listener,
//! health task, statistics), which color is live, and the release under judgement in the idle
//! color (`Candidate`: plan, streaks, latch). Precedence for the candidate's share, highest
//! first: rollback latch > admin action > plan > file weight.

use crate::config::{Mode, PoolConfig, ServiceConfig};
use crate::listener::Listener;
use crate::route::{Policy, Route, ServiceKey, Weight};
use crate::stats::{Measurement, MeasurementView, ServiceStats};
use crate::upstream::Pool;
use crate::Color;
use std::collections::VecDeque;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub use super::candidate::{Candidate, PendingReport};

/// How many measurements `/status` keeps for sparklines.
pub const HISTORY: usize = 30;

pub use crate::types::State;

/// One point of the sparkline history.
#[derive(Clone, Debug, serde::Serialize)]
pub struct HistoryPoint {
    /// Measurement time.
    pub at: String,
    /// `[blue, green]`.
    pub colors: [MeasurementView; 2],
}

/// What a service runs on. Kept across reloads where the config behind it is unchanged, so
/// ejection state, pooled connections, the split counter and metric handles survive.
pub struct Resources {
    /// Hot-path statistics.
    pub stats: Arc<ServiceStats>,
    /// Counter behind the exact split.
    pub split: Arc<AtomicU64>,
    /// `[blue, green]`.
    pub pools: [Arc<Pool>; 2],
    /// Config-derived request policy.
    pub policy: Arc<Policy>,
    /// Stops the health task.
    pub health: CancellationToken,
    /// The running listener (taken on drain).
    pub listener: Option<Listener>,
}

/// Everything the control loop knows about a service.
pub struct ServiceControl {
    /// Identity for the life of the process.
    pub key: ServiceKey,
    /// Current config.
    pub cfg: ServiceConfig,
    /// Pools, listener, health.
    pub res: Resources,
    /// The color that takes all traffic when no candidate does (the current release).
    pub live: Color,
    /// The release in the idle color while it is being rolled out or judged; `None` once a plan
    /// completed and the idle pool still holds the retired release (it never gets traffic again).
    pub candidate: Option<Candidate>,
    /// Last incident.
    pub incident: Option<String>,
    /// Last window measurement `[blue, green]`.
    pub last: [Measurement; 2],
    /// Sparkline history.
    pub history: VecDeque<HistoryPoint>,
    /// Green weight in the stored route table.
    pub weight: Weight,
    /// The live pool has no available endpoint (noticed at the last tick; `/status` `live_down`).
    pub live_down: bool,
    /// Duration-based alert rule timers. On the service, not the candidate: they watch the
    /// live color too.
    pub alert_rules: super::alert_rules::RuleTimers,
}

/// What identifies a release in a pool: a change of either is a new deployment.
pub fn fingerprint(p: &PoolConfig) -> String {
    let mut eps: Vec<&str> = p.endpoints.iter().map(|a| a.as_str()).collect();
    eps.sort_unstable();
    format!("{}@{}", p.release.as_deref().unwrap_or("-"), eps.join(","))
}

/// The pool config of a color.
pub fn pool_cfg(cfg: &ServiceConfig, c: Color) -> &PoolConfig {
    match c {
        Color::Blue => &cfg.blue,
        Color::Green => &cfg.green,
    }
}

impl ServiceControl {
    /// A service that has never run: blue live, green the candidate.
    pub fn new(key: ServiceKey, cfg: ServiceConfig, res: Resources) -> Self {
        ServiceControl {
            key,
            cfg,
            res,
            live: Color::Blue,
            candidate: Some(Candidate::new(Color::Green)),
            incident: None,
            last: Default::default(),
            history: VecDeque::new(),
            weight: Weight::ZERO,
            live_down: false,
            alert_rules: Default::default(),
        }
    }

    /// The idle color (where the next release goes).
    pub fn idle(&self) -> Color {
        other(self.live)
    }

    /// The green weight the rules give.
    pub fn target_weight(&self) -> Weight {
        let Some(c) = &self.candidate else { return all_on(self.live) };
        as_green(c.color, c.share(&self.cfg))
    }

    /// The state name.
    pub fn state(&self) -> State {
        match &self.candidate {
            Some(c) if c.latched => State::RolledBack,
            Some(c) if c.paused => State::Paused,
            _ if self.weight == Weight::ZERO => State::Stable,
            _ if self.weight == Weight::FULL => State::Promoted,
            _ => State::Canary,
        }
    }

    /// Promoted for the purpose of the migration sequence: the candidate has all traffic, or
    /// its plan completed and it is live.
    pub fn promoted(&self) -> bool {
        self.candidate.as_ref().is_none_or(|c| !c.latched && c.share(&self.cfg) == Weight::FULL)
    }

    /// Rolled back and progressive: halts the migration sequence.
    pub fn halts_sequence(&self) -> bool {
        self.cfg.mode == Mode::Progressive && self.candidate.as_ref().is_some_and(|c| c.latched)
    }

    /// In a plan that the control loop drives (not overridden by an operator).
    pub fn plan_active(&self) -> bool {
        self.cfg.mode == Mode::Progressive && self.candidate.as_ref().is_some_and(|c| c.drives_plan())
    }

    /// The candidate has finished its plan: it becomes live and the old live pool idle (and
    /// retired: it gets no traffic until a new release is deployed into it).
    pub fn complete(&mut self) {
        if let Some(c) = self.candidate.take() {
            self.live = c.color;
        }
    }

    /// A new release was deployed into the idle pool (or an operator reset the candidate).
    pub fn new_candidate(&mut self) {
        self.candidate = Some(Candidate::new(self.idle()));
    }

    /// Colors a force header may select: live, and a candidate that is neither rolled back nor
    /// paused. Never a retired release.
    pub fn forcible(&self) -> [bool; 2] {
        let mut ok = [false; 2];
        ok[self.live.index()] = true;
        if let Some(c) = self.candidate.as_ref().filter(|c| !c.latched && !c.paused) {
            ok[c.color.index()] = true;
        }
        ok
    }

    /// The route for the next table.
    pub fn route(&self) -> Arc<Route> {
        Arc::new(Route {
            key: self.key,
            name: self.cfg.name.clone(),
            weight: self.weight,
            sticky: self.cfg.sticky.clone(),
            force_header: self.cfg.force_header.clone(),
            forcible: self.forcible(),
            live: self.live,
            candidate: self.candidate.as_ref().map(|c| c.color),
            blue: self.res.pools[0].clone(),
            green: self.res.pools[1].clone(),
            split: self.res.split.clone(),
            stats: self.res.stats.clone(),
            policy: self.res.policy.clone(),
        })
    }
}

/// Green's weight when color `c` gets `share`, and (the same map) `c`'s share when green gets
/// `share`. The control state speaks the candidate's share; the route table, `state.json`'s
/// `admin_weight` and the API's `{"green": ..}` speak green's: every crossing goes through here.
pub fn as_green(c: Color, share: Weight) -> Weight {
    match c {
        Color::Green => share,
        Color::Blue => share.complement(),
    }
}

/// The other color.
pub fn other(c: Color) -> Color {
    match c {
        Color::Blue => Color::Green,
        Color::Green => Color::Blue,
    }
}

fn all_on(c: Color) -> Weight {
    match c {
        Color::Blue => Weight::ZERO,
        Color::Green => Weight::FULL,
    }
}
