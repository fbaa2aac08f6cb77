//! Incidents and rollback reports (spec §3.2). Appended to `state_dir/incidents.jsonl` with fsync;
//! a completed report is appended again under the same id, and on load the last line per id wins.

use crate::stats::MeasurementView;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The rollback report's validation part, completed after the swap.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The live color's endpoints pass health checks and its next measurement passes the
    /// triggers. Named for blue, live when it was first written; `live_healthy` says the same.
    pub blue_healthy: Option<bool>,
    /// The live color (whichever it is) healthy after the swap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_healthy: Option<bool>,
    /// No new request reached the candidate after the swap.
    pub redirection_confirmed: Option<bool>,
    /// Candidate requests still in flight at the swap (allowed to finish); named for green, the
    /// candidate when it was first written. `candidate_in_flight_at_swap` says the same.
    pub green_in_flight_at_swap: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate_in_flight_at_swap: Option<u64>,
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
    /// Written as the trigger's config key, as operators grep for it.
    pub trigger: crate::types::TriggerId,
    /// Observed value.
    pub value: f64,
    /// Threshold.
    pub threshold: String,
    /// The candidate's release rolled back (the live one for `live_down`).
    pub release: Option<String>,
    /// Green's weight before the rollback (percent).
    pub weight_before: f64,
    /// The live color and release at the decision (absent in logs from before roles).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_color: Option<crate::Color>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_release: Option<String>,
    /// The candidate rolled back: its color, release and share before (percent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate_color: Option<crate::Color>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate_release: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate_weight_before: Option<f64>,
    /// First bad measurement of the streak that tripped.
    pub first_bad_at: Option<String>,
    /// Decision time.
    pub decided_at: String,
    /// Swap time.
    pub swapped_at: String,
    /// Decision → swap, microseconds.
    pub decision_to_swap_us: u64,
    /// Candidate requests started between the first bad measurement and the swap (named for
    /// green, the candidate when it was first written).
    pub green_requests_between: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate_requests_between: Option<u64>,
    /// `[blue, green]` at the decision.
    pub measurements: Vec<MeasurementView>,
    /// Validation report.
    pub report: Report,
    /// Paging schedule and acknowledgement. `None`: the incident does not page (an operator's own
    /// rollback, or a log written before escalation existed). Kept while escalation is off, so
    /// acknowledgement and `switchyard_incidents_unacknowledged` work for Alertmanager users.
    #[serde(default)]
    pub escalation: Option<crate::escalation::Escalation>,
    /// The first failing candidate requests that fed the trip (request id, trace id), to find
    /// in the access log and the trace UI.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<crate::stats::examples::Example>,
}

/// Examples kept in an incident.
pub const EXAMPLES: usize = 5;

/// RFC 3339 with milliseconds.
pub fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// `inc-<unix ms>-<service>`.
pub fn new_id(at: SystemTime, service: &str) -> String {
    format!("inc-{}-{service}", at.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_millis())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::TriggerId;

    /// Lines as the string-typed `trigger` wrote them, one before escalation existed.
    const OLD_LOG: &str = r#"{"id":"inc-1-auth","service":"auth","trigger":"status_rate","value":0.2,"threshold":"> 0.1","release":"1.1","weight_before":10.0,"first_bad_at":"2026-01-01T00:00:00.000Z","decided_at":"2026-01-01T00:00:00.100Z","swapped_at":"2026-01-01T00:00:00.100Z","decision_to_swap_us":12,"green_requests_between":3,"measurements":[],"report":{"blue_healthy":null,"redirection_confirmed":null,"green_in_flight_at_swap":0,"completed_at":null,"summary":null},"escalation":null}
{"id":"inc-2-ac","service":"ac","trigger":"manual","value":0.0,"threshold":"operator","release":null,"weight_before":50.0,"first_bad_at":null,"decided_at":"2026-01-01T00:00:01.000Z","swapped_at":"2026-01-01T00:00:01.000Z","decision_to_swap_us":5,"green_requests_between":0,"measurements":[],"report":{"blue_healthy":true,"redirection_confirmed":true,"green_in_flight_at_swap":0,"completed_at":"2026-01-01T00:00:02.000Z","summary":"ok"}}
"#;

    #[test]
    fn logs_from_string_triggers_load_and_write_back_the_same_strings() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(log_path(dir.path()), OLD_LOG).unwrap();
        let loaded = load(dir.path());
        let triggers: Vec<TriggerId> = loaded.iter().map(|i| i.trigger).collect();
        assert_eq!(triggers, [TriggerId::StatusRate(0), TriggerId::Manual]);
        let first: serde_json::Value = serde_json::from_str(OLD_LOG.lines().next().unwrap()).unwrap();
        assert_eq!(serde_json::to_value(&loaded[0]).unwrap(), first, "nothing is lost or renamed");
        let rewritten = serde_json::to_value(&loaded[1]).unwrap();
        assert_eq!(
            (rewritten["trigger"].as_str(), &rewritten["escalation"]),
            (Some("manual"), &serde_json::Value::Null)
        );
    }
}
