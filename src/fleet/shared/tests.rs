use super::*;

fn state(latched: bool, step: Option<usize>) -> SharedService {
    SharedService { release: Some("r1".into()), latched, step, plan: vec![10.0, 50.0, 100.0], ..Default::default() }
}

#[test]
fn a_latch_in_the_store_survives_stale_blank_and_replayed_writes() {
    let latched = SharedService { incident: Some("i".into()), ..state(true, Some(1)) };
    // A stale leader completing, a blank restarted replica, a queued pause: none lifts it.
    let completing =
        SharedService { live: Some(crate::Color::Green), release: Some("r1".into()), ..Default::default() };
    assert_eq!(rebase(Some(&state(false, Some(2))), &completing, Some(&latched)), None);
    assert_eq!(rebase(None, &SharedService::default(), Some(&latched)), None);
    let paused = SharedService { paused: true, ..state(false, Some(0)) };
    assert_eq!(rebase(Some(&state(false, Some(0))), &paused, Some(&latched)), None);
    let advanced = state(false, Some(2));
    assert_eq!(rebase(Some(&state(false, Some(1))), &advanced, Some(&latched)), None);
}

#[test]
fn only_a_reset_the_store_has_not_seen_lifts_a_latch() {
    let latched = state(true, Some(1));
    let reset = SharedService { resets: 1, ..state(false, None) };
    assert!(!rebase(Some(&latched), &reset, Some(&latched)).unwrap().latched);
    let after = SharedService { resets: 1, ..latched.clone() };
    assert_eq!(rebase(Some(&latched), &reset, Some(&after)), None, "a replayed reset does not lift a newer latch");
}

#[test]
fn an_intent_lands_on_the_current_state_not_the_one_it_saw() {
    let base = state(false, Some(0));
    let paused = SharedService { paused: true, ..base.clone() };
    let r = rebase(Some(&base), &paused, Some(&state(false, Some(1)))).unwrap();
    assert_eq!((r.paused, r.step), (true, Some(1)), "the pause lands on the fleet's step");
    assert_eq!(rebase(Some(&base), &base, Some(&state(false, Some(1)))), None, "no change, no write");
}

#[test]
fn a_latch_in_the_intent_wins_unless_reset_since() {
    let r = rebase(Some(&state(false, Some(1))), &state(true, Some(1)), Some(&state(false, Some(2)))).unwrap();
    assert!(r.latched);
    assert_eq!(r.step, Some(2), "the winner's plan position is kept");
    let reset_since = SharedService { resets: 1, ..state(false, None) };
    assert_eq!(rebase(Some(&state(false, Some(1))), &state(true, Some(1)), Some(&reset_since)), None);
    // Re-seeding a wiped store that another replica re-seeded first: the latch wins.
    assert!(rebase(None, &state(true, Some(1)), Some(&state(false, Some(2)))).unwrap().latched);
}

#[test]
fn another_release_replaces_the_store_only_when_its_plan_is_over() {
    let next =
        SharedService { release: Some("r2".into()), candidate: Some(crate::Color::Green), ..state(false, Some(0)) };
    let running = SharedService { candidate: Some(crate::Color::Green), ..state(false, Some(1)) };
    assert_eq!(rebase(None, &next, Some(&running)), None, "the fleet's plan stands");
    let rolled_back = SharedService { latched: true, ..running.clone() };
    assert_eq!(rebase(None, &next, Some(&rolled_back)).unwrap().release.as_deref(), Some("r2"));
    // Completion: the same release becomes live.
    let done = SharedService {
        live: Some(crate::Color::Green),
        candidate: None,
        release: Some("r1".into()),
        ..Default::default()
    };
    assert!(rebase(Some(&running), &done, Some(&running)).is_some());
    assert_eq!(rebase(Some(&running), &done, Some(&rolled_back)), None, "no completion past a latch");
}

#[test]
fn writer_and_time_do_not_make_a_change() {
    let a = SharedService { writer: "a".into(), written_ms: 1, ..state(false, Some(1)) };
    assert!(a.same_rollout(&state(false, Some(1))));
    assert!(!a.same_rollout(&state(false, Some(2))));
}

#[test]
fn a_write_without_a_base_for_the_stores_candidate_never_moves_the_plan() {
    let running = SharedService { candidate: Some(crate::Color::Green), ..state(false, Some(0)) };
    // A follower's start-up seed ("no step") meets the leader's first step.
    let seed = SharedService { step: None, ..running.clone() };
    assert_eq!(rebase(None, &seed, Some(&running)), None, "the leader's step 0 stands");
    // The same with a base of another candidate (the release before, completed).
    let before = SharedService { release: Some("r0".into()), live: Some(crate::Color::Green), ..Default::default() };
    assert_eq!(rebase(Some(&before), &seed, Some(&running)), None);
    // A replica's remembered step re-seeding a store another replica re-seeded first.
    let ahead = SharedService { step: Some(2), ..running.clone() };
    assert_eq!(rebase(None, &ahead, Some(&running)), None);
    // Its latch still lands, on the store's step.
    let latched = SharedService { latched: true, ..seed };
    let r = rebase(None, &latched, Some(&running)).unwrap();
    assert_eq!((r.latched, r.step), (true, Some(0)));
}
