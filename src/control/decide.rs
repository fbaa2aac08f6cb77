//! The pure heart of the control loop: judge the candidate's measurement against the triggers, keeping
//! consecutive-bad streaks, and decide Hold / Advance / Rollback. No I/O, no clocks: the shell in
//! `control::mod` supplies time and applies the decision.

use crate::config::Triggers;
use crate::stats::Measurement;
use std::time::Duration;

pub use crate::types::TriggerId;

/// Why a rollback happened.
#[derive(Clone, Debug, PartialEq)]
pub struct Trip {
    /// Trigger.
    pub trigger: TriggerId,
    /// Observed value (seconds for latency, fraction otherwise).
    pub value: f64,
    /// Configured threshold, human readable (e.g. "> 2s", "< 0.95").
    pub threshold: String,
}

/// Consecutive-bad counters per trigger, owned by the service's control state.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Streaks {
    p95: u32,
    error: u32,
    availability: u32,
    compliance: u32,
    status: Vec<u32>,
}

/// Outcome of judging one measurement.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Fewer than `min_samples`: neither healthy nor bad; streaks untouched.
    Inconclusive,
    /// Every trigger passed.
    Healthy,
    /// Some trigger was bad but none reached its consecutive count.
    Bad(Vec<TriggerId>),
    /// A trigger reached its consecutive count.
    Tripped(Trip),
}

impl Verdict {
    /// A plain word for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Verdict::Inconclusive => "inconclusive",
            Verdict::Healthy => "healthy",
            Verdict::Bad(_) => "bad",
            Verdict::Tripped(_) => "tripped",
        }
    }
}

fn step(streak: &mut u32, bad: bool, need: u32) -> bool {
    *streak = if bad { *streak + 1 } else { 0 };
    bad && *streak >= need
}

/// Judges the candidate's window measurement, updating the streaks.
pub fn evaluate(m: &Measurement, t: &Triggers, min_samples: u64, s: &mut Streaks) -> Verdict {
    if let Some(trip) = hash_trip(m.hash_mismatches, t) {
        return Verdict::Tripped(trip);
    }
    if m.samples < min_samples.max(1) {
        return Verdict::Inconclusive;
    }
    let mut bad = Vec::new();
    let mut trip = None;
    let mut judge = |id: TriggerId, streak: &mut u32, is_bad: bool, need: u32, value: f64, threshold: String| {
        if is_bad {
            bad.push(id);
        }
        if step(streak, is_bad, need) && trip.is_none() {
            trip = Some(Trip { trigger: id, value, threshold });
        }
    };
    if let Some(tr) = t.p95_latency {
        let v = m.p95.as_secs_f64();
        judge(
            TriggerId::P95Latency,
            &mut s.p95,
            m.p95 > tr.threshold,
            tr.consecutive,
            v,
            format!("> {}", fmt_dur(tr.threshold)),
        );
    }
    if let Some(tr) = t.error_rate {
        judge(
            TriggerId::ErrorRate,
            &mut s.error,
            m.error_rate > tr.threshold,
            tr.consecutive,
            m.error_rate,
            format!("> {}", tr.threshold),
        );
    }
    if let Some(tr) = t.availability {
        let v = m.availability;
        judge(
            TriggerId::Availability,
            &mut s.availability,
            v < tr.threshold,
            tr.consecutive,
            v,
            format!("< {}", tr.threshold),
        );
    }
    if let (Some(tr), Some(c)) = (t.compliance, m.compliance) {
        judge(
            TriggerId::Compliance,
            &mut s.compliance,
            c < tr.threshold,
            tr.consecutive,
            c,
            format!("< {}", tr.threshold),
        );
    }
    s.status.resize(t.status_rate.len(), 0);
    for (i, st) in t.status_rate.iter().enumerate() {
        let v = m.status_rate(&st.statuses);
        let th = format!("> {} of {:?}", st.above, st.statuses);
        judge(TriggerId::StatusRate(i), &mut s.status[i], v > st.above, st.consecutive, v, th);
    }
    match (trip, bad.is_empty()) {
        (Some(t), _) => Verdict::Tripped(t),
        (None, true) => Verdict::Healthy,
        (None, false) => Verdict::Bad(bad),
    }
}

/// The hash-mismatch trip, if `seen` mismatching responses reach the trigger's count. Shared by
/// the measurement and the data-path alarm, which trips between measurements.
pub fn hash_trip(seen: u64, t: &Triggers) -> Option<Trip> {
    let n = t.hash_mismatch?;
    (seen >= u64::from(n)).then(|| Trip {
        trigger: TriggerId::HashMismatch,
        value: seen as f64,
        threshold: format!(">= {n} mismatching responses"),
    })
}

fn fmt_dur(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// Where a progressive plan stands, as `decide` needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanView {
    /// Healthy measurements so far at this step (including the current one if healthy).
    pub healthy_at_step: u32,
    /// Needed before advancing.
    pub healthy_needed: u32,
    /// Time spent at this step.
    pub at_step_for: Duration,
    /// Required hold.
    pub hold: Duration,
    /// The next step waits for an operator's `/advance`.
    pub gated: bool,
    /// There is a next step.
    pub has_next: bool,
}

/// What the control loop does with a service after a measurement.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Keep the weight.
    Hold,
    /// Move to the next step.
    Advance,
    /// The last step held healthy: the candidate becomes live.
    Complete,
    /// Send everything to the live color.
    Rollback(Trip),
}

/// Decides from a verdict and, for services in a plan, where the plan stands.
pub fn decide(verdict: &Verdict, plan: Option<&PlanView>) -> Decision {
    if let Verdict::Tripped(t) = verdict {
        return Decision::Rollback(t.clone());
    }
    match plan {
        Some(p)
            if *verdict == Verdict::Healthy
                && !p.gated
                && p.healthy_at_step >= p.healthy_needed
                && p.at_step_for >= p.hold =>
        {
            if p.has_next {
                Decision::Advance
            } else {
                Decision::Complete
            }
        }
        _ => Decision::Hold,
    }
}

#[cfg(test)]
mod tests;
