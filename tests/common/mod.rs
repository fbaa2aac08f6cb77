//! For test files outside `tests/it/` that say `mod common;`: the same kit as `tests/it/support`.
//! New tests belong in `tests/it/` (one binary); this shim keeps older branches compiling.
#![allow(dead_code, unused_imports)]

#[path = "../it/support/mod.rs"]
mod kit;
pub use kit::*;
