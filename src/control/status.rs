//! The `/status` document, built by the loop after every change and published for readers.

use super::service::{pool_cfg, ServiceControl};
use super::Controller;
use crate::config::Mode;
use crate::Color;
use serde_json::{json, Value};
use std::sync::Arc;

impl Controller {
    /// One service's entry in `/status`.
    pub(super) fn service_status(&self, i: usize) -> Value {
        let s = &self.services[i];
        let c = s.candidate.as_ref();
        let step = match (s.cfg.mode, c.and_then(|c| c.step.map(|i| (c, i)))) {
            (Mode::Progressive, Some((c, idx))) => json!({
                "index": idx,
                "of": s.cfg.plan.steps.len(),
                "weights": s.cfg.plan.steps.iter().map(|w| w.percent()).collect::<Vec<_>>(),
                "since": super::incident::timestamp(c.step_since_wall),
                "healthy_measurements": c.healthy_at_step,
                "gated": c.gated(&s.cfg),
            }),
            _ => Value::Null,
        };
        let history = |c: usize| {
            s.history.iter().map(|h| {
            let m = &h.colors[c];
            json!({"at": h.at, "p95_ms": m.p95_ms, "error_rate": m.error_rate, "compliance": m.compliance, "samples": m.samples})
        }).collect::<Vec<_>>()
        };
        let endpoints = |c: Color| {
            s.res.pools[c.index()]
                .endpoints
                .iter()
                .map(|e| json!({"address": e.authority.as_str(), "healthy": e.healthy(), "ejected": e.ejected()}))
                .collect::<Vec<_>>()
        };
        json!({
            "name": s.cfg.name,
            "listen": s.res.listener.as_ref().map_or(s.cfg.listen, |l| l.addr).to_string(),
            "mode": s.cfg.mode,
            "state": s.state(),
            "green_weight": s.weight.percent(),
            "release": s.cfg.green.release,
            "live": s.live,
            "candidate": c.map(|c| c.color),
            "live_release": pool_cfg(&s.cfg, s.live).release,
            "candidate_release": c.and_then(|c| pool_cfg(&s.cfg, c.color).release.clone()),
            "latched": c.is_some_and(|c| c.latched),
            "paused": c.is_some_and(|c| c.paused),
            "admin_weight": c.and_then(|c| c.admin_share.map(|w| if c.color == Color::Green { w } else { w.complement() }.percent())),
            "step": step,
            "progress": self.progress(s),
            "incident": s.incident,
            "health_score": super::health::json(self.health(i)),
            "incident_paging": self.paging(s.incident.as_deref()),
            "endpoints": {"blue": endpoints(Color::Blue), "green": endpoints(Color::Green)},
            "window": {"blue": s.last[0].view(), "green": s.last[1].view()},
            "history": {"blue": history(0), "green": history(1)},
        })
    }

    /// Where the candidate's plan stands and why it is not advancing (null without a candidate).
    fn progress(&self, s: &ServiceControl) -> Value {
        let Some(c) = &s.candidate else { return Value::Null };
        let steps = s.cfg.plan.steps.len();
        let needed = self.cfg.rollout.healthy_measurements;
        let left = c.step.map(|_| s.cfg.plan.hold.saturating_sub(c.step_since.elapsed()));
        let reason = if c.latched {
            Some("rolled back".to_string())
        } else if c.paused {
            Some("paused".into())
        } else if c.admin_share.is_some() {
            Some("operator weight".into())
        } else if s.cfg.mode == Mode::Manual {
            Some("manual mode".into())
        } else if c.step.is_none() {
            Some(match self.waiting_for(&s.cfg.name) {
                _ if self.halted() => "sequence halted".into(),
                Some(n) => format!("waiting for {n}"),
                None => "not started".into(),
            })
        } else {
            c.holding.clone()
        };
        json!({
            "step": c.step.map(|i| format!("{}/{steps}", i + 1)),
            "healthy": c.step.map(|_| format!("{}/{needed}", c.healthy_at_step)),
            "hold_remaining_ms": left.map(|d| d.as_millis() as u64),
            "hold_remaining": left.map(super::progress::fmt_left),
            "reason": reason,
        })
    }

    /// Rebuilds and publishes `/status` and the incident list.
    pub(super) fn publish(&self) {
        let order = &self.cfg.rollout.order;
        let current =
            order.iter().find(|n| self.by_name(n).is_some_and(|s| s.cfg.mode == Mode::Progressive && !s.promoted()));
        let mut doc = json!({
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
        if let Some(link) = &self.fleet {
            doc["fleet"] = link.view.load().to_json();
        }
        self.published.status.store(Arc::new(doc));
        self.published.incidents.store(Arc::new(self.incidents.clone()));
    }
}
