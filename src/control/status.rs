//! The `/status` document, built by the loop after every change and published for readers.
//!
//! Typed so in-crate readers (`App::service_addr`, `switchyard status`, the demo) cannot drift
//! from the writer. Field names and shapes are an external contract (scripts, the status page,
//! dashboards). Fields are declared in alphabetical order, the order the map-backed `json!`
//! document this replaced wrote them in (the embedded measurement keeps its own order, as in
//! incidents); key order is not part of the contract. `tests/it/status_doc.rs` pins the key set.

use super::service::{pool_cfg, ServiceControl};
use super::Controller;
use crate::config::Mode;
use crate::fleet::FleetStatus;
use crate::stats::MeasurementView;
use crate::types::State;
use crate::Color;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The whole `/status` document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusDoc {
    pub config: ConfigStatus,
    pub control: ControlStatus,
    /// Absent without `[fleet]`: a single replica has no fleet to describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<FleetStatus>,
    /// The route table's generation, bumped on every stored change (a poller can tell a new
    /// routing from the same one). Not the config's: that is `config.generation`, the count of
    /// configs applied, which `switchyard status` and `switchyard_config_generation` show.
    pub generation: u64,
    /// Of the whole proxy; `None` (null) without requests.
    pub health_score: Option<f64>,
    pub sequence: SequenceStatus,
    pub services: Vec<ServiceStatus>,
    /// `[tracing]` as readers need it: the trace UI that incident examples link to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<TracingStatus>,
}

/// Where trace ids can be looked up.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TracingStatus {
    /// Trace UI base URL (`[tracing] ui`); a trace is at `{ui}/trace/{trace_id}` (Jaeger).
    pub ui: Option<String>,
}

impl StatusDoc {
    /// The entry of service `name`.
    pub fn service(&self, name: &str) -> Option<&ServiceStatus> {
        self.services.iter().find(|s| *s.name == *name)
    }
}

/// The migration sequence of `[rollout]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SequenceStatus {
    /// The first progressive service in `order` not yet promoted.
    pub current: Option<Arc<str>>,
    /// A rollback stops the sequence until an operator resumes it.
    pub halted: bool,
    pub order: Vec<Arc<str>>,
    pub sequential: bool,
}

/// The config file in force.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigStatus {
    pub generation: u64,
    /// Why the last reload was refused; the previous config keeps running meanwhile.
    pub last_reload_error: Option<String>,
    pub path: String,
    /// Why `state.json` could not be read at start (every service then started safe on blue).
    pub state_error: Option<String>,
}

/// The measurement settings, so a reader can interpret windows and rates.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ControlStatus {
    pub interval_ms: u64,
    pub min_samples: u64,
    pub window_ms: u64,
}

/// A `{blue, green}` pair, the shape every per-color part of a service's status has.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ByColor<T> {
    pub blue: T,
    pub green: T,
}

impl<T> ByColor<T> {
    fn from_fn(mut f: impl FnMut(Color) -> T) -> Self {
        ByColor { blue: f(Color::Blue), green: f(Color::Green) }
    }

    /// The entry of color `c`.
    pub fn get(&self, c: Color) -> &T {
        match c {
            Color::Blue => &self.blue,
            Color::Green => &self.green,
        }
    }
}

/// One service's entry in `/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceStatus {
    /// Green's share set by an operator (percent), overriding plan and file.
    pub admin_weight: Option<f64>,
    pub candidate: Option<Color>,
    pub candidate_release: Option<Arc<str>>,
    /// The candidate's share in percent (0 without a candidate): the role's view of
    /// `green_weight`, whichever color the candidate is in.
    #[serde(default)]
    pub candidate_weight: f64,
    pub endpoints: ByColor<Vec<EndpointStatus>>,
    /// Green's share in percent (states and dashboards describe green, as before colors alternated).
    pub green_weight: f64,
    /// Over the last window, one decimal; `None` without requests.
    pub health_score: Option<f64>,
    pub history: ByColor<Vec<HistoryStatus>>,
    /// The last rollback's incident id.
    pub incident: Option<String>,
    /// `escalated to level 2`, ...; `None` when the incident does not page.
    pub incident_paging: Option<String>,
    pub latched: bool,
    /// The bound address (port 0 in the config resolved).
    pub listen: String,
    pub live: Color,
    /// The live pool has no healthy endpoint: every request to it fails (the page's banner).
    #[serde(default)]
    pub live_down: bool,
    pub live_release: Option<Arc<str>>,
    /// The live color's share in percent.
    #[serde(default)]
    pub live_weight: f64,
    pub mode: Mode,
    pub name: Arc<str>,
    /// The candidate's share set by an operator (percent): a temporary override of the plan,
    /// ended by `resume` (back to the plan) or `promote` (release finished).
    #[serde(default)]
    pub override_weight: Option<f64>,
    pub paused: bool,
    /// `None` without a candidate.
    pub progress: Option<ProgressStatus>,
    /// Green's configured release.
    pub release: Option<Arc<str>>,
    pub state: State,
    /// `None` unless a progressive plan is at a step.
    pub step: Option<StepStatus>,
    pub window: ByColor<MeasurementView>,
}

