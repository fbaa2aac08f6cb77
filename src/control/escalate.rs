//! The loop's side of escalation: one timer for the earliest due level across incidents, the
//! pages themselves, and acknowledgements. Every change is appended to `incidents.jsonl` before
//! it is published, so a restart neither repeats a page nor forgets one that fell due meanwhile.

use super::incident::{self, Incident};
use super::{CommandError, Controller};
use crate::alerts::{Alert, Severity};
use crate::escalation::{self, Ack};
use std::time::SystemTime;
use tokio::time::Instant;

/// An operator's answer to an incident (`POST /incidents/{id}/ack`).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckRequest {
    /// Who answers.
    pub by: String,
    /// What they are doing about it.
    pub note: Option<String>,
}

impl Controller {
    /// When the loop must wake for the next escalation page, if any incident still has one.
    pub(super) fn next_escalation(&self) -> Option<Instant> {
        let levels = &self.cfg.alerts.escalation;
        // In a fleet only the leader pages (the schedule travels with the incident in the store,
        // so a new leader continues it); alone, `fleet_drives` is always true.
        if !self.cfg.alerts.escalation_enabled() || !self.fleet_drives() {
            return None;
        }
        let due = self.incidents.iter().filter_map(|i| i.escalation.as_ref()?.next_due_ms(levels)).min()?;
        Some(Instant::now() + escalation::wait(due, escalation::unix_ms(SystemTime::now())))
    }

    /// Pages every level that is due, oldest incident first, each level once.
    pub(super) async fn escalate_due(&mut self) {
        if !self.fleet_drives() {
            return;
        }
        let now = SystemTime::now();
        let levels = self.cfg.alerts.escalation.clone();
        let mut changed = Vec::new();
        for inc in &mut self.incidents {
            let Some(esc) = inc.escalation.as_mut() else { continue };
            let due = esc.due(&levels, escalation::unix_ms(now));
            if due.is_empty() {
                continue;
            }
            for &level in &due {
                esc.level = level;
                esc.paged_at.push(incident::timestamp(now));
            }
            for level in due {
                let l = &levels[level - 1];
                self.alerter.page(page(inc, level, levels.len(), l.after), l.webhooks.clone());
            }
            changed.push(inc.clone());
        }
        if changed.is_empty() {
            return;
        }
        for inc in changed {
            self.persist_incident(inc).await;
        }
        self.publish();
    }

    /// The paging state of incident `id` for `/status` ("escalated to level 2", ...); `None` when
    /// the incident does not page.
    pub(super) fn paging(&self, id: Option<&str>) -> Option<String> {
        let esc = id.and_then(|id| self.incidents.iter().find(|i| i.id == id)?.escalation.as_ref());
        esc.map(|e| e.describe())
    }

    /// `switchyard_incidents_unacknowledged{service}`: what Prometheus escalates on when
    /// Alertmanager, not Switchyard, does the paging (docker/alertmanager).
    pub(super) fn export_unacknowledged(&self) {
        for s in &self.services {
            let n = self
                .incidents
                .iter()
                .filter(|i| {
                    *i.service == *s.cfg.name && i.escalation.as_ref().is_some_and(|e| e.acknowledged.is_none())
                })
                .count();
            metrics::gauge!(crate::stats::names::UNACKNOWLEDGED, "service" => s.cfg.name.to_string()).set(n as f64);
        }
    }

    /// Records an acknowledgement; a second one is refused so the first responder stays on record.
    pub(super) async fn acknowledge(&mut self, id: &str, req: AckRequest) -> Result<serde_json::Value, CommandError> {
        if req.by.trim().is_empty() {
            return Err(CommandError::MissingAcknowledger);
        }
        let Some(inc) = self.incidents.iter().find(|i| i.id == id) else {
            return Err(CommandError::NoIncident(id.into()));
        };
        let mut inc = inc.clone();
        let esc = inc.escalation.get_or_insert_with(|| escalation::Escalation::starting(SystemTime::now()));
        if let Some(a) = &esc.acknowledged {
            return Err(
                super::Conflict::AlreadyAcknowledged { id: id.into(), by: a.by.clone(), at: a.at.clone() }.into()
            );
        }
        esc.acknowledged = Some(Ack {
            by: req.by.trim().to_string(),
            note: req.note.filter(|n| !n.trim().is_empty()),
            at: incident::timestamp(SystemTime::now()),
            level: esc.level,
        });
        tracing::info!(incident = id, state = %esc.describe(), "incident acknowledged");
        let out = serde_json::to_value(&inc).unwrap_or_default();
        self.persist_incident(inc).await;
        self.export_unacknowledged();
        self.publish();
        Ok(out)
    }
}

/// The page: Slack-style `text` with what happened, for how long nobody answered, and how to answer.
fn page(inc: &Incident, level: usize, of: usize, after: std::time::Duration) -> Alert {
    Alert {
        severity: Severity::Critical,
        alert: "escalation".into(),
        text: format!(
            "ESCALATION level {level}/{of}: {} rolled back ({} {}) and unacknowledged for {}; incident {}. \
             Acknowledge: switchyard ack {} --by NAME",
            inc.service,
            inc.trigger,
            inc.threshold,
            humantime::format_duration(after),
            inc.id,
            inc.id
        ),
        service: Some(inc.service.clone()),
        fields: serde_json::json!({
            "incident": inc.id, "level": level, "levels": of, "after_ms": after.as_millis() as u64,
            "trigger": inc.trigger, "release": inc.release, "swapped_at": inc.swapped_at,
        }),
        dedup_key: None,
    }
}
