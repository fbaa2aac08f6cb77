//! Why a plan is not advancing, in words an operator can act on (`/status`, `switchyard status`,
//! the status page). Pure: the measurement's verdict and where the plan stands in, a sentence out.

use super::decide::{PlanView, Verdict};
use std::time::Duration;

/// Why the last measurement did not advance the plan; `None` when it advanced, completed or
/// rolled back, or when no plan ran (the caller names those: paused, operator weight, ...).
pub fn holding(verdict: &Verdict, plan: Option<&PlanView>, samples: u64, min_samples: u64) -> Option<String> {
    let p = plan?;
    match verdict {
        Verdict::Tripped(_) => None,
        Verdict::Inconclusive => Some(format!("inconclusive: {samples} of {} samples", min_samples.max(1))),
        Verdict::Bad(ids) => {
            Some(format!("unhealthy: {}", ids.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")))
        }
        Verdict::Healthy if p.gated => Some("manual gate".into()),
        Verdict::Healthy if p.healthy_at_step < p.healthy_needed => {
            Some(format!("healthy measurements {} of {}", p.healthy_at_step, p.healthy_needed))
        }
        Verdict::Healthy if p.at_step_for < p.hold => {
            Some(format!("hold: {} left", fmt_left(p.hold.saturating_sub(p.at_step_for))))
        }
        Verdict::Healthy => None,
    }
}

/// Whole seconds, rounded up: "4s", "1s" for the last fraction of a second (never "0ms left"
/// while something is left), "0s" when nothing is.
pub fn fmt_left(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs() + u64::from(d.subsec_nanos() > 0))).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::decide::TriggerId;

    fn plan(healthy: u32, at: u64) -> PlanView {
        PlanView {
            healthy_at_step: healthy,
            healthy_needed: 3,
            at_step_for: Duration::from_secs(at),
            hold: Duration::from_secs(60),
            gated: false,
            has_next: true,
        }
    }

    #[test]
    fn each_reason_is_named() {
        let p = plan(1, 10);
        assert_eq!(holding(&Verdict::Inconclusive, Some(&p), 37, 100).unwrap(), "inconclusive: 37 of 100 samples");
        assert_eq!(holding(&Verdict::Healthy, Some(&p), 200, 100).unwrap(), "healthy measurements 1 of 3");
        assert_eq!(holding(&Verdict::Healthy, Some(&plan(3, 56)), 200, 100).unwrap(), "hold: 4s left");
        let gated = PlanView { gated: true, ..plan(3, 90) };
        assert_eq!(holding(&Verdict::Healthy, Some(&gated), 200, 100).unwrap(), "manual gate");
        let bad = Verdict::Bad(vec![TriggerId::P95Latency]);
        assert_eq!(holding(&bad, Some(&p), 200, 100).unwrap(), "unhealthy: p95_latency");
        assert_eq!(holding(&Verdict::Healthy, Some(&plan(3, 90)), 200, 100), None, "it advances");
        assert_eq!(holding(&Verdict::Healthy, None, 200, 100), None);
        assert_eq!(holding(&Verdict::Healthy, Some(&plan(3, 60).clone()), 200, 100), None);
        let almost = PlanView { at_step_for: Duration::from_millis(59_999), ..plan(3, 0) };
        assert_eq!(holding(&Verdict::Healthy, Some(&almost), 200, 100).unwrap(), "hold: 1s left", "never 0ms left");
        assert_eq!(fmt_left(Duration::ZERO), "0s");
    }
}
