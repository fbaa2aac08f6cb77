//! Escalation of critical incidents (spec §4.3: team lead after 5 minutes, engineering manager
//! after 15, director after 30) and their acknowledgement. Pure schedule arithmetic over wall-clock
//! milliseconds: the schedule is persisted with the incident, so a restart resumes it where the
//! clock says it is, not from zero. The control loop owns the timer and the writes.

use crate::config::EscalationLevel;
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Escalation state of one incident.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Escalation {
    /// Unix ms the levels' `after` counts from (the rollback's swap).
    pub since_ms: u64,
    /// Highest level paged so far; 0 before the first.
    pub level: usize,
    /// When each level was paged (index 0 = level 1).
    pub paged_at: Vec<String>,
    /// Set once someone answers; stops further levels.
    pub acknowledged: Option<Ack>,
}

/// Who answered, when, and how far the incident had escalated by then.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    /// Name given by the operator.
    pub by: String,
    /// Free text.
    pub note: Option<String>,
    /// RFC 3339.
    pub at: String,
    /// Level reached when acknowledged (0: before any escalation).
    pub level: usize,
}

/// Unix milliseconds of a wall-clock time.
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

impl Escalation {
    /// A schedule starting at `since`.
    pub fn starting(since: SystemTime) -> Escalation {
        Escalation { since_ms: unix_ms(since), ..Default::default() }
    }

    /// Unix ms at which the next level is due, if one is left and nobody has answered.
    pub fn next_due_ms(&self, levels: &[EscalationLevel]) -> Option<u64> {
        if self.acknowledged.is_some() {
            return None;
        }
        let next = levels.get(self.level)?;
        Some(self.since_ms + next.after.as_millis() as u64)
    }

    /// The levels (1-based) due at `now_ms`, in order; several when a restart slept through them.
    pub fn due(&self, levels: &[EscalationLevel], now_ms: u64) -> Vec<usize> {
        if self.acknowledged.is_some() {
            return Vec::new();
        }
        (self.level..levels.len())
            .take_while(|&i| self.since_ms + levels[i].after.as_millis() as u64 <= now_ms)
            .map(|i| i + 1)
            .collect()
    }

    /// `acknowledged by NAME at level N`, `escalated to level N`, or `unacknowledged`.
    pub fn describe(&self) -> String {
        match &self.acknowledged {
            Some(a) => format!("acknowledged by {} at level {}", a.by, a.level),
            None if self.level > 0 => format!("escalated to level {}", self.level),
            None => "unacknowledged".into(),
        }
    }
}

/// How long from `now_ms` until `due_ms` (zero when already due).
pub fn wait(due_ms: u64, now_ms: u64) -> Duration {
    Duration::from_millis(due_ms.saturating_sub(now_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn levels() -> Vec<EscalationLevel> {
        [300, 900, 1800]
            .map(|s| EscalationLevel { after: Duration::from_secs(s), webhooks: vec!["http://x/".into()] })
            .to_vec()
    }

    #[test]
    fn levels_fall_due_at_their_after_counted_from_the_incident() {
        let e = Escalation { since_ms: 1_000_000, ..Default::default() };
        assert_eq!(e.next_due_ms(&levels()), Some(1_300_000));
        assert!(e.due(&levels(), 1_299_999).is_empty());
        assert_eq!(e.due(&levels(), 1_300_000), vec![1]);
        let e = Escalation { level: 1, ..e };
        assert_eq!(e.next_due_ms(&levels()), Some(1_900_000));
    }

    #[test]
    fn a_restart_that_slept_through_levels_pages_each_once_in_order() {
        let e = Escalation { since_ms: 0, level: 1, ..Default::default() };
        assert_eq!(e.due(&levels(), 2_000_000), vec![2, 3]);
        let e = Escalation { level: 3, ..e };
        assert!(e.due(&levels(), u64::MAX / 2).is_empty());
        assert_eq!(e.next_due_ms(&levels()), None);
    }

    #[test]
    fn acknowledgement_stops_the_schedule() {
        let ack = Ack { by: "ana".into(), note: None, at: "t".into(), level: 1 };
        let e = Escalation { since_ms: 0, level: 1, acknowledged: Some(ack), ..Default::default() };
        assert!(e.due(&levels(), u64::MAX / 2).is_empty());
        assert_eq!(e.next_due_ms(&levels()), None);
        assert_eq!(e.describe(), "acknowledged by ana at level 1");
    }

    #[test]
    fn the_spec_levels_are_the_default_and_escalation_is_off_until_a_level_has_a_webhook() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.toml");
        let service = "[[services]]\nname = \"a\"\nlisten = \"127.0.0.1:0\"\n\
                       blue = { endpoints = [\"127.0.0.1:1\"] }\ngreen = { endpoints = [\"127.0.0.1:2\"] }\n";
        std::fs::write(&path, service).unwrap();
        let a = crate::config::load(&path).unwrap().alerts;
        let afters: Vec<u64> = a.escalation.iter().map(|l| l.after.as_secs()).collect();
        assert_eq!(afters, [300, 900, 1800]);
        assert!(!a.escalation_enabled());
        let on = "[alerts.escalation]\nlevels = [{ after = \"1m\", webhooks = [\"https://x/lead\"] }]\n";
        std::fs::write(&path, format!("{on}{service}")).unwrap();
        let a = crate::config::load(&path).unwrap().alerts;
        assert!(a.escalation_enabled());
        assert_eq!(a.escalation.len(), 1);
    }

    #[test]
    fn wait_is_zero_once_due() {
        assert_eq!(wait(100, 150), Duration::ZERO);
        assert_eq!(wait(150, 100), Duration::from_millis(50));
    }
}
