//! Progressive rollout plans, the migration sequence, operator actions, hot reload
//! under load, and persisted state across restarts (including `kill -9` of the real binary).
//!
//! Every test runs the real app against real mock upstreams on 127.0.0.1. Measurements need
//! green samples to be conclusive, so plan tests drive steady background traffic (`Load::gapped`),
//! bounded in time and count, against the service's listener.

use crate::support::*;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use switchyard::app::App;
use tokio::time::Instant;

/// 100 ms measurements over a 300 ms window; a handful of green samples is conclusive.
const QUICK: &str = "interval = \"100ms\"\nwindow = \"300ms\"\nmin_samples = 3";

/// A `[[services]]` table listening on port 0; `extra` holds mode, steps, hold and so on.
fn svc(name: &str, m: &Mocks, release: &str, extra: &str) -> String {
    service_toml(name, "127.0.0.1:0", extra, &m.pools(release))
}

/// A `[rollout]` table for `order`, with the plan defaults given in `plan`.
fn rollout(order: &[&str], plan: &str) -> String {
    let order = order.iter().map(|n| format!("\"{n}\"")).collect::<Vec<_>>().join(", ");
    format!("[rollout]\norder = [{order}]\nsequential = true\nhealthy_measurements = 3\n{plan}\n")
}

fn weight(app: &App, name: &str) -> f64 {
    service(app, name)["green_weight"].as_f64().unwrap()
}

fn step_index(app: &App, name: &str) -> Option<u64> {
    service(app, name)["step"]["index"].as_u64()
}

