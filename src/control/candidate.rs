//! The release under judgement in the idle color: where its plan stands, its trigger streaks and
//! its rollback latch. Resetting it (operator reset, new release) is building a fresh one.

use super::decide::Streaks;
use crate::config::{Mode, ServiceConfig};
use crate::route::Weight;
use crate::Color;
use std::time::SystemTime;
use tokio::time::Instant;

/// A rollback whose report awaits validation at the next measurement.
#[derive(Clone, Debug)]
pub struct PendingReport {
    /// Incident id.
    pub incident: String,
    /// Requests started on the candidate color at the swap.
    pub started_at_swap: u64,
}

/// The candidate's control state.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// The idle color it was deployed into.
    pub color: Color,
    /// Rolled back: it gets nothing until reset or a new release.
    pub latched: bool,
    /// Share set by an operator (of the candidate, not of green).
    pub admin_share: Option<Weight>,
    /// Plan paused by an operator.
    pub paused: bool,
    /// When the pause began: the hold clock stands still from then on (`at_step_for`), and
    /// `unpause` moves the step's start forward by the pause, so a paused hold never runs down.
    pub paused_at: Option<Instant>,
    /// An operator opened the manual gate.
    pub gate_open: bool,
    /// Current plan step.
    pub step: Option<usize>,
    /// When the step started (monotonic, for the hold).
    pub step_since: Instant,
    /// When the step started (wall clock, persisted).
    pub step_since_wall: SystemTime,
    /// Healthy measurements at this step.
    pub healthy_at_step: u32,
    /// Trigger streaks.
    pub streaks: Streaks,
    /// First bad measurement of the current streak: time and requests started on it then.
    pub first_bad: Option<(SystemTime, u64)>,
    /// Hash alarms from the data path since the last measurement.
    pub hash_alarms: u32,
    /// Report awaiting validation.
    pub pending_report: Option<PendingReport>,
    /// Why the plan did not advance at the last measurement (for `/status`).
    pub holding: Option<String>,
}

impl Candidate {
    /// A fresh candidate: no plan step yet (the sequence starts it), nothing measured.
    pub fn new(color: Color) -> Self {
        Candidate {
            color,
            latched: false,
            admin_share: None,
            paused: false,
            paused_at: None,
            gate_open: false,
            step: None,
            step_since: Instant::now(),
            step_since_wall: SystemTime::now(),
            healthy_at_step: 0,
            streaks: Streaks::default(),
            first_bad: None,
            hash_alarms: 0,
            pending_report: None,
            holding: None,
        }
    }

    /// Forgets everything about this candidate's past; the plan restarts from step 1.
    pub fn reset(&mut self) {
        *self = Candidate::new(self.color);
    }

    /// Latches it off; returns the first bad measurement of the streak that led here.
    pub fn rollback(&mut self) -> Option<(SystemTime, u64)> {
        self.latched = true;
        self.first_bad.take()
    }

    /// The share of traffic the rules give it.
    pub fn share(&self, cfg: &ServiceConfig) -> Weight {
        if self.latched {
            return Weight::ZERO;
        }
        if let Some(w) = self.admin_share {
            return w;
        }
        match cfg.mode {
            Mode::Progressive => self.step.map_or(Weight::ZERO, |i| cfg.plan.steps[i]),
            Mode::Manual => cfg.green_weight,
        }
    }

    /// The control loop, not an operator, moves it along its plan.
    pub fn drives_plan(&self) -> bool {
        self.step.is_some() && !self.latched && self.admin_share.is_none()
    }

    /// Starts (or restarts) the plan at step 0.
    pub fn start_plan(&mut self) {
        self.step = Some(0);
        self.enter_step();
    }

    /// Resets the per-step bookkeeping after moving to a step.
    pub fn enter_step(&mut self) {
        self.step_since = Instant::now();
        self.paused_at = self.paused.then_some(self.step_since);
        self.step_since_wall = SystemTime::now();
        self.healthy_at_step = 0;
        self.gate_open = false;
    }

