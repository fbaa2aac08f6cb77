//! Control state of one service and the rules that turn it into a weight and a state name.
//! Precedence, highest first: rollback latch > admin action > plan > file weight.

use super::decide::Streaks;
use crate::config::{Mode, ServiceConfig};
use crate::listener::Listener;
use crate::route::{Policy, Route, ServiceKey, Weight};
use crate::stats::{Measurement, MeasurementView, ServiceStats};
use crate::upstream::Pool;
use std::collections::VecDeque;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How many measurements `/status` keeps for sparklines.
pub const HISTORY: usize = 30;

/// The state names of `/status` and `switchyard_service_state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// All traffic on blue, nothing in progress.
    Stable,
    /// Traffic split.
    Canary,
    /// All traffic on green.
    Promoted,
    /// Latched on blue after a rollback.
    RolledBack,
    /// Plan paused by an operator.
    Paused,
}

impl State {
    /// All states, for the one-hot gauge.
    pub const ALL: [State; 5] = [State::Stable, State::Canary, State::Promoted, State::RolledBack, State::Paused];

    /// Name.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Stable => "stable",
            State::Canary => "canary",
            State::Promoted => "promoted",
            State::RolledBack => "rolled_back",
            State::Paused => "paused",
        }
    }
}

/// One point of the sparkline history.
#[derive(Clone, Debug, serde::Serialize)]
pub struct HistoryPoint {
    /// Measurement time.
    pub at: String,
    /// `[blue, green]`.
    pub colors: [MeasurementView; 2],
}

/// A rollback whose report awaits validation at the next measurement.
#[derive(Clone, Debug)]
pub struct PendingReport {
    /// Incident id.
    pub incident: String,
    /// `green_started` at the swap.
    pub green_started_at_swap: u64,
}

/// Everything the control loop knows about a service.
pub struct ServiceControl {
    /// Identity.
    pub key: ServiceKey,
    /// Current config.
    pub cfg: ServiceConfig,
    /// Hot-path statistics (kept across reloads).
    pub stats: Arc<ServiceStats>,
    /// Split counter (kept across reloads).
    pub split: Arc<AtomicU64>,
    /// Blue pool.
    pub blue: Arc<Pool>,
    /// Green pool.
    pub green: Arc<Pool>,
    /// Request policy.
    pub policy: Arc<Policy>,
    /// Rolled back: green gets nothing until reset or a new release.
    pub latched: bool,
    /// Weight set by an operator.
    pub admin_weight: Option<Weight>,
    /// Plan paused.
    pub paused: bool,
    /// An operator opened the manual gate.
    pub gate_open: bool,
    /// Current plan step.
    pub step: Option<usize>,
    /// When the step started (monotonic, for the hold).
    pub step_since: Instant,
    /// When the step started (wall clock, persisted).
    pub step_since_wall: SystemTime,
    /// Healthy measurements at this step.
    pub healthy_at_step: u32,
    /// Trigger streaks.
    pub streaks: Streaks,
    /// First bad measurement of the current streak: time and `green_started` then.
    pub first_bad: Option<(SystemTime, u64)>,
    /// Hash alarms from the data path since the last measurement.
    pub hash_alarms: u32,
    /// Last incident.
    pub incident: Option<String>,
    /// Report awaiting validation.
    pub pending_report: Option<PendingReport>,
    /// Last window measurement `[blue, green]`.
    pub last: [Measurement; 2],
    /// Sparkline history.
    pub history: VecDeque<HistoryPoint>,
    /// Weight in the stored route table.
    pub weight: Weight,
    /// Stops the health task.
    pub health: CancellationToken,
    /// The running listener.
    pub listener: Option<Listener>,
    /// Duration-based alert rules: since when each is bad, and whether it fired.
    pub alert_rules: [[(Option<Instant>, bool); 2]; 2],
}

impl ServiceControl {
    /// The weight the rules give, given whether the sequence lets its plan run.
    pub fn target_weight(&self) -> Weight {
        if self.latched {
            return Weight::ZERO;
        }
        if let Some(w) = self.admin_weight {
            return w;
        }
        match self.cfg.mode {
            Mode::Progressive => self.step.map_or(Weight::ZERO, |i| self.cfg.plan.steps[i]),
            Mode::Manual => self.cfg.green_weight,
        }
    }

    /// The state name.
    pub fn state(&self) -> State {
        if self.latched {
            State::RolledBack
        } else if self.paused {
            State::Paused
        } else if self.weight == Weight::ZERO {
            State::Stable
        } else if self.weight == Weight::FULL {
            State::Promoted
        } else {
            State::Canary
        }
    }

    /// Promoted for the purpose of the migration sequence.
    pub fn promoted(&self) -> bool {
        !self.latched && self.target_weight() == Weight::FULL
    }

    /// In a plan that the control loop drives (not overridden by an operator).
    pub fn plan_active(&self) -> bool {
        self.cfg.mode == Mode::Progressive && self.step.is_some() && !self.latched && self.admin_weight.is_none()
    }

    /// Starts (or restarts) the plan at step 0.
    pub fn start_plan(&mut self) {
        self.step = Some(0);
        self.enter_step();
    }

    /// Resets the per-step bookkeeping after moving to a step.
    pub fn enter_step(&mut self) {
        self.step_since = Instant::now();
        self.step_since_wall = SystemTime::now();
        self.healthy_at_step = 0;
        self.gate_open = false;
    }

    /// Forgets the analysis of the previous candidate.
    pub fn fresh_analysis(&mut self) {
        self.streaks = Streaks::default();
        self.first_bad = None;
        self.hash_alarms = 0;
        self.healthy_at_step = 0;
    }

    /// The route for the next table.
    pub fn route(&self) -> Arc<Route> {
        Arc::new(Route {
            key: self.key,
            name: self.cfg.name.clone(),
            weight: self.weight,
            sticky: self.cfg.sticky.clone(),
            force_header: self.cfg.force_header.clone(),
            blue: self.blue.clone(),
            green: self.green.clone(),
            split: self.split.clone(),
            stats: self.stats.clone(),
            policy: self.policy.clone(),
        })
    }
}
