//! One replica cut off from etcd (a frozen relay between it and the store) while the fleet
//! moves on; and replicas whose config disagrees with the fleet's plan.

use super::etcd_server::EtcdServer;
use super::kit::*;
use super::safety::store_states;
use crate::oncall::hooks::Hooks;
use crate::support::{client, Mocks};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_replicas_queued_writes_land_on_the_fleets_state_and_its_incident_and_alert_merge() {
    let (etcd, _m, hooks, link, procs) = fleet_with_one_cut_off("fs-part", "30s").await;
    let refs: Vec<&Proc> = procs.iter().collect();
    let (a, b) = (procs[0].spec.services[0].clone(), procs[0].spec.services[1].clone());
    // The fleet moves on; the cut-off replica is paused by an operator and rolls back `b` alone.
    assert_eq!(procs[0].post(&format!("/services/{a}/advance"), "").await.0, 200);
    assert_eq!(procs[2].post(&format!("/services/{a}/pause"), "").await.0, 200);
    assert_eq!(procs[2].post(&format!("/services/{b}/rollback"), "").await.0, 200);
    assert_eq!(procs[1].post(&format!("/services/{b}/rollback"), "").await.0, 200);
    let fleet = [&procs[0], &procs[1]];
    assert!(
        wait_for(Duration::from_secs(5), async || all(&fleet, |s, n| weight(s, n) == if n == a { 50.0 } else { 0.0 })
            .await)
        .await
    );
    link.freeze(false);
    let healed = Instant::now();
    let mut converged = false;
    while healed.elapsed() < Duration::from_secs(20) {
        for p in &fleet {
            let s = p.status().await.expect("answers");
            assert!(
                weight(&s, &a) >= 50.0,
                "{}: the queued pause lowered the fleet's step: {}",
                p.spec.name,
                service(&s, &a)
            );
        }
        let st = store_states(&etcd.url, "/t/fs-part").await;
        let sa = st.iter().find(|(n, _)| *n == a).map(|(_, s)| s.clone()).unwrap_or_default();
        if sa.paused && sa.step == Some(1) && all(&refs, |s, n| weight(s, n) == if n == a { 50.0 } else { 0.0 }).await {
            converged = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        converged,
        "the pause landed on step 1 and every replica follows: {:?}",
        store_states(&etcd.url, "/t/fs-part").await
    );
    // One rollback of `b`, one incident on every replica.
    let mut seen = Vec::new();
    let one = wait_for(Duration::from_secs(10), async || {
        seen.clear();
        for p in &procs {
            let ids: Vec<String> =
                p.incidents().await.unwrap_or_default().into_iter().filter(|i| i.ends_with(&b)).collect();
            seen.push(ids);
        }
        seen.iter().all(|l| l.len() == 1 && l == &seen[0])
    })
    .await;
    assert!(one, "one incident for the one rollback on every replica: {seen:?}");
    // One alert: the cut-off replica held its own until the store said whose rollback it was,
    // and the fleet's replica that won the latch sent the only one.
    let alerts = || -> Vec<String> {
        let of_b = hooks.on("/critical").into_iter().filter(|h| h.body["service"] == b.as_str());
        of_b.map(|h| format!("{} {}", h.body["alert"], h.body["dedup_key"])).collect()
    };
    assert!(wait_for(Duration::from_secs(5), async || alerts().len() >= 2).await, "the fleet alerted: {:?}", alerts());
    let held = wait_for(Duration::from_secs(5), async || procs[2].log().contains("rollback alert not sent")).await;
    let sent = alerts();
    let mut names: Vec<&str> = sent.iter().map(|a| a.split(' ').next().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["\"rollback\"", "\"sequence_halted\""], "one rollback, one alert of each kind: {sent:?}");
    assert!(held, "the cut-off replica's alert was merged, not sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_decided_while_cut_off_alerts_after_alert_hold_under_the_fleets_dedup_key() {
    let (_etcd, _m, hooks, _link, procs) = fleet_with_one_cut_off("fs-hold", "1s").await;
    let b = procs[0].spec.services[1].clone();
    assert_eq!(procs[1].post(&format!("/services/{b}/rollback"), "").await.0, 200);
    let cut_off_at = Instant::now();
    assert_eq!(procs[2].post(&format!("/services/{b}/rollback"), "").await.0, 200);
    // The store stays away: the held alert must not wait for it past `fleet.alert_hold`.
    let rollbacks = || -> Vec<crate::oncall::hooks::Hit> {
        let hits = hooks.on("/critical").into_iter();
        hits.filter(|h| h.body["alert"] == "rollback" && h.body["service"] == b.as_str()).collect()
    };
    assert!(wait_for(Duration::from_secs(10), async || rollbacks().len() == 2).await, "{:?}", rollbacks());
    let hits = rollbacks();
    let late = hits.iter().find(|h| h.body["text"].as_str().unwrap_or("").contains("fleet store unreachable"));
    let late = late.expect("the cut-off replica's alert says the store did not confirm it");
    assert!(late.at.into_std() >= cut_off_at + Duration::from_secs(1), "held for alert_hold");
    assert!(hits[0].body["dedup_key"].is_string());
    assert_eq!(hits[0].body["dedup_key"], hits[1].body["dedup_key"], "a receiver can merge them");
}

/// Three replicas of two services at their first step, the third reaching etcd through a relay
/// that is frozen before this returns; every replica alerts to `hooks`.
async fn fleet_with_one_cut_off(tag: &str, alert_hold: &str) -> (EtcdServer, Mocks, Hooks, FreezableLink, Vec<Proc>) {
    switchyard::tls::install_provider();
    let etcd = EtcdServer::start();
    let m = Mocks::start(tag).await;
    let hooks = Hooks::start().await;
    let link = FreezableLink::start(&etcd.url).await;
    let mut procs = Vec::new();
    for i in 1..=3 {
        let url = if i == 3 { &link.url } else { &etcd.url };
        let mut s = Spec::new(&format!("{tag}-{i}"), &format!("/t/{tag}"), url, 2, tag);
        s.hold = "60s".into();
        s.extra = format!("alert_hold = \"{alert_hold}\"\n[alerts]\ncritical = [\"http://{}/critical\"]\n", hooks.addr);
        procs.push(Proc::start(s, &m));
    }
    let refs: Vec<&Proc> = procs.iter().collect();
    assert!(wait_for(Duration::from_secs(30), async || all(&refs, |s, n| weight(s, n) == 10.0).await).await);
    link.freeze(true);
    let cut = wait_for(Duration::from_secs(10), async || {
        procs[2].status().await.is_some_and(|s| s["fleet"]["store"] == "unreachable")
    })
    .await;
    assert!(cut, "the cut-off replica notices");
    (etcd, m, hooks, link, procs)
}

async fn metrics(p: &Proc) -> String {
    let r = client()
        .get(format!("http://{}/metrics", p.admin))
        .bearer_auth(crate::support::TOKEN)
        .timeout(Duration::from_secs(1))
        .send()
        .await;
    match r {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Starts two replicas of the fleet's config, waits for a leader, then a third from `odd`.
async fn fleet_with_one_odd(etcd: &EtcdServer, m: &Mocks, tag: &str, odd: impl Fn(&mut Spec)) -> Vec<Proc> {
    let spec = |i: usize| {
        let mut s = Spec::new(&format!("{tag}-{i}"), &format!("/t/{tag}"), &etcd.url, 1, tag);
        s.hold = "1500ms".into();
        s
    };
    let mut procs = vec![Proc::start(spec(1), m), Proc::start(spec(2), m)];
    assert!(wait_for(Duration::from_secs(15), async || leader(&procs[0]).await.is_some()).await);
    let mut third = spec(3);
    odd(&mut third);
    procs.push(Proc::start(third, m));
    procs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_configured_with_the_next_release_does_not_complete_the_fleets_plan() {
    switchyard::tls::install_provider();
    let etcd = EtcdServer::start();
    let m = Mocks::start("fs-rel").await;
    let procs = fleet_with_one_odd(&etcd, &m, "fs-rel", |s| s.release = "g-2".into()).await;
    let load = Trickle::start(&procs.iter().collect::<Vec<_>>());
    let svc = procs[0].spec.services[0].clone();
    let t0 = Instant::now();
    let mut skew_seen = false;
    let done = loop {
        let fleet_done =
            all(&[&procs[0], &procs[1]], |s, n| weight(s, n) == 100.0 && service(s, n)["state"] != "canary").await;
        if let Some(s) = procs[2].status().await {
            assert_eq!(
                weight(&s, &svc),
                0.0,
                "the g-2 replica routes the fleet's g-1 plan to g-2: {}",
                service(&s, &svc)
            );
            skew_seen |= s["fleet"]["skew"].as_array().is_some_and(|a| a.iter().any(|x| *x == *svc));
        }
        if fleet_done || t0.elapsed() > Duration::from_secs(40) {
            break fleet_done;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(done, "the fleet completed its own plan (g-1)");
    assert!(skew_seen, "the g-2 replica reported the skew in /status");
    let text = metrics(&procs[2]).await;
    assert!(
        text.contains(&format!("switchyard_fleet_config_skew{{service=\"{svc}\"}} 1")),
        "skew metric:\n{}",
        text.lines().filter(|l| l.contains("skew")).collect::<Vec<_>>().join("\n")
    );
    let st = store_states(&etcd.url, "/t/fs-rel").await;
    assert!(st.iter().all(|(_, s)| s.release.as_deref() == Some("g-1")), "the store completed g-1, never g-2: {st:?}");
    drop(load);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_with_other_steps_follows_the_fleets_plan_and_reports_skew() {
    switchyard::tls::install_provider();
    let etcd = EtcdServer::start();
    let m = Mocks::start("fs-steps").await;
    let procs = fleet_with_one_odd(&etcd, &m, "fs-steps", |s| s.steps = "[10, 30, 60, 100]".into()).await;
    let load = Trickle::start(&procs.iter().collect::<Vec<_>>());
    let svc = procs[0].spec.services[0].clone();
    let mut seen: Vec<Vec<f64>> = vec![Vec::new(); 3];
    let mut skew = false;
    let done = wait_for(Duration::from_secs(40), async || {
        let mut full = true;
        for (i, p) in procs.iter().enumerate() {
            let Some(s) = p.status().await else { return false };
            let w = weight(&s, &svc);
            if seen[i].last() != Some(&w) {
                seen[i].push(w);
            }
            full &= w == 100.0;
            skew |= i == 2 && s["fleet"]["skew"].as_array().is_some_and(|a| !a.is_empty());
        }
        full
    })
    .await;
    drop(load);
    assert!(done, "the fleet completed: {seen:?}");
    assert!(skew, "the odd replica reported skew");
    for w in &seen {
        assert!(w.windows(2).all(|p| p[0] <= p[1]), "a weight went backwards (flapping): {seen:?}");
        assert!(w.iter().all(|x| [0.0, 10.0, 50.0, 100.0].contains(x)), "a weight outside the fleet's plan: {seen:?}");
    }
}
