//! Choosing a color: the exact split, monotone stickiness, the force header, and weight changes
//! that take effect for the very next request under concurrent load.

use super::support::*;
use crate::support::{burst, client};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use switchyard::route::pick::{color_for, key_bucket};
use switchyard::route::Weight;
use switchyard::Color;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_requests_at_ten_percent_send_exactly_one_thousand_to_green() {
    let f = Fixture::builder("dp_split").service("green_weight = 10").start().await;
    let results = burst(f.addr, 10_000, 8).await;
    assert_eq!(results.len(), 10_000);
    assert!(results.iter().all(|(s, _)| *s == 200), "every request succeeds");
    let green = results.iter().filter(|(_, who)| is_green(who)).count();
    let share = green as f64 / 100.0;
    assert!((share - 10.0).abs() <= 0.5, "green share {share}% is outside 10 ± 0.5");
    assert_eq!(green, 1_000, "the unkeyed split is exact over 10 000 consecutive requests");
    f.stop().await;
}

/// Colors of `users` keyed by `x-user`, each asked twice; panics if a user's two answers differ.
async fn colors(f: &Fixture, users: &[String]) -> HashMap<String, bool> {
    let c = client();
    let mut out = HashMap::new();
    for u in users {
        let (s1, a) = get_with(&c, f.addr, "/", &[("x-user", u)]).await;
        let (s2, b) = get_with(&c, f.addr, "/", &[("x-user", u)]).await;
        assert_eq!((s1, s2), (200, 200), "{u}");
        assert_eq!(a, b, "{u} changed color between two requests at the same weight");
        out.insert(u.clone(), is_green(&a));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_users_keep_their_color_and_raising_the_weight_only_moves_blue_to_green() {
    let f = Fixture::builder("dp_sticky").service("green_weight = 10\nsticky = { header = \"x-user\" }").start().await;
    let users: Vec<String> = (0..200).map(|i| format!("user-{i}")).collect();
    let at10 = colors(&f, &users).await;
    f.set_weight("dp_sticky", 50.0).await;
    let at50 = colors(&f, &users).await;

    let (w10, w50) = (Weight::from_percent(10.0).unwrap(), Weight::from_percent(50.0).unwrap());
    for u in &users {
        let bucket = key_bucket(u.as_bytes());
        assert_eq!(at10[u], color_for(bucket, w10) == Color::Green, "{u} at 10%");
        assert_eq!(at50[u], color_for(bucket, w50) == Color::Green, "{u} at 50%");
        assert!(!at10[u] || at50[u], "{u} was green at 10% but blue at 50%");
    }
    let (g10, g50) = (at10.values().filter(|g| **g).count(), at50.values().filter(|g| **g).count());
    assert!((5..=40).contains(&g10), "{g10} of 200 green at 10%");
    assert!((70..=130).contains(&g50), "{g50} of 200 green at 50%");
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_force_header_overrides_the_weight_only_when_configured() {
    let extra = format!("green_weight = 0\nforce_header = \"{FORCE}\"");
    let forced = Fixture::builder("dp_force").service(&extra).start().await;
    let c = client();
    assert!(!is_green(&get_with(&c, forced.addr, "/", &[]).await.1));
    for value in ["green", "GREEN"] {
        let (s, who) = get_with(&c, forced.addr, "/", &[(FORCE, value)]).await;
        assert_eq!((s, is_green(&who)), (200, true), "force {value} at weight 0");
    }
    forced.set_weight("dp_force", 100.0).await;
    assert!(is_green(&get_with(&c, forced.addr, "/", &[]).await.1));
    let (s, who) = get_with(&c, forced.addr, "/", &[(FORCE, "blue")]).await;
    assert_eq!((s, is_green(&who)), (200, false), "force blue at weight 100");
    let (_, who) = get_with(&c, forced.addr, "/", &[(FORCE, "purple")]).await;
    assert!(is_green(&who), "an unknown value falls back to the weight");

    let plain = Fixture::builder("dp_noforce").service("green_weight = 0").start().await;
    for _ in 0..20 {
        let (s, who) = get_with(&c, plain.addr, "/", &[(FORCE, "green")]).await;
        assert_eq!((s, is_green(&who)), (200, false), "header must be ignored without force_header");
    }
    forced.stop().await;
    plain.stop().await;
}

/// What one client saw: status, green?, and the phase when the request was sent and when its
/// response arrived (0 = before the admin call, 1 = during it, 2 = after its response).
type Seen = Vec<(u16, bool, u8, u8)>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weight_change_under_load_fails_nothing_and_the_next_request_obeys() {
    let f = Fixture::builder("dp_swap").service("green_weight = 0").start().await;
    let phase = Arc::new(std::sync::atomic::AtomicU8::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let c = client();
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (c, phase, stop, done, addr) = (c.clone(), phase.clone(), stop.clone(), done.clone(), f.addr);
        clients.spawn(async move {
            let mut seen = Seen::new();
            // Bounded: at most 5 000 requests per client even if the stop flag never comes.
            while !stop.load(Ordering::Acquire) && seen.len() < 5_000 {
                let p = phase.load(Ordering::Acquire);
                let (s, who) = get_with(&c, addr, "/", &[]).await;
                seen.push((s, is_green(&who), p, phase.load(Ordering::Acquire)));
                done.fetch_add(1, Ordering::Relaxed);
            }
            seen
        });
    }
    let warm = eventually_async(Duration::from_secs(10), || async { done.load(Ordering::Relaxed) >= 400 }).await;
    assert!(warm, "load did not start");
    phase.store(1, Ordering::Release);
    f.set_weight("dp_swap", 100.0).await;
    phase.store(2, Ordering::Release);
    let after = done.load(Ordering::Relaxed) + 400;
    let ran = eventually_async(Duration::from_secs(10), || async { done.load(Ordering::Relaxed) >= after }).await;
    stop.store(true, Ordering::Release);
    let mut seen = Seen::new();
    while let Some(r) = clients.join_next().await {
        seen.extend(r.unwrap());
    }
    assert!(ran, "load stalled after the change");
    let failed = seen.iter().filter(|r| r.0 != 200).count();
    assert_eq!(failed, 0, "{failed} of {} requests failed", seen.len());
    // Answered before the admin call started: must be blue (weight 0).
    assert!(seen.iter().filter(|r| r.3 == 0).all(|r| !r.1), "green before the change");
    // Sent after the admin call answered: must be green (weight 100), with no grace period.
    let late: Vec<_> = seen.iter().filter(|r| r.2 == 2).collect();
    assert!(late.len() >= 400);
    assert!(late.iter().all(|r| r.1), "a request sent after the change's response went blue");
    f.stop().await;
}
