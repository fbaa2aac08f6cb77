//! The store itself misbehaving: wiped (an empty member at the same endpoint), compacted; and
//! the clock of the replica that takes over running ahead.

use super::etcd_server::EtcdServer;
use super::kit::*;
use super::safety::store_states;
use crate::support::Mocks;
use std::time::{Duration, Instant};

fn procs(n: usize, tag: &str, etcd: &EtcdServer, m: &Mocks, services: usize, hold: &str) -> Vec<Proc> {
    (1..=n)
        .map(|i| {
            let mut s = Spec::new(&format!("{tag}-{i}"), &format!("/t/{tag}"), &etcd.url, services, tag);
            s.hold = hold.into();
            Proc::start(s, m)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_store_is_noticed_and_reseeded_with_the_latch() {
    switchyard::tls::install_provider();
    let mut etcd = EtcdServer::start();
    let m = Mocks::start("fs-wipe").await;
    let procs = procs(3, "fs-wipe", &etcd, &m, 2, "60s");
    let refs: Vec<&Proc> = procs.iter().collect();
    let names = procs[0].spec.services.clone();
    assert!(wait_for(Duration::from_secs(30), async || all(&refs, |s, n| weight(s, n) == 10.0).await).await);
    let (st, _) = procs[0].post(&format!("/services/{}/advance", names[0]), "").await;
    assert_eq!(st, 200);
    let (st, _) = procs[1].post(&format!("/services/{}/rollback", names[1]), "").await;
    assert_eq!(st, 200);
    let expect = |s: &serde_json::Value, n: &str| weight(s, n) == if n == names[1] { 0.0 } else { 50.0 };
    assert!(wait_for(Duration::from_secs(10), async || all(&refs, expect).await).await);
    etcd.restart(true);
    let reseeded = wait_for(Duration::from_secs(20), async || {
        let st = store_states(&etcd.url, "/t/fs-wipe").await;
        st.len() == 2 && st.iter().all(|(n, s)| s.latched == (*n == names[1]) && (s.latched || s.step == Some(1)))
    })
    .await;
    assert!(reseeded, "store re-seeded: {:?}", store_states(&etcd.url, "/t/fs-wipe").await);
    assert!(procs.iter().any(|p| p.log().contains("lost its data")), "the wipe is noticed and logged");
    // The fleet is one again: an admin change through one replica reaches all.
    let ok = wait_for(Duration::from_secs(10), async || {
        procs[2].post(&format!("/services/{}/weight", names[0]), r#"{"green": 30}"#).await.0 == 200
    })
    .await;
    assert!(ok, "admin weight accepted after the wipe");
    let expect = |s: &serde_json::Value, n: &str| weight(s, n) == if n == names[1] { 0.0 } else { 30.0 };
    assert!(wait_for(Duration::from_secs(10), async || all(&refs, expect).await).await, "every replica follows");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_is_a_resync_not_an_outage() {
    switchyard::tls::install_provider();
    let mut etcd = EtcdServer::start();
    let m = Mocks::start("fs-compact").await;
    let procs = procs(2, "fs-compact", &etcd, &m, 1, "60s");
    let refs: Vec<&Proc> = procs.iter().collect();
    let svc = procs[0].spec.services[0].clone();
    assert!(wait_for(Duration::from_secs(30), async || all(&refs, |s, n| weight(s, n) == 10.0).await).await);
    for _ in 0..5 {
        procs[0].post(&format!("/services/{svc}/pause"), "").await;
        procs[0].post(&format!("/services/{svc}/resume"), "").await;
    }
    etcd.compact_now();
    // A restart makes every replica reconnect; the compacted history must not matter.
    etcd.restart(false);
    let t0 = Instant::now();
    assert!(
        wait_for(Duration::from_secs(15), async || {
            procs[1].post(&format!("/services/{svc}/advance"), "").await.0 == 200
        })
        .await
    );
    assert!(wait_for(Duration::from_secs(10), async || all(&refs, |s, n| weight(s, n) == 50.0).await).await);
    etcd.compact_now();
    while t0.elapsed() < Duration::from_secs(3) {
        for p in &procs {
            let s = p.status().await.unwrap();
            assert_eq!(s["fleet"]["store"], "ok", "compaction is not an outage: {}", s["fleet"]);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_whose_clock_runs_ahead_does_not_shorten_the_hold() {
    switchyard::tls::install_provider();
    let etcd = EtcdServer::start();
    let m = Mocks::start("fs-clock").await;
    let mut a = Spec::new("fs-clock-1", "/t/fs-clock", &etcd.url, 1, "fs-clock");
    a.hold = "8s".into();
    let first = Proc::start(a.clone(), &m);
    assert!(wait_for(Duration::from_secs(15), async || leader(&first).await.is_some()).await);
    let mut b = a.clone();
    b.name = "fs-clock-2".into();
    b.env = vec![
        ("LD_PRELOAD".into(), "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1".into()),
        ("FAKETIME".into(), "+60s".into()),
        ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
    ];
    let mut procs = vec![first, Proc::start(b, &m)];
    let load = Trickle::start(&procs.iter().collect::<Vec<_>>());
    let svc = a.services[0].clone();
    let refs: Vec<&Proc> = procs.iter().collect();
    assert!(wait_for(Duration::from_secs(30), async || all(&refs, |s, n| weight(s, n) == 10.0).await).await);
    // Enter step 1 (50 %) through the leader, then crash it at once: the skewed replica leads.
    let (st, _) = procs[0].post(&format!("/services/{svc}/advance"), "").await;
    assert_eq!(st, 200);
    let step_start = Instant::now();
    assert!(wait_for(Duration::from_secs(5), async || all(&refs, |s, n| weight(s, n) == 50.0).await).await);
    procs[0].kill();
    let next =
        wait_for(Duration::from_secs(30), async || procs[1].status().await.is_some_and(|s| weight(&s, &svc) == 100.0))
            .await;
    let held = step_start.elapsed();
    assert!(next, "the new leader advanced eventually");
    assert!(held >= Duration::from_secs(7), "hold of 8 s cut to {held:?} by a clock 60 s ahead");
    drop(load);
    procs.clear();
}
