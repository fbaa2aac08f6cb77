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

/// Exhaustive cases: "trips when and only when the consecutive count is reached" for every rate
/// trigger, thresholds as exact boundaries, per-trigger streaks, the hash count, and the order in
/// which simultaneous trips are reported (moved here from the integration suite: one place).
mod exhaustive {
    use super::super::*;
    use crate::config::{StatusTrigger, Trigger};

    const MIN: u64 = 100;

    fn healthy() -> Measurement {
        Measurement {
            samples: 1000,
            p95: Duration::from_millis(10),
            error_rate: 0.0,
            availability: 1.0,
            compliance: Some(0.99),
            statuses: vec![(200, 1000)],
            ..Default::default()
        }
    }

    fn none() -> Triggers {
        Triggers {
            p95_latency: None,
            error_rate: None,
            availability: None,
            compliance: None,
            hash_mismatch: None,
            status_rate: vec![],
        }
    }

    /// Triggers with only `id` enabled at `n` in a row (spec thresholds), and a measurement that is
    /// bad for it alone.
    fn only(id: TriggerId, n: u32) -> (Triggers, Measurement) {
        let (mut t, mut m) = (none(), healthy());
        match id {
            TriggerId::P95Latency => {
                t.p95_latency = Some(Trigger { threshold: Duration::from_secs(2), consecutive: n });
                m.p95 = Duration::from_secs(3);
            }
            TriggerId::ErrorRate => {
                t.error_rate = Some(Trigger { threshold: 0.01, consecutive: n });
                m.error_rate = 0.05;
            }
            TriggerId::Availability => {
                t.availability = Some(Trigger { threshold: 0.999, consecutive: n });
                m.availability = 0.99;
            }
            TriggerId::Compliance => {
                t.compliance = Some(Trigger { threshold: 0.95, consecutive: n });
                m.compliance = Some(0.9);
            }
            TriggerId::StatusRate(_) => {
                t.status_rate = vec![StatusTrigger { statuses: vec![401], above: 0.001, consecutive: n }];
                m.statuses = vec![(200, 990), (401, 10)];
            }
            TriggerId::HashMismatch | TriggerId::Manual | TriggerId::CandidateDown | TriggerId::LiveDown => {
                unreachable!()
            }
        }
        (t, m)
    }

    const RATE_TRIGGERS: [TriggerId; 5] = [
        TriggerId::P95Latency,
        TriggerId::ErrorRate,
        TriggerId::Availability,
        TriggerId::Compliance,
        TriggerId::StatusRate(0),
    ];

