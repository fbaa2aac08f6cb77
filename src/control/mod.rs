//! Control loop.