/// Replaces `path` atomically (temp file + rename), as editors do, so a watcher never reads half a file.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_file_name(".switchyard.toml.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_steps_through_its_weights_with_short_holds() {
    let m = Mocks::start("steps").await;
    let plan = rollout(&["steps"], "steps = [10, 50, 100]\nhold = \"200ms\"");
    let env = Env::new(QUICK, &format!("{plan}{}", svc("steps", &m, "r1", "mode = \"progressive\"")));
    let app = env.start().await;
    let traffic =
        Load::gapped(app.service_addr("steps").unwrap(), 2, Duration::from_millis(2), Duration::from_secs(20));

    let mut seen: Vec<f64> = Vec::new();
    let end = Instant::now() + Duration::from_secs(15);
    while Instant::now() < end {
        let s = service(&app, "steps");
        let w = s["green_weight"].as_f64().unwrap();
        if seen.last() != Some(&w) {
            seen.push(w);
        }
        if s["state"] == "promoted" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let s = service(&app, "steps");
    assert_eq!(seen, [10.0, 50.0, 100.0], "weights in order; last status {s:#}");
    assert_eq!(s["state"], "promoted");
    assert_eq!(s["step"]["index"], 2);
    assert_eq!(app.status()["sequence"]["current"], serde_json::Value::Null, "nothing left to migrate");

    // Promoted means every request goes to green.
    let out = traffic.finish().await;
    assert!(out.failures.is_empty(), "{:?}", out.failures);
    let all = burst(app.service_addr("steps").unwrap(), 50, 2).await;
    assert!(all.iter().all(|(st, who)| *st == 200 && who == "steps-green"), "{all:?}");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inconclusive_measurements_hold_a_step() {
    let m = Mocks::start("inconc").await;
    let plan = rollout(&["inconc"], "steps = [10, 50, 100]\nhold = \"100ms\"");
    let control = "interval = \"100ms\"\nwindow = \"300ms\"\nmin_samples = 1000000";
    let env = Env::new(control, &format!("{plan}{}", svc("inconc", &m, "r1", "mode = \"progressive\"")));
    let app = env.start().await;
    let traffic =
        Load::gapped(app.service_addr("inconc").unwrap(), 2, Duration::from_millis(2), Duration::from_secs(10));

    let decisions = |text: &str| {
        metric(text, "switchyard_control_decisions_total", &[("service", "inconc"), ("decision", "inconclusive")])
            .unwrap_or(0.0)
    };
    let start = decisions(&scrape(&app).await);
    // 15 intervals, far beyond hold and healthy_measurements, sampled every 20 ms.
    let end = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < end {
        let s = service(&app, "inconc");
        assert_eq!(s["step"]["index"], 0, "{s:#}");
        assert_eq!(s["green_weight"], 10.0);
        assert_eq!(s["step"]["healthy_measurements"], 0);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let held = decisions(&scrape(&app).await) - start;
    assert!(held >= 10.0, "only {held} inconclusive decisions in 1.5 s");
    let out = traffic.finish().await;
    assert!(out.failures.is_empty() && out.green > 0, "{out:?}");
    assert_eq!(service(&app, "inconc")["state"], "canary");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sequence_waits_for_the_previous_promotion() {
    let (ma, mb) = (Mocks::start("seqa").await, Mocks::start("seqb").await);
    let plan = rollout(&["seqa", "seqb"], "steps = [10, 50, 100]\nhold = \"200ms\"");
    let services = format!(
        "{}{}",
        svc("seqa", &ma, "r1", "mode = \"progressive\""),
        svc("seqb", &mb, "r1", "mode = \"progressive\"")
    );
    let env = Env::new(QUICK, &format!("{plan}{services}"));
    let app = env.start().await;
    let ta = Load::gapped(app.service_addr("seqa").unwrap(), 2, Duration::from_millis(2), Duration::from_secs(25));
    let tb = Load::gapped(app.service_addr("seqb").unwrap(), 1, Duration::from_millis(2), Duration::from_secs(25));

    // While a is in its plan, b stays stable on blue, in the same snapshot.
    let end = Instant::now() + Duration::from_secs(15);
    let mut a_was_in_plan = false;
    loop {
        let st = app.status();
        let find = |n: &str| st["services"].as_array().unwrap().iter().find(|s| s["name"] == n).cloned().unwrap();
        let (a, b) = (find("seqa"), find("seqb"));
        if a["state"] == "promoted" {
            break;
        }
        a_was_in_plan |= a["state"] == "canary";
        assert_eq!(st["sequence"]["current"], "seqa");
        assert_eq!((b["state"].as_str(), b["green_weight"].as_f64()), (Some("stable"), Some(0.0)), "{b:#}");
        assert_eq!(b["step"], serde_json::Value::Null);
        assert!(Instant::now() < end, "seqa never promoted: {a:#}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(a_was_in_plan);
    // `/status` is published after state.json is persisted, so it may lag the route table by a
    // few ms; compare times instead: b's first green response comes after a entered its last step.
    let promoted_at = humantime::parse_rfc3339_weak(service(&app, "seqa")["step"]["since"].as_str().unwrap()).unwrap();

    // Then b starts its own plan and goes all the way.
    assert!(eventually(Duration::from_secs(1), || step_index(&app, "seqb") == Some(0)).await);
    assert!(
        eventually(Duration::from_secs(15), || service(&app, "seqb")["state"] == "promoted").await,
        "{:#}",
        service(&app, "seqb")
    );
    let b_first_green = tb.first_green().expect("b's plan sent traffic to green");
    assert!(
        b_first_green >= promoted_at,
        "b's green answered at {b_first_green:?}, before a was promoted at {promoted_at:?}"
    );
    assert_eq!(service(&app, "seqa")["state"], "promoted");
    assert_eq!(app.status()["sequence"]["halted"], false);
    for t in [ta, tb] {
        let out = t.finish().await;
        assert!(out.failures.is_empty(), "{out:?}");
    }
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_halts_the_sequence_and_later_services_stay_on_blue() {
    let (ma, mb) = (Mocks::start("halta").await, Mocks::start("haltb").await);
    ma.green.set(serde_json::from_str(r#"{"error_rate": 0.2}"#).unwrap());
    let plan = rollout(&["halta", "haltb"], "steps = [10, 50, 100]\nhold = \"200ms\"");
    let services = format!(
        "{}{}",
        svc("halta", &ma, "r1", "mode = \"progressive\""),
        svc("haltb", &mb, "r1", "mode = \"progressive\"")
    );
    let env = Env::new(QUICK, &format!("{plan}{services}"));
    let app = env.start().await;
    let ta = Load::gapped(app.service_addr("halta").unwrap(), 2, Duration::from_millis(2), Duration::from_secs(20));
    let tb = Load::gapped(app.service_addr("haltb").unwrap(), 1, Duration::from_millis(2), Duration::from_secs(20));

    assert!(
        eventually(Duration::from_secs(10), || service(&app, "halta")["state"] == "rolled_back").await,
        "{:#}",
        service(&app, "halta")
    );
    let st = app.status();
    assert_eq!(st["sequence"]["halted"], true, "{:#}", st["sequence"]);
    assert_eq!(weight(&app, "halta"), 0.0);

    // Well past a's would-be plan: b never starts.
    let end = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < end {
        let b = service(&app, "haltb");
        assert_eq!((b["state"].as_str(), b["green_weight"].as_f64()), (Some("stable"), Some(0.0)), "{b:#}");
        assert_eq!(b["step"], serde_json::Value::Null);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = ta.finish().await; // a's green answers 500s by design
    let out = tb.finish().await;
    assert!(out.failures.is_empty() && out.ok > 0 && out.green == 0, "{out:?}");
    assert_eq!(app.status()["sequence"]["halted"], true);
    let inc = admin_get(&app, "/incidents").await;
    assert!(inc.as_array().unwrap().iter().any(|i| i["service"] == "halta"), "{inc:#}");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_pause_resume_advance_and_promote_and_the_gate_waits_for_advance() {
    let m = Mocks::start("ops").await;
    let plan = rollout(&["ops"], "steps = [10, 50, 100]\nhold = \"200ms\"\nmanual_gate_before = 100");
    let env = Env::new(QUICK, &format!("{plan}{}", svc("ops", &m, "r1", "mode = \"progressive\"")));
    let app = env.start().await;
    let (s, v) = admin_post(&app, "/services/ops/pause", "").await;
    assert_eq!((s, v["state"].as_str(), v["step"]["index"].as_u64()), (200, Some("paused"), Some(0)), "{v:#}");
    let traffic = Load::gapped(app.service_addr("ops").unwrap(), 2, Duration::from_millis(2), Duration::from_secs(20));

    // Paused: healthy traffic for many holds (ten more measurements judged) changes nothing.
    let decisions = [("service", "ops")];
    let judged = scrape_metric(&app, "switchyard_control_decisions_total", &decisions).await.unwrap_or(0.0);
    wait_metric(&app, "switchyard_control_decisions_total", &decisions, |v| v >= judged + 10.0).await;
    let s = service(&app, "ops");
    assert_eq!(
        (s["state"].as_str(), s["step"]["index"].as_u64(), s["green_weight"].as_f64()),
        (Some("paused"), Some(0), Some(10.0)),
        "{s:#}"
    );
    assert!(traffic.ok() > 100, "traffic too thin to prove anything: {}", traffic.ok());

    // Resumed: the plan continues to 50 %, then the gate before 100 % holds it.
    let (s, v) = admin_post(&app, "/services/ops/resume", "").await;
    assert_eq!((s, v["state"].as_str()), (200, Some("canary")));
    assert!(
        eventually(Duration::from_secs(5), || step_index(&app, "ops") == Some(1)).await,
        "{:#}",
        service(&app, "ops")
    );
    assert_eq!(weight(&app, "ops"), 50.0);
    let gated =
        |s: &serde_json::Value| s["step"]["gated"] == true && s["step"]["healthy_measurements"].as_u64() >= Some(3);
    assert!(eventually(Duration::from_secs(5), || gated(&service(&app, "ops"))).await, "{:#}", service(&app, "ops"));
    let s = service(&app, "ops");
    assert_eq!((s["step"]["index"].as_u64(), s["step"]["gated"].as_bool()), (Some(1), Some(true)), "{s:#}");
    assert!(s["step"]["healthy_measurements"].as_u64().unwrap() >= 3, "gated, not unhealthy: {s:#}");

    // Advance opens the gate: 100 %, promoted.
    let (s, v) = admin_post(&app, "/services/ops/advance", "").await;
    assert_eq!(
        (s, v["step"]["index"].as_u64(), v["green_weight"].as_f64(), v["state"].as_str()),
        (200, Some(2), Some(100.0), Some("promoted")),
        "{v:#}"
    );
    let (s, _) = admin_post(&app, "/services/ops/advance", "").await;
    assert_eq!(s, 409, "no step after the last");

    // Reset restarts the plan; advance moves one step at once (well inside the hold); promote goes to 100 %.
    let (s, v) = admin_post(&app, "/services/ops/reset", "").await;
    assert_eq!((s, v["step"]["index"].as_u64(), v["green_weight"].as_f64()), (200, Some(0), Some(10.0)), "{v:#}");
    let (s, v) = admin_post(&app, "/services/ops/advance", "").await;
    assert_eq!((s, v["step"]["index"].as_u64(), v["green_weight"].as_f64()), (200, Some(1), Some(50.0)), "{v:#}");
    let (s, v) = admin_post(&app, "/services/ops/promote", "").await;
    assert_eq!((s, v["green_weight"].as_f64(), v["state"].as_str()), (200, Some(100.0), Some("promoted")), "{v:#}");
    assert_eq!(service(&app, "ops")["state"], "promoted");

    let out = traffic.finish().await;
    assert!(out.failures.is_empty(), "{out:?}");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_release_clears_the_rollback_latch_and_restarts_the_plan() {
    let m = Mocks::start("rel").await;
    let plan = rollout(&["rel"], "steps = [10, 50, 100]\nhold = \"1h\"");
    let body = |release: &str, min: u32| {
        (
            format!("interval = \"100ms\"\nwindow = \"300ms\"\nmin_samples = {min}"),
            format!("{plan}{}", svc("rel", &m, release, "mode = \"progressive\"")),
        )
    };
    let (c, b) = body("r1", 3);
    let env = Env::new(&c, &b);
    let app = env.start().await;
    let (s, v) = admin_post(&app, "/services/rel/advance", "").await;
    assert_eq!((s, v["step"]["index"].as_u64()), (200, Some(1)));
    let (s, v) = admin_post(&app, "/services/rel/rollback", "").await;
    assert_eq!((s, v["state"].as_str(), v["green_weight"].as_f64()), (200, Some("rolled_back"), Some(0.0)), "{v:#}");
    let (s, _) = admin_post(&app, "/services/rel/advance", "").await;
    assert_eq!(s, 409, "a latched service does not advance");

    // Same release, other settings: the latch stays.
    let generation = app.status()["config"]["generation"].as_u64().unwrap();
    let (c, b) = body("r1", 4);
    env.write(&c, &b);
    assert!(
        eventually(Duration::from_secs(3), || app.status()["config"]["generation"].as_u64() > Some(generation)).await
    );
    assert_eq!(service(&app, "rel")["state"], "rolled_back");

    // A new release clears it; the plan restarts from step 0.
    let (c, b) = body("r2", 4);
    env.write(&c, &b);
    assert!(
        eventually(Duration::from_secs(3), || service(&app, "rel")["release"] == "r2").await,
        "watcher missed the new release"
    );
    let s = service(&app, "rel");
    assert_eq!((s["state"].as_str(), s["latched"].as_bool()), (Some("canary"), Some(false)), "{s:#}");
    assert_eq!((s["step"]["index"].as_u64(), s["green_weight"].as_f64()), (Some(0), Some(10.0)), "{s:#}");
    let (st, _) = admin_post(&app, "/services/rel/advance", "").await;
    assert_eq!(st, 200, "the plan runs again");
    app.shutdown().await;
}

/// The text `Env::write` would produce, for writing it some other way (atomically, behind symlinks).
fn config_text(state_dir: &Path, control: &str, body: &str) -> String {
    format!(
        "state_dir = \"{}\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[control]\n{control}\n{body}\n[access_log]\nenabled = false\n",
        state_dir.display()
    )
}

/// 1-based line of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

/// Kubernetes ConfigMap update: the data goes into a new timestamped dir, then a `..data_tmp`
/// symlink to it is renamed over `..data`. `dir/switchyard.toml → ..data/switchyard.toml` never changes.
fn configmap_swap(dir: &Path, version: usize, text: &str) {
    let data = format!("..2025_01_01_00_00_{version:02}.000000001");
    std::fs::create_dir(dir.join(&data)).unwrap();
    std::fs::write(dir.join(&data).join("switchyard.toml"), text).unwrap();
    std::os::unix::fs::symlink(&data, dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_under_steady_load_fail_no_request_and_keep_the_last_good_config() {
    let m = Mocks::start("hot").await;
    let dir = tempfile::tempdir().unwrap();
    let cm = dir.path().join("cm");
    std::fs::create_dir(&cm).unwrap();
    let state = dir.path().join("state");
    let text = |w: f64| config_text(&state, QUICK, &svc("hot", &m, "r1", &format!("green_weight = {w}")));
    let path = cm.join("switchyard.toml");
    replace(&path, &text(0.0));
    let env = Env { dir, path: path.clone(), threads: 1 };
    let app = env.start().await;
    let traffic = Load::gapped(app.service_addr("hot").unwrap(), 2, Duration::from_millis(2), Duration::from_secs(40));
    assert!(eventually(Duration::from_secs(5), || traffic.ok() > 0).await, "traffic flows before the first reload");

    let errors = |t: &str| metric(t, "switchyard_config_reloads_total", &[("result", "error")]).unwrap_or(0.0);
    let mut current = 0.0;
    let mut slowest = Duration::ZERO;
    for i in 1..=20usize {
        let w = ((i * 13) % 100) as f64;
        let t0 = Instant::now();
        match i {
            5 => {
                let bad = text(w).replace(&format!("green_weight = {w}"), "green_weight = 150");
                let before = errors(&scrape(&app).await);
                replace(&path, &bad);
                assert!(
                    eventually(Duration::from_secs(1), || !app.status()["config"]["last_reload_error"].is_null()).await,
                    "invalid file not reported"
                );
                let err = app.status()["config"]["last_reload_error"].as_str().unwrap().to_string();
                let line = line_of(&bad, "green_weight = 150");
                assert!(err.contains(&format!("switchyard.toml:{line}:")), "file and line: {err}");
                assert!(err.contains("services[hot].green_weight"), "key: {err}");
                tokio::time::sleep(Duration::from_millis(300)).await;
                assert_eq!(weight(&app, "hot"), current, "the invalid file must not change the weight");
                assert!(errors(&scrape(&app).await) > before, "reload error not counted");
                continue;
            }
            10 => {
                // Switch to the ConfigMap layout (the path becomes a symlink, atomically)...
                let data = cm.join("..2025_01_01_00_00_10.000000001");
                std::fs::create_dir(&data).unwrap();
                std::fs::write(data.join("switchyard.toml"), text(w)).unwrap();
                std::os::unix::fs::symlink("..2025_01_01_00_00_10.000000001", cm.join("..data")).unwrap();
                std::os::unix::fs::symlink("..data/switchyard.toml", cm.join(".link.tmp")).unwrap();
                std::fs::rename(cm.join(".link.tmp"), &path).unwrap();
            }
            // ...then a real ConfigMap update, which touches only `..data`.
            11 => configmap_swap(&cm, i, &text(w)),
            _ => replace(&path, &text(w)),
        }
        assert!(
            eventually(Duration::from_secs(1), || weight(&app, "hot") == w).await,
            "reload {i} (green {w}) not applied within 1 s: {:#}",
            service(&app, "hot")
        );
        slowest = slowest.max(t0.elapsed());
        assert!(app.status()["config"]["last_reload_error"].is_null(), "a good reload clears the error");
        if i == 11 {
            assert_eq!(std::fs::read_link(&path).unwrap(), Path::new("..data/switchyard.toml"));
        }
        current = w;
    }
    let out = traffic.finish().await;
    assert!(
        out.failures.is_empty(),
        "failed requests during reloads: {:?}",
        &out.failures[..out.failures.len().min(5)]
    );
    assert!(out.ok > 500, "traffic too thin: {out:?}");

    // The last weight (60 %) is the share green actually gets.
    let r = burst(app.service_addr("hot").unwrap(), 400, 4).await;
    let green = r.iter().filter(|(s, who)| *s == 200 && who == "hot-green").count() as f64 / r.len() as f64;
    assert!((green - current / 100.0).abs() < 0.1, "green share {green} at weight {current}");
    eprintln!("slowest reload: {slowest:?}");
    app.shutdown().await;
}

/// A child process that is killed (SIGKILL) when dropped, so a failing test leaks nothing.
struct Proc(std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the real binary on `config`, logging to `log`, and waits for `/readyz`.
async fn run_binary(config: &Path, log: &Path, admin: SocketAddr) -> Proc {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    let mut p = Proc(
        std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(["run", "--config"])
            .arg(config)
            .env("SWITCHYARD_ADMIN_TOKEN", TOKEN)
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let c = client();
    for _ in 0..200 {
        if let Some(st) = p.0.try_wait().unwrap() {
            panic!("switchyard exited early: {st}");
        }
        if let Ok(r) = c.get(format!("http://{admin}/readyz")).send().await {
            if r.status() == 200 {
                return p;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("switchyard not ready within 10 s");
}

async fn remote_status(admin: SocketAddr, name: &str) -> serde_json::Value {
    let st: serde_json::Value =
        client().get(format!("http://{admin}/status")).send().await.unwrap().json().await.unwrap();
    st["services"].as_array().unwrap().iter().find(|s| s["name"] == name).cloned().unwrap()
}

async fn remote_post(admin: SocketAddr, path: &str) -> (u16, serde_json::Value) {
    let r = client().post(format!("http://{admin}{path}")).bearer_auth(TOKEN).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_plan_and_restart_resumes_at_the_same_step() {
    let m = Mocks::start("nine").await;
    let dir = tempfile::tempdir().unwrap();
    let (admin, listen): (SocketAddr, SocketAddr) =
        (format!("127.0.0.1:{}", free_port()).parse().unwrap(), format!("127.0.0.1:{}", free_port()).parse().unwrap());
    let config = dir.path().join("switchyard.toml");
    let text = format!(
        "state_dir = \"{}\"\n[admin]\nlisten = \"{admin}\"\n[control]\n{QUICK}\n{}[[services]]\nname = \"nine\"\nlisten = \"{listen}\"\nmode = \"progressive\"\n{}",
        dir.path().join("state").display(),
        rollout(&["nine"], "steps = [10, 30, 60, 100]\nhold = \"1h\""),
        m.pools("r1")
    );
    std::fs::write(&config, text).unwrap();
    let log = dir.path().join("switchyard.log");

    let mut p = run_binary(&config, &log, admin).await;
    assert_eq!(remote_status(admin, "nine").await["step"]["index"], 0);
    for want in [1, 2] {
        let (s, v) = remote_post(admin, "/services/nine/advance").await;
        assert_eq!((s, v["step"]["index"].as_u64()), (200, Some(want)), "{v:#}");
    }
    let before = remote_status(admin, "nine").await;
    assert_eq!((before["green_weight"].as_f64(), before["state"].as_str()), (Some(60.0), Some("canary")));
    assert_eq!(get(&client(), listen, "/").await.0, 200);

    p.0.kill().unwrap(); // SIGKILL: no shutdown path runs
    let st = p.0.wait().unwrap();
    assert!(!st.success(), "{st}");
    drop(p);

    let _p = run_binary(&config, &log, admin).await;
    let after = remote_status(admin, "nine").await;
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(after["step"]["index"], 2, "{after:#}\n{log_text}");
    assert_eq!((after["green_weight"].as_f64(), after["state"].as_str()), (Some(60.0), Some("canary")), "{after:#}");
    assert_eq!(after["step"]["since"], before["step"]["since"], "the hold clock survives the restart");
    let r = burst(listen, 200, 2).await;
    let green = r.iter().filter(|(s, who)| *s == 200 && who == "nine-green").count();
    assert!(r.iter().all(|(s, _)| *s == 200) && (100..=140).contains(&green), "green {green}/200");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_state_file_starts_safe_with_a_clear_error() {
    let (mp, mm) = (Mocks::start("corp").await, Mocks::start("corm").await);
    let plan = rollout(&["corp"], "steps = [10, 50, 100]\nhold = \"1h\"");
    let body = format!(
        "{plan}{}{}",
        svc("corp", &mp, "r1", "mode = \"progressive\""),
        svc("corm", &mm, "r1", "green_weight = 50")
    );
    let env = Env::new(QUICK, &body);
    let state = env.dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("state.json"), b"{\"version\": 1, \"services\": \x00 garbage").unwrap();
    let app = env.start().await;

    let err = app.status()["config"]["state_error"].as_str().unwrap_or_default().to_string();
    assert!(err.contains("state.json"), "state_error: {err:?}");
    for n in ["corp", "corm"] {
        let s = service(&app, n);
        assert_eq!((s["green_weight"].as_f64(), s["state"].as_str()), (Some(0.0), Some("stable")), "{s:#}");
    }
    let r = burst(app.service_addr("corp").unwrap(), 40, 2).await;
    let r2 = burst(app.service_addr("corm").unwrap(), 40, 2).await;
    assert!(r.iter().chain(&r2).all(|(s, who)| *s == 200 && who.ends_with("-blue")), "{r:?} {r2:?}");

    // An operator's reset lifts the safe start: the plan starts, the file weight applies.
    let (s, v) = admin_post(&app, "/services/corp/reset", "").await;
    assert_eq!((s, v["step"]["index"].as_u64(), v["green_weight"].as_f64()), (200, Some(0), Some(10.0)), "{v:#}");
    let (s, v) = admin_post(&app, "/services/corm/reset", "").await;
    assert_eq!((s, v["green_weight"].as_f64(), v["state"].as_str()), (200, Some(50.0), Some("canary")), "{v:#}");
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(state.join("state.json")).unwrap()).unwrap();
    assert_eq!(saved["services"]["corp"]["step"], 0, "a good state file replaces the corrupt one");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_added_listener_starts_and_a_removed_one_drains_without_touching_the_others() {
    let (ma, mb, mc) = (Mocks::start("adda").await, Mocks::start("addb").await, Mocks::start("addc").await);
    let (a, b, c) =
        (svc("adda", &ma, "r1", "green_weight = 50"), svc("addb", &mb, "r1", ""), svc("addc", &mc, "r1", ""));
    let env = Env::new(QUICK, &format!("{a}{b}"));
    let app = env.start().await;
    let (a_addr, b_addr) = (app.service_addr("adda").unwrap(), app.service_addr("addb").unwrap());
    let traffic = Load::gapped(a_addr, 2, Duration::from_millis(2), Duration::from_secs(15));

    // A slow request is in flight on b when b is removed.
    mb.blue.set(serde_json::from_str(r#"{"latency_ms": 1000}"#).unwrap());
    let slow = tokio::spawn(async move { get(&client(), b_addr, "/").await });
    assert!(eventually(Duration::from_secs(5), || mb.blue.requests() >= 1).await, "the slow request reached addb");
    replace(&env.path, &config_text(&env.dir.path().join("state"), QUICK, &format!("{a}{c}")));
    assert!(
        eventually(Duration::from_secs(3), || app.service_addr("addc").is_some() && app.service_addr("addb").is_none())
            .await,
        "reload did not add addc / remove addb"
    );

    let c_addr = app.service_addr("addc").unwrap();
    assert_eq!(get(&client(), c_addr, "/").await, (200, "addc-blue".to_string()));
    assert_eq!(slow.await.unwrap(), (200, "addb-blue".to_string()), "the in-flight request finishes");
    assert!(
        eventually(Duration::from_secs(3), || std::net::TcpStream::connect_timeout(
            &b_addr,
            Duration::from_millis(200)
        )
        .is_err())
        .await,
        "addb's listener still accepts"
    );

    let after_reload = traffic.ok();
    assert!(
        eventually(Duration::from_secs(5), || traffic.ok() >= after_reload + 50).await,
        "adda serves after the reload"
    );
    let out = traffic.finish().await;
    assert!(out.failures.is_empty() && out.ok > 100, "{out:?}");
    assert_eq!(app.service_addr("adda"), Some(a_addr), "adda keeps its listener");
    assert_eq!(weight(&app, "adda"), 50.0);
    let share = out.green as f64 / out.ok as f64;
    assert!((share - 0.5).abs() < 0.1, "adda's split changed: {share}");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promoting_a_paused_plan_ends_the_pause() {
    let m = Mocks::start("pprom").await;
    let plan = rollout(&["pprom"], "steps = [10, 50, 100]\nhold = \"1h\"");
    let env = Env::new(QUICK, &format!("{plan}{}", svc("pprom", &m, "r1", "mode = \"progressive\"")));
    let app = env.start().await;
    let (s, v) = admin_post(&app, "/services/pprom/pause", "").await;
    assert_eq!((s, v["state"].as_str()), (200, Some("paused")));
    let (s, v) = admin_post(&app, "/services/pprom/promote", "").await;
    assert_eq!(
        (s, v["green_weight"].as_f64(), v["state"].as_str(), v["paused"].as_bool()),
        (200, Some(100.0), Some("promoted"), Some(false)),
        "{v:#}"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renaming_a_service_on_a_fixed_port_moves_the_port_to_the_new_name() {
    let m = Mocks::start("ren").await;
    let port = free_port();
    let table = |name: &str| service_toml(name, &format!("127.0.0.1:{port}"), "", &m.pools("r1"));
    let env = Env::new(QUICK, &table("renold"));
    let app = env.start().await;
    let state = env.dir.path().join("state");
    tokio::time::sleep(Duration::from_millis(200)).await;
    replace(&env.path, &config_text(&state, QUICK, &table("rennew")));
    let ok = eventually(Duration::from_secs(3), || app.service_addr("rennew").is_some()).await;
    let st = app.status();
    assert!(ok, "rename not applied: {:#}", st["config"]);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert_eq!(get(&client(), addr, "/").await, (200, "ren-blue".to_string()));
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_change_right_after_start_is_not_missed() {
    let m = Mocks::start("early").await;
    let env = Env::new(QUICK, &svc("early", &m, "r1", "green_weight = 0"));
    let app = env.start().await;
    // No pause: the watcher must already know what the running config was read from.
    replace(
        &env.path,
        &config_text(&env.dir.path().join("state"), QUICK, &svc("early", &m, "r1", "green_weight = 40")),
    );
    assert!(
        eventually(Duration::from_secs(2), || weight(&app, "early") == 40.0).await,
        "the change was not picked up: {:#}",
        app.status()["config"]
    );
    app.shutdown().await;
}
