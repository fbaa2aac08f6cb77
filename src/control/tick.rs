//! One measurement tick, the data-path hash alarm, and the rollback itself.

use super::decide::{self, Decision, PlanView, TriggerId, Trip, Verdict};
use super::incident::{self, Incident, Report};
use super::service::{HistoryPoint, PendingReport, HISTORY};
use super::Controller;
use crate::alerts::{Alert, Severity};
use crate::route::{ServiceKey, Weight};
use crate::stats::{names, Measurement};
use crate::Color;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// Spec §4.3 rules that alert even without a rollback: (name, severity, how long bad).
const RULES: [(&str, Severity, Duration); 2] = [
    ("compliance_low", Severity::Critical, Duration::from_secs(180)),
    ("p95_high", Severity::High, Duration::from_secs(120)),
];

impl Controller {
    /// Closes the interval and judges every service.
    pub(super) async fn on_tick(&mut self) {
        let c = self.cfg.control.clone();
        let Some(report) = self.window.close(c.interval, c.window).await else { return };
        let now = SystemTime::now();
        let at = incident::timestamp(now);
        let mut changed = false;
        for i in 0..self.services.len() {
            let m = report.iter().find(|(k, _)| *k == self.services[i].key).map(|(_, m)| m.clone()).unwrap_or_default();
            // What the loop judges (and publishes): green with its overdue in-flight requests.
            let m = [m[0].clone(), with_overdue(&m[1], &self.services[i].cfg.triggers, &self.services[i].stats)];
            self.export_window(i, &m);
            self.check_rules(i, &m);
            let s = &mut self.services[i];
            s.history.push_back(HistoryPoint { at: at.clone(), colors: [m[0].view(), m[1].view()] });
            while s.history.len() > HISTORY {
                s.history.pop_front();
            }
            s.last = m;
            s.hash_alarms = 0;
            if s.pending_report.is_some() {
                self.complete_report(i).await;
            }
            changed |= self.judge(i, now).await;
        }
        if changed {
            self.after_change().await;
        } else {
            self.publish();
        }
    }

    /// Judges one service; returns whether anything changed.
    async fn judge(&mut self, i: usize, now: SystemTime) -> bool {
        let min = self.cfg.control.min_samples;
        let healthy_needed = self.cfg.rollout.healthy_measurements;
        let s = &mut self.services[i];
        if s.latched || s.weight == Weight::ZERO {
            return false;
        }
        let verdict = decide::evaluate(&s.last[1], &s.cfg.triggers, min, &mut s.streaks);
        match &verdict {
            Verdict::Healthy => s.first_bad = None,
            Verdict::Bad(_) | Verdict::Tripped(_) if s.first_bad.is_none() => {
                s.first_bad = Some((now, s.stats.green_started.load(Ordering::Relaxed)));
            }
            _ => {}
        }
        let plan = if s.plan_active() && !s.paused {
            match verdict {
                Verdict::Healthy => s.healthy_at_step += 1,
                Verdict::Bad(_) => s.healthy_at_step = 0,
                _ => {}
            }
            let step = s.step.unwrap_or(0);
            let next = s.cfg.plan.steps.get(step + 1).copied();
            Some(PlanView {
                healthy_at_step: s.healthy_at_step,
                healthy_needed,
                at_step_for: s.step_since.elapsed(),
                hold: s.cfg.plan.hold,
                gated: next.is_some() && next == s.cfg.plan.manual_gate_before && !s.gate_open,
                has_next: next.is_some(),
            })
        } else {
            None
        };
        let decision = decide::decide(&verdict, plan.as_ref());
        let label = match (&decision, &verdict) {
            (Decision::Rollback(_), _) => "rollback",
            (Decision::Advance, _) => "advance",
            (Decision::Hold, Verdict::Inconclusive) => "inconclusive",
            (Decision::Hold, _) => "hold",
        };
        metrics::counter!(names::DECISIONS_TOTAL, "service" => s.cfg.name.to_string(), "decision" => label)
            .increment(1);
        tracing::debug!(service = %s.cfg.name, ?verdict, decision = label, generation = self.generation, "decision");
        match decision {
            Decision::Rollback(trip) => {
                self.rollback(i, trip, Instant::now()).await;
                false
            }
            Decision::Advance => {
                let s = &mut self.services[i];
                s.step = s.step.map(|x| x + 1);
                s.enter_step();
                tracing::info!(service = %s.cfg.name, step = ?s.step, "plan advances");
                true
            }
            Decision::Hold => false,
        }
    }

