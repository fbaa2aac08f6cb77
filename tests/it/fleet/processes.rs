//! Fleet mode with the real binary: three `switchyard run` processes and a real etcd. A
//! replica is killed with SIGKILL (no lease revoke, no goodbye), as a crashed pod would be.

use super::etcd_server::EtcdServer;
use crate::support::{client, free_port, Mocks};
use serde_json::Value;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) struct Proc {
    name: String,
    pub(crate) child: Child,
    pub(crate) admin: SocketAddr,
    pub(crate) service: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) const SERVICE: &str = "flp";

fn spawn(etcd: &EtcdServer, m: &Mocks, name: &str, prefix: &str) -> Proc {
    spawn_with(etcd, m, name, prefix, &[])
}

/// A replica of service `SERVICE` in front of `m` (a progressive plan: 10, 30, 60, 100 %, 700 ms
/// holds), with more `switchyard run` arguments.
pub(crate) fn spawn_with(etcd: &EtcdServer, m: &Mocks, name: &str, prefix: &str, args: &[&str]) -> Proc {
    let dir = tempfile::tempdir().unwrap();
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let service: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let cfg = format!(
        "state_dir = \"{state}\"\n[admin]\nlisten = \"{admin}\"\n\
         [control]\ninterval = \"100ms\"\nwindow = \"300ms\"\nmin_samples = 5\n\
         [rollout]\nsteps = [10, 30, 60, 100]\nhold = \"700ms\"\nhealthy_measurements = 1\n\
         [[services]]\nname = \"{SERVICE}\"\nlisten = \"{service}\"\nmode = \"progressive\"\n{pools}\
         triggers = {{ error_rate = {{ above = 0.2 }} }}\n\
         [fleet]\nendpoints = [\"{url}\"]\nprefix = \"{prefix}\"\nreplica = \"{name}\"\nlease_ttl = \"2s\"\n",
        state = dir.path().join("state").display(),
        pools = m.pools("r1"),
        url = etcd.url,
    );
    let path = dir.path().join("switchyard.toml");
    std::fs::write(&path, cfg).unwrap();
    let log = std::fs::File::create(dir.path().join("log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["run", "--config"])
        .arg(&path)
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    Proc { name: name.into(), child, admin, service, _dir: dir }
}

/// Waits until every process lists `procs.len()` live replicas.
pub(crate) async fn fleet_formed(procs: &[Proc], limit: Duration) -> bool {
    wait_for(limit, async || {
        for p in procs {
            match status(p).await {
                Some(s) if s["fleet"]["replicas"].as_array().is_some_and(|a| a.len() == procs.len()) => {}
                _ => return false,
            }
        }
        true
    })
    .await
}

pub(crate) async fn status(p: &Proc) -> Option<Value> {
    let r = client().get(format!("http://{}/status", p.admin)).timeout(Duration::from_millis(500)).send().await.ok()?;
    r.json().await.ok()
}

pub(crate) async fn wait_for(limit: Duration, mut f: impl AsyncFnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

pub(crate) fn weight(s: &Value) -> f64 {
    s["services"][0]["green_weight"].as_f64().unwrap_or(-1.0)
}

/// Closed-loop load on every live replica's listener; counts non-2xx answers.
fn load(targets: Vec<(SocketAddr, Arc<AtomicBool>)>, stop: Arc<AtomicBool>, failed: Arc<AtomicU64>) {
    for (addr, alive) in targets {
        for _ in 0..2 {
            let (alive, stop, failed) = (alive.clone(), stop.clone(), failed.clone());
            tokio::spawn(async move {
                let c = client();
                while !stop.load(Ordering::Relaxed) {
                    if !alive.load(Ordering::Relaxed) {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                    let (st, _) = crate::support::get(&c, addr, "/").await;
                    // Answers cut off by the end of the test (processes dropped) do not count.
                    let live = alive.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed);
                    if st != 200 && live && failed.fetch_add(1, Ordering::Relaxed) < 3 {
                        eprintln!("failed request to {addr}: status {st}");
                    }
                }
            });
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_mid_plan_lets_another_finish_it_without_going_back() {
    switchyard::tls::install_provider();
    let etcd = EtcdServer::start();
    let m = Mocks::start(SERVICE).await;
    let procs: Vec<Proc> = (1..=3).map(|i| spawn(&etcd, &m, &format!("p{i}"), "/t/kill")).collect();
    let formed = fleet_formed(&procs, Duration::from_secs(15)).await;
    assert!(formed, "fleet of 3 processes did not form");
    let mut leader = String::new();
    // Read from the replica the CLI asks below: each replica learns the leader from its own watch.
    let elected = wait_for(Duration::from_secs(5), async || {
        let s = status(&procs[1]).await;
        leader = s.and_then(|s| s["fleet"]["leader"].as_str().map(String::from)).unwrap_or_default();
        !leader.is_empty()
    })
    .await;
    assert!(elected, "no leader");
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["status", "--admin", &format!("http://{}", procs[1].admin)])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("leader {leader}")) && text.contains("replicas (3): p1, p2, p3"),
        "`switchyard status` prints the fleet:\n{text}"
    );
    let alive: Vec<Arc<AtomicBool>> = procs.iter().map(|_| Arc::new(AtomicBool::new(true))).collect();
    let (stop, failed) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    load(procs.iter().zip(&alive).map(|(p, a)| (p.service, a.clone())).collect(), stop.clone(), failed.clone());
    let li = procs.iter().position(|p| p.name == leader).unwrap();
    let mid =
        wait_for(Duration::from_secs(15), async || status(&procs[li]).await.is_some_and(|s| weight(&s) == 30.0)).await;
    assert!(mid, "plan did not reach step 2 under the leader {leader}");
    // Crash the leader: its lease (2 s) must expire before anyone else may lead.
    alive[li].store(false, Ordering::Relaxed);
    let mut procs = procs;
    let mut dead = procs.remove(li);
    dead.child.kill().unwrap();
    dead.child.wait().unwrap();
    let killed_at = Instant::now();
    let mut seen: Vec<Vec<f64>> = vec![Vec::new(); procs.len()];
    let mut new_leader_after = None;
    let done = wait_for(Duration::from_secs(20), async || {
        let mut all_full = true;
        for (i, p) in procs.iter().enumerate() {
            let Some(s) = status(p).await else { return false };
            let w = weight(&s);
            if seen[i].last() != Some(&w) {
                seen[i].push(w);
            }
            all_full &= w == 100.0;
            let l = s["fleet"]["leader"].as_str().unwrap_or("");
            if new_leader_after.is_none() && !l.is_empty() && l != leader {
                new_leader_after = Some(killed_at.elapsed());
            }
        }
        all_full
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    println!("leader {leader} killed; new leader after {new_leader_after:?}; weights seen per survivor: {seen:?}");
    assert!(done, "plan did not complete after the leader died: {seen:?}");
    let took = new_leader_after.expect("a new leader was elected");
    assert!(took <= Duration::from_secs(4), "failover took {took:?} (lease_ttl 2 s)");
    for w in &seen {
        assert!(w.windows(2).all(|p| p[0] <= p[1]), "a weight went backwards: {w:?}");
        assert!(w.contains(&60.0), "step 60 % skipped: {w:?}");
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0, "failed requests on live replicas");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_green_fault_under_load_latches_every_replica_with_one_incident() {
    switchyard::tls::install_provider();
    let etcd = EtcdServer::start();
    let m = Mocks::start("flp-fault").await;
    let procs: Vec<Proc> = (1..=3).map(|i| spawn(&etcd, &m, &format!("q{i}"), "/t/fault")).collect();
    let started = wait_for(Duration::from_secs(15), async || {
        for p in &procs {
            match status(p).await {
                Some(s) if weight(&s) >= 10.0 => {}
                _ => return false,
            }
        }
        true
    })
    .await;
    assert!(started, "plan did not start on every replica");
    let alive: Vec<Arc<AtomicBool>> = procs.iter().map(|_| Arc::new(AtomicBool::new(true))).collect();
    let (stop, failed) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    load(procs.iter().zip(&alive).map(|(p, a)| (p.service, a.clone())).collect(), stop.clone(), failed.clone());
    m.green.set(serde_json::from_str(r#"{"error_rate": 0.6}"#).unwrap());
    let t0 = Instant::now();
    let latched = wait_for(Duration::from_secs(10), async || {
        for p in &procs {
            match status(p).await {
                Some(s) if s["services"][0]["state"] == "rolled_back" && weight(&s) == 0.0 => {}
                _ => return false,
            }
        }
        true
    })
    .await;
    println!("green fault -> all 3 processes latched in {:?}", t0.elapsed());
    assert!(latched, "not every replica latched");
    let green_after = m.green.requests();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    assert_eq!(m.green.requests(), green_after, "a green request after every replica swapped");
    let mut ids = Vec::new();
    let ok = wait_for(Duration::from_secs(3), async || {
        ids.clear();
        for p in &procs {
            let r = client().get(format!("http://{}/incidents", p.admin)).send().await;
            let Ok(v) = r else { return false };
            let v: Value = v.json().await.unwrap_or_default();
            ids.push(
                v.as_array().map(|a| a.iter().map(|i| i["id"].to_string()).collect::<Vec<_>>()).unwrap_or_default(),
            );
        }
        ids.iter().all(|l| l.len() == 1 && l == &ids[0])
    })
    .await;
    assert!(ok, "one and the same incident on every replica: {ids:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_etcd_pause_freezes_the_plan_safely_and_resume_continues_it() {
    switchyard::tls::install_provider();
    let etcd = EtcdServer::start();
    let m = Mocks::start("flp-pause").await;
    let mut procs: Vec<Proc> = (1..=3).map(|i| spawn(&etcd, &m, &format!("s{i}"), "/t/pause")).collect();
    let alive: Vec<Arc<AtomicBool>> = (0..4).map(|_| Arc::new(AtomicBool::new(true))).collect();
    let (stop, failed) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    let listening = wait_for(Duration::from_secs(15), async || {
        for p in &procs {
            if status(p).await.is_none_or(|s| s["fleet"]["store"] != "ok") {
                return false;
            }
        }
        true
    })
    .await;
    assert!(listening, "replicas did not start");
    load(procs.iter().zip(&alive).map(|(p, a)| (p.service, a.clone())).collect(), stop.clone(), failed.clone());
    let at_30 = wait_for(Duration::from_secs(20), async || {
        for p in &procs {
            match status(p).await {
                Some(s) if weight(&s) == 30.0 => {}
                _ => return false,
            }
        }
        true
    })
    .await;
    assert!(at_30, "plan did not reach 30 %");
    etcd.pause();
    let paused_at = Instant::now();
    // A replica started during the outage: blue only, and ready.
    procs.push(spawn(&etcd, &m, "s4", "/t/pause"));
    let late_ready = wait_for(Duration::from_secs(15), async || {
        client().get(format!("http://{}/readyz", procs[3].admin)).send().await.is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert!(late_ready, "a replica started during the outage must report ready");
    let c = client();
    for _ in 0..50 {
        let (st, who) = crate::support::get(&c, procs[3].service, "/").await;
        assert_eq!((st, who.ends_with("blue")), (200, true), "late replica served {who}");
    }
    // Hold the outage well past the step's hold (700 ms): no weight may rise.
    while paused_at.elapsed() < Duration::from_secs(4) {
        for p in &procs[..3] {
            let s = status(p).await.expect("a replica answers during the outage");
            assert!(weight(&s) <= 30.0, "green raised during the outage: {s}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // How soon a replica calls the store unreachable depends on its lease; on a loaded box
    // that can be later than the 4 s above, so wait for it rather than read it once.
    let noticed = wait_for(Duration::from_secs(15), async || {
        status(&procs[0]).await.is_some_and(|s| s["fleet"]["store"] == "unreachable")
    })
    .await;
    assert!(noticed, "{}", status(&procs[0]).await.unwrap_or_default()["fleet"]);
    etcd.resume();
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
    assert!(done, "plan did not continue to 100 % on all 4 replicas after the store came back");
    assert_eq!(failed.load(Ordering::Relaxed), 0, "failed requests during the outage");
}
