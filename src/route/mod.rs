//! Routing: `Weight`, the pure `pick` functions and the `RouteTable` snapshot.

pub mod pick;
pub mod table;

pub use table::{Policy, Route, RouteTable, Router};
// The vocabulary lives in `types` (the leaf every layer may use); these paths stay for callers.
pub use crate::types::{ServiceKey, Weight, WeightError};
