//! Switchyard: a blue/green reverse proxy that measures its own traffic and rolls back by itself.
#![forbid(unsafe_code)]

pub mod mock_upstream;
