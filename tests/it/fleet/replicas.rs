//! Fleet mode against a real etcd: several Switchyard replicas (in-process apps, each with its
//! own admin API, listener and control loop) behave as one through the store.

use super::etcd_server::EtcdServer;
use crate::support::*;
use std::time::{Duration, Instant};
use switchyard::app::App;

/// One replica: its own config dir and app, the shared mocks and store.
struct Replica {
    _env: Env,
    app: App,
}

fn fleet_toml(etcd: &EtcdServer, prefix: &str, replica: &str) -> String {
    format!(
        "[fleet]\nendpoints = [\"{}\"]\nprefix = \"{prefix}\"\nreplica = \"{replica}\"\nlease_ttl = \"2s\"\n",
        etcd.url
    )
}

async fn start_replica(etcd: &EtcdServer, prefix: &str, replica: &str, service: &str) -> Replica {
    let env = Env::new(FAST, &format!("{service}\n{}", fleet_toml(etcd, prefix, replica)));
    let app = env.start().await;
    Replica { _env: env, app }
}

fn manual_service(name: &str, m: &Mocks) -> String {
    format!(
        "[[services]]\nname = \"{name}\"\nlisten = \"127.0.0.1:0\"\nmode = \"manual\"\ngreen_weight = 0\n{}\
         triggers = {{ hash_mismatch = {{ consecutive = 1 }}, error_rate = {{ above = 0.5 }} }}\n",
        m.pools("r1")
    )
}

async fn fleet_of(n: usize, etcd: &EtcdServer, prefix: &str, service: &str) -> Vec<Replica> {
    let mut out = Vec::new();
    for i in 1..=n {
        out.push(start_replica(etcd, prefix, &format!("r{i}"), service).await);
    }
    let ok = eventually(Duration::from_secs(10), || {
        out.iter().all(|r| r.app.status()["fleet"]["replicas"].as_array().is_some_and(|a| a.len() == n))
    })
    .await;
    assert!(ok, "fleet did not form: {}", out[0].app.status()["fleet"]);
    out
}

fn weight(r: &Replica, name: &str) -> f64 {
    weight_of(&r.app, name)
}

