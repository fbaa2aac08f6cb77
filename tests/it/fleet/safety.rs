//! Fleet safety under the faults a Kubernetes fleet meets: a leader paused past its lease, a
//! replica restarted with an empty state dir, a second process with a live name, a store wiped
//! or compacted. Real etcd, real `switchyard run` processes on loopback; each test asserts the
//! invariant of `docs/fleet.md` it covers, not just convergence.

use super::etcd_server::EtcdServer;
use super::kit::*;
use crate::support::Mocks;
use serde_json::Value;
use std::time::{Duration, Instant};
use switchyard::fleet::etcd::Etcd;
use switchyard::fleet::SharedService;

/// The shared state of every service under `prefix`, read straight from etcd.
pub async fn store_states(url: &str, prefix: &str) -> Vec<(String, SharedService)> {
    let etcd = Etcd::new(vec![url.parse().unwrap()], Duration::from_secs(2));
    let (kvs, _) = etcd.range_prefix(&format!("{prefix}/services/")).await.unwrap_or_default();
    kvs.into_iter()
        .filter_map(|kv| {
            let name = kv.key.rsplit('/').next()?.to_string();
            Some((name, serde_json::from_slice(&kv.value).ok()?))
        })
        .collect()
}

fn specs(n: usize, tag: &str, etcd: &EtcdServer, services: usize, hold: &str) -> Vec<Spec> {
    (1..=n)
        .map(|i| {
            let mut s = Spec::new(&format!("{tag}-{i}"), &format!("/t/{tag}"), &etcd.url, services, tag);
            s.hold = hold.into();
            s
        })
        .collect()
}

async fn leader_index(procs: &[Proc]) -> usize {
    let mut l = None;
    let ok = wait_for(Duration::from_secs(10), async || {
        l = leader(&procs[0]).await;
        l.is_some()
    })
    .await;
    assert!(ok, "no leader");
    let l = l.unwrap();
    procs.iter().position(|p| p.spec.name == l).expect("the leader is one of ours")
}

