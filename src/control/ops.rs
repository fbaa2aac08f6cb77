//! Operator actions, the migration sequence and persistence.

use super::decide::{TriggerId, Trip};
use super::{Action, CommandError, Conflict, Controller};
use crate::config::Mode;
use crate::route::Weight;
use crate::state::{ServiceState, StateFile};
use std::time::UNIX_EPOCH;
use tokio::time::Instant;

impl Controller {
    /// Applies an operator action and answers with the service's new status.
    pub(super) async fn act(&mut self, name: &str, action: Action) -> Result<serde_json::Value, CommandError> {
        let i = self.index(name).ok_or_else(|| CommandError::NoService(name.into()))?;
        let progressive = self.services[i].cfg.mode == Mode::Progressive;
        match action {
            Action::Rollback => {
                if self.services[i].latched {
                    return Err(Conflict::AlreadyRolledBack(name.into()).into());
                }
                let trip = Trip { trigger: TriggerId::Manual, value: 0.0, threshold: "operator".into() };
                self.rollback(i, trip, Instant::now()).await;
                return Ok(self.service_status(i));
            }
            Action::Weight(w) => {
                if self.services[i].latched && w != Weight::ZERO {
                    return Err(Conflict::WeightWhileRolledBack(name.into()).into());
                }
                self.services[i].admin_weight = Some(w);
            }
            Action::Reset => {
                let s = &mut self.services[i];
                s.latched = false;
                s.admin_weight = None;
                s.paused = false;
                s.pending_report = None;
                s.fresh_analysis();
                s.step = None;
                let key = s.key;
                self.window.forget(key).await;
            }
            Action::Pause | Action::Resume | Action::Advance if !progressive => {
                return Err(Conflict::NotProgressive(name.into()).into());
            }
            Action::Pause => self.services[i].paused = true,
            Action::Resume => self.services[i].paused = false,
            Action::Advance => {
                let s = &mut self.services[i];
                if s.latched {
                    return Err(Conflict::RolledBack(name.into()).into());
                }
                match s.step {
                    None => s.start_plan(),
                    Some(st) if st + 1 < s.cfg.plan.steps.len() => {
                        s.step = Some(st + 1);
                        s.enter_step();
                    }
                    Some(_) => return Err(Conflict::AtLastStep(name.into()).into()),
                }
            }
            Action::Promote => {
                let s = &mut self.services[i];
                if s.latched {
                    return Err(Conflict::RolledBack(name.into()).into());
                }
                if progressive {
                    // Nothing is left to hold: a pause would only mislabel a finished plan.
                    s.paused = false;
                    s.step = Some(s.cfg.plan.steps.len() - 1);
                    s.enter_step();
                } else {
                    s.admin_weight = Some(Weight::FULL);
                }
            }
        }
        tracing::info!(service = name, ?action, "operator action applied");
        self.after_change().await;
        Ok(self.service_status(i))
    }

    /// Starts the plans the migration sequence allows. A rollback anywhere in the order halts it.
    pub(super) fn sequence(&mut self) {
        let order = self.cfg.rollout.order.clone();
        let halted = self.halted();
        let mut previous_promoted = true;
        for name in &order {
            let Some(i) = self.index(name) else { continue };
            let s = &mut self.services[i];
            if s.cfg.mode != Mode::Progressive {
                continue;
            }
            let may_start = !halted && (previous_promoted || !self.cfg.rollout.sequential);
            if s.step.is_none() && !s.latched && s.admin_weight.is_none() && may_start {
                tracing::info!(service = %s.cfg.name, "plan starts");
                s.start_plan();
            }
            previous_promoted = previous_promoted && s.promoted();
        }
        for s in &mut self.services {
            let in_order = order.contains(&s.cfg.name);
            if !in_order
                && s.cfg.mode == Mode::Progressive
                && s.step.is_none()
                && !s.latched
                && s.admin_weight.is_none()
            {
                s.start_plan();
            }
        }
    }

    /// Whether the sequence is halted: a progressive service in the order is rolled back.
    /// (Manual services are driven by hand; their rollbacks do not stop other plans.)
    pub(super) fn halted(&self) -> bool {
        self.cfg.rollout.order.iter().any(|n| {
            self.index(n).is_some_and(|i| self.services[i].latched && self.services[i].cfg.mode == Mode::Progressive)
        })
    }

    /// After any state change: sequence, weights, swap, persist, publish.
    pub(super) async fn after_change(&mut self) {
        self.sequence();
        self.refresh_weights();
        self.store_routes();
        self.save_state().await;
        self.publish();
    }

    /// Writes `state.json` atomically (off the runtime threads).
    pub(super) async fn save_state(&mut self) {
        let mut file = StateFile { version: 1, sequence_halted: self.halted(), ..Default::default() };
        for s in &self.services {
            file.services.insert(
                s.cfg.name.to_string(),
                ServiceState {
                    mode: match s.cfg.mode {
                        Mode::Manual => "manual".into(),
                        Mode::Progressive => "progressive".into(),
                    },
                    state: s.state().as_str().into(),
                    step: s.step,
                    step_since_ms: s
                        .step
                        .map(|_| s.step_since_wall.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64),
                    weight: s.weight.percent(),
                    latched: s.latched,
                    release: s.cfg.green.release.as_deref().map(String::from),
                    admin_weight: s.admin_weight.map(|w| w.percent()),
                    paused: s.paused,
                    incident: s.incident.clone(),
                },
            );
        }
        let dir = self.cfg.state_dir.clone();
        match tokio::task::spawn_blocking(move || crate::state::save(&dir, &file)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "cannot persist state"),
            Err(e) => tracing::error!(error = %e, "state writer panicked"),
        }
    }
}
