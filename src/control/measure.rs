//! One measurement tick: close the window, export it, run the alert rules, and judge each
//! service's candidate against its triggers (the live color is never judged: there is nothing
//! to roll back to).

use super::decide::{self, Decision, PlanView, Verdict};
use super::incident;
use super::service::{HistoryPoint, HISTORY};
use super::Controller;
use crate::alerts::Alert;
use crate::route::Weight;
use crate::stats::{names, Measurement};
use crate::Color;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

impl Controller {
    /// Closes the interval and judges every service.
    pub(super) async fn on_tick(&mut self) {
        self.release_overdue_alerts();
        let Some((report, summaries)) = self.close_window().await else { return };
        let now = SystemTime::now();
        let at = incident::timestamp(now);
        let mut changed = false;
        for i in 0..self.services.len() {
            let key = self.services[i].key;
            let m = report.iter().find(|(k, _)| *k == key).map(|(_, m)| m.clone()).unwrap_or_default();
            // HOOK(fleet): the leader judges every live replica's window merged.
            let mut m = self.fleet_window(i, &summaries).unwrap_or(m);
            let s = &self.services[i];
            // What the loop judges (and publishes): the candidate with its overdue in-flight requests.
            if let Some(c) = s.candidate.as_ref().map(|c| c.color.index()) {
                m[c] = with_overdue(&m[c], &s.cfg.triggers, &s.res.stats);
            }
            self.export_window(i, &m);
            self.check_rules(i, &m);
            let s = &mut self.services[i];
            s.history.push_back(HistoryPoint { at: at.clone(), colors: [m[0].view(), m[1].view()] });
            while s.history.len() > HISTORY {
                s.history.pop_front();
            }
            s.last = m;
            let pending = s.candidate.as_mut().and_then(|c| {
                c.hash_alarms = 0;
                c.pending_report.take()
            });
            if let Some(p) = pending {
                self.complete_report(i, p).await;
            }
            self.watch_live(i).await;
            changed |= !self.fleet_defers() && self.judge(i, now).await;
        }
        self.export_health();
        self.export_unacknowledged();
        if changed {
            self.commit().await;
        } else {
            self.publish();
        }
    }

    /// Judges one service's candidate; returns whether anything changed.
    async fn judge(&mut self, i: usize, now: SystemTime) -> bool {
        let min = self.cfg.control.min_samples;
        let healthy_needed = self.cfg.rollout.healthy_measurements;
        // HOOK(fleet): only the leader moves plans, and only the fleet's (a follower still rolls
        // back on evidence).
        let drives = self.fleet_drives_service(i);
        let s = &mut self.services[i];
        let plan_active = s.plan_active() && drives;
        let dead = super::live::candidate_down(s);
        let Some(c) = s.candidate.as_mut() else { return false };
        c.sync_pause();
        if c.latched || c.share(&s.cfg) == Weight::ZERO {
            c.holding = None;
            return false;
        }
        let m = &s.last[c.color.index()];
        let verdict = match dead {
            Some(trip) => Verdict::Tripped(trip),
            None => decide::evaluate(m, &s.cfg.triggers, min, &mut c.streaks),
        };
        match &verdict {
            Verdict::Healthy => c.first_bad = None,
            Verdict::Bad(_) | Verdict::Tripped(_) if c.first_bad.is_none() => {
                c.first_bad = Some((now, s.res.stats.started[c.color.index()].load(Ordering::Relaxed)));
            }
            _ => {}
        }
        let plan = if plan_active && !c.paused {
            match verdict {
                Verdict::Healthy => c.healthy_at_step += 1,
                Verdict::Bad(_) => c.healthy_at_step = 0,
                _ => {}
            }
            let step = c.step.unwrap_or(0);
            Some(PlanView {
                healthy_at_step: c.healthy_at_step,
                healthy_needed,
                at_step_for: c.at_step_for(),
                hold: s.cfg.plan.hold,
                gated: c.gated(&s.cfg),
                has_next: step + 1 < s.cfg.plan.steps.len(),
            })
        } else {
            None
        };
        let decision = decide::decide(&verdict, plan.as_ref());
        c.holding = super::progress::holding(&verdict, plan.as_ref(), m.samples, min);
        let label = match (&decision, &verdict) {
            (Decision::Rollback(_), _) => "rollback",
            (Decision::Advance, _) => "advance",
            (Decision::Complete, _) => "complete",
            (Decision::Hold, Verdict::Inconclusive) => "inconclusive",
            (Decision::Hold, _) => "hold",
        };
        metrics::counter!(names::DECISIONS_TOTAL, "service" => s.cfg.name.to_string(), "decision" => label)
            .increment(1);
        tracing::debug!(service = %s.cfg.name, verdict = verdict.name(), decision = label, generation = self.generation, "decision");
        match decision {
            Decision::Rollback(trip) => {
                self.rollback(i, trip, Instant::now()).await;
                false
            }
            Decision::Advance => {
                c.step = c.step.map(|x| x + 1);
                c.enter_step();
                tracing::info!(service = %s.cfg.name, step = c.step.map_or(0, |i| i + 1), of = s.cfg.plan.steps.len(), "plan advances");
                true
            }
            Decision::Complete => {
                // HOOK(fleet): the store completes the plan; this replica follows when it applies it.
                if let Some(link) = self.fleet.as_mut() {
                    super::fleet::complete_in_store(link, s);
                    return false;
                }
                let release = super::service::pool_cfg(&s.cfg, c.color).release.clone();
                tracing::info!(service = %s.cfg.name, color = c.color.as_str(), release = release.as_deref().unwrap_or("-"), "plan complete: the candidate is live");
                s.complete();
                true
            }
            Decision::Hold => false,
        }
    }

