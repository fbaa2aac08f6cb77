//! What the control side tells an operator, by role: a dead live pool is an ERROR, a critical
//! alert, an incident and `/status` `live_down`; a dead candidate rolls back at the next tick
//! without waiting for `min_samples`; a rollback of a candidate in blue reports blue as the
//! candidate and green as live (`/incidents`, `switchyard incidents ID`); logs carry plain
//! values (`--log-json` parsed); `--state-dir` finds the last good copy of an unreadable file.

use crate::support::*;
use serde_json::Value;
use std::time::Duration;

/// Probes every 100 ms, so a dead pool is noticed within a few hundred milliseconds.
const PROBES: &str = "health = { path = \"/health\", interval = \"100ms\", timeout = \"100ms\" }";

fn progressive(name: &str, m: &Mocks, min_samples: u32) -> (String, String) {
    let control = format!("interval = \"100ms\"\nwindow = \"300ms\"\nmin_samples = {min_samples}");
    let body = format!(
        "[rollout]\norder = [\"{name}\"]\nsteps = [10, 50, 100]\nhold = \"1h\"\n{}",
        service_toml(name, "127.0.0.1:0", &format!("mode = \"progressive\"\n{PROBES}"), &m.pools("r2"))
    );
    (control, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_live_pool_is_an_incident_an_alert_and_live_down() {
    let m = Mocks::start("ld").await;
    let (control, body) = progressive("ld", &m, 3);
    // A critical webhook on the pool that stays up, so the alert's delivery is counted.
    let body = format!("[alerts]\ncritical = [\"http://{}/hook\"]\n{body}", m.green.addr());
    let env = Env::new(&control, &body);
    let app = env.start().await;
    assert_eq!(service(&app, "ld")["live_down"], false);
    let Mocks { blue, green: _green } = m;
    blue.shutdown().await;
    assert!(
        eventually(Duration::from_secs(10), || service(&app, "ld")["live_down"] == true).await,
        "{:#}",
        service(&app, "ld")
    );
    let incidents = admin_get(&app, "/incidents").await;
    let inc = incidents.as_array().unwrap().iter().find(|i| i["trigger"] == "live_down").cloned();
    let inc = inc.unwrap_or_else(|| panic!("an incident record: {incidents:#}"));
    assert_eq!((inc["service"].as_str(), inc["live_color"].as_str()), (Some("ld"), Some("blue")), "{inc:#}");
    assert!(inc["report"]["summary"].as_str().unwrap().contains("live pool has no healthy endpoint"), "{inc:#}");
    assert!(inc["escalation"].is_object(), "it pages like any critical incident: {inc:#}");
    wait_metric(&app, "switchyard_alerts_total", &[("severity", "critical"), ("result", "sent")], |v| v >= 1.0).await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_candidate_rolls_back_without_waiting_for_samples() {
    let m = Mocks::start("dc").await;
    // 100 000 samples: the measurement could never be conclusive in this test.
    let (control, body) = progressive("dc", &m, 100_000);
    let env = Env::new(&control, &body);
    let app = env.start().await;
    assert_eq!(service(&app, "dc")["candidate_weight"], 10.0);
    let Mocks { blue: _blue, green } = m;
    green.shutdown().await;
    assert!(
        eventually(Duration::from_secs(5), || service(&app, "dc")["state"] == "rolled_back").await,
        "{:#}",
        service(&app, "dc")
    );
    let incidents = admin_get(&app, "/incidents").await;
    let inc = &incidents.as_array().unwrap()[0];
    assert_eq!((inc["trigger"].as_str(), inc["candidate_color"].as_str()), (Some("candidate_down"), Some("green")));
    app.shutdown().await;
}

/// The real binary, a release promoted into green, the next one deployed into blue and rolled
/// back: every report names blue as the candidate, green as live; logs are plain values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_blue_candidate_is_reported_by_role() {
    switchyard::tls::install_provider();
    let m = Mocks::start("rb").await;
    let (control, body) = progressive("rb", &m, 3);
    let env = Env::new(&control, &body);
    let p = Proxy::start(&env.path).await.unwrap_or_else(|e| panic!("{}", e.stderr));
    p.ok(&["promote", "rb"]).await;
    // The next release goes into blue (the idle pool).
    let next = body.replace(
        &format!("blue = {{ endpoints = [\"{}\"] }}", m.blue.addr()),
        &format!("blue = {{ endpoints = [\"{}\"], release = \"r3\" }}", m.blue.addr()),
    );
    assert_ne!(next, body);
    env.write(&control, &next);
    let s = wait_status(&p, "rb", |s| s["candidate"] == "blue").await;
    assert_eq!(
        (s["live"].as_str(), s["candidate_release"].as_str(), s["candidate_weight"].as_f64()),
        (Some("green"), Some("r3"), Some(10.0)),
        "{s:#}"
    );
    assert_eq!(s["green_weight"], 90.0, "green's share is the live one now");
    p.ok(&["rollback", "rb"]).await;
    let s = wait_status(&p, "rb", |s| s["latched"] == true).await;
    assert!(s["progress"]["step"].is_null() && s["progress"]["hold_remaining"].is_null(), "no step lit: {s:#}");
    let table = p.ok(&["status"]).await;
    assert!(table.contains("live green (r2) 100 % → candidate blue (r3) 0 % — rolled back"), "{table}");
    let inc = wait_incident(&p).await;
    assert_eq!(
        (inc["candidate_color"].as_str(), inc["candidate_release"].as_str()),
        (Some("blue"), Some("r3")),
        "{inc:#}"
    );
    assert_eq!(
        (inc["live_color"].as_str(), inc["candidate_weight_before"].as_f64()),
        (Some("green"), Some(10.0)),
        "{inc:#}"
    );
    let summary = inc["report"]["summary"].as_str().unwrap();
    assert!(summary.contains("live green (r2) healthy, candidate blue (r3) rolled back"), "{summary}");
    assert_eq!(inc["report"]["live_healthy"], true, "{inc:#}");
    let id = inc["id"].as_str().unwrap();
    let text = p.ok(&["incidents", id]).await;
    assert!(text.contains("candidate blue (r3) had 10% before (green 90%); live green (r2)"), "{text}");
    assert!(!text.contains("green weight before"), "{text}");
    let table = p.ok(&["incidents"]).await;
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines[0].find("candidate"), lines[1].find("blue (r3)"), "the columns line up:\n{table}");

    // Logs: JSON lines whose fields are plain values.
    let log = p.log();
    let lines: Vec<Value> = log.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let ours: Vec<&Value> = lines.iter().filter(|l| l["fields"]["service"].is_string()).collect();
    assert!(!ours.is_empty(), "{log}");
    for l in &ours {
        let svc = l["fields"]["service"].as_str().unwrap();
        assert!(svc == "rb" || svc == "-", "a plain service name, not a debug form: {l}");
    }
    let act =
        lines.iter().find(|l| l["fields"]["message"] == "operator action applied").expect("the promote is logged");
    assert_eq!(
        (act["fields"]["service"].as_str(), act["fields"]["action"].as_str()),
        (Some("rb"), Some("promote")),
        "{act}"
    );
    assert!(!log.contains("Some(") && !log.contains("\\u001b["), "no debug forms, no colour codes: {log}");
    p.stop().await;
}

async fn wait_status(p: &Proxy, name: &str, cond: impl Fn(&Value) -> bool) -> Value {
    let end = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let v = p.status().await;
        let s = v["services"].as_array().unwrap().iter().find(|s| s["name"] == name).cloned().unwrap();
        if cond(&s) {
            return s;
        }
        assert!(tokio::time::Instant::now() < end, "never reached: {s:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The first incident once its report is complete.
async fn wait_incident(p: &Proxy) -> Value {
    let end = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let v: Value = serde_json::from_str(&p.get("/incidents").await).unwrap();
        if let Some(i) = v.as_array().and_then(|a| a.first()).filter(|i| i["report"]["summary"].is_string()) {
            return i.clone();
        }
        assert!(tokio::time::Instant::now() < end, "no completed report: {v:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `--state-dir` (here as `SWITCHYARD_STATE_DIR`) wins over the file's `state_dir`: the last good
/// copy lands there, and a restart whose file is garbage starts from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_dir_option_finds_the_last_good_copy_of_a_garbage_file() {
    let m = Mocks::start("sd").await;
    let env = Env::new(FAST, &service_toml("sd", "127.0.0.1:0", "", &m.pools("r1")));
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().to_str().unwrap();
    let p = Proxy::start_with_env(&env.path, &[("SWITCHYARD_STATE_DIR", state)])
        .await
        .unwrap_or_else(|e| panic!("{}", e.stderr));
    assert!(dir.path().join("last-good.toml").exists(), "the copy is kept in the given directory");
    p.stop().await;
    std::fs::write(&env.path, "\u{0}\u{1}garbage [[[").unwrap();
    let p = Proxy::start_with_env(&env.path, &[("SWITCHYARD_STATE_DIR", state)])
        .await
        .unwrap_or_else(|e| panic!("{}", e.stderr));
    let end = tokio::time::Instant::now() + Duration::from_secs(5);
    let v = loop {
        let v = p.status().await;
        if v["config"]["last_reload_error"].is_string() || tokio::time::Instant::now() > end {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(v["config"]["last_reload_error"].is_string(), "running the last good copy, and saying so: {v:#}");
    assert_eq!(v["services"][0]["name"], "sd");
    p.stop().await;
}

/// `state.json` keeps green's share (`admin_weight`, as files always had) while the control state
/// speaks the candidate's: an override of a blue candidate and a frozen hold survive a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_override_of_a_blue_candidate_and_a_paused_hold_survive_a_restart() {
    switchyard::tls::install_provider();
    let m = Mocks::start("ps").await;
    let (control, body) = progressive("ps", &m, 3);
    let env = Env::new(&control, &body);
    let p = Proxy::start(&env.path).await.unwrap_or_else(|e| panic!("{}", e.stderr));
    p.ok(&["promote", "ps"]).await;
    let next = body.replace(
        &format!("blue = {{ endpoints = [\"{}\"] }}", m.blue.addr()),
        &format!("blue = {{ endpoints = [\"{}\"], release = \"r3\" }}", m.blue.addr()),
    );
    env.write(&control, &next);
    wait_status(&p, "ps", |s| s["candidate"] == "blue").await;
    p.ok(&["weight", "ps", "60"]).await; // green's 60 %: the blue candidate's 40 %
    p.ok(&["pause", "ps"]).await;
    let before = wait_status(&p, "ps", |s| s["paused"] == true).await;
    assert_eq!(
        (before["override_weight"].as_f64(), before["admin_weight"].as_f64()),
        (Some(40.0), Some(60.0)),
        "{before:#}"
    );
    let frozen = before["progress"]["hold_remaining_ms"].as_u64().unwrap();
    let saved: Value =
        serde_json::from_slice(&std::fs::read(env.dir.path().join("state/state.json")).unwrap()).unwrap();
    assert_eq!(saved["services"]["ps"]["admin_weight"], 60.0, "the file speaks green's share: {saved:#}");
    p.stop().await;
    tokio::time::sleep(Duration::from_millis(1500)).await; // downtime a paused hold must not count

    let p = Proxy::start(&env.path).await.unwrap_or_else(|e| panic!("{}", e.stderr));
    let s = wait_status(&p, "ps", |s| s["candidate"] == "blue").await;
    assert_eq!(
        (s["live"].as_str(), s["override_weight"].as_f64(), s["candidate_weight"].as_f64(), s["paused"].as_bool()),
        (Some("green"), Some(40.0), Some(40.0), Some(true)),
        "{s:#}"
    );
    let left = s["progress"]["hold_remaining_ms"].as_u64().unwrap();
    assert!(left.abs_diff(frozen) < 1000, "the paused hold stood still across the restart: {frozen} ms then {left} ms");
    p.stop().await;
}
