//! Operator actions on one service's candidate. A weight from the API is green's share (the
//! API's meaning since before colors alternated); it is turned into the candidate's share here.

use super::decide::{TriggerId, Trip};
use super::service::ServiceControl;
use super::{Action, CommandError, Conflict, Controller};
use crate::config::Mode;
use crate::route::Weight;
use crate::Color;
use tokio::time::Instant;

impl Controller {
    /// Applies an operator action and answers with the service's new status.
    pub(super) async fn act(&mut self, name: &str, action: Action) -> Result<serde_json::Value, CommandError> {
        let i = self.index(name).ok_or_else(|| CommandError::NoService(name.into()))?;
        if let Some(e) = self.fleet_refuses(action) {
            return Err(e);
        }
        if action == Action::Rollback {
            if self.services[i].candidate.as_ref().is_none_or(|c| c.latched) {
                let s = &self.services[i];
                return Err(match s.candidate {
                    Some(_) => Conflict::AlreadyRolledBack(name.into()),
                    None => Conflict::NoCandidate { service: name.into(), idle: s.idle() },
                }
                .into());
            }
            let trip = Trip { trigger: TriggerId::Manual, value: 0.0, threshold: "operator".into() };
            self.rollback(i, trip, Instant::now()).await;
            return Ok(self.status_reply(i));
        }
        let forget = apply(&mut self.services[i], name, action)?;
        if forget {
            self.window.forget(self.services[i].key).await;
        }
        tracing::info!(service = name, ?action, "operator action applied");
        self.commit().await;
        Ok(self.status_reply(i))
    }
}

/// Changes the candidate's state; returns whether its measurements must be forgotten.
fn apply(s: &mut ServiceControl, name: &str, action: Action) -> Result<bool, CommandError> {
    let progressive = s.cfg.mode == Mode::Progressive;
    let idle = s.idle();
    if matches!(action, Action::Pause | Action::Resume | Action::Advance) && !progressive {
        return Err(Conflict::NotProgressive(name.into()).into());
    }
    let Some(c) = s.candidate.as_mut() else {
        return match action {
            Action::Reset => Ok(false),
            Action::Weight(w) if w == s.target_weight() => Ok(false),
            _ => Err(Conflict::NoCandidate { service: name.into(), idle }.into()),
        };
    };
    match action {
        Action::Rollback => unreachable!("handled by the caller"),
        Action::Weight(w) => {
            let share = if c.color == Color::Green { w } else { w.complement() };
            if c.latched && share != Weight::ZERO {
                return Err(Conflict::WeightWhileRolledBack(name.into()).into());
            }
            c.admin_share = Some(share);
        }
        Action::Reset => {
            c.reset();
            return Ok(true);
        }
        Action::Pause => c.paused = true,
        Action::Resume => c.paused = false,
        Action::Advance => {
            if c.latched {
                return Err(Conflict::RolledBack(name.into()).into());
            }
            match c.step {
                None => c.start_plan(),
                Some(st) if st + 1 < s.cfg.plan.steps.len() => {
                    c.step = Some(st + 1);
                    c.enter_step();
                }
                Some(_) => return Err(Conflict::AtLastStep(name.into()).into()),
            }
        }
        Action::Promote => {
            if c.latched {
                return Err(Conflict::RolledBack(name.into()).into());
            }
            if progressive {
                // Nothing is left to hold: a pause would only mislabel a finished plan.
                c.paused = false;
                c.step = Some(s.cfg.plan.steps.len() - 1);
                c.enter_step();
            } else {
                c.admin_share = Some(Weight::FULL);
            }
        }
    }
    Ok(false)
}
