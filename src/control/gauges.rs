//! The per-service gauges that speak of roles rather than colors, set at every commit: the
//! candidate's share, the plan step counted as `/status` counts it, and whether a migration is
//! under way. The color-keyed gauges beside them (`switchyard_green_weight_percent`,
//! `switchyard_rollout_step`) keep their meaning for existing dashboards.

use super::service::ServiceControl;
use crate::config::Mode;
use crate::route::Weight;
use crate::stats::names;

/// Sets `switchyard_candidate_weight_percent`, `switchyard_rollout_step_number` and
/// `switchyard_rollout_steps` for one service.
pub(super) fn export(s: &ServiceControl) {
    let name = s.cfg.name.to_string();
    let share = s.candidate.as_ref().map_or(Weight::ZERO, |c| c.share(&s.cfg));
    metrics::gauge!(names::CANDIDATE_WEIGHT, "service" => name.clone()).set(share.percent());
    metrics::gauge!(names::ROLLOUT_STEP_NUMBER, "service" => name.clone()).set(step_number(s) as f64);
    let steps = if s.cfg.mode == Mode::Progressive { s.cfg.plan.steps.len() } else { 0 };
    metrics::gauge!(names::ROLLOUT_STEPS, "service" => name).set(steps as f64);
}

/// The 1-based step in effect, 0 when none is: no candidate, manual mode, not started, or
/// rolled back (the latched candidate keeps its step index but gets nothing).
fn step_number(s: &ServiceControl) -> usize {
    match (&s.candidate, s.cfg.mode) {
        (Some(c), Mode::Progressive) if !c.latched => c.step.map_or(0, |i| i + 1),
        _ => 0,
    }
}

/// A migration is under way while a candidate that is not rolled back takes traffic or is at a
/// plan step: through the last step's hold, which ends when the candidate becomes live.
pub(super) fn migrating(s: &ServiceControl) -> bool {
    s.candidate.as_ref().is_some_and(|c| !c.latched && (c.step.is_some() || c.share(&s.cfg) > Weight::ZERO))
}

/// Sets `switchyard_migration_active`.
pub(super) fn export_migration<'a>(services: impl IntoIterator<Item = &'a ServiceControl>) {
    let active = services.into_iter().any(migrating);
    metrics::gauge!(names::MIGRATION_ACTIVE).set(if active { 1.0 } else { 0.0 });
}