    /// Time spent at this step, not counting pauses.
    pub fn at_step_for(&self) -> std::time::Duration {
        let end = self.paused_at.filter(|_| self.paused).unwrap_or_else(Instant::now);
        end.saturating_duration_since(self.step_since)
    }

    /// Freezes the hold clock.
    pub fn pause(&mut self) {
        self.paused = true;
        self.sync_pause();
    }

    /// Starts the hold clock again where it stood.
    pub fn unpause(&mut self) {
        self.paused = false;
        self.sync_pause();
    }

    /// Brings the clock in line with `paused` (which the fleet's shared state may also set):
    /// a pause that began starts its clock; one that ended moves the step's start forward.
    pub fn sync_pause(&mut self) {
        match (self.paused, self.paused_at) {
            (true, None) => self.paused_at = Some(Instant::now()),
            (false, Some(at)) => {
                let held = at.elapsed();
                self.step_since += held;
                self.step_since_wall += held;
                self.paused_at = None;
            }
            _ => {}
        }
    }

    /// The index of the last plan step whose weight is at most `share` (step 0 below the first):
    /// where `resume` hands an operator's weight back to the plan.
    pub fn step_at_or_below(cfg: &ServiceConfig, share: Weight) -> usize {
        cfg.plan.steps.iter().rposition(|w| *w <= share).unwrap_or(0)
    }

    /// The next step is gated behind an operator's `/advance`.
    pub fn gated(&self, cfg: &ServiceConfig) -> bool {
        let next = self.step.and_then(|i| cfg.plan.steps.get(i + 1)).copied();
        next.is_some() && next == cfg.plan.manual_gate_before && !self.gate_open
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A paused hold stands still; resumed, it runs on from where it stood.
    #[tokio::test(start_paused = true)]
    async fn a_pause_freezes_the_hold_clock() {
        let mut c = Candidate::new(Color::Green);
        c.start_plan();
        tokio::time::advance(Duration::from_secs(10)).await;
        c.pause();
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(c.at_step_for(), Duration::from_secs(10), "paused: frozen");
        c.unpause();
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(c.at_step_for(), Duration::from_secs(15), "resumed: the pause does not count");
        // A pause the fleet's shared state sets (the flag alone) starts the clock at the next sync.
        c.paused = true;
        c.sync_pause();
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(c.at_step_for(), Duration::from_secs(15));
    }

    #[test]
    fn an_override_goes_back_to_the_step_at_or_below_it() {
        let text = "[rollout]\norder = [\"s\"]\n[[services]]\nname = \"s\"\nlisten = \"127.0.0.1:0\"\nmode = \"progressive\"\n\
                    steps = [10, 50, 100]\nblue = { endpoints = [\"127.0.0.1:1\"] }\n\
                    green = { endpoints = [\"127.0.0.1:2\"], release = \"r\" }\n";
        let cfg = crate::config::parse(text, std::path::Path::new("t.toml")).unwrap().services.remove(0);
        let at = |p: f64| Candidate::step_at_or_below(&cfg, Weight::from_percent(p).unwrap());
        assert_eq!([at(5.0), at(10.0), at(20.0), at(50.0), at(99.0), at(100.0)], [0, 0, 0, 1, 1, 2]);
    }

    #[test]
    fn reset_keeps_the_color_and_forgets_the_rest() {
        let mut c = Candidate::new(Color::Blue);
        c.start_plan();
        c.hash_alarms = 3;
        c.first_bad = Some((SystemTime::now(), 7));
        assert_eq!(c.rollback().map(|(_, n)| n), Some(7));
        assert!(c.latched && c.first_bad.is_none());
        c.reset();
        assert_eq!((c.color, c.latched, c.step, c.hash_alarms), (Color::Blue, false, None, 0));
    }
}