fn weight_of(app: &App, name: &str) -> f64 {
    service(app, name)["green_weight"].as_f64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_action_on_one_replica_reaches_every_replica_within_a_second() {
    let etcd = EtcdServer::start();
    let name = "fl-admin";
    let m = Mocks::start(name).await;
    let fleet = fleet_of(3, &etcd, "/t/admin", &manual_service(name, &m)).await;
    let t0 = Instant::now();
    let (status, body) = admin_post(&fleet[1].app, &format!("/services/{name}/weight"), r#"{"green": 30}"#).await;
    assert_eq!(status, 200, "{body}");
    let all = eventually(Duration::from_secs(1), || fleet.iter().all(|r| weight(r, name) == 30.0)).await;
    let took = t0.elapsed();
    let seen: Vec<f64> = fleet.iter().map(|r| weight(r, name)).collect();
    assert!(all, "not every replica at 30 % within 1 s: {seen:?}");
    println!("admin weight on r2 -> all 3 replicas applied in {took:?}");
    let metrics = client()
        .get(format!("http://{}/metrics", fleet[0].app.admin_addr))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // The recorder is process-wide and other tests' fleets share it: check the families only.
    for family in [
        "switchyard_fleet_replicas ",
        "switchyard_fleet_store_up ",
        "switchyard_fleet_leader ",
        "switchyard_fleet_apply_lag_seconds_bucket",
    ] {
        assert!(metrics.contains(family), "{family} missing from /metrics");
    }
    let leaders = || fleet.iter().map(|r| r.app.status()["fleet"]["leader"].clone()).collect::<Vec<_>>();
    let agreed = eventually(Duration::from_secs(2), || {
        let l = leaders();
        l.iter().all(|x| x == &l[0] && x.is_string())
    })
    .await;
    assert!(agreed, "one leader for all: {:?}", leaders());
    for r in fleet {
        r.app.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hash_mismatch_on_one_replica_latches_all_with_one_incident() {
    let etcd = EtcdServer::start();
    let name = "fl-hash";
    let m = Mocks::start(name).await;
    let fleet = fleet_of(3, &etcd, "/t/hash", &manual_service(name, &m)).await;
    let (status, _) = admin_post(&fleet[0].app, &format!("/services/{name}/weight"), r#"{"green": 100}"#).await;
    assert_eq!(status, 200);
    assert!(eventually(Duration::from_secs(2), || fleet.iter().all(|r| weight(r, name) == 100.0)).await);
    m.green.set(serde_json::from_str(r#"{"hash": "wrong"}"#).unwrap());
    let addr = fleet[2].app.service_addr(name).unwrap();
    let t0 = Instant::now();
    get(&client(), addr, "/").await;
    let latched = eventually(Duration::from_secs(1), || {
        fleet.iter().all(|r| service(&r.app, name)["state"] == "rolled_back" && weight(r, name) == 0.0)
    })
    .await;
    println!("hash mismatch on r3 -> all 3 latched in {:?}", t0.elapsed());
    assert!(latched, "{:?}", fleet.iter().map(|r| service(&r.app, name)["state"].clone()).collect::<Vec<_>>());
    let ok = eventually(Duration::from_secs(2), || {
        fleet.iter().all(|r| r.app.control.published.incidents.load().len() == 1)
    })
    .await;
    let ids: Vec<String> = fleet
        .iter()
        .flat_map(|r| r.app.control.published.incidents.load().iter().map(|i| i.id.clone()).collect::<Vec<_>>())
        .collect();
    assert!(ok, "one incident on every replica: {ids:?}");
    assert!(ids.iter().all(|i| i == &ids[0]), "the same incident id everywhere: {ids:?}");
    for r in fleet {
        r.app.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_keeps_weights_refuses_raises_and_a_new_replica_serves_blue_only() {
    let etcd = EtcdServer::start();
    let name = "fl-outage";
    let m = Mocks::start(name).await;
    let svc = manual_service(name, &m);
    let fleet = fleet_of(2, &etcd, "/t/outage", &svc).await;
    let (status, _) = admin_post(&fleet[0].app, &format!("/services/{name}/weight"), r#"{"green": 50}"#).await;
    assert_eq!(status, 200);
    let all = eventually(Duration::from_secs(2), || fleet.iter().all(|r| weight(r, name) == 50.0)).await;
    assert!(all, "{:?}", fleet.iter().map(|r| service(&r.app, name)).collect::<Vec<_>>());
    etcd.pause();
    let down =
        eventually(Duration::from_secs(5), || fleet.iter().all(|r| r.app.status()["fleet"]["store"] == "unreachable"))
            .await;
    assert!(down, "outage not noticed: {}", fleet[0].app.status()["fleet"]);
    // Traffic is served on the last weights without failures.
    let results = burst(fleet[1].app.service_addr(name).unwrap(), 200, 4).await;
    assert!(results.iter().all(|(s, _)| *s == 200), "failures during the outage");
    assert!(results.iter().any(|(_, who)| who.ends_with("green")), "last weights kept (green still served)");
    let (status, body) = admin_post(&fleet[0].app, &format!("/services/{name}/weight"), r#"{"green": 80}"#).await;
    assert_eq!(status, 409, "a raise during the outage must be refused: {body}");
    assert_eq!(weight(&fleet[0], name), 50.0);
    // A replica started now has no shared state: blue only, and ready.
    let late = start_replica(&etcd, "/t/outage", "r9", &svc).await;
    assert!(late.app.control.ready());
    assert_eq!(weight(&late, name), 0.0);
    let results = burst(late.app.service_addr(name).unwrap(), 100, 4).await;
    assert!(results.iter().all(|(s, who)| *s == 200 && who.ends_with("blue")), "new replica must serve blue only");
    // Local evidence still acts during the outage: a wrong hash on r2's traffic latches r2 now.
    m.green.set(serde_json::from_str(r#"{"hash": "wrong"}"#).unwrap());
    let (c, addr) = (client(), fleet[1].app.service_addr(name).unwrap());
    for _ in 0..100 {
        if service(&fleet[1].app, name)["state"] == "rolled_back" {
            break;
        }
        get(&c, addr, "/").await;
    }
    assert_eq!(service(&fleet[1].app, name)["state"], "rolled_back", "local rollback during the outage");
    etcd.resume();
    let all: Vec<&App> = fleet.iter().map(|r| &r.app).chain([&late.app]).collect();
    let latched = eventually(Duration::from_secs(10), || {
        all.iter().all(|a| service(a, name)["state"] == "rolled_back" && weight_of(a, name) == 0.0)
    })
    .await;
    assert!(latched, "the outage-time rollback must reach the fleet: {}", late.app.status()["fleet"]);
    let one = eventually(Duration::from_secs(5), || {
        let ids: Vec<Vec<String>> =
            all.iter().map(|a| a.control.published.incidents.load().iter().map(|i| i.id.clone()).collect()).collect();
        ids.iter().all(|l| l.len() == 1 && l == &ids[0])
    })
    .await;
    assert!(one, "the incident recorded during the outage is written and seen everywhere");
    for r in fleet.into_iter().chain([late]) {
        r.app.shutdown().await;
    }
}

#[test]
fn shipped_fleet_configs_validate() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let compose = root.join("docker/switchyard-fleet.toml");
    let cfg = switchyard::config::load(&compose).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.fleet.unwrap().endpoints.len(), 1);
    let cm = std::fs::read_to_string(root.join("docker/k8s/fleet/configmap.yaml")).unwrap();
    let toml: String = cm
        .split_once("switchyard.toml: |\n")
        .unwrap()
        .1
        .lines()
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    let cfg =
        switchyard::config::parse(&toml, std::path::Path::new("configmap.yaml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.fleet.unwrap().endpoints.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalation_pages_each_level_once_per_fleet_and_an_ack_on_any_replica_is_seen_by_all() {
    use crate::oncall::hooks::Hooks;
    let etcd = EtcdServer::start();
    let name = "fl-page";
    let m = Mocks::start(name).await;
    let hooks = Hooks::start().await;
    let h = hooks.addr;
    let levels: Vec<String> = [300, 600, 900]
        .iter()
        .enumerate()
        .map(|(i, ms)| format!("{{ after = \"{ms}ms\", webhooks = [\"http://{h}/level{}\"] }}", i + 1))
        .collect();
    let service = format!(
        "[alerts]\ncritical = [\"http://{h}/critical\"]\n[alerts.escalation]\nlevels = [{}]\n{}",
        levels.join(", "),
        manual_service(name, &m)
    );
    let fleet = fleet_of(3, &etcd, "/t/page", &service).await;
    let (status, _) = admin_post(&fleet[0].app, &format!("/services/{name}/weight"), r#"{"green": 100}"#).await;
    assert_eq!(status, 200);
    assert!(eventually(Duration::from_secs(2), || fleet.iter().all(|r| weight(r, name) == 100.0)).await);
    m.green.set(serde_json::from_str(r#"{"hash": "wrong"}"#).unwrap());
    get(&client(), fleet[2].app.service_addr(name).unwrap(), "/").await;
    hooks.first("/level3", Duration::from_secs(10)).await;
    // Every replica holds the same incident, escalated to level 3 (the schedule is shared).
    let level = |app: &App| {
        let incs = app.incidents();
        incs.iter().find(|i| *i.service == *name).and_then(|i| i.escalation.as_ref().map(|e| e.level))
    };
    assert!(
        eventually(Duration::from_secs(5), || fleet.iter().all(|r| level(&r.app) == Some(3))).await,
        "{:?}",
        fleet.iter().map(|r| level(&r.app)).collect::<Vec<_>>()
    );
    for path in ["/critical", "/level1", "/level2", "/level3"] {
        assert_eq!(hooks.on(path).len(), 1, "{path} paged once for the fleet: {:?}", hooks.hits());
    }
    // An acknowledgement on one replica reaches the others through the store.
    let id = fleet[0].app.incidents().iter().find(|i| *i.service == *name).unwrap().id.clone();
    let (status, body) = admin_post(&fleet[1].app, &format!("/incidents/{id}/ack"), r#"{"by": "sre"}"#).await;
    assert_eq!(status, 200, "{body}");
    let acked = |app: &App| {
        app.incidents().iter().any(|i| i.id == id && i.escalation.as_ref().is_some_and(|e| e.acknowledged.is_some()))
    };
    assert!(eventually(Duration::from_secs(2), || fleet.iter().all(|r| acked(&r.app))).await);
}
