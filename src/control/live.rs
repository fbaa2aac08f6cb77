//! The live pool's own health. A rollback needs a live color to return to; when that color has
//! no healthy endpoint every request fails and there is nothing to roll back to, so the loop
//! says so loudly once per outage: an ERROR log, a critical alert, an incident record
//! ("live pool has no healthy endpoint") and `/status` `live_down` (the page's banner).
//! Also the candidate's: every candidate endpoint failing its probe is hard evidence.

use super::actions::role;
use super::decide::Trip;
use super::incident::{self, Incident, Report};
use super::service::{pool_cfg, ServiceControl};
use super::Controller;
use crate::alerts::{Alert, Severity};
use crate::types::TriggerId;
use std::time::SystemTime;

impl Controller {
    /// Notices the live pool going down or coming back (once per change).
    pub(super) async fn watch_live(&mut self, i: usize) {
        let s = &mut self.services[i];
        let down = !s.res.pools[s.live.index()].any_available();
        if down == s.live_down {
            return;
        }
        s.live_down = down;
        let name = s.cfg.name.to_string();
        let live = role(s, s.live);
        if !down {
            tracing::warn!(service = %name, live = %live, "live pool has a healthy endpoint again");
            self.alerter.send(Alert {
                severity: Severity::High,
                alert: "live_up".into(),
                text: format!("{name}: live {live} has a healthy endpoint again"),
                service: Some(name),
                fields: serde_json::json!({"live": s.live.as_str()}),
                dedup_key: None,
            });
            return;
        }
        let now = SystemTime::now();
        let inc = live_down_incident(s, now);
        tracing::error!(service = %name, live = %live, incident = %inc.id, "live pool has no healthy endpoint: every request to it fails");
        self.alerter.send(Alert {
            severity: Severity::Critical,
            alert: "live_down".into(),
            text: format!("{name}: live pool has no healthy endpoint (live {live}); incident {}", inc.id),
            service: Some(name),
            fields: serde_json::to_value(&inc).unwrap_or_default(),
            dedup_key: None,
        });
        self.persist_incident(inc).await;
    }
}

fn live_down_incident(s: &ServiceControl, now: SystemTime) -> Incident {
    let at = incident::timestamp(now);
    let live_release = pool_cfg(&s.cfg, s.live).release.as_deref().map(String::from);
    let c = s.candidate.as_ref();
    Incident {
        id: incident::new_id(now, &s.cfg.name),
        service: s.cfg.name.to_string(),
        trigger: TriggerId::LiveDown,
        value: 0.0,
        threshold: "live pool has no healthy endpoint".into(),
        release: live_release.clone(),
        weight_before: s.weight.percent(),
        live_color: Some(s.live),
        live_release,
        candidate_color: c.map(|c| c.color),
        candidate_release: c.and_then(|c| pool_cfg(&s.cfg, c.color).release.as_deref().map(String::from)),
        candidate_weight_before: None,
        first_bad_at: Some(at.clone()),
        decided_at: at.clone(),
        swapped_at: at.clone(),
        decision_to_swap_us: 0,
        green_requests_between: 0,
        candidate_requests_between: None,
        measurements: vec![s.last[0].view(), s.last[1].view()],
        report: Report {
            live_healthy: Some(false),
            completed_at: Some(at),
            summary: Some(format!(
                "{}: live pool has no healthy endpoint (live {}); nothing to roll back to",
                s.cfg.name,
                role(s, s.live)
            )),
            ..Default::default()
        },
        escalation: Some(crate::escalation::Escalation::starting(now)),
        examples: Vec::new(),
    }
}

/// The rollback a dead candidate calls for: probes run and every candidate endpoint fails them.
/// Not waiting for `min_samples`: a pool that answers no probe will not produce them.
pub(super) fn candidate_down(s: &ServiceControl) -> Option<Trip> {
    let c = s.candidate.as_ref()?;
    let pool = &s.res.pools[c.color.index()];
    let dead = s.cfg.health.enabled && !pool.endpoints.is_empty() && pool.endpoints.iter().all(|e| !e.healthy());
    dead.then(|| Trip {
        trigger: TriggerId::CandidateDown,
        value: 0.0,
        threshold: "every candidate endpoint fails its health probe".into(),
    })
}
