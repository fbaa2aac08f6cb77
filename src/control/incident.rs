//! Incidents and rollback reports (spec §3.2). Appended to `state_dir/incidents.jsonl` with fsync;
//! a completed report is appended again under the same id, and on load the last line per id wins.

use crate::stats::MeasurementView;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The rollback report's validation part, completed after the swap.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Blue's endpoints pass health checks and its next measurement passes the triggers.
    pub blue_healthy: Option<bool>,
    /// No new request reached green after the swap.
    pub redirection_confirmed: Option<bool>,
    /// Green requests still in flight at the swap (allowed to finish).
    pub green_in_flight_at_swap: u64,
    /// When validation finished.
    pub completed_at: Option<String>,
    /// Human summary.
    pub summary: Option<String>,
}

/// One rollback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// `inc-<unix ms>-<service>`.
    pub id: String,
    /// Service.
    pub service: String,
    /// Trigger config key.
    pub trigger: String,
    /// Observed value.
    pub value: f64,
    /// Threshold.
    pub threshold: String,
    /// Green release rolled back.
    pub release: Option<String>,
    /// Green weight before the rollback (percent).
    pub weight_before: f64,
    /// First bad measurement of the streak that tripped.
    pub first_bad_at: Option<String>,
    /// Decision time.
    pub decided_at: String,
    /// Swap time.
    pub swapped_at: String,
    /// Decision → swap, microseconds.
    pub decision_to_swap_us: u64,
    /// Green requests started between the first bad measurement and the swap.
    pub green_requests_between: u64,
    /// `[blue, green]` at the decision.
    pub measurements: Vec<MeasurementView>,
    /// Validation report.
    pub report: Report,
    /// Paging schedule and acknowledgement. `None`: the incident does not page (an operator's own
    /// rollback, or a log written before escalation existed). Kept while escalation is off, so
    /// acknowledgement and `switchyard_incidents_unacknowledged` work for Alertmanager users.
    #[serde(default)]
    pub escalation: Option<crate::escalation::Escalation>,
}

/// RFC 3339 with milliseconds.
pub fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Path of the incident log.
pub fn log_path(state_dir: &Path) -> PathBuf {
    state_dir.join("incidents.jsonl")
}

/// Appends an incident (or its updated report).
pub fn append(state_dir: &Path, inc: &Incident) -> Result<(), crate::state::StateError> {
    let line = serde_json::to_string(inc).expect("incident serialises");
    crate::state::append_line(&log_path(state_dir), &line)
}

/// Loads the log, last line per id winning; unreadable lines are skipped with a warning.
pub fn load(state_dir: &Path) -> Vec<Incident> {
    let Ok(text) = std::fs::read_to_string(log_path(state_dir)) else { return Vec::new() };
    let mut out: Vec<Incident> = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        match serde_json::from_str::<Incident>(line) {
            Ok(inc) => match out.iter_mut().find(|o| o.id == inc.id) {
                Some(o) => *o = inc,
                None => out.push(inc),
            },
            Err(e) => tracing::warn!(line = i + 1, error = %e, "skipping unreadable incident line"),
        }
    }
    out
}
