//! On-call: escalation of unacknowledged critical incidents through local
//! webhook receivers with short configured delays, acknowledgement over the API and the CLI,
//! persistence of the schedule across a restart, and https webhooks verified against a test CA.

pub(crate) mod hooks;

use crate::support::*;
use hooks::Hooks;
use mock_upstream::{self, MockConfig};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::time::Instant;

/// Blue healthy; green answers with a wrong constitutional hash, so its first response trips
/// the `hash_mismatch` trigger (a critical, non-manual rollback).
async fn bad_hash_mocks(name: &str) -> Mocks {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut blue = MockConfig::new(format!("{name}-blue"));
    blue.hash = None;
    let mut green = MockConfig::new(format!("{name}-green"));
    green.hash = Some("0000000000000000".into());
    Mocks {
        blue: mock_upstream::spawn(any, blue).await.unwrap(),
        green: mock_upstream::spawn(any, green).await.unwrap(),
    }
}

/// A manual service at 100 % green with alerts to `hooks` and three levels after `after_ms`.
fn config(name: &str, m: &Mocks, hooks: &Hooks, after_ms: [u64; 3]) -> String {
    let h = hooks.addr;
    let levels: Vec<String> = (0..3)
        .map(|i| format!("{{ after = \"{}ms\", webhooks = [\"http://{h}/level{}\"] }}", after_ms[i], i + 1))
        .collect();
    format!(
        "[alerts]\ncritical = [\"http://{h}/critical\"]\ntimeout = \"2s\"\nretries = 2\n\
         [alerts.escalation]\nlevels = [{}]\n\
         [[services]]\nname = \"{name}\"\nlisten = \"127.0.0.1:0\"\ngreen_weight = 100\n{}",
        levels.join(", "),
        m.pools("r2")
    )
}

/// Starts the app, sends one request to green and waits for the rollback alert and incident;
/// returns the incident id, the rollback alert's arrival and the unix ms the schedule counts from.
async fn trip(env: &Env, name: &str, hooks: &Hooks) -> (switchyard::app::App, String, Instant, u64) {
    let app = env.start().await;
    let addr = app.service_addr(name).unwrap();
    let _ = get(&client(), addr, "/").await;
    let rollback = hooks.first("/critical", Duration::from_secs(10)).await;
    // The alert leaves before the incident is published.
    assert!(eventually(Duration::from_secs(5), || !app.control.published.incidents.load().is_empty()).await);
    let incidents = admin_get(&app, "/incidents").await;
    let inc = &incidents[0];
    assert_eq!(inc["trigger"], "hash_mismatch", "{incidents}");
    assert_eq!(inc["escalation"]["level"], 0, "{inc}");
    let since = inc["escalation"]["since_ms"].as_u64().expect("schedule start");
    (app, inc["id"].as_str().unwrap().to_string(), rollback.at, since)
}

fn incident(list: &Value, id: &str) -> Value {
    list.as_array().unwrap().iter().find(|i| i["id"] == id).cloned().unwrap_or(Value::Null)
}

