//! The one step that ends every change: start what the sequence allows, recompute weights,
//! store the route table, persist `state.json`, publish `/status`. Nothing else stores routes.

use super::service::State;
use super::Controller;
use crate::config::Mode;
use crate::route::RouteTable;
use crate::stats::names;
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
    }

    /// Recomputes every green weight from the rules; updates the gauges.
    fn refresh_weights(&mut self) {
        for s in &mut self.services {
            let w = s.target_weight();
            if w != s.weight {
                tracing::info!(service = %s.cfg.name, from = %s.weight, to = %w, live = s.live.as_str(), "green weight changes");
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
        }
        let active = self.services.iter().any(|s| s.state() == State::Canary);
        metrics::gauge!(names::MIGRATION_ACTIVE).set(if active { 1.0 } else { 0.0 });
    }
}