fn refs(p: &[Proc]) -> Vec<&Proc> {
    p.iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_leader_resumed_after_an_operator_rollback_keeps_the_latch() {
    switchyard::tls::install_provider();
    let etcd = EtcdServer::start();
    let m = Mocks::start("fs-stale").await;
    let mut procs: Vec<Proc> = specs(3, "fs-stale", &etcd, 1, "4s").into_iter().map(|s| Proc::start(s, &m)).collect();
    let load = Trickle::start(&refs(&procs));
    let svc = procs[0].spec.services[0].clone();
    let at_last =
        wait_for(Duration::from_secs(40), async || all(&refs(&procs), |s, n| weight(s, n) == 100.0).await).await;
    assert!(at_last, "plan did not reach its last step (100 %) on every replica");
    let li = leader_index(&procs).await;
    // The leader freezes in the last hold; an operator rolls back through another replica.
    procs[li].stop();
    let other = (li + 1) % 3;
    let (st, body) = procs[other].post(&format!("/services/{svc}/rollback"), "").await;
    assert_eq!(st, 200, "{body}");
    // Past the lease (2 s): another replica leads.
    tokio::time::sleep(Duration::from_secs(3)).await;
    procs[li].cont();
    // The resumed process routes what it had until it hears the store (its data path never
    // stopped); it must not complete the plan, and it must end latched like the others.
    let resumed = Instant::now();
    let mut heard = false;
    while resumed.elapsed() < Duration::from_secs(6) {
        for (i, p) in procs.iter().enumerate() {
            let Some(s) = p.status().await else { continue };
            let sv = service(&s, &svc);
            assert_eq!(sv["live"], "blue", "{} completed the rolled-back plan: {sv}", p.spec.name);
            if i != li {
                assert_eq!(
                    (weight(&s, &svc), sv["state"].as_str()),
                    (0.0, Some("rolled_back")),
                    "{}: {sv}",
                    p.spec.name
                );
            } else {
                let me = p.spec.name.as_str();
                assert_ne!(s["fleet"]["leader"].as_str(), Some(me), "the resumed process still names itself leader");
                let latched = sv["state"] == "rolled_back" && weight(&s, &svc) == 0.0;
                assert!(!heard || latched, "the resumed leader lifted the latch again: {sv}");
                heard |= latched;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(heard, "the resumed leader applied the fleet's latch");
    let store = store_states(&etcd.url, "/t/fs-stale").await;
    assert!(store.iter().all(|(_, s)| s.latched && s.candidate.is_some()), "the store kept the latch: {store:?}");
    drop(load);
    procs.clear();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_restarted_with_an_empty_state_dir_neither_lowers_the_step_nor_lifts_the_latch() {
    switchyard::tls::install_provider();
    let etcd = EtcdServer::start();
    let m = Mocks::start("fs-empty").await;
    let slow = |mut s: Spec| {
        s.interval = "500ms".into();
        s
    };
    let mut procs: Vec<Proc> =
        specs(3, "fs-empty", &etcd, 7, "60s").into_iter().map(|s| Proc::start(slow(s), &m)).collect();
    let names = procs[0].spec.services.clone();
    let started =
        wait_for(Duration::from_secs(30), async || all(&refs(&procs), |s, n| weight(s, n) == 10.0).await).await;
    assert!(started, "plans did not start");
    for n in &names {
        let (st, body) = procs[1].post(&format!("/services/{n}/advance"), "").await;
        assert_eq!(st, 200, "{body}");
    }
    let (st, body) = procs[2].post(&format!("/services/{}/rollback", names[0]), "").await;
    assert_eq!(st, 200, "{body}");
    let expect = |s: &Value, n: &str| weight(s, n) == if n == names[0] { 0.0 } else { 50.0 };
    let set = wait_for(Duration::from_secs(20), async || all(&refs(&procs), expect).await).await;
    let seen: Vec<Vec<f64>> = futures_util::future::join_all(procs.iter().map(|p| async {
        let s = p.status().await.unwrap_or_default();
        names.iter().map(|n| weight(&s, n)).collect()
    }))
    .await;
    assert!(set, "fleet at 50 % with one service rolled back: {seen:?}");
    // A rolling update: each replica in turn crashes and comes back with an empty state dir.
    for i in 0..3 {
        procs[i].restart_empty(&m);
        let back = Instant::now();
        loop {
            for (j, p) in procs.iter().enumerate().filter(|(j, _)| *j != i) {
                let s = p.status().await.expect("a replica answers");
                for n in &names {
                    assert!(expect(&s, n), "replica {j} changed {n} while {i} restarted: {}", service(&s, n));
                }
            }
            let synced = procs[i].status().await.is_some_and(|s| s["fleet"]["synced"] == true);
            if synced && all(&[&procs[i]], expect).await {
                break;
            }
            assert!(back.elapsed() < Duration::from_secs(20), "restarted replica {i} did not rejoin");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    for (n, s) in store_states(&etcd.url, "/t/fs-empty").await {
        assert_eq!((s.latched, s.step), (n == names[0], Some(1)), "{n} in the store: {s:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_with_a_live_name_waits_and_says_so() {
    switchyard::tls::install_provider();
    let etcd = EtcdServer::start();
    let m = Mocks::start("fs-dup").await;
    let spec = specs(1, "fs-dup", &etcd, 1, "60s").remove(0);
    let mut first = Proc::start(spec.clone(), &m);
    let led = wait_for(Duration::from_secs(15), async || leader(&first).await.is_some()).await;
    assert!(led, "the first process leads");
    let second = Proc::start(spec, &m);
    let waiting = wait_for(Duration::from_secs(15), async || {
        second.status().await.is_some_and(|s| s["fleet"]["waiting"].as_str().is_some_and(|w| w.contains("held")))
    })
    .await;
    assert!(waiting, "the second process says it waits: {:?}", second.status().await.map(|s| s["fleet"].clone()));
    let s = second.status().await.unwrap();
    assert_eq!(s["fleet"]["synced"], false, "it stays a reader: {}", s["fleet"]);
    assert!(second.log().contains("is held by another live process"), "and logs why");
    assert!(leader(&first).await.is_some(), "one leader");
    // The first one goes away (no revoke): the name frees with its lease and the second joins.
    first.kill();
    let joined =
        wait_for(Duration::from_secs(10), async || second.status().await.is_some_and(|s| s["fleet"]["synced"] == true))
            .await;
    assert!(joined, "the second process joins once the name is free");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_revokes_the_lease_so_leadership_moves_at_once() {
    switchyard::tls::install_provider();
    let etcd = EtcdServer::start();
    let m = Mocks::start("fs-term").await;
    // A long lease: without the revoke, leadership would move only after 5 s.
    let long = |mut s: Spec| {
        s.lease_ttl = "5s".into();
        s
    };
    let mut procs: Vec<Proc> =
        specs(2, "fs-term", &etcd, 1, "60s").into_iter().map(|s| Proc::start(long(s), &m)).collect();
    let li = leader_index(&procs).await;
    let formed = wait_for(Duration::from_secs(10), async || {
        procs[1 - li].status().await.is_some_and(|s| s["fleet"]["synced"] == true)
    })
    .await;
    assert!(formed);
    let t0 = Instant::now();
    procs[li].terminate();
    let name = procs[1 - li].spec.name.clone();
    let moved = wait_for(Duration::from_secs(5), async || leader(&procs[1 - li]).await.as_deref() == Some(&name)).await;
    let took = t0.elapsed();
    assert!(moved && took < Duration::from_millis(2500), "leadership moved after {took:?} (lease_ttl 5 s)");
}