    /// Every sequence of 7 measurements over {healthy, bad, thin-and-bad}, for every rate trigger and
    /// `consecutive` 1..=4: the verdict matches a model where thin windows leave the streak alone,
    /// healthy ones reset it, and the trip comes exactly when the streak reaches the count.
    #[test]
    fn every_rate_trigger_trips_exactly_when_its_streak_reaches_the_count() {
        const LEN: u32 = 7;
        for id in RATE_TRIGGERS {
            for n in 1..=4 {
                let (t, bad) = only(id, n);
                let ok = healthy();
                let mut thin = bad.clone();
                thin.samples = MIN - 1;
                for code in 0..3u32.pow(LEN) {
                    let mut s = Streaks::default();
                    let mut streak = 0;
                    for step in 0..LEN {
                        let kind = code / 3u32.pow(step) % 3;
                        let m = [&ok, &bad, &thin][kind as usize];
                        let v = evaluate(m, &t, MIN, &mut s);
                        let expected = match kind {
                            2 => Verdict::Inconclusive,
                            0 => {
                                streak = 0;
                                Verdict::Healthy
                            }
                            _ => {
                                streak += 1;
                                if streak >= n {
                                    assert!(
                                        matches!(&v, Verdict::Tripped(tr) if tr.trigger == id),
                                        "{id:?} n={n} code={code} step={step}: {v:?}"
                                    );
                                    break; // the loop stops judging a rolled-back service
                                }
                                Verdict::Bad(vec![id])
                            }
                        };
                        assert_eq!(v, expected, "{id:?} n={n} code={code} step={step}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_value_exactly_at_the_threshold_is_not_bad() {
        let mut m = healthy();
        m.p95 = Duration::from_secs(2);
        m.error_rate = 0.01;
        m.availability = 0.999;
        m.compliance = Some(0.95);
        m.statuses = vec![(200, 999), (401, 1)];
        let mut t = Triggers {
            status_rate: vec![StatusTrigger { statuses: vec![401], above: 0.001, consecutive: 1 }],
            ..Triggers::default()
        };
        t.p95_latency.as_mut().unwrap().consecutive = 1;
        t.error_rate.as_mut().unwrap().consecutive = 1;
        t.compliance.as_mut().unwrap().consecutive = 1;
        assert_eq!(evaluate(&m, &t, MIN, &mut Streaks::default()), Verdict::Healthy);
    }

    #[test]
    fn streaks_are_per_trigger() {
        // p95 needs 2 in a row; a measurement bad only for the error rate breaks p95's streak.
        let t = Triggers::default();
        let mut s = Streaks::default();
        let (mut slow, mut erring) = (healthy(), healthy());
        slow.p95 = Duration::from_secs(3);
        erring.error_rate = 0.05;
        assert_eq!(evaluate(&slow, &t, MIN, &mut s), Verdict::Bad(vec![TriggerId::P95Latency]));
        assert_eq!(evaluate(&erring, &t, MIN, &mut s), Verdict::Bad(vec![TriggerId::ErrorRate]));
        assert_eq!(evaluate(&slow, &t, MIN, &mut s), Verdict::Bad(vec![TriggerId::P95Latency]));
        // ...while the error-rate streak (3 in a row) was broken by the slow-only measurement.
        assert_eq!(evaluate(&erring, &t, MIN, &mut s), Verdict::Bad(vec![TriggerId::ErrorRate]));
    }

    #[test]
    fn simultaneous_trips_report_the_first_trigger_in_config_order() {
        let mut t = none();
        t.p95_latency = Some(Trigger { threshold: Duration::from_secs(2), consecutive: 1 });
        t.error_rate = Some(Trigger { threshold: 0.01, consecutive: 1 });
        let mut m = healthy();
        m.p95 = Duration::from_secs(3);
        m.error_rate = 0.5;
        let v = evaluate(&m, &t, MIN, &mut Streaks::default());
        assert!(matches!(&v, Verdict::Tripped(tr) if tr.trigger == TriggerId::P95Latency && tr.value == 3.0), "{v:?}");
    }

    #[test]
    fn hash_mismatch_needs_its_count_within_one_measurement() {
        let mut t = none();
        t.hash_mismatch = Some(2);
        let mut m = healthy();
        m.hash_mismatches = 1;
        let mut s = Streaks::default();
        assert_eq!(evaluate(&m, &t, MIN, &mut s), Verdict::Healthy);
        m.hash_mismatches = 2;
        m.samples = 2; // even in a thin window
        assert!(matches!(evaluate(&m, &t, MIN, &mut s), Verdict::Tripped(tr) if tr.trigger == TriggerId::HashMismatch));
    }

    #[test]
    fn an_empty_window_is_inconclusive_even_with_min_samples_zero() {
        let m = Measurement { availability: 0.0, ..Default::default() };
        assert_eq!(evaluate(&m, &Triggers::default(), 0, &mut Streaks::default()), Verdict::Inconclusive);
    }

    #[test]
    fn each_status_trigger_keeps_its_own_streak_and_index() {
        let mut t = none();
        t.status_rate = vec![
            StatusTrigger { statuses: vec![401], above: 0.001, consecutive: 1 },
            StatusTrigger { statuses: vec![429], above: 0.01, consecutive: 2 },
        ];
        let mut m = healthy();
        m.statuses = vec![(200, 900), (429, 100)];
        let mut s = Streaks::default();
        assert_eq!(evaluate(&m, &t, MIN, &mut s), Verdict::Bad(vec![TriggerId::StatusRate(1)]));
        assert!(
            matches!(evaluate(&m, &t, MIN, &mut s), Verdict::Tripped(tr) if tr.trigger == TriggerId::StatusRate(1))
        );
    }

    #[test]
    fn a_bad_measurement_never_advances_a_plan_and_the_last_step_completes_it() {
        let p = PlanView {
            healthy_at_step: 9,
            healthy_needed: 3,
            at_step_for: Duration::from_secs(600),
            hold: Duration::from_secs(60),
            gated: false,
            has_next: true,
        };
        assert_eq!(decide(&Verdict::Bad(vec![TriggerId::ErrorRate]), Some(&p)), Decision::Hold);
        assert_eq!(decide(&Verdict::Healthy, Some(&PlanView { has_next: false, ..p.clone() })), Decision::Complete);
        let short = PlanView { has_next: false, at_step_for: Duration::from_secs(59), ..p.clone() };
        assert_eq!(decide(&Verdict::Healthy, Some(&short)), Decision::Hold, "the last step holds like any other");
        assert_eq!(decide(&Verdict::Healthy, Some(&p)), Decision::Advance);
    }
}