/// Where a progressive plan stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepStatus {
    /// A manual gate on this step waits for an operator's `advance`.
    pub gated: bool,
    pub healthy_measurements: u32,
    pub index: usize,
    pub of: usize,
    pub since: String,
    pub weights: Vec<f64>,
}

/// Why the candidate's plan is (not) advancing, in words (`switchyard status`, the status page).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProgressStatus {
    /// `healthy/needed`, e.g. `1/3`.
    pub healthy: Option<String>,
    pub hold_remaining: Option<String>,
    pub hold_remaining_ms: Option<u64>,
    pub reason: Option<String>,
    /// `index/of`, one-based, e.g. `2/3`.
    pub step: Option<String>,
}

/// One endpoint of a pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointStatus {
    pub address: String,
    pub ejected: bool,
    pub healthy: bool,
}

/// One sparkline point: the part of a measurement the status page draws.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryStatus {
    pub at: String,
    pub compliance: Option<f64>,
    pub error_rate: f64,
    pub p95_ms: f64,
    pub samples: u64,
}

/// The share color `c` gets when green gets `green`, in percent.
fn share_of(green: crate::route::Weight, c: Color) -> f64 {
    super::service::as_green(c, green).percent()
}

/// An override, named as one, with its way back.
fn override_reason(s: &ServiceControl, w: crate::route::Weight) -> String {
    if s.cfg.mode == Mode::Manual {
        return format!("operator weight {} % (resume: back to the file's weight)", w.percent());
    }
    let i = super::candidate::Candidate::step_at_or_below(&s.cfg, w);
    format!(
        "operator weight {} % (override; resume: back to the plan at step {}/{})",
        w.percent(),
        i + 1,
        s.cfg.plan.steps.len()
    )
}

impl Controller {
    /// One service's entry in `/status`.
    pub(super) fn service_status(&self, i: usize) -> ServiceStatus {
        let s = &self.services[i];
        let c = s.candidate.as_ref();
        let step = match (s.cfg.mode, c.and_then(|c| c.step.map(|i| (c, i)))) {
            (Mode::Progressive, Some((c, idx))) => Some(StepStatus {
                gated: c.gated(&s.cfg),
                healthy_measurements: c.healthy_at_step,
                index: idx,
                of: s.cfg.plan.steps.len(),
                since: super::incident::timestamp(c.step_since_wall),
                weights: s.cfg.plan.steps.iter().map(|w| w.percent()).collect(),
            }),
            _ => None,
        };
        let history = |c: Color| {
            s.history
                .iter()
                .map(|h| {
                    let m = &h.colors[c.index()];
                    HistoryStatus {
                        at: h.at.clone(),
                        compliance: m.compliance,
                        error_rate: m.error_rate,
                        p95_ms: m.p95_ms,
                        samples: m.samples,
                    }
                })
                .collect()
        };
        let endpoints = |c: Color| {
            s.res.pools[c.index()]
                .endpoints
                .iter()
                .map(|e| EndpointStatus {
                    address: e.authority.as_str().to_string(),
                    ejected: e.ejected(),
                    healthy: e.healthy(),
                })
                .collect()
        };
        let paging = self.paging(s.incident.as_deref());
        ServiceStatus {
            admin_weight: c.and_then(|c| c.admin_share.map(|w| super::service::as_green(c.color, w).percent())),
            candidate: c.map(|c| c.color),
            candidate_release: c.and_then(|c| pool_cfg(&s.cfg, c.color).release.clone()),
            candidate_weight: c.map_or(0.0, |c| share_of(s.weight, c.color)),
            endpoints: ByColor::from_fn(endpoints),
            green_weight: s.weight.percent(),
            health_score: super::health::rounded(self.health(i)),
            history: ByColor::from_fn(history),
            incident: s.incident.clone(),
            incident_paging: paging,
            latched: c.is_some_and(|c| c.latched),
            listen: s.res.listener.as_ref().map_or(s.cfg.listen, |l| l.addr).to_string(),
            live: s.live,
            live_down: s.live_down,
            live_weight: share_of(s.weight, s.live),
            live_release: pool_cfg(&s.cfg, s.live).release.clone(),
            mode: s.cfg.mode,
            name: s.cfg.name.clone(),
            override_weight: c.and_then(|c| c.admin_share).map(|w| w.percent()),
            paused: c.is_some_and(|c| c.paused),
            progress: self.progress(s),
            release: s.cfg.green.release.clone(),
            state: s.state(),
            step,
            window: ByColor::from_fn(|c| s.last[c.index()].view()),
        }
    }

