//! The health score (`crate::health_score`) of each service and of the whole proxy, for `/status`
//! and `switchyard_system_health_score`. Computed from the measurements the loop already judges,
//! so the score and the rollback decisions always describe the same window.

use super::Controller;
use crate::health_score::{self, Score};
use crate::stats::names;

/// Label value of the whole-proxy series (service names cannot start with `_` by convention).
pub const OVERALL: &str = "_overall";

impl Controller {
    /// Service `i`'s score over its last window.
    pub(super) fn health(&self, i: usize) -> Option<Score> {
        let s = &self.services[i];
        health_score::service(&s.last, &s.cfg.triggers)
    }

    /// Every service's score, weighted by its requests.
    pub(super) fn overall_health(&self) -> Option<Score> {
        health_score::combine((0..self.services.len()).map(|i| self.health(i)))
    }

    /// Sets the gauges after a tick; NaN without requests so a stale low value cannot keep the
    /// `< 90` alert firing.
    pub(super) fn export_health(&self) {
        let value = |s: Option<Score>| s.map_or(f64::NAN, |s| s.score);
        for (i, s) in self.services.iter().enumerate() {
            metrics::gauge!(names::HEALTH_SCORE, "service" => s.cfg.name.to_string()).set(value(self.health(i)));
        }
        metrics::gauge!(names::HEALTH_SCORE, "service" => OVERALL).set(value(self.overall_health()));
    }
}

/// A score as `/status` shows it: one decimal, `null` without requests.
pub(super) fn rounded(s: Option<Score>) -> Option<f64> {
    s.map(|s| (s.score * 10.0).round() / 10.0)
}
