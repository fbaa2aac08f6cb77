//! Metrics by role and release, against the real binary (its own process, so the global
//! `switchyard_migration_active` is this test's alone): a release rolls out in green, then the
//! next one in blue and is rolled back. `switchyard_release_info` follows each color's role,
//! `switchyard_candidate_weight_percent` is the candidate's share in either color,
//! `switchyard_rollout_step_number` counts from 1 as `/status` does, and
//! `switchyard_migration_active` stays 1 through the last step's hold.

use crate::support::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const QUICK: &str = "interval = \"100ms\"\nwindow = \"300ms\"\nmin_samples = 3";

fn config(blue: (&mock_upstream::MockHandle, &str), green: (&mock_upstream::MockHandle, &str)) -> String {
    format!(
        "[rollout]\norder = [\"rm\"]\nhealthy_measurements = 2\nsteps = [50, 100]\nhold = \"1500ms\"\n\
         [[services]]\nname = \"rm\"\nlisten = \"127.0.0.1:0\"\nmode = \"progressive\"\n\
         blue = {{ endpoints = [\"{}\"], release = \"{}\" }}\ngreen = {{ endpoints = [\"{}\"], release = \"{}\" }}\n",
        blue.0.addr(),
        blue.1,
        green.0.addr(),
        green.1
    )
}

/// The values this test reads from one scrape.
#[derive(Debug, Clone, PartialEq)]
struct Reading {
    step: f64,
    step_index: f64,
    candidate: f64,
    green: f64,
    active: f64,
    /// `(color, role, release)` of every `switchyard_release_info` series.
    roles: Vec<(String, String, String)>,
}

async fn read(p: &Proxy) -> Reading {
    let text = p.get("/metrics").await;
    let m = |n: &str| metric(&text, n, &[("service", "rm")]).unwrap_or(f64::NAN);
    let mut roles: Vec<(String, String, String)> = text
        .lines()
        .filter(|l| l.starts_with("switchyard_release_info{service=\"rm\""))
        .map(|l| {
            let label = |k: &str| {
                let from = l.find(&format!("{k}=\"")).unwrap() + k.len() + 2;
                l[from..from + l[from..].find('"').unwrap()].to_string()
            };
            (label("color"), label("role"), label("release"))
        })
        .collect();
    roles.sort();
    Reading {
        step: m("switchyard_rollout_step_number"),
        step_index: m("switchyard_rollout_step"),
        candidate: m("switchyard_candidate_weight_percent"),
        green: m("switchyard_green_weight_percent"),
        active: metric(&text, "switchyard_migration_active", &[]).unwrap_or(f64::NAN),
        roles,
    }
}

fn roles(v: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    v.iter().map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string())).collect()
}

/// Scrapes every 25 ms until `done`, keeping every reading; fails after 20 s.
async fn watch(p: &Proxy, what: &str, done: impl Fn(&Reading) -> bool) -> Vec<Reading> {
    let end = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    loop {
        let r = read(p).await;
        let stop = done(&r);
        seen.push(r);
        if stop {
            return seen;
        }
        assert!(tokio::time::Instant::now() < end, "{what}: last reading {:?}", seen.last());
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_roles_and_releases_across_a_rollout_and_a_rollback() {
    switchyard::tls::install_provider(); // for the test's own reqwest client
    let spawn =
        |n: &'static str| mock_upstream::spawn("127.0.0.1:0".parse().unwrap(), mock_upstream::MockConfig::new(n));
    let (r10, r11, r12) =
        (spawn("rm-1.0").await.unwrap(), spawn("rm-1.1").await.unwrap(), spawn("rm-1.2").await.unwrap());
    let env = Env::new(QUICK, &config((&r10, "1.0"), (&r11, "1.1")));
    let p = Proxy::start(&env.path).await.unwrap_or_else(|e| panic!("{}", e.stderr));
    let listen: std::net::SocketAddr = p.status().await["services"][0]["listen"].as_str().unwrap().parse().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let c = client();
            let end = tokio::time::Instant::now() + Duration::from_secs(60);
            while !stop.load(Ordering::Relaxed) && tokio::time::Instant::now() < end {
                get(&c, listen, "/").await;
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        })
    };

    // Release 1.1 in green: step 1 at 50 %, step 2 at 100 %, then live.
    let green_live = roles(&[("blue", "idle", ""), ("green", "live", "1.1")]);
    let seen = watch(&p, "1.1 never became live", |r| r.roles == green_live).await;
    let at = |step: f64| seen.iter().filter(move |r| r.step == step).collect::<Vec<_>>();
    let rolling = roles(&[("blue", "live", "1.0"), ("green", "candidate", "1.1")]);
    assert!(!at(1.0).is_empty() && !at(2.0).is_empty(), "both steps seen: {seen:?}");
    for r in at(1.0) {
        assert_eq!((r.step_index, r.candidate, r.active, &r.roles), (0.0, 50.0, 1.0, &rolling), "{r:?}");
    }
    for r in at(2.0) {
        // The last step's hold: all traffic on the candidate, the migration still active.
        assert_eq!((r.step_index, r.candidate, r.active, &r.roles), (1.0, 100.0, 1.0, &rolling), "{r:?}");
    }
    let last = seen.last().unwrap();
    assert_eq!((last.step, last.candidate, last.green, last.active), (0.0, 0.0, 100.0, 0.0), "{last:?}");
    assert!(p.get("/metrics").await.contains("switchyard_rollout_steps{service=\"rm\"} 2"));

    // Release 1.2 into blue (the idle color): the candidate's share rises while green's falls.
    env.write(QUICK, &config((&r12, "1.2"), (&r11, "1.1")));
    let r = client().post(format!("{}/reload", p.admin)).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let blue_rolling = roles(&[("blue", "candidate", "1.2"), ("green", "live", "1.1")]);
    watch(&p, "1.2 never took half", |r| r.roles == blue_rolling && r.candidate == 50.0 && r.green == 50.0).await;
    let r = read(&p).await;
    assert_eq!((r.step, r.active), (1.0, 1.0), "{r:?}");

    // A rollback: the candidate keeps its role and release, at no share and no step.
    let r = client().post(format!("{}/services/rm/rollback", p.admin)).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let seen = watch(&p, "rollback never showed", |r| r.candidate == 0.0).await;
    let r = seen.last().unwrap();
    assert_eq!((r.step, r.green, r.active, &r.roles), (0.0, 100.0, 0.0, &blue_rolling), "{r:?}");
    let text = p.get("/metrics").await;
    assert!(
        text.contains(&format!(
            "switchyard_endpoint_up{{service=\"rm\",color=\"blue\",role=\"candidate\",endpoint=\"{}\"}} 1",
            r12.addr()
        )),
        "{text}"
    );
    for (family, says) in [
        ("switchyard_hash_mismatches_total", "Candidate responses"),
        ("switchyard_retries_total", "Failed candidate attempts retried on the live color"),
        ("switchyard_candidate_weight_percent", "candidate release"),
    ] {
        let help = text.lines().find(|l| l.starts_with(&format!("# HELP {family} "))).unwrap_or_default();
        assert!(help.contains(says) && !help.contains("green"), "{family}: {help:?}");
    }
    stop.store(true, Ordering::Relaxed);
    traffic.await.unwrap();
    p.stop().await;
}