    /// A service's status as a command reply (replies share one JSON channel with reload and ack).
    pub(super) fn status_reply(&self, i: usize) -> serde_json::Value {
        serde_json::to_value(self.service_status(i)).expect("the status document serializes")
    }

    /// Where the candidate's plan stands and why it is not advancing (`None` without a candidate).
    fn progress(&self, s: &ServiceControl) -> Option<ProgressStatus> {
        let c = s.candidate.as_ref()?;
        let steps = s.cfg.plan.steps.len();
        let needed = self.cfg.rollout.healthy_measurements;
        let left = c.step.map(|_| s.cfg.plan.hold.saturating_sub(c.at_step_for()));
        let reason = if c.latched {
            Some("rolled back".to_string())
        } else if c.paused {
            Some("paused".into())
        } else if let Some(w) = c.admin_share {
            Some(override_reason(s, w))
        } else if s.cfg.mode == Mode::Manual {
            Some("manual mode".into())
        } else if c.step.is_none() {
            Some(match self.waiting_for(&s.cfg.name) {
                _ if self.halted() => "sequence halted".into(),
                Some(n) => format!("waiting for {n}"),
                None => "not started".into(),
            })
        } else {
            c.holding.clone()
        };
        // A rolled-back candidate is at no step: it gets nothing until reset or a new release.
        let step = c.step.filter(|_| !c.latched);
        let left = left.filter(|_| !c.latched);
        Some(ProgressStatus {
            // Healthy measurements keep counting while the hold runs; past `needed` they add nothing.
            healthy: step.map(|_| format!("{}/{needed}", c.healthy_at_step.min(needed))),
            hold_remaining: left.map(super::progress::fmt_left),
            hold_remaining_ms: left.map(|d| d.as_millis() as u64),
            reason,
            step: step.map(|i| format!("{}/{steps}", i + 1)),
        })
    }

    /// Rebuilds and publishes `/status` and the incident list.
    pub(super) fn publish(&self) {
        let order = &self.cfg.rollout.order;
        let current =
            order.iter().find(|n| self.by_name(n).is_some_and(|s| s.cfg.mode == Mode::Progressive && !s.promoted()));
        let doc = StatusDoc {
            config: ConfigStatus {
                generation: self.config_generation,
                last_reload_error: self.last_reload_error.clone(),
                path: self.cfg.source.display().to_string(),
                state_error: self.state_error.clone(),
            },
            control: ControlStatus {
                interval_ms: self.cfg.control.interval.as_millis() as u64,
                min_samples: self.cfg.control.min_samples,
                window_ms: self.cfg.control.window.as_millis() as u64,
            },
            fleet: self.fleet.as_ref().map(|link| link.status()),
            generation: self.generation,
            health_score: super::health::rounded(self.overall_health()),
            sequence: SequenceStatus {
                current: current.cloned(),
                halted: self.halted(),
                order: order.clone(),
                sequential: self.cfg.rollout.sequential,
            },
            services: (0..self.services.len()).map(|i| self.service_status(i)).collect(),
            tracing: self.cfg.tracing.ui.clone().map(|ui| TracingStatus { ui: Some(ui) }),
        };
        self.published.status.store(Arc::new(doc));
        self.published.incidents.store(Arc::new(self.incidents.clone()));
    }
}
