//! The integration suite as one binary (one link, one copy of the support kit): real mock
//! upstreams on 127.0.0.1:0, the real app in-process or the real binary, real sockets.
//!
//! `support` is the kit every module uses: the fixture builder, the `/metrics` matcher with
//! retrying assertions, the TOML service builder, the load generator and the raw-socket client.
//! Run one area with `cargo test --test it data_plane::`, one test by its name.

mod support;

mod admin_security;
mod alternation;
mod check_judge;
mod command_errors;
mod control_loop;
mod cores;
mod data_plane;
mod day_two;
mod faults;
mod fleet;
mod hardening;
mod idle_keep_alive;
mod inflight;
mod inflight_shutdown;
mod inflight_upload;
mod layers;
mod limits;
mod memory;
mod observability;
mod oncall;
mod operator;
mod properties;
mod protocol_edges;
mod quickstart;
mod rollout;
mod smoke;
mod stall;
mod status_doc;
mod tls;
mod upstream_tls;
