//! Routing: `Weight`, the pure `pick` functions and the `RouteTable` snapshot.

pub mod pick;
pub mod table;
mod weight;

pub use table::{Policy, Route, RouteTable, Router, ServiceKey};
pub use weight::{Weight, WeightError};
