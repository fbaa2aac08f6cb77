//! The system health score (spec §5.3: "system health score > 90 %"), 0-100, from the live window
//! measurements. Each component is scored against the budget its rollback trigger allows:
//!
//! * availability: unavailability `1 - A` against `1 - availability threshold` (0.1 % by default)
//! * p95 latency against the p95 threshold (2 s)
//! * error rate against the error-rate threshold (1 %)
//! * compliance: non-compliance `1 - C` against `1 - compliance threshold` (5 %)
//!
//! A component scores 100 while it uses at most half its budget and falls linearly to 0 when it
//! uses all of it (where the trigger would roll green back): `100 × clamp(2 − 2·used/budget, 0, 1)`.
//! The weights are availability 30, p95 30, error rate 20, compliance 20 (renormalised when no
//! response carried a compliance header). Availability and error rate mostly count the same failed
//! requests, so together they weigh half; latency is the other thing users feel; compliance is the
//! platform's constitutional duty. With these weights the < 90 alert fires when availability or
//! latency has used two thirds of its budget, or error rate or compliance three quarters — before
//! any trigger trips. A service's score is the sample-weighted mean of its blue and green scores
//! (what its users experience); the overall score is the sample-weighted mean over services.
//! No requests in the window: no score (`null`, NaN in Prometheus, so the alert cannot fire on a
//! stale value).

use crate::config::Triggers;
use crate::stats::Measurement;

/// Component weights: availability, p95 latency, error rate, compliance.
pub const WEIGHTS: [f64; 4] = [30.0, 30.0, 20.0, 20.0];

/// What each component may use before its trigger trips.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budgets {
    /// Allowed unavailability (fraction).
    pub unavailability: f64,
    /// Allowed p95 in seconds.
    pub p95_secs: f64,
    /// Allowed error rate (fraction).
    pub error_rate: f64,
    /// Allowed non-compliance (fraction).
    pub non_compliance: f64,
}

impl Budgets {
    /// From a service's effective triggers; a disabled trigger keeps the spec's default budget so
    /// the score still means the same thing on every service.
    pub fn from_triggers(t: &Triggers) -> Budgets {
        let d = Triggers::default();
        let pick = |a: Option<f64>, b: Option<f64>| a.or(b).unwrap_or_default();
        Budgets {
            unavailability: 1.0 - pick(t.availability.map(|x| x.threshold), d.availability.map(|x| x.threshold)),
            p95_secs: pick(
                t.p95_latency.map(|x| x.threshold.as_secs_f64()),
                d.p95_latency.map(|x| x.threshold.as_secs_f64()),
            ),
            error_rate: pick(t.error_rate.map(|x| x.threshold), d.error_rate.map(|x| x.threshold)),
            non_compliance: 1.0 - pick(t.compliance.map(|x| x.threshold), d.compliance.map(|x| x.threshold)),
        }
    }
}

/// A score with the number of requests behind it (the weight when scores are combined).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Score {
    /// 0-100.
    pub score: f64,
    /// Requests it was computed from.
    pub samples: u64,
}

/// 100 at half the budget or less, 0 at the whole budget.
pub fn headroom(used: f64, budget: f64) -> f64 {
    if budget <= 0.0 {
        return if used <= 0.0 { 100.0 } else { 0.0 };
    }
    100.0 * (2.0 - 2.0 * used / budget).clamp(0.0, 1.0)
}

/// Component scores `[availability, p95, error rate, compliance]` of one color's window.
pub fn components(m: &Measurement, b: &Budgets) -> [Option<f64>; 4] {
    [
        Some(headroom(1.0 - m.availability, b.unavailability)),
        Some(headroom(m.p95.as_secs_f64(), b.p95_secs)),
        Some(headroom(m.error_rate, b.error_rate)),
        m.compliance.map(|c| headroom(1.0 - c, b.non_compliance)),
    ]
}

