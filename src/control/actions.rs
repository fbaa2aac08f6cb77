//! Operator actions on one service's candidate, composed with its plan as Argo Rollouts does
//! (README: "Operator actions and the plan"). A weight from the API is green's share (the API's
//! meaning since before colors alternated); it is turned into the candidate's share here.
//!
//! The candidate's state is four independent parts: the plan step, an operator's override
//! (`admin_share`), the pause and the rollback latch. Each action says what it does to each, and
//! answers with one sentence (`effect`) that names the way back.

use super::candidate::Candidate;
use super::decide::{TriggerId, Trip};
use super::service::{pool_cfg, ServiceControl};
use super::{Action, CommandError, Conflict, Controller};
use crate::config::Mode;
use crate::route::Weight;
use crate::Color;
use tokio::time::Instant;

/// What an action did, for the reply and the log.
struct Outcome {
    /// The candidate's measurements belong to a plan that no longer exists.
    forget: bool,
    effect: String,
}

impl Controller {
    /// Applies an operator action and answers with the service's new status plus `effect`.
    pub(super) async fn act(&mut self, name: &str, action: Action) -> Result<serde_json::Value, CommandError> {
        let i = self.index(name).ok_or_else(|| CommandError::NoService(name.into()))?;
        if let Some(e) = self.fleet_refuses(action) {
            return Err(e);
        }
        let effect = if action == Action::Rollback {
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
            let s = &self.services[i];
            format!("rolled back: all traffic to live {}; `reset` clears the rollback", role(s, s.live))
        } else {
            let out = apply(&mut self.services[i], name, action)?;
            if out.forget {
                self.window.forget(self.services[i].key).await;
            }
            tracing::info!(service = name, action = action.name(), weight = action.percent(), effect = %out.effect, "operator action applied");
            self.commit().await;
            out.effect
        };
        Ok(self.action_reply(i, effect))
    }

    /// The service's status with the action's effect; in a fleet, marked pending until the
    /// shared store has confirmed it (the reply cannot wait for that without fleet internals).
    fn action_reply(&self, i: usize, effect: String) -> serde_json::Value {
        let mut v = self.status_reply(i);
        let pending = self.fleet.is_some();
        v["effect"] = serde_json::Value::String(if pending {
            format!("{effect} (pending: the fleet store confirms it; see `switchyard status`)")
        } else {
            effect
        });
        v["pending"] = serde_json::Value::Bool(pending);
        v
    }
}

impl Action {
    /// The action's name as the API and the CLI spell it (a log field, never a debug form).
    pub fn name(self) -> &'static str {
        match self {
            Action::Weight(_) => "weight",
            Action::Rollback => "rollback",
            Action::Reset => "reset",
            Action::Pause => "pause",
            Action::Resume => "resume",
            Action::Advance => "advance",
            Action::Promote => "promote",
        }
    }

    /// Green's share in percent for `weight`, for the log.
    fn percent(self) -> Option<f64> {
        match self {
            Action::Weight(w) => Some(w.percent()),
            _ => None,
        }
    }
}

/// `green (v2)`: a color with the release it runs.
pub(super) fn role(s: &ServiceControl, c: Color) -> String {
    match &pool_cfg(&s.cfg, c).release {
        Some(r) => format!("{} ({r})", c.as_str()),
        None => c.as_str().to_string(),
    }
}

/// `step 2/3 (50 %)`.
fn step_text(s: &ServiceControl, i: usize) -> String {
    format!("step {}/{} ({} %)", i + 1, s.cfg.plan.steps.len(), s.cfg.plan.steps[i].percent())
}

