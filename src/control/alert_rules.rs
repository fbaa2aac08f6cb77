//! Spec §4.3 rules that alert even without a rollback: compliance low for 3 minutes, p95 high
//! for 2 minutes, for either color (the live one too). Pure: the shell supplies the clock and
//! sends what fires.

use crate::alerts::Severity;
use crate::config::Triggers;
use crate::stats::Measurement;
use crate::Color;
use std::time::Duration;
use tokio::time::Instant;

/// A rule: alert name, severity, how long it must stay bad.
pub struct Rule {
    /// Alert name.
    pub alert: &'static str,
    /// Severity.
    pub severity: Severity,
    /// How long bad before it fires.
    pub hold: Duration,
}

/// The rules, in the order of `RuleTimers`' slots.
pub const RULES: [Rule; 2] = [
    Rule { alert: "compliance_low", severity: Severity::Critical, hold: Duration::from_secs(180) },
    Rule { alert: "p95_high", severity: Severity::High, hold: Duration::from_secs(120) },
];

/// Per color and rule: since when it is bad, and whether it already fired (once per bad spell).
#[derive(Clone, Debug, Default)]
pub struct RuleTimers([[(Option<Instant>, bool); 2]; 2]);

impl RuleTimers {
    /// Feeds one color's measurement; returns the rules that fire now.
    pub fn observe(
        &mut self,
        c: Color,
        m: &Measurement,
        t: &Triggers,
        min_samples: u64,
        now: Instant,
    ) -> Vec<&'static Rule> {
        let conclusive = m.samples >= min_samples.max(1);
        let bad = [
            conclusive && t.compliance.zip(m.compliance).is_some_and(|(t, v)| v < t.threshold),
            conclusive && t.p95_latency.is_some_and(|t| m.p95 > t.threshold),
        ];
        let mut fired = Vec::new();
        for (r, rule) in RULES.iter().enumerate() {
            let slot = &mut self.0[c.index()][r];
            if !bad[r] {
                *slot = (None, false);
                continue;
            }
            let since = *slot.0.get_or_insert(now);
            if !slot.1 && now.duration_since(since) >= rule.hold {
                slot.1 = true;
                fired.push(rule);
            }
        }
        fired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p95_high_fires_once_after_two_minutes_and_rearms_when_good() {
        let t = Triggers::default();
        let slow = Measurement { samples: 500, p95: Duration::from_secs(3), ..Default::default() };
        let fast = Measurement { samples: 500, p95: Duration::from_millis(10), ..Default::default() };
        let (mut r, t0) = (RuleTimers::default(), Instant::now());
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert!(r.observe(Color::Blue, &slow, &t, 100, at(0)).is_empty());
        assert!(r.observe(Color::Blue, &slow, &t, 100, at(119)).is_empty());
        let fired: Vec<_> = r.observe(Color::Blue, &slow, &t, 100, at(120)).iter().map(|r| r.alert).collect();
        assert_eq!(fired, ["p95_high"]);
        assert!(r.observe(Color::Blue, &slow, &t, 100, at(300)).is_empty(), "once per bad spell");
        assert!(r.observe(Color::Green, &slow, &t, 100, at(300)).is_empty(), "colors are timed apart");
        assert!(r.observe(Color::Blue, &fast, &t, 100, at(301)).is_empty());
        assert!(r.observe(Color::Blue, &slow, &t, 100, at(302)).is_empty(), "re-armed: the clock restarts");
    }

    #[test]
    fn thin_windows_never_count_as_bad() {
        let t = Triggers::default();
        let thin = Measurement { samples: 5, p95: Duration::from_secs(3), ..Default::default() };
        let (mut r, t0) = (RuleTimers::default(), Instant::now());
        r.observe(Color::Green, &thin, &t, 100, t0);
        assert!(r.observe(Color::Green, &thin, &t, 100, t0 + Duration::from_secs(600)).is_empty());
    }
}
