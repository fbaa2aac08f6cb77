//! The `/status` document, built by the loop after every change and published for readers.

use super::Controller;
use crate::config::Mode;
use serde_json::{json, Value};
use std::sync::Arc;

impl Controller {
    /// One service's entry in `/status`.
    pub(super) fn service_status(&self, i: usize) -> Value {
        let s = &self.services[i];
        let step = match (s.cfg.mode, s.step) {
            (Mode::Progressive, Some(idx)) => json!({
                "index": idx,
                "of": s.cfg.plan.steps.len(),
                "weights": s.cfg.plan.steps.iter().map(|w| w.percent()).collect::<Vec<_>>(),
                "since": super::incident::timestamp(s.step_since_wall),
                "healthy_measurements": s.healthy_at_step,
                "gated": s.cfg.plan.steps.get(idx + 1).is_some_and(|n| Some(*n) == s.cfg.plan.manual_gate_before && !s.gate_open),
            }),
            _ => Value::Null,
        };
        let history = |c: usize| {
            s.history.iter().map(|h| {
            let m = &h.colors[c];
            json!({"at": h.at, "p95_ms": m.p95_ms, "error_rate": m.error_rate, "compliance": m.compliance, "samples": m.samples})
        }).collect::<Vec<_>>()
        };
        json!({
            "name": s.cfg.name,
            "listen": s.listener.as_ref().map_or(s.cfg.listen, |l| l.addr).to_string(),
            "mode": s.cfg.mode,
            "state": s.state(),
            "green_weight": s.weight.percent(),
            "release": s.cfg.green.release,
            "latched": s.latched,
            "paused": s.paused,
            "admin_weight": s.admin_weight.map(|w| w.percent()),
            "step": step,
            "incident": s.incident,
            "health_score": super::health::json(self.health(i)),
            "incident_paging": self.paging(s.incident.as_deref()),
            "endpoints": {
                "blue": s.blue.endpoints.iter().map(|e| json!({"address": e.authority.as_str(), "healthy": e.healthy(), "ejected": e.ejected()})).collect::<Vec<_>>(),
                "green": s.green.endpoints.iter().map(|e| json!({"address": e.authority.as_str(), "healthy": e.healthy(), "ejected": e.ejected()})).collect::<Vec<_>>(),
            },
            "window": {"blue": s.last[0].view(), "green": s.last[1].view()},
            "history": {"blue": history(0), "green": history(1)},
        })
    }

    /// Rebuilds and publishes `/status` and the incident list.
    pub(super) fn publish(&self) {
        let order = &self.cfg.rollout.order;
        let current = order.iter().find(|n| {
            self.index(n).is_some_and(|i| {
                let s = &self.services[i];
                s.cfg.mode == Mode::Progressive && !s.promoted()
            })
        });
        let doc = json!({
            "generation": self.generation,
            "health_score": super::health::json(self.overall_health()),
            "sequence": {
                "order": order,
                "sequential": self.cfg.rollout.sequential,
                "current": current,
                "halted": self.halted(),
            },
            "config": {
                "path": self.cfg.source.display().to_string(),
                "generation": self.config_generation,
                "last_reload_error": self.last_reload_error,
                "state_error": self.state_error,
            },
            "control": {
                "interval_ms": self.cfg.control.interval.as_millis() as u64,
                "window_ms": self.cfg.control.window.as_millis() as u64,
                "min_samples": self.cfg.control.min_samples,
            },
            "services": (0..self.services.len()).map(|i| self.service_status(i)).collect::<Vec<_>>(),
        });
        self.published.status.store(Arc::new(doc));
        self.published.incidents.store(Arc::new(self.incidents.clone()));
    }
}