/// Changes the candidate's state.
fn apply(s: &mut ServiceControl, name: &str, action: Action) -> Result<Outcome, CommandError> {
    let progressive = s.cfg.mode == Mode::Progressive;
    let idle = s.idle();
    let plain = |effect: String| Ok(Outcome { forget: false, effect });
    if matches!(action, Action::Pause | Action::Advance) && !progressive {
        return Err(Conflict::NotProgressive(name.into()).into());
    }
    let Some(c) = s.candidate.as_ref() else {
        return match action {
            Action::Reset => plain("nothing to reset: no candidate".into()),
            Action::Weight(w) if w == s.target_weight() => plain("unchanged: no candidate".into()),
            _ => Err(Conflict::NoCandidate { service: name.into(), idle }.into()),
        };
    };
    let cand = role(s, c.color);
    if c.latched && !matches!(action, Action::Reset | Action::Weight(_)) {
        return Err(Conflict::RolledBack(name.into()).into());
    }
    match action {
        Action::Rollback => unreachable!("handled by the caller"),
        Action::Weight(w) => {
            let share = super::service::as_green(c.color, w);
            if c.latched && share != Weight::ZERO {
                return Err(Conflict::WeightWhileRolledBack(name.into()).into());
            }
            let back = if progressive {
                format!(
                    "operator override; `resume` hands it back to the plan at {}, `promote` finishes the release",
                    step_text(s, Candidate::step_at_or_below(&s.cfg, share))
                )
            } else {
                "manual mode: `resume` returns to the file's green_weight".into()
            };
            edit(s).admin_share = Some(share);
            plain(format!("candidate {cand} at {} % ({back})", share.percent()))
        }
        Action::Reset => {
            let was_latched = c.latched;
            edit(s).reset();
            let restart = if progressive { "; the plan restarts at step 1" } else { "" };
            Ok(Outcome {
                forget: true,
                effect: if was_latched {
                    format!("rollback cleared: latch, admin weight and pause dropped, window forgotten{restart}")
                } else {
                    format!("no rollback to clear: admin weight and pause dropped, window forgotten{restart}")
                },
            })
        }
        Action::Pause => {
            edit(s).pause();
            plain(format!("plan paused: the hold clock stands still until `resume`; candidate {cand} keeps its share"))
        }
        Action::Resume => resume(s, name, &cand),
        Action::Advance => {
            let next = match (c.admin_share, c.step) {
                (Some(share), _) => s.cfg.plan.steps.iter().rposition(|w| *w <= share).map_or(0, |i| i + 1),
                (None, Some(i)) => i + 1,
                (None, None) => 0,
            };
            if next >= s.cfg.plan.steps.len() {
                return Err(Conflict::AtLastStep(name.into()).into());
            }
            let text = step_text(s, next);
            let c = edit(s);
            c.admin_share = None;
            c.paused = false;
            c.step = Some(next);
            c.enter_step();
            c.sync_pause();
            plain(format!("advanced to {text}: candidate {cand} gets its weight"))
        }
        Action::Promote if progressive => {
            let old = role(s, s.live);
            s.complete();
            Ok(Outcome {
                forget: true,
                effect: format!("promoted: {cand} is live, the release is finished; {old} is idle and retired"),
            })
        }
        Action::Promote => {
            edit(s).admin_share = Some(Weight::FULL);
            plain(format!("candidate {cand} at 100 % (manual mode: blue stays live)"))
        }
    }
}

/// `resume`: an override goes back to the plan at the step nearest below it; a pause ends with
/// the hold clock where it stood.
fn resume(s: &mut ServiceControl, name: &str, cand: &str) -> Result<Outcome, CommandError> {
    let progressive = s.cfg.mode == Mode::Progressive;
    let c = s.candidate.as_ref().expect("checked by the caller");
    let plain = |effect: String| Ok(Outcome { forget: false, effect });
    match (c.admin_share, progressive) {
        (Some(_), false) => {
            edit(s).admin_share = None;
            plain(format!("operator weight dropped: candidate {cand} back at the file's green_weight"))
        }
        (None, false) => Err(Conflict::NotProgressive(name.into()).into()),
        (Some(share), true) => {
            let at = Candidate::step_at_or_below(&s.cfg, share);
            let text = step_text(s, at);
            let c = edit(s);
            c.admin_share = None;
            c.paused = false;
            c.step = Some(at);
            c.enter_step();
            c.sync_pause();
            plain(format!("override of {} % handed back to the plan at {text}", share.percent()))
        }
        (None, true) if c.paused => {
            let hold = s.cfg.plan.hold;
            let c = edit(s);
            c.unpause();
            let left = hold.saturating_sub(c.at_step_for());
            plain(format!("plan resumed: {} of the hold left", super::progress::fmt_left(left)))
        }
        (None, true) => plain("nothing to resume: the plan is running".into()),
    }
}

fn edit(s: &mut ServiceControl) -> &mut Candidate {
    s.candidate.as_mut().expect("checked by the caller")
}