/// The page arrived no earlier than `after` past the persisted schedule start (wall clock, as the
/// schedule itself) and not more than 3 s late (a loaded 2-core box).
fn on_time(hit: &hooks::Hit, since_ms: u64, after_ms: u64, what: &str) {
    let got = switchyard::escalation::unix_ms(hit.wall) as i64 - since_ms as i64;
    assert!(got >= after_ms as i64, "{what} came {got} ms after the incident, expected >= {after_ms} ms");
    assert!(got <= after_ms as i64 + 3000, "{what} came {got} ms after the incident, expected about {after_ms} ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unacknowledged_rollback_escalates_to_levels_1_2_and_3_in_order_at_their_delays() {
    let name = "oc-esc";
    let hooks = Hooks::start().await;
    let m = bad_hash_mocks(name).await;
    let after = [300, 900, 1500];
    let env = Env::new(FAST, &config(name, &m, &hooks, after));
    let (app, id, _, since) = trip(&env, name, &hooks).await;
    let l3 = hooks.first("/level3", Duration::from_secs(10)).await;
    let (l1, l2) = (hooks.on("/level1"), hooks.on("/level2"));
    assert_eq!((l1.len(), l2.len(), hooks.on("/level3").len()), (1, 1, 1), "each level paged once");
    on_time(&l1[0], since, after[0], "level 1");
    on_time(&l2[0], since, after[1], "level 2");
    on_time(&l3, since, after[2], "level 3");
    assert!(l1[0].at < l2[0].at && l2[0].at < l3.at, "levels in order");
    let text = l2[0].body["text"].as_str().unwrap_or_default();
    assert!(text.contains("ESCALATION level 2/3") && text.contains(&id), "Slack-style text: {text}");
    assert_eq!(l2[0].body["fields"]["incident"], id.as_str());
    assert!(
        eventually(Duration::from_secs(5), || app
            .control
            .published
            .incidents
            .load()
            .iter()
            .any(|i| i.id == id && i.escalation.as_ref().is_some_and(|e| e.level == 3 && e.paged_at.len() == 3)))
        .await
    );
    let inc = incident(&admin_get(&app, "/incidents").await, &id);
    assert_eq!(inc["escalation"]["level"], 3, "{inc}");
    assert_eq!(service(&app, name)["incident_paging"], "escalated to level 3");
    assert!(inc["escalation"]["acknowledged"].is_null(), "{inc}");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_incident_stops_escalating_and_records_who_when_and_at_which_level() {
    let name = "oc-ack";
    let hooks = Hooks::start().await;
    let m = bad_hash_mocks(name).await;
    let env = Env::new(FAST, &config(name, &m, &hooks, [300, 1200, 1500]));
    let (app, id, t0, _) = trip(&env, name, &hooks).await;
    hooks.first("/level1", Duration::from_secs(5)).await;
    let no_token = client().post(format!("http://{}/incidents/{id}/ack", app.admin_addr)).body("{\"by\":\"x\"}");
    assert_eq!(no_token.send().await.unwrap().status().as_u16(), 401, "ack needs the token");
    let (st, _) = admin_post(&app, "/incidents/inc-nope/ack", "{\"by\":\"ana\"}").await;
    assert_eq!(st, 404);
    let (st, _) = admin_post(&app, &format!("/incidents/{id}/ack"), "{\"note\":\"who?\"}").await;
    assert_eq!(st, 400, "by is required");
    // The CLI, as an operator would run it.
    let admin = format!("http://{}", app.admin_addr);
    let bin = env!("CARGO_BIN_EXE_switchyard");
    let ack = tokio::process::Command::new(bin)
        .args(["ack", &id, "--by", "ana", "--note", "looking at green r2", "--admin", &admin])
        .env("SWITCHYARD_ADMIN_TOKEN", TOKEN)
        .output()
        .await
        .unwrap();
    assert!(ack.status.success(), "{}", String::from_utf8_lossy(&ack.stderr));
    assert!(String::from_utf8_lossy(&ack.stdout).contains("acknowledged by ana after level 1"));
    let metrics = client().get(format!("{admin}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(&format!("switchyard_incidents_unacknowledged{{service=\"{name}\"}} 0")), "{metrics}");
    let (st, body) = admin_post(&app, &format!("/incidents/{id}/ack"), "{\"by\":\"bob\"}").await;
    assert_eq!(st, 409, "second ack refused: {body}");
    let inc = incident(&admin_get(&app, "/incidents").await, &id);
    let a = &inc["escalation"]["acknowledged"];
    assert_eq!((a["by"].as_str(), a["level"].as_u64()), (Some("ana"), Some(1)), "{inc}");
    assert_eq!(a["note"], "looking at green r2");
    assert!(a["at"].as_str().is_some_and(|t| t.ends_with('Z')), "{inc}");
    // Well past level 3's delay: nothing more was paged.
    tokio::time::sleep_until(t0 + Duration::from_millis(2500)).await;
    assert!(hooks.on("/level2").is_empty() && hooks.on("/level3").is_empty(), "{:?}", hooks.hits());
    let list = tokio::process::Command::new(bin).args(["incidents", "--admin", &admin]).output().await.unwrap().stdout;
    assert!(String::from_utf8_lossy(&list).contains("acknowledged by ana after level 1"));
    page_shows_the_acknowledgement(&app, &id).await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_in_the_middle_keeps_the_schedule_and_repeats_no_page() {
    let name = "oc-restart";
    let hooks = Hooks::start().await;
    let m = bad_hash_mocks(name).await;
    let after = [300, 1500, 4000];
    let env = Env::new(FAST, &config(name, &m, &hooks, after));
    let (app, id, _, since) = trip(&env, name, &hooks).await;
    hooks.first("/level1", Duration::from_secs(5)).await;
    app.shutdown().await;
    // Down while level 2 falls due: it must go out as soon as the process is back, not 1.5 s
    // after the restart.
    let now = switchyard::escalation::unix_ms(std::time::SystemTime::now());
    tokio::time::sleep(switchyard::escalation::wait(since + after[1] + 200, now)).await;
    let restarted = std::time::SystemTime::now();
    let app = env.start().await;
    let l2 = hooks.first("/level2", Duration::from_secs(10)).await;
    on_time(&l2, since, after[1], "level 2 after the restart");
    let late = l2.wall.duration_since(restarted).unwrap_or_default();
    assert!(late < Duration::from_millis(1000), "level 2 was overdue at the restart but came {late:?} after it");
    let l3 = hooks.first("/level3", Duration::from_secs(10)).await;
    on_time(&l3, since, after[2], "level 3 after the restart");
    assert_eq!(hooks.on("/level1").len(), 1, "level 1 is not paged again after the restart");
    assert_eq!(hooks.on("/level2").len(), 1, "level 2 is paged once");
    assert_eq!(hooks.on("/critical").iter().filter(|h| h.body["alert"] == "rollback").count(), 1);
    // A page leaves before its incident line is written and published.
    let paged_3 = || {
        app.control
            .published
            .incidents
            .load()
            .iter()
            .any(|i| i.id == id && i.escalation.as_ref().is_some_and(|e| e.level == 3 && e.paged_at.len() == 3))
    };
    assert!(
        eventually(Duration::from_secs(5), paged_3).await,
        "{}",
        incident(&admin_get(&app, "/incidents").await, &id)
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_webhook_is_delivered_to_a_tls_receiver_trusted_through_alerts_ca() {
    let name = "oc-https";
    let (hooks, ca_pem) = Hooks::start_tls().await;
    let m = Mocks::start(name).await;
    let env = Env::new(FAST, "");
    let ca = env.dir.path().join("hook-ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    let body = format!(
        "[alerts]\ncritical = [\"https://{}/slack\"]\nca = \"{}\"\ntimeout = \"2s\"\n\
         [[services]]\nname = \"{name}\"\nlisten = \"127.0.0.1:0\"\n{}",
        hooks.addr,
        ca.display(),
        m.pools("r1")
    );
    env.write(FAST, &body);
    let app = env.start().await;
    let (st, _) = admin_post(&app, &format!("/services/{name}/rollback"), "").await;
    assert_eq!(st, 200);
    let hit = hooks.first("/slack", Duration::from_secs(10)).await;
    let text = hit.body["text"].as_str().unwrap_or_default();
    assert!(text.contains(name), "Slack-style body with a text line: {}", hit.body);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_webhook_with_an_untrusted_certificate_is_not_delivered() {
    let name = "oc-https-untrusted";
    let (hooks, _ca) = Hooks::start_tls().await;
    let m = Mocks::start(name).await;
    let body = format!(
        "[alerts]\ncritical = [\"https://{}/slack\"]\ntimeout = \"2s\"\nretries = 1\n\
         [[services]]\nname = \"{name}\"\nlisten = \"127.0.0.1:0\"\n{}",
        hooks.addr,
        m.pools("r1")
    );
    let env = Env::new(FAST, &body);
    let app = env.start().await;
    let (st, _) = admin_post(&app, &format!("/services/{name}/rollback"), "").await;
    assert_eq!(st, 200);
    let failed = "switchyard_alerts_total{severity=\"critical\",result=\"failed\"}";
    let mut seen = false;
    for _ in 0..100 {
        let m = client().get(format!("http://{}/metrics", app.admin_addr)).send().await.unwrap().text().await.unwrap();
        if m.contains(failed) {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen, "the delivery to a receiver signed by an unknown CA is counted as failed");
    assert!(hooks.hits().is_empty(), "nothing reached the receiver: {:?}", hooks.hits());
    app.shutdown().await;
}

#[test]
fn an_unreadable_alerts_ca_and_a_non_http_webhook_are_config_errors_naming_their_keys() {
    // The CA file is read by the preflight judge (`run`, `check`, reloads) once the file parses.
    let pools = "blue = { endpoints = [\"127.0.0.1:9\"], release = \"r1\" }\ngreen = { endpoints = [\"127.0.0.1:9\"], release = \"r1\" }";
    let body = format!("[alerts]\nca = \"/nonexistent/ca.pem\"\n{}", service_toml("oc-ca", "127.0.0.1:0", "", pools));
    let env = Env::new(FAST, &body);
    let e = switchyard::preflight::judge(&env.path, None).unwrap_err().to_string();
    assert!(e.contains("alerts.ca"), "{e}");
    let env = Env::new(
        FAST,
        "[alerts.escalation]\nlevels = [{ after = \"15m\", webhooks = [\"ftp://x/\"] }, { after = \"5m\" }]\n",
    );
    let e = switchyard::config::load(&env.path).unwrap_err().to_string();
    assert!(e.contains("alerts.escalation.levels[0].webhooks[0]"), "{e}");
    assert!(e.contains("alerts.escalation.levels[1].after: must be later"), "{e}");
}

/// Polls `/status` until `pred` holds for the service's and the top-level `health_score`.
async fn health_until(app: &switchyard::app::App, name: &str, what: &str, pred: impl Fn(&Value) -> bool) -> f64 {
    let ok = eventually(Duration::from_secs(10), || {
        let st = app.status();
        pred(&service(app, name)["health_score"]) && pred(&st["health_score"])
    })
    .await;
    let s = service(app, name);
    assert!(ok, "{what}: health_score {} / top level {}", s["health_score"], app.status()["health_score"]);
    s["health_score"].as_f64().unwrap_or(f64::NAN)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_score_falls_as_measurements_degrade_and_is_null_without_traffic() {
    use mock_upstream::MockPatch;
    let name = "oc-health";
    let f = Fixture::builder(name).control(FAST).start().await;
    let stop = tokio_util::sync::CancellationToken::new();
    let traffic = tokio::spawn({
        let (addr, stop) = (f.addr, stop.clone());
        async move {
            let c = client();
            while !stop.is_cancelled() {
                get(&c, addr, "/").await;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    });
    let healthy = health_until(&f.app, name, "healthy", |v| v.as_f64() == Some(100.0)).await;
    assert_eq!(healthy, 100.0);
    let status = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["status", "--admin", &format!("http://{}", f.app.admin_addr)])
        .output()
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&status.stdout).contains("health score 100.0"), "{status:?}");
    // 4 % non-compliant of a 5 % budget: the compliance component drops to 40, the score to 88.
    f.mocks.blue.set(MockPatch { compliance: Some(Some(0.96)), ..Default::default() });
    let low = health_until(&f.app, name, "compliance 0.96", |v| v.as_f64().is_some_and(|x| x < 90.0)).await;
    assert!((85.0..90.0).contains(&low), "compliance 0.96 scores {low}");
    let metrics =
        client().get(format!("http://{}/metrics", f.app.admin_addr)).send().await.unwrap().text().await.unwrap();
    let gauge = metrics
        .lines()
        .find_map(|l| l.strip_prefix(&format!("switchyard_system_health_score{{service=\"{name}\"}} ")))
        .and_then(|v| v.parse::<f64>().ok());
    assert!(gauge.is_some_and(|g| g < 90.0), "gauge: {gauge:?}");
    assert!(metrics.contains("switchyard_system_health_score{service=\"_overall\"}"));
    // Half the requests answer 500 as well: the error-rate component (20) is gone; a 500 still
    // comes from a live upstream, so availability stays.
    f.mocks.blue.set(MockPatch { error_rate: Some(0.5), ..Default::default() });
    let worse = health_until(&f.app, name, "errors", |v| v.as_f64().is_some_and(|x| x < 75.0)).await;
    assert!((60.0..75.0).contains(&worse), "50 % errors and compliance 0.96 score {worse}");
    stop.cancel();
    traffic.await.unwrap();
    health_until(&f.app, name, "no traffic", Value::is_null).await;
    f.stop().await;
}

/// The status page (headless Chromium, when installed) lists the incident as acknowledged and
/// shows the health score fields.
async fn page_shows_the_acknowledgement(app: &switchyard::app::App, id: &str) {
    let Some(chrome) = ["chromium", "chromium-browser"].iter().find_map(|b| which(b)) else {
        eprintln!("chromium not installed: status page check skipped");
        return;
    };
    let profile = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(chrome)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"])
        .args(["--disable-component-update", "--disable-sync", "--virtual-time-budget=4000", "--dump-dom"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("http://{}/", app.admin_addr))
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(90), out).await.expect("chromium finishes").unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    let row = dom.split(&format!("data-incident=\"{id}\"")).nth(1).unwrap_or_else(|| panic!("no row for {id}: {dom}"));
    let row = &row[..row.find("</tr>").unwrap_or(row.len())];
    assert!(row.contains("data-field=\"escalation\" data-value=\"acknowledged\""), "{row}");
    assert!(row.contains("acknowledged by ana after level 1"), "{row}");
    assert!(dom.contains("id=\"health-score\"") && dom.contains("data-field=\"health_score\""), "{dom}");
}

fn which(bin: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| std::path::Path::new(d).join(bin)).find(|p| p.is_file())
}
