//! Fleet mode with the real binary on two workers per process: `switchyard run --threads 2`
//! replicas on one etcd finish a progressive plan under traffic spread over both workers (the
//! stats both workers record are what the leader merges and judges), and fail nothing.

use super::support::fresh_get;
use crate::fleet::etcd_server::EtcdServer;
use crate::fleet::processes::{spawn_with, status, wait_for, weight, Proc, SERVICE};
use crate::support::{client, metric, Mocks};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The names of the process's threads (`/proc/PID/task/*/comm`).
fn thread_names(p: &Proc) -> Vec<String> {
    let tasks = std::fs::read_dir(format!("/proc/{}/task", p.child.id())).unwrap();
    tasks.filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok()).map(|s| s.trim().into()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thread_replicas_complete_a_fleet_plan_under_traffic_on_both_workers() {
    switchyard::tls::install_provider();
    let etcd = EtcdServer::start();
    let m = Mocks::start(SERVICE).await;
    let procs: Vec<Proc> =
        (1..=2).map(|i| spawn_with(&etcd, &m, &format!("c{i}"), "/t/cores", &["--threads", "2"])).collect();
    let formed = crate::fleet::processes::fleet_formed(&procs, Duration::from_secs(15)).await;
    assert!(formed, "fleet of 2 processes did not form");
    for p in &procs {
        let names = thread_names(p);
        for w in ["switchyard-w0", "switchyard-w1"] {
            assert!(names.iter().any(|n| n == w), "no {w} thread in {names:?}");
        }
    }
    // Fresh connections, so the kernel spreads them over both workers of each process.
    let (stop, failed) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    let mut traffic = tokio::task::JoinSet::new();
    for addr in procs.iter().map(|p| p.service) {
        for _ in 0..2 {
            let (stop, failed) = (stop.clone(), failed.clone());
            traffic.spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    if fresh_get(addr, &[]).await.0 != 200 {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    }
    let done = wait_for(Duration::from_secs(30), async || {
        for p in &procs {
            match status(p).await {
                Some(s) if weight(&s) == 100.0 => {}
                _ => return false,
            }
        }
        true
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    while traffic.join_next().await.is_some() {}
    assert!(done, "the plan did not reach 100 % on both replicas");
    assert_eq!(failed.load(Ordering::Relaxed), 0, "failed requests");
    for p in &procs {
        let text = client().get(format!("http://{}/metrics", p.admin)).send().await.unwrap().text().await.unwrap();
        for w in ["1", "2"] {
            let n = metric(&text, "switchyard_worker_connections_total", &[("service", SERVICE), ("worker", w)]);
            assert!(n.unwrap_or(0.0) >= 1.0, "worker {w} of {} accepted no connection", p.admin);
        }
    }
}
