//! The migration sequence: which candidates' plans may start. A rollback of a progressive
//! service in `rollout.order` halts it; with `sequential`, a service waits for the one before.

use super::Controller;
use crate::config::Mode;

impl Controller {
    /// Starts the plans the migration sequence allows.
    pub(super) fn sequence(&mut self) {
        let order = self.cfg.rollout.order.clone();
        let halted = self.halted();
        let sequential = self.cfg.rollout.sequential;
        // HOOK(fleet): only the leader starts plans.
        let drives = self.fleet_drives();
        let mut previous_promoted = true;
        for name in &order {
            let Some(s) = self.services.iter_mut().find(|s| s.cfg.name == *name) else { continue };
            if s.cfg.mode != Mode::Progressive {
                continue;
            }
            if drives && !halted && (previous_promoted || !sequential) {
                start(s);
            }
            previous_promoted = previous_promoted && s.promoted();
        }
        for s in self.services.iter_mut().filter(|s| !order.contains(&s.cfg.name)) {
            if drives && s.cfg.mode == Mode::Progressive {
                start(s);
            }
        }
    }

    /// Whether the sequence is halted: a progressive service in the order is rolled back.
    /// (Manual services are driven by hand; their rollbacks do not stop other plans.)
    pub(super) fn halted(&self) -> bool {
        self.cfg.rollout.order.iter().any(|n| self.by_name(n).is_some_and(|s| s.halts_sequence()))
    }

    /// The service a not-yet-started candidate waits for (the first earlier one in the order
    /// that is not promoted), for `/status`.
    pub(super) fn waiting_for(&self, name: &str) -> Option<&str> {
        if !self.cfg.rollout.sequential {
            return None;
        }
        let order = &self.cfg.rollout.order;
        let pos = order.iter().position(|n| **n == *name)?;
        order[..pos]
            .iter()
            .map(|n| &**n)
            .find(|n| self.by_name(n).is_some_and(|s| s.cfg.mode == Mode::Progressive && !s.promoted()))
    }
}

fn start(s: &mut super::service::ServiceControl) {
    if let Some(c) = s.candidate.as_mut().filter(|c| c.step.is_none() && !c.latched && c.admin_share.is_none()) {
        tracing::info!(service = %s.cfg.name, color = c.color.as_str(), "plan starts");
        c.start_plan();
    }
}