    fn export_window(&self, i: usize, m: &[Measurement; 2]) {
        let name = self.services[i].cfg.name.to_string();
        // Hedging after "p99" waits for the live color's recent p99 (0 = not measured yet).
        let live = &m[self.services[i].live.index()];
        let p99 = if live.samples > 0 { live.p99.as_micros() as u64 } else { 0 };
        self.services[i].res.stats.live_p99_us.store(p99, Ordering::Relaxed);
        for c in [Color::Blue, Color::Green] {
            let x = &m[c.index()];
            let g =
                |n: &'static str, v: f64| metrics::gauge!(n, "service" => name.clone(), "color" => c.as_str()).set(v);
            g(names::WINDOW_SAMPLES, x.samples as f64);
            g(names::WINDOW_P50, x.p50.as_secs_f64());
            g(names::WINDOW_P95, x.p95.as_secs_f64());
            g(names::WINDOW_P99, x.p99.as_secs_f64());
            g(names::WINDOW_MAX, x.max.as_secs_f64());
            g(names::WINDOW_ERROR_RATE, x.error_rate);
            g(names::WINDOW_AVAILABILITY, x.availability);
            g(names::WINDOW_RPS, x.rps);
            if let Some(cp) = x.compliance {
                g(names::WINDOW_COMPLIANCE, cp);
            }
            // One series per configured status_rate trigger, so generated alert rules
            // (`switchyard rules`) compare the same rate the trigger judges.
            for t in &self.services[i].cfg.triggers.status_rate {
                let statuses = crate::stats::names::statuses_label(&t.statuses);
                metrics::gauge!(names::WINDOW_STATUS_RATE, "service" => name.clone(), "color" => c.as_str(), "statuses" => statuses)
                    .set(x.status_rate(&t.statuses));
            }
        }
    }

    /// Duration-based alert rules for both colors (alert even where no rollback happens).
    fn check_rules(&mut self, i: usize, m: &[Measurement; 2]) {
        let min = self.cfg.control.min_samples;
        let s = &mut self.services[i];
        let now = Instant::now();
        for c in [Color::Blue, Color::Green] {
            let x = &m[c.index()];
            for rule in s.alert_rules.observe(c, x, &s.cfg.triggers, min, now) {
                self.alerter.send(Alert {
                    severity: rule.severity,
                    alert: rule.alert.into(),
                    text: format!(
                        "{} {} {} for {}",
                        s.cfg.name,
                        c.as_str(),
                        rule.alert,
                        humantime::format_duration(rule.hold)
                    ),
                    service: Some(s.cfg.name.to_string()),
                    fields: serde_json::json!({"color": c.as_str(), "measurement": x.view()}),
                    dedup_key: None,
                });
            }
        }
    }
}

/// The candidate's measurement with the requests still running past the p95 threshold counted as slow
/// samples: completed responses alone would hide a stall until it ends. When more than 5 % of
/// (completed + overdue) requests are overdue, p95 is at least the threshold.
fn with_overdue(m: &Measurement, t: &crate::config::Triggers, stats: &crate::stats::ServiceStats) -> Measurement {
    let mut m = m.clone();
    if let Some(tr) = t.p95_latency {
        let overdue = stats.candidate_inflight.older_than(tr.threshold);
        if overdue > 0 {
            let total = m.samples + overdue;
            if overdue as f64 > 0.05 * total as f64 {
                m.p95 = m.p95.max(tr.threshold + Duration::from_millis(1));
            }
            m.samples = total;
        }
    }
    m
}
