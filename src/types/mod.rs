//! The crate's vocabulary: plain values every layer names (a color, a service's identity, a
//! green share, a trigger). This module depends on nothing else in the crate, so any module may
//! use it without creating a cycle; it is the bottom of the dependency rule in ARCHITECTURE.md.

mod state;
mod trigger;
mod weight;

pub use state::{Mode, State};
pub use trigger::TriggerId;
pub use weight::{Weight, WeightError};

/// The two deployments: blue is the running system, green the candidate being rolled out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Color {
    Blue,
    Green,
}

impl Color {
    /// The `color` label value and the JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Color::Blue => "blue",
            Color::Green => "green",
        }
    }

    /// Index into the `[blue, green]` arrays that per-color state is kept in.
    pub fn index(self) -> usize {
        match self {
            Color::Blue => 0,
            Color::Green => 1,
        }
    }
}

/// Stable identity of a service for the life of the process (names may be reloaded away and
/// back; keys are never reused), so listeners find their route without string compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey(pub u32);