    /// A green response failed the hash check (sent by the data path, not waiting for a tick).
    pub(super) async fn on_hash_alarm(&mut self, key: ServiceKey) {
        let Some(i) = self.services.iter().position(|s| s.key == key) else { return };
        let s = &mut self.services[i];
        if s.latched || s.weight == Weight::ZERO {
            return;
        }
        let Some(need) = s.cfg.triggers.hash_mismatch else { return };
        s.hash_alarms += 1;
        if s.first_bad.is_none() {
            s.first_bad = Some((SystemTime::now(), s.stats.green_started.load(Ordering::Relaxed)));
        }
        if s.hash_alarms >= need {
            let trip = Trip {
                trigger: TriggerId::HashMismatch,
                value: f64::from(s.hash_alarms),
                threshold: format!(">= {need} mismatching responses"),
            };
            self.rollback(i, trip, Instant::now()).await;
        }
    }

    /// Sends all of a service's traffic to blue in one swap, then records and reports.
    pub(super) async fn rollback(&mut self, i: usize, trip: Trip, decided: Instant) {
        let decided_wall = SystemTime::now();
        let weight_before = self.services[i].weight;
        self.services[i].latched = true;
        self.refresh_weights();
        self.store_routes();
        // Requests already on green are not left to wait out `response_timeout`: the data path
        // re-sends the replayable ones to blue.
        self.services[i].green.abandon_waiting();
        let swap = decided.elapsed();
        let swapped_wall = SystemTime::now();
        let s = &mut self.services[i];
        let name = s.cfg.name.to_string();
        metrics::histogram!(names::ROLLBACK_SWAP).record(swap.as_secs_f64());
        metrics::counter!(names::ROLLBACKS_TOTAL, "service" => name.clone(), "trigger" => trip.trigger.as_str())
            .increment(1);
        let started = s.stats.green_started.load(Ordering::Relaxed);
        let inc = Incident {
            id: format!(
                "inc-{}-{}",
                swapped_wall.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_millis(),
                name
            ),
            service: name.clone(),
            trigger: trip.trigger.as_str().into(),
            value: trip.value,
            threshold: trip.threshold.clone(),
            release: s.cfg.green.release.as_deref().map(String::from),
            weight_before: weight_before.percent(),
            first_bad_at: s.first_bad.map(|(t, _)| incident::timestamp(t)),
            decided_at: incident::timestamp(decided_wall),
            swapped_at: incident::timestamp(swapped_wall),
            decision_to_swap_us: swap.as_micros() as u64,
            green_requests_between: s.first_bad.map_or(0, |(_, n)| started.saturating_sub(n)),
            measurements: vec![s.last[0].view(), s.last[1].view()],
            report: Report {
                green_in_flight_at_swap: s
                    .green
                    .endpoints
                    .iter()
                    .map(|e| u64::from(e.in_flight.load(Ordering::Relaxed)))
                    .sum(),
                ..Default::default()
            },
        };
        s.incident = Some(inc.id.clone());
        s.pending_report = Some(PendingReport { incident: inc.id.clone(), green_started_at_swap: started });
        s.first_bad = None;
        tracing::error!(service = %name, trigger = trip.trigger.as_str(), value = trip.value, threshold = %trip.threshold,
            swap_us = swap.as_micros() as u64, incident = %inc.id, "ROLLBACK: all traffic to blue");
        self.alerter.send(Alert {
            severity: Severity::Critical,
            alert: "rollback".into(),
            text: format!(
                "Switchyard rolled back {name} to blue: {} {} (observed {:.4}); incident {}",
                trip.trigger.as_str(),
                trip.threshold,
                trip.value,
                inc.id
            ),
            service: Some(name.clone()),
            fields: serde_json::to_value(&inc).unwrap_or_default(),
        });
        if s.cfg.mode == crate::config::Mode::Progressive && self.cfg.rollout.order.iter().any(|n| **n == *name) {
            self.alerter.send(Alert {
                severity: Severity::Critical,
                alert: "sequence_halted".into(),
                text: format!("Migration sequence halted by the rollback of {name}; later services stay on blue"),
                service: Some(name.clone()),
                fields: serde_json::json!({"incident": inc.id}),
            });
        }
        self.persist_incident(inc).await;
        self.after_change().await;
    }

