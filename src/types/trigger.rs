//! Trigger identities. An enum rather than strings so a trigger is named once: the config key,
//! the `switchyard_rollbacks_total` label and the incident field all come from `as_str`.

/// Which trigger, named by its config key (operators grep incidents for these).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerId {
    /// `p95_latency`.
    P95Latency,
    /// `error_rate`.
    ErrorRate,
    /// `availability`.
    Availability,
    /// `compliance`.
    Compliance,
    /// `hash_mismatch`.
    HashMismatch,
    /// `status_rate` (index into the list).
    StatusRate(usize),
    /// `manual` (an operator's rollback).
    Manual,
}

impl TriggerId {
    /// Config key / metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerId::P95Latency => "p95_latency",
            TriggerId::ErrorRate => "error_rate",
            TriggerId::Availability => "availability",
            TriggerId::Compliance => "compliance",
            TriggerId::HashMismatch => "hash_mismatch",
            TriggerId::StatusRate(_) => "status_rate",
            TriggerId::Manual => "manual",
        }
    }
}
