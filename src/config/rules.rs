//! Rules that look across keys: what `run` would refuse or trip over once started (a port bound
//! twice, a plan that can never start) is refused here, so `check` and `run` give one verdict.

use super::model::*;
use super::validate::Problems;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

/// Every cross-key rule, each problem under the key an operator edits to fix it.
pub(crate) fn check(p: &mut Problems, c: &Config, order_given: Option<&[String]>) {
    if c.services.is_empty() {
        p.push("services", "no [[services]]: at least one service is needed to proxy anything");
    }
    window_is_whole_intervals(p, c.control.interval, c.control.window);
    listeners_do_not_collide(p, c);
    if let Some(order) = order_given {
        order_lists_each_progressive_service_once(p, c, order);
    }
    for (i, s) in c.services.iter().enumerate() {
        if s.mode == Mode::Progressive && s.green.release.is_none() {
            p.push(
                format!("services[{i}].green.release"),
                "a progressive service needs a release label: the plan restarts when it changes",
            );
        }
    }
}

/// The window is made of closed intervals; a remainder would be history nobody measures.
fn window_is_whole_intervals(p: &mut Problems, interval: Duration, window: Duration) {
    if window >= interval && !window.as_nanos().is_multiple_of(interval.as_nanos()) {
        p.push(
            "control.window",
            format!(
                "must be a whole number of control.interval ({}), got {}",
                humantime::format_duration(interval),
                humantime::format_duration(window)
            ),
        );
    }
}

/// Two sockets on one port collide when their IPs are equal or either is the wildcard.
fn collide(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0 && a.port() == b.port() && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

fn listeners_do_not_collide(p: &mut Problems, c: &Config) {
    let mut seen: Vec<(String, SocketAddr)> = vec![("admin.listen".into(), c.admin.listen)];
    for (i, s) in c.services.iter().enumerate() {
        let key = format!("services[{i}].listen");
        if let Some((other, _)) = seen.iter().find(|(_, a)| collide(*a, s.listen)) {
            p.push(key.clone(), format!("{} collides with {other} (same port)", s.listen));
        }
        seen.push((key, s.listen));
    }
}

fn order_lists_each_progressive_service_once(p: &mut Problems, c: &Config, order: &[String]) {
    let mut listed = HashSet::new();
    for (i, n) in order.iter().enumerate() {
        if !listed.insert(n.as_str()) {
            p.push(format!("rollout.order[{i}]"), format!("{n:?} is listed twice"));
        }
    }
    for s in c.services.iter().filter(|s| s.mode == Mode::Progressive) {
        if !listed.contains(&*s.name) {
            p.push("rollout.order", format!("progressive service {:?} is missing: its plan would never start", s.name));
        }
    }
}
