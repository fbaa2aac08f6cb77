//! Rollback: all of a service's traffic back to its live color in one swap, then the incident,
//! the alert and (at the next measurement) the report that validates it. Triggered by a
//! measurement, a data-path hash alarm, or an operator.

use super::decide::{self, TriggerId, Trip};
use super::fleet::Claimed;
use super::incident::{self, Incident, Report};
use super::service::{pool_cfg, PendingReport};
use super::Controller;
use crate::alerts::{Alert, Severity};
use crate::route::{ServiceKey, Weight};
use crate::stats::names;
use std::sync::atomic::Ordering;
use std::time::SystemTime;
use tokio::time::Instant;

impl Controller {
    /// A candidate response failed the hash check (sent by the data path, not waiting for a tick).
    pub(super) async fn on_hash_alarm(&mut self, key: ServiceKey) {
        let Some(i) = self.services.iter().position(|s| s.key == key) else { return };
        let s = &mut self.services[i];
        let Some(c) = s.candidate.as_mut() else { return };
        if c.latched || c.share(&s.cfg) == Weight::ZERO {
            return;
        }
        c.hash_alarms += 1;
        if c.first_bad.is_none() {
            c.first_bad = Some((SystemTime::now(), s.res.stats.started[c.color.index()].load(Ordering::Relaxed)));
        }
        if let Some(trip) = decide::hash_trip(u64::from(c.hash_alarms), &s.cfg.triggers) {
            self.rollback(i, trip, Instant::now()).await;
        }
    }

    /// Sends all of a service's traffic to the live color in one swap, then records and reports.
    pub(super) async fn rollback(&mut self, i: usize, trip: Trip, decided: Instant) {
        let decided_wall = SystemTime::now();
        let weight_before = self.services[i].weight;
        let Some(c) = self.services[i].candidate.as_mut() else { return };
        let first_bad = c.rollback();
        let color = c.color;
        let swap = self.store().saturating_duration_since(decided);
        // Requests already sent to the candidate are not left to wait out `response_timeout`: the
        // data path re-sends the replayable ones to the live color.
        self.services[i].res.pools[color.index()].abandon_waiting();
        let swapped_wall = SystemTime::now();
        let s = &mut self.services[i];
        let name = s.cfg.name.to_string();
        let live = s.live.as_str();
        metrics::histogram!(names::ROLLBACK_SWAP).record(swap.as_secs_f64());
        metrics::counter!(names::ROLLBACKS_TOTAL, "service" => name.clone(), "trigger" => trip.trigger.as_str())
            .increment(1);
        let started = s.res.stats.started[color.index()].load(Ordering::Relaxed);
        // The failures that fed the trip: from a window before the first bad measurement on.
        let since_bad = first_bad.and_then(|(t, _)| swapped_wall.duration_since(t).ok()).unwrap_or_default();
        let examples_window = self.cfg.control.window + since_bad;
        let between = first_bad.map_or(0, |(_, n)| started.saturating_sub(n));
        let in_flight: u64 =
            s.res.pools[color.index()].endpoints.iter().map(|e| u64::from(e.in_flight.load(Ordering::Relaxed))).sum();
        let share_before = super::service::as_green(color, weight_before);
        let inc = Incident {
            id: incident::new_id(swapped_wall, &name),
            service: name.clone(),
            trigger: trip.trigger,
            value: trip.value,
            threshold: trip.threshold.clone(),
            release: pool_cfg(&s.cfg, color).release.as_deref().map(String::from),
            weight_before: weight_before.percent(),
            live_color: Some(s.live),
            live_release: pool_cfg(&s.cfg, s.live).release.as_deref().map(String::from),
            candidate_color: Some(color),
            candidate_release: pool_cfg(&s.cfg, color).release.as_deref().map(String::from),
            candidate_weight_before: Some(share_before.percent()),
            first_bad_at: first_bad.map(|(t, _)| incident::timestamp(t)),
            decided_at: incident::timestamp(decided_wall),
            swapped_at: incident::timestamp(swapped_wall),
            decision_to_swap_us: swap.as_micros() as u64,
            green_requests_between: between,
            candidate_requests_between: Some(between),
            measurements: vec![s.last[0].view(), s.last[1].view()],
            report: Report {
                green_in_flight_at_swap: in_flight,
                candidate_in_flight_at_swap: Some(in_flight),
                ..Default::default()
            },
            escalation: (trip.trigger != TriggerId::Manual)
                .then(|| crate::escalation::Escalation::starting(swapped_wall)),
            examples: s.res.stats.examples.first_within(examples_window, incident::EXAMPLES),
        };
        s.incident = Some(inc.id.clone());
        if let Some(c) = s.candidate.as_mut() {
            c.pending_report = Some(PendingReport { incident: inc.id.clone(), started_at_swap: started });
        }
        // HOOK(fleet): the first replica whose latch lands owns the incident and the alert.
        let claimed = self.fleet_claim(i).await;
        if let Claimed::Theirs(winner) = claimed {
            let s = &mut self.services[i];
            s.incident = winner.incident;
            if let Some(c) = s.candidate.as_mut() {
                c.pending_report = None;
            }
            tracing::warn!(service = %name, incident = s.incident.as_deref().unwrap_or("-"), "rollback already decided by another replica");
            self.persist_and_publish().await;
            return;
        }
        let dedup_key = self.rollback_dedup_key(i, &inc.id);
        let s = &mut self.services[i];
        tracing::error!(service = %name, trigger = trip.trigger.as_str(), value = round4(trip.value), threshold = %trip.threshold,
            swap_us = swap.as_micros() as u64, incident = %inc.id, live, "ROLLBACK: all traffic to the live color");
        let mut alerts = vec![Alert {
            severity: Severity::Critical,
            alert: "rollback".into(),
            text: format!(
                "Switchyard rolled back {name} to {live}: {} {} (observed {:.4}); incident {}",
                trip.trigger.as_str(),
                trip.threshold,
                trip.value,
                inc.id
            ),
            service: Some(name.clone()),
            fields: serde_json::to_value(&inc).unwrap_or_default(),
            dedup_key: Some(format!("rollback/{dedup_key}")),
        }];
        if s.cfg.mode == crate::config::Mode::Progressive && self.cfg.rollout.order.iter().any(|n| **n == *name) {
            alerts.push(Alert {
                severity: Severity::Critical,
                alert: "sequence_halted".into(),
                text: format!(
                    "Migration sequence halted by the rollback of {name}; later services keep their live color"
                ),
                service: Some(name.clone()),
                fields: serde_json::json!({"incident": inc.id}),
                dedup_key: Some(format!("sequence_halted/{dedup_key}")),
            });
        }
        // A replica cut off from the store holds them until the store says whose rollback it is.
        self.send_rollback_alerts(&inc.id, alerts, claimed == Claimed::Unknown);
        self.persist_incident(inc).await;
        self.persist_and_publish().await;
    }