/// One color's score; `None` without requests.
pub fn color(m: &Measurement, b: &Budgets) -> Option<Score> {
    if m.samples == 0 {
        return None;
    }
    let parts = components(m, b);
    let (sum, weight) = parts
        .iter()
        .zip(WEIGHTS)
        .filter_map(|(p, w)| p.map(|p| (p * w, w)))
        .fold((0.0, 0.0), |(s, ws), (x, w)| (s + x, ws + w));
    Some(Score { score: sum / weight, samples: m.samples })
}

/// Sample-weighted mean of scores; `None` when none has requests.
pub fn combine(scores: impl IntoIterator<Item = Option<Score>>) -> Option<Score> {
    let (sum, n) =
        scores.into_iter().flatten().fold((0.0, 0u64), |(s, n), x| (s + x.score * x.samples as f64, n + x.samples));
    (n > 0).then(|| Score { score: sum / n as f64, samples: n })
}

/// A service's score over both colors.
pub fn service(m: &[Measurement; 2], t: &Triggers) -> Option<Score> {
    let b = Budgets::from_triggers(t);
    combine([color(&m[0], &b), color(&m[1], &b)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn healthy() -> Measurement {
        Measurement {
            samples: 1000,
            p95: Duration::from_millis(100),
            error_rate: 0.0,
            availability: 1.0,
            compliance: Some(0.99),
            ..Default::default()
        }
    }

    fn score(m: &Measurement) -> f64 {
        color(m, &Budgets::from_triggers(&Triggers::default())).unwrap().score
    }

    #[test]
    fn a_window_well_inside_every_budget_scores_100() {
        assert_eq!(score(&healthy()), 100.0);
    }

    #[test]
    fn the_score_falls_as_a_measurement_uses_its_budget() {
        let mut m = healthy();
        let mut last = 100.0;
        for ms in [1000, 1200, 1500, 1800, 2000, 3000] {
            m.p95 = Duration::from_millis(ms);
            let s = score(&m);
            assert!(s <= last, "{ms} ms: {s} > {last}");
            last = s;
        }
        m.p95 = Duration::from_millis(1500); // 3/4 of the 2 s budget: component 50, weight 30
        assert!((score(&m) - 85.0).abs() < 1e-9);
        m.p95 = Duration::from_secs(2); // at the trigger: the whole component is lost
        assert!((score(&m) - 70.0).abs() < 1e-9);
    }

    #[test]
    fn any_component_at_its_trigger_threshold_is_below_90() {
        let d = Triggers::default();
        let mut cases = vec![healthy(); 4];
        cases[0].availability = d.availability.unwrap().threshold;
        cases[1].p95 = d.p95_latency.unwrap().threshold;
        cases[2].error_rate = d.error_rate.unwrap().threshold;
        cases[3].compliance = Some(d.compliance.unwrap().threshold);
        for (i, m) in cases.iter().enumerate() {
            assert!(score(m) < 90.0, "case {i}: {}", score(m));
        }
    }

    #[test]
    fn without_compliance_the_other_weights_are_renormalised() {
        let mut m = healthy();
        m.compliance = None;
        assert_eq!(score(&m), 100.0);
        m.error_rate = 0.01;
        assert!((score(&m) - 100.0 * 60.0 / 80.0).abs() < 1e-9);
    }

    #[test]
    fn no_requests_no_score_and_colors_weigh_by_samples() {
        let empty = Measurement::default();
        assert_eq!(service(&[empty.clone(), empty.clone()], &Triggers::default()), None);
        let mut bad = healthy();
        bad.samples = 100;
        bad.error_rate = 0.02;
        let s = service(&[healthy(), bad], &Triggers::default()).unwrap();
        assert_eq!(s.samples, 1100);
        assert!((s.score - (1000.0 * 100.0 + 100.0 * 80.0) / 1100.0).abs() < 1e-9);
    }

    #[test]
    fn headroom_is_full_to_half_the_budget_then_linear_to_zero() {
        assert_eq!(headroom(0.5, 1.0), 100.0);
        assert_eq!(headroom(0.75, 1.0), 50.0);
        assert_eq!(headroom(1.0, 1.0), 0.0);
        assert_eq!(headroom(5.0, 1.0), 0.0);
        assert_eq!(headroom(0.0, 0.0), 100.0);
    }
}
