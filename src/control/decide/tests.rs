use super::*;
use crate::config::{StatusTrigger, Trigger};

fn m(samples: u64, p95_ms: u64, error_rate: f64) -> Measurement {
    Measurement {
        samples,
        p95: Duration::from_millis(p95_ms),
        error_rate,
        availability: 1.0,
        compliance: Some(0.99),
        ..Default::default()
    }
}

#[test]
fn one_bad_interval_does_not_trip_a_two_in_a_row_trigger() {
    let t = Triggers::default();
    let mut s = Streaks::default();
    assert_eq!(evaluate(&m(200, 2500, 0.0), &t, 100, &mut s), Verdict::Bad(vec![TriggerId::P95Latency]));
    assert_eq!(evaluate(&m(200, 10, 0.0), &t, 100, &mut s), Verdict::Healthy);
    assert_eq!(evaluate(&m(200, 2500, 0.0), &t, 100, &mut s), Verdict::Bad(vec![TriggerId::P95Latency]));
    let v = evaluate(&m(200, 2500, 0.0), &t, 100, &mut s);
    assert!(matches!(v, Verdict::Tripped(Trip { trigger: TriggerId::P95Latency, .. })), "{v:?}");
}

#[test]
fn error_rate_trips_on_the_third_consecutive_measurement() {
    let t = Triggers::default();
    let mut s = Streaks::default();
    for _ in 0..2 {
        assert!(matches!(evaluate(&m(1000, 1, 0.05), &t, 100, &mut s), Verdict::Bad(_)));
    }
    assert!(matches!(
        evaluate(&m(1000, 1, 0.05), &t, 100, &mut s),
        Verdict::Tripped(Trip { trigger: TriggerId::ErrorRate, .. })
    ));
}

#[test]
fn availability_trips_at_once() {
    let t = Triggers::default();
    let mut s = Streaks::default();
    let mut x = m(1000, 1, 0.0);
    x.availability = 0.99;
    assert!(matches!(evaluate(&x, &t, 100, &mut s), Verdict::Tripped(Trip { trigger: TriggerId::Availability, .. })));
}

#[test]
fn compliance_needs_three_and_missing_compliance_is_not_bad() {
    let t = Triggers::default();
    let mut s = Streaks::default();
    let mut x = m(1000, 1, 0.0);
    x.compliance = Some(0.9);
    assert!(matches!(evaluate(&x, &t, 100, &mut s), Verdict::Bad(_)));
    assert!(matches!(evaluate(&x, &t, 100, &mut s), Verdict::Bad(_)));
    assert!(matches!(evaluate(&x, &t, 100, &mut s), Verdict::Tripped(Trip { trigger: TriggerId::Compliance, .. })));
    let mut s = Streaks::default();
    x.compliance = None;
    assert_eq!(evaluate(&x, &t, 100, &mut s), Verdict::Healthy);
}

#[test]
fn thin_windows_are_inconclusive_and_reset_nothing() {
    let t = Triggers::default();
    let mut s = Streaks::default();
    assert!(matches!(evaluate(&m(1000, 1, 0.05), &t, 100, &mut s), Verdict::Bad(_)));
    assert!(matches!(evaluate(&m(1000, 1, 0.05), &t, 100, &mut s), Verdict::Bad(_)));
    assert_eq!(evaluate(&m(50, 1, 0.05), &t, 100, &mut s), Verdict::Inconclusive);
    assert_eq!(evaluate(&m(50, 1, 0.0), &t, 100, &mut s), Verdict::Inconclusive);
    assert!(matches!(evaluate(&m(1000, 1, 0.05), &t, 100, &mut s), Verdict::Tripped(_)));
}

#[test]
fn hash_mismatch_trips_regardless_of_samples() {
    let t = Triggers::default();
    let mut s = Streaks::default();
    let mut x = m(1, 1, 0.0);
    x.hash_mismatches = 1;
    assert!(matches!(evaluate(&x, &t, 100, &mut s), Verdict::Tripped(Trip { trigger: TriggerId::HashMismatch, .. })));
}

#[test]
fn status_rate_trigger_counts_configured_statuses() {
    let t = Triggers {
        status_rate: vec![StatusTrigger { statuses: vec![401], above: 0.001, consecutive: 1 }],
        ..Triggers::default()
    };
    let mut s = Streaks::default();
    let mut x = m(1000, 1, 0.0);
    x.statuses = vec![(200, 995), (401, 5)];
    assert!(matches!(evaluate(&x, &t, 100, &mut s), Verdict::Tripped(Trip { trigger: TriggerId::StatusRate(0), .. })));
}

#[test]
fn disabled_triggers_never_trip() {
    let t = Triggers {
        p95_latency: None,
        error_rate: Some(Trigger { threshold: 0.5, consecutive: 1 }),
        ..Triggers::default()
    };
    let mut s = Streaks::default();
    assert_eq!(evaluate(&m(1000, 60_000, 0.2), &t, 100, &mut s), Verdict::Healthy);
}

fn plan(healthy: u32, secs: u64) -> PlanView {
    PlanView {
        healthy_at_step: healthy,
        healthy_needed: 3,
        at_step_for: Duration::from_secs(secs),
        hold: Duration::from_secs(60),
        gated: false,
        has_next: true,
    }
}

#[test]
fn advance_needs_hold_and_healthy_measurements() {
    assert_eq!(decide(&Verdict::Healthy, Some(&plan(3, 60))), Decision::Advance);
    assert_eq!(decide(&Verdict::Healthy, Some(&plan(2, 60))), Decision::Hold);
    assert_eq!(decide(&Verdict::Healthy, Some(&plan(3, 59))), Decision::Hold);
    assert_eq!(decide(&Verdict::Inconclusive, Some(&plan(3, 60))), Decision::Hold);
    assert_eq!(decide(&Verdict::Healthy, Some(&PlanView { gated: true, ..plan(3, 60) })), Decision::Hold);
    assert_eq!(decide(&Verdict::Healthy, None), Decision::Hold);
}

#[test]
fn a_trip_rolls_back_even_mid_plan() {
    let t = Trip { trigger: TriggerId::ErrorRate, value: 0.05, threshold: "> 0.01".into() };
    assert_eq!(decide(&Verdict::Tripped(t.clone()), Some(&plan(3, 60))), Decision::Rollback(t));
}
