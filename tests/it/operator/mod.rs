//! Operator experience: the status page in headless Chromium matches `/status`, a live
//! `/metrics` scrape passes `promtool check metrics` and names exactly `docker/metric-names.txt`,
//! the shipped configs are valid, and the operator CLI against the real binary.
//!
//! Chromium and promtool are required: a test fails with a clear message when one is missing,
//! unless `SWITCHYARD_SKIP_BROWSER=1` / `SWITCHYARD_SKIP_PROMTOOL=1` says to skip it. `.ci/run`
//! installs both before `cargo test --workspace`.

mod support;

mod browser;

mod page;

mod page_roles;

mod metrics;

mod configs;

mod cli;

mod actions;

mod roles;
mod rules;

mod dashboards;

mod k8s;

mod roles_metrics;
