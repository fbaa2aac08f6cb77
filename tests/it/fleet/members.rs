//! Replicas on a three-member etcd cluster, as production runs it: a member that stops
//! answering (a restart, a node pause) while quorum holds is failed over to, not an outage.

use super::etcd_server::{cluster, EtcdServer};
use super::kit::*;
use crate::support::Mocks;
use std::time::{Duration, Instant};

/// Which member leads the etcd cluster (Raft), asked of each member itself.
fn raft_leader(members: &[EtcdServer]) -> Option<usize> {
    members.iter().position(|m| {
        let out = m.ctl(&["endpoint", "status", "-w", "json"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
        let st = &v[0]["Status"];
        st["leader"].as_u64().is_some_and(|l| Some(l) == st["header"]["member_id"].as_u64())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_etcd_follower_is_failed_over_without_an_outage_a_new_leader_or_a_stalled_plan() {
    switchyard::tls::install_provider();
    let members = cluster(3);
    let raft = raft_leader(&members).expect("the cluster elected a leader");
    // Every replica talks to a follower first; pausing it leaves quorum (and etcd's leader) intact.
    let first = (raft + 1) % 3;
    let order: Vec<&str> = [first, raft, (raft + 2) % 3].iter().map(|&i| members[i].url.as_str()).collect();
    let m = Mocks::start("fs-mem").await;
    let mut procs = Vec::new();
    for i in 1..=3 {
        let mut s = Spec::new(&format!("fs-mem-{i}"), "/t/fs-mem", &endpoints(&order), 1, "fs-mem");
        s.lease_ttl = "3s".into();
        s.hold = "4s".into();
        // A watch on the paused member is silent: noticed after this, then opened on another.
        s.extra = "watch_silence = \"2s\"\n".into();
        procs.push(Proc::start(s, &m));
    }
    let refs: Vec<&Proc> = procs.iter().collect();
    let _load = Trickle::start(&refs);
    assert!(wait_for(Duration::from_secs(30), async || all(&refs, |s, n| weight(s, n) == 10.0).await).await);
    let chosen = wait_for(Duration::from_secs(10), async || leader(&procs[0]).await.is_some()).await;
    assert!(chosen, "a fleet leader");
    let before = leader(&procs[0]).await;
    members[first].pause();
    // Two lease TTLs with the member gone: every replica keeps the store and the leader.
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        for p in &procs {
            let s = p.status().await.expect("answers");
            assert_eq!(
                s["fleet"]["store"], "ok",
                "{}: a paused follower is not an outage: {}",
                p.spec.name, s["fleet"]
            );
            assert_eq!(s["fleet"]["leader"].as_str(), before.as_deref(), "{}: leadership moved", p.spec.name);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The plan moves on (its 4 s hold ran out while the member was gone) on every replica.
    let moved = wait_for(Duration::from_secs(15), async || all(&refs, |s, n| weight(s, n) >= 50.0).await).await;
    assert!(moved, "the plan went on to 50 % on the other members");
    members[first].resume();
    for p in &procs {
        assert!(!p.log().contains("fleet store unreachable"), "{} reported an outage", p.spec.name);
    }
}