    async fn persist_incident(&mut self, inc: Incident) {
        let dir = self.cfg.state_dir.clone();
        let copy = inc.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || incident::append(&dir, &copy)).await {
            tracing::error!(error = %e, "cannot append incident");
        }
        match self.incidents.iter_mut().find(|o| o.id == inc.id) {
            Some(o) => *o = inc,
            None => self.incidents.push(inc),
        }
    }

    /// Validates a rollback at the measurement after it: blue healthy, no new green requests.
    async fn complete_report(&mut self, i: usize) {
        let s = &mut self.services[i];
        let Some(p) = s.pending_report.take() else { return };
        let blue = &s.last[0];
        let t = &s.cfg.triggers;
        let blue_ok = s.blue.any_available()
            && t.error_rate.is_none_or(|tr| blue.samples == 0 || blue.error_rate <= tr.threshold)
            && t.availability.is_none_or(|tr| blue.availability >= tr.threshold);
        let redirected = s.stats.green_started.load(Ordering::Relaxed) == p.green_started_at_swap;
        let Some(mut inc) = self.incidents.iter().find(|x| x.id == p.incident).cloned() else { return };
        inc.report.blue_healthy = Some(blue_ok);
        inc.report.redirection_confirmed = Some(redirected);
        inc.report.completed_at = Some(incident::timestamp(SystemTime::now()));
        inc.report.summary = Some(format!(
            "{}: blue {}, redirection {}; blue p95 {:.1} ms, error rate {:.4}, availability {:.4}",
            inc.service,
            if blue_ok { "healthy" } else { "NOT healthy" },
            if redirected { "confirmed" } else { "NOT confirmed" },
            blue.p95.as_secs_f64() * 1e3,
            blue.error_rate,
            blue.availability
        ));
        tracing::info!(incident = %inc.id, blue_healthy = blue_ok, redirection_confirmed = redirected, "rollback report completed");
        self.persist_incident(inc).await;
    }

    fn export_window(&self, i: usize, m: &[Measurement; 2]) {
        let name = self.services[i].cfg.name.to_string();
        let blue = &m[Color::Blue.index()];
        let p99 = if blue.samples > 0 { blue.p99.as_micros() as u64 } else { 0 };
        self.services[i].stats.blue_p99_us.store(p99, Ordering::Relaxed);
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
        }
    }

    /// Duration-based alert rules for both colors (alert even where no rollback happens).
    fn check_rules(&mut self, i: usize, m: &[Measurement; 2]) {
        let min = self.cfg.control.min_samples;
        let s = &mut self.services[i];
        let (ct, pt) = (s.cfg.triggers.compliance, s.cfg.triggers.p95_latency);
        for c in [Color::Blue, Color::Green] {
            let x = &m[c.index()];
            let conclusive = x.samples >= min.max(1);
            let bad = [
                conclusive && ct.zip(x.compliance).is_some_and(|(t, v)| v < t.threshold),
                conclusive && pt.is_some_and(|t| x.p95 > t.threshold),
            ];
            for (r, (alert, sev, hold)) in RULES.iter().enumerate() {
                let slot = &mut s.alert_rules[c.index()][r];
                if !bad[r] {
                    *slot = (None, false);
                    continue;
                }
                let since = *slot.0.get_or_insert_with(Instant::now);
                if !slot.1 && since.elapsed() >= *hold {
                    slot.1 = true;
                    self.alerter.send(Alert {
                        severity: *sev,
                        alert: (*alert).into(),
                        text: format!(
                            "{} {} {alert} for {}",
                            s.cfg.name,
                            c.as_str(),
                            humantime::format_duration(*hold)
                        ),
                        service: Some(s.cfg.name.to_string()),
                        fields: serde_json::json!({"color": c.as_str(), "measurement": x.view()}),
                    });
                }
            }
        }
    }
}

/// Green's measurement with the requests still running past the p95 threshold counted as slow
/// samples: completed responses alone would hide a stall until it ends. When more than 5 % of
/// (completed + overdue) requests are overdue, p95 is at least the threshold.
fn with_overdue(m: &Measurement, t: &crate::config::Triggers, stats: &crate::stats::ServiceStats) -> Measurement {
    let mut m = m.clone();
    if let Some(tr) = t.p95_latency {
        let overdue = stats.green_inflight.older_than(tr.threshold);
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
