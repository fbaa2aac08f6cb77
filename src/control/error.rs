//! Why the control loop refused a command, by class, so each caller maps it without reading text:
//! the admin API answers 404 / 503 / 409 / 422, the reloader keeps the running config.

use crate::error::ApplyError;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("no service named {0:?}")]
    NoService(String),
    #[error("no incident {0:?}")]
    NoIncident(String),
    /// An acknowledgement must say who takes the incident (400).
    #[error("\"by\" must name who acknowledges")]
    MissingAcknowledger,
    /// The loop has stopped (shutdown): nothing can be applied, retrying elsewhere may help.
    #[error("control loop stopped")]
    NotRunning,
    /// Not applicable in the service's current state; the text names the way out.
    #[error(transparent)]
    Conflict(#[from] Conflict),
    /// A reloaded config could not be applied; the running config stays.
    #[error(transparent)]
    Invalid(#[from] ApplyError),
}

/// An operator action that the service's state forbids. Each carries the service name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    #[error("{0} is already rolled back")]
    AlreadyRolledBack(String),
    /// Only weight 0 is allowed while latched: anything else would undo the rollback silently.
    #[error("{0} is rolled back; POST /services/{0}/reset first")]
    WeightWhileRolledBack(String),
    #[error("{0} is rolled back; `reset` clears the rollback")]
    RolledBack(String),
    #[error("{0} is not in progressive mode")]
    NotProgressive(String),
    #[error("{0} is already at its last step; `promote` makes the candidate live")]
    AtLastStep(String),
    /// Actions on a candidate need one; the text names the pool a new release goes into.
    #[error("{service} has no candidate: deploy a new release into the idle pool ({}) first", idle.as_str())]
    NoCandidate { service: String, idle: crate::Color },
    /// In a fleet whose store cannot be reached, only actions that lower the candidate act.
    #[error("fleet store unreachable: only rollback, pause and weight 0 act now")]
    FleetStoreUnreachable,
    /// A second acknowledgement is refused so the first responder stays on record.
    #[error("{id} was already acknowledged by {by} at {at}")]
    AlreadyAcknowledged { id: String, by: String, at: String },
}
