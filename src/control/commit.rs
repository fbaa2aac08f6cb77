//! The one step that ends every change: start what the sequence allows, recompute weights,
//! store the route table, persist `state.json`, publish `/status`. Nothing else stores routes.

use super::service::State;
use super::Controller;
use crate::config::Mode;
use crate::route::{RouteTable, Weight};
use crate::stats::names;
use crate::Color;
use tokio::time::Instant;

impl Controller {
    /// Commits the current control state.
    pub(super) async fn commit(&mut self) {
        self.store();
        self.persist_and_publish().await;
    }

    /// The first half of a commit: the data path sees the change from its next `load()`.
    /// Only a rollback runs the halves apart, to record its incident between them, so that
    /// `/status` never shows a rollback whose incident `/incidents` does not list yet.
    /// Returns when the table was stored (the rollback's decision-to-swap time ends there).
    pub(super) fn store(&mut self) -> Instant {
        self.sequence();
        self.refresh_weights();
        self.generation += 1;
        let routes = self.services.iter().map(|s| s.route()).collect();
        self.router.store(RouteTable { generation: self.generation, routes });
        Instant::now()
    }

    /// The second half of a commit.
    pub(super) async fn persist_and_publish(&mut self) {
        self.save_state().await;
        self.publish();
        self.fleet_publish();
    }

    /// Recomputes every green weight from the rules; updates the gauges.
    fn refresh_weights(&mut self) {
        // HOOK(fleet): live only until the shared state is read; a candidate's share rises only
        // to what the store confirmed.
        let live_only = self.fleet_holds_live();
        let caps: Vec<Option<Weight>> = (0..self.services.len()).map(|i| self.fleet_cap(i)).collect();
        for (s, cap) in self.services.iter_mut().zip(caps) {
            let w = capped(s, cap, live_only);
            if w != s.weight {
                tracing::info!(service = %s.cfg.name, from = s.weight.percent(), to = w.percent(), live = s.live.as_str(), "green weight changes");
                s.weight = w;
            }
            s.res.stats.green_weight.set(w.percent());
            let state = s.state();
            for st in State::ALL {
                metrics::gauge!(names::SERVICE_STATE, "service" => s.cfg.name.to_string(), "state" => st.as_str())
                    .set(if st == state { 1.0 } else { 0.0 });
            }
            let step = match (&s.candidate, s.cfg.mode) {
                (Some(c), Mode::Progressive) => c.step.map_or(-1.0, |i| i as f64),
                _ => -1.0,
            };
            metrics::gauge!(names::ROLLOUT_STEP, "service" => s.cfg.name.to_string()).set(step);
            super::gauges::export(s);
        }
        super::gauges::export_migration(&self.services);
    }
}

/// Service `s`'s green weight with the fleet's limits applied: its live color alone before the
/// shared state is read, and a candidate share no larger than `cap`.
fn capped(s: &super::service::ServiceControl, cap: Option<Weight>, live_only: bool) -> Weight {
    let all_live = if s.live == Color::Green { Weight::FULL } else { Weight::ZERO };
    if live_only {
        return all_live;
    }
    let w = s.target_weight();
    match (cap, &s.candidate) {
        // HOOK(fleet): a plan-driven share is the fleet's plan at the stored step, whatever this
        // replica's own steps say (every replica routes the same share).
        (Some(cap), Some(c)) if c.drives_plan() && s.cfg.mode == Mode::Progressive => {
            if c.color == Color::Green {
                cap
            } else {
                cap.complement()
            }
        }
        (Some(cap), Some(c)) if c.color == Color::Green => w.min(cap),
        (Some(cap), Some(_)) => w.max(cap.complement()),
        _ => w,
    }
}