    pub(super) async fn persist_incident(&mut self, inc: Incident) {
        let dir = self.cfg.state_dir.clone();
        let copy = inc.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || incident::append(&dir, &copy)).await {
            tracing::error!(error = %e, "cannot append incident");
        }
        self.fleet_incident(&inc);
        match self.incidents.iter_mut().find(|o| o.id == inc.id) {
            Some(o) => *o = inc,
            None => self.incidents.push(inc),
        }
    }

    /// Validates a rollback at the measurement after it: the live color healthy, no new requests
    /// to the candidate.
    pub(super) async fn complete_report(&mut self, i: usize, p: PendingReport) {
        let s = &self.services[i];
        let Some(color) = s.candidate.as_ref().map(|c| c.color) else { return };
        let live = &s.last[s.live.index()];
        let t = &s.cfg.triggers;
        let live_ok = s.res.pools[s.live.index()].any_available()
            && t.error_rate.is_none_or(|tr| live.samples == 0 || live.error_rate <= tr.threshold)
            && t.availability.is_none_or(|tr| live.availability >= tr.threshold);
        let redirected = s.res.stats.started[color.index()].load(Ordering::Relaxed) == p.started_at_swap;
        let Some(mut inc) = self.incidents.iter().find(|x| x.id == p.incident).cloned() else { return };
        inc.report.blue_healthy = Some(live_ok);
        inc.report.live_healthy = Some(live_ok);
        inc.report.redirection_confirmed = Some(redirected);
        inc.report.completed_at = Some(incident::timestamp(SystemTime::now()));
        inc.report.summary = Some(format!(
            "{}: live {} {}, candidate {} rolled back, redirection {}; live p95 {:.1} ms, error rate {:.4}, availability {:.4}",
            inc.service,
            super::actions::role(s, s.live),
            if live_ok { "healthy" } else { "NOT healthy" },
            super::actions::role(s, color),
            if redirected { "confirmed" } else { "NOT confirmed" },
            live.p95.as_secs_f64() * 1e3,
            live.error_rate,
            live.availability
        ));
        tracing::info!(incident = %inc.id, live_healthy = live_ok, redirection_confirmed = redirected, "rollback report completed");
        self.persist_incident(inc).await;
    }
}

/// A float as logs show it: four decimals, so `0.1` is not `0.10000000000000002`.
pub(super) fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}
