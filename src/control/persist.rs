//! `state.json`: what a restart needs to resume each service where it was — live color,
//! candidate and its plan step, latch, operator overrides.

use super::candidate::Candidate;
use super::service::{as_green, fingerprint, pool_cfg, ServiceControl};
use super::Controller;
use crate::config::Mode;
use crate::route::Weight;
use crate::state::{ServiceState, StateFile};
use crate::Color;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

impl Controller {
    /// Writes `state.json` atomically (off the runtime threads).
    pub(super) async fn save_state(&mut self) {
        if self.fleet.is_some() {
            // HOOK(fleet): the store holds the state; no volume to share, no fsync per change.
            return;
        }
        let mut file = StateFile { version: 1, sequence_halted: self.halted(), ..Default::default() };
        for s in &self.services {
            file.services.insert(s.cfg.name.to_string(), saved(s));
        }
        let dir = self.cfg.state_dir.clone();
        match tokio::task::spawn_blocking(move || crate::state::save(&dir, &file)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "cannot persist state"),
            Err(e) => tracing::error!(error = %e, "state writer panicked"),
        }
    }
}

fn saved(s: &ServiceControl) -> ServiceState {
    let c = s.candidate.as_ref();
    let admin = c.and_then(|c| c.admin_share.map(|w| as_green(c.color, w)));
    let paused_since = c.and_then(|c| c.paused_at.filter(|_| c.paused)).map(|at| {
        let wall = SystemTime::now().checked_sub(at.elapsed()).unwrap_or(UNIX_EPOCH);
        wall.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
    });
    ServiceState {
        mode: s.cfg.mode,
        state: s.state(),
        step: c.and_then(|c| c.step),
        step_since_ms: c
            .filter(|c| c.step.is_some())
            .map(|c| c.step_since_wall.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64),
        weight: s.weight.percent(),
        latched: c.is_some_and(|c| c.latched),
        release: s.cfg.green.release.as_deref().map(String::from),
        admin_weight: admin.map(|w| w.percent()),
        paused: c.is_some_and(|c| c.paused),
        paused_since_ms: paused_since,
        incident: s.incident.clone(),
        live: Some(s.live),
        candidate: c.map(|c| c.color),
        idle_pool: Some(fingerprint(pool_cfg(&s.cfg, s.idle()))),
    }
}

/// Restores a service from its saved state. The idle pool decides: the same pool as saved keeps
/// the candidate (or its absence: a retired release stays retired); a different one is a release
/// deployed while the process was down, whose plan starts fresh.
pub(super) fn restore(svc: &mut ServiceControl, st: &ServiceState) {
    svc.incident = st.incident.clone();
    if svc.cfg.mode == Mode::Progressive {
        svc.live = st.live.unwrap_or(Color::Blue);
    }
    let idle = svc.idle();
    let same_pool = match &st.idle_pool {
        Some(fp) => *fp == fingerprint(pool_cfg(&svc.cfg, idle)) && st.live.unwrap_or(Color::Blue) == svc.live,
        None => st.release.as_deref() == svc.cfg.green.release.as_deref(),
    };
    if !same_pool {
        tracing::info!(service = %svc.cfg.name, live = svc.live.as_str(), "saved state is for another release: starting a fresh plan");
        svc.candidate = Some(Candidate::new(idle));
        return;
    }
    if st.idle_pool.is_some() && st.candidate.is_none() && svc.cfg.mode == Mode::Progressive {
        tracing::info!(service = %svc.cfg.name, live = svc.live.as_str(), "state restored: no candidate, the idle pool is retired");
        svc.candidate = None;
        return;
    }
    let mut c = Candidate::new(idle);
    c.latched = st.latched;
    c.admin_share = st.admin_weight.and_then(|w| Weight::from_percent(w).ok()).map(|w| as_green(idle, w));
    c.paused = st.paused;
    if svc.cfg.mode == Mode::Progressive {
        c.step = st.step.map(|i| i.min(svc.cfg.plan.steps.len() - 1));
        if let Some(ms) = st.step_since_ms {
            let wall = UNIX_EPOCH + Duration::from_millis(ms);
            let ago = SystemTime::now().duration_since(wall).unwrap_or_default();
            c.step_since_wall = wall;
            c.step_since = Instant::now().checked_sub(ago).unwrap_or_else(Instant::now);
            // A paused hold stood still from the pause on, through the downtime too.
            if let Some(p) = st.paused_since_ms.filter(|_| st.paused) {
                let held = Duration::from_millis(p.saturating_sub(ms));
                c.step_since = Instant::now().checked_sub(held).unwrap_or_else(Instant::now);
                c.step_since_wall = SystemTime::now().checked_sub(held).unwrap_or(wall);
            }
        }
    }
    c.sync_pause();
    tracing::info!(service = %svc.cfg.name, live = svc.live.as_str(), step = c.step.map_or(0, |i| i + 1), latched = c.latched, "state restored");
    svc.candidate = Some(c);
}
