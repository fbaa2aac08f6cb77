//! A service's mode and state as the config, `/status`, `state.json` and
//! `switchyard_service_state` name them.

/// How a service's green weight is decided.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// From config or the admin API; the loop only rolls back. The default, as in the config.
    #[default]
    Manual,
    /// From the step plan, advanced on healthy measurements.
    Progressive,
}

/// The state names of `/status` and `switchyard_service_state`. They describe green's share
/// (as before colors alternated), so dashboards keep working; `live`/`candidate` say who is who.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// All traffic on blue, nothing in progress.
    #[default]
    Stable,
    /// Traffic split.
    Canary,
    /// All traffic on green.
    Promoted,
    /// The candidate is latched off after a rollback.
    RolledBack,
    /// Plan paused by an operator.
    Paused,
}

impl State {
    /// All states, for the one-hot gauge.
    pub const ALL: [State; 5] = [State::Stable, State::Canary, State::Promoted, State::RolledBack, State::Paused];

    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Stable => "stable",
            State::Canary => "canary",
            State::Promoted => "promoted",
            State::RolledBack => "rolled_back",
            State::Paused => "paused",
        }
    }
}
