//! The status page in headless Chromium, driven as an operator drives it (DevTools protocol,
//! `browser`): it speaks live and candidate with the release first, stays right when the
//! candidate is blue and was rolled back, shows endpoint health and a banner when the live pool
//! is down, and its action buttons act only with the bearer token typed into it.

use super::browser::Browser;
use super::support::*;
use crate::support::*;
use mock_upstream::{MockConfig, MockHandle, MockPatch};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use switchyard::app::App;

const QUICK: &str = "interval = \"100ms\"\nwindow = \"300ms\"\nmin_samples = 3";

async fn mock(name: &str) -> MockHandle {
    mock_upstream::spawn("127.0.0.1:0".parse().unwrap(), MockConfig::new(name)).await.unwrap()
}

fn config(name: &str, blue: (&MockHandle, &str), green: (&MockHandle, &str), extra: &str) -> String {
    format!(
        "[rollout]\norder = [\"{name}\"]\nhealthy_measurements = 2\nsteps = [50, 100]\nhold = \"100ms\"\n\
         [[services]]\nname = \"{name}\"\nlisten = \"127.0.0.1:0\"\nmode = \"progressive\"\n{extra}\n\
         blue = {{ endpoints = [\"{}\"], release = \"{}\" }}\ngreen = {{ endpoints = [\"{}\"], release = \"{}\" }}\n",
        blue.0.addr(),
        blue.1,
        green.0.addr(),
        green.1
    )
}

/// Requests in a loop until dropped (bounded to 60 s).
struct Traffic(Arc<AtomicBool>);

impl Traffic {
    fn start(addr: std::net::SocketAddr) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        tokio::spawn(async move {
            let c = client();
            let end = tokio::time::Instant::now() + Duration::from_secs(60);
            while !flag.load(Ordering::Relaxed) && tokio::time::Instant::now() < end {
                get(&c, addr, "/").await;
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        });
        Traffic(stop)
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

async fn until(app: &App, name: &str, what: &str, cond: impl Fn(&Value) -> bool) {
    let ok = eventually(Duration::from_secs(20), || cond(&service(app, name))).await;
    assert!(ok, "{what}: {:#}", service(app, name));
}

/// Opens the page (wide enough for two cards a row) and waits for its first render.
async fn open(app: &App) -> Option<Browser> {
    let chrome = require_tool("chromium", "chromium", "SWITCHYARD_SKIP_BROWSER")?;
    let mut b = Browser::open(&chrome, &format!("http://{}/", app.admin_addr)).await;
    b.wait("the page never rendered /status", "document.getElementById('conn-text').textContent.startsWith('live')")
        .await;
    Some(b)
}

/// `expr` evaluated inside the card of service `name` (bound to `card`).
fn in_card(name: &str, expr: &str) -> String {
    format!("(function (card) {{ return {expr}; }})(document.querySelector('[data-service=\"{name}\"]'))")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_is_right_when_a_blue_candidate_was_rolled_back() {
    let (r10, r11, r12) = (mock("pr-1.0").await, mock("pr-1.1").await, mock("pr-1.2").await);
    let env = Env::new(QUICK, &config("pr", (&r10, "1.0"), (&r11, "1.1"), ""));
    let app = env.start().await;
    let _traffic = Traffic::start(app.service_addr("pr").unwrap());
    until(&app, "pr", "1.1 never became live", |s| s["live"] == "green" && s["candidate"].is_null()).await;
    // 1.2 into blue, failing every request: rolled back by its error_rate trigger.
    r12.set(MockPatch { error_rate: Some(1.0), ..Default::default() });
    env.write(QUICK, &config("pr", (&r12, "1.2"), (&r11, "1.1"), ""));
    until(&app, "pr", "1.2 never rolled back", |s| s["candidate"] == "blue" && s["state"] == "rolled_back").await;
    let incident = service(&app, "pr")["incident"].as_str().unwrap().to_string();
    let done = || async {
        let list = admin_get(&app, "/incidents").await;
        list.as_array().unwrap().iter().any(|i| i["id"] == *incident && !i["report"]["completed_at"].is_null())
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done().await {
        assert!(tokio::time::Instant::now() < deadline, "the report never completed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let Some(mut b) = open(&app).await else { return };
    b.wait("incident row", &format!("document.querySelector('tr[data-incident=\"{incident}\"] [data-field=\"report\"][data-value=\"complete\"]')")).await;
    let status = admin_get(&app, "/status").await;

    let field =
        |f: &str| in_card("pr", &format!("card.querySelector('[data-field=\"{f}\"]').getAttribute('data-value')"));
    assert_eq!(b.eval(&field("state")).await, "rolled_back");
    assert_eq!(b.eval(&field("live_release")).await, "1.1", "the healthy live release");
    assert_eq!(b.eval(&field("candidate_release")).await, "1.2", "the failed candidate");
    assert_eq!(b.eval(&field("candidate_weight")).await, "0");
    assert_eq!(b.eval(&field("step")).await, "", "no step in effect after a rollback");
    assert_eq!(b.eval(&in_card("pr", "card.querySelectorAll('.pip.now').length")).await, 0, "no lit step pill");
    let text = b.eval(&in_card("pr", "card.innerText")).await.as_str().unwrap().to_string();
    assert!(text.contains("candidate rolled back") || text.contains("CANDIDATE ROLLED BACK"), "{text}");
    let upper = text.to_uppercase();
    assert!(
        !upper.contains("1.1 ROLLED BACK") && !upper.contains("1.1\nROLLED BACK"),
        "the live release is not the one rolled back:\n{text}"
    );
    assert!(upper.contains("LIVE 1.1") && upper.contains("CANDIDATE 1.2"), "release first:\n{text}");

    // The report judges the live release, which is green here, not "blue".
    let report = b
        .eval(&format!("document.querySelector('tr[data-incident=\"{incident}\"] [data-field=\"report\"]').innerText"))
        .await;
    let report = report.as_str().unwrap();
    assert!(report.contains("live") && report.contains("healthy") && !report.contains("blue"), "{report}");

    // The config generation is the config's, as `switchyard status` prints it.
    assert_eq!(
        b.eval("document.getElementById('generation').getAttribute('data-value')").await,
        status["config"]["generation"].to_string()
    );

    // Times are UTC, as in /incidents.
    let decided = b
        .eval(&format!(
            "document.querySelector('tr[data-incident=\"{incident}\"] [data-field=\"decided_at\"]').innerText"
        ))
        .await;
    let raw = admin_get(&app, &format!("/incidents/{incident}")).await["decided_at"].as_str().unwrap().to_string();
    assert_eq!(decided.as_str().unwrap(), raw.replace('T', " ").split('.').next().unwrap(), "UTC, like the incident");
    assert!(b.eval("document.getElementById('conn-text').textContent").await.as_str().unwrap().ends_with("UTC"));

    // Endpoint health: one per color, by role.
    let eps = b.eval(&in_card("pr", "Array.from(card.querySelectorAll('[data-endpoint]')).map(e => e.dataset.role + ' ' + e.dataset.color + ' ' + e.dataset.endpoint)")).await;
    let want = serde_json::json!([format!("live green {}", r11.addr()), format!("candidate blue {}", r12.addr())]);
    assert_eq!(eps, want);

    // Sparkline labels are whole: nothing overflows its box, at a narrow and a wide size.
    for width in [420, 1280] {
        b.eval(&format!("document.body.style.width = '{width}px'")).await;
        let cut = b
            .eval("Array.from(document.querySelectorAll('.spark')).filter(s => { const r = s.getBoundingClientRect(); \
                   return Array.from(s.querySelectorAll('.t span')).some(x => { const q = x.getBoundingClientRect(); \
                   return q.right > r.right + 0.5 || q.left < r.left - 0.5 || x.scrollWidth > x.clientWidth + 1 && x.clientWidth > 0; }); }).length")
            .await;
        assert_eq!(cut, 0, "sparkline labels cut off at {width}px");
    }
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_actions_need_the_token_and_act() {
    let (blue, green, hook) = (mock("pa-1.0").await, mock("pa-1.1").await, mock("pa-hook").await);
    // A critical webhook, so the rollback's incident pages and can be acknowledged.
    let alerts = format!("[alerts]\ncritical = [\"http://{}/hook\"]\n", hook.addr());
    let plan = config("pa", (&blue, "1.0"), (&green, "1.1"), "").replace("hold = \"100ms\"", "hold = \"1h\"");
    let env = Env::new(QUICK, &format!("{alerts}{plan}"));
    let app = env.start().await;
    let a = "pa";
    until(&app, a, "the plan never started", |s| s["step"]["index"] == 0).await;
    let Some(mut b) = open(&app).await else { return };
    let click = |action: &str| {
        format!("document.querySelector('[data-service=\"{a}\"] button[data-action=\"{action}\"]').click()")
    };
    let result = "document.getElementById('action-result-text').textContent";

    // Without a token nothing is sent.
    b.eval(&click("pause")).await;
    b.wait("a refusal", "document.getElementById('action-result').getAttribute('data-value') === 'refused'").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(service(&app, a)["paused"], false, "paused without a token");
    // A wrong token is refused by the server.
    b.eval("document.getElementById('token-input').value = 'wrong'; document.getElementById('token-save').click()")
        .await;
    b.eval(&click("pause")).await;
    b.wait("401", &format!("{result}.includes('401')")).await;
    assert_eq!(service(&app, a)["paused"], false);

    // The token typed once: kept in sessionStorage, sent as a header, never a cookie.
    b.eval(&format!(
        "document.getElementById('token-input').value = '{TOKEN}'; document.getElementById('operator-input').value = 'ana'; \
         document.getElementById('token-save').click()"
    ))
    .await;
    assert_eq!(b.eval("document.getElementById('token-state').getAttribute('data-value')").await, "set");
    assert_eq!(b.eval("sessionStorage.getItem('switchyard.admin-token')").await, TOKEN);
    b.eval(&click("pause")).await;
    until(&app, a, "the pause button never paused", |v| v["paused"] == true).await;
    b.wait(
        "resume offered",
        &format!("!document.querySelector('[data-service=\"{a}\"] button[data-action=\"resume\"]').disabled"),
    )
    .await;
    b.eval(&click("resume")).await;
    until(&app, a, "the resume button never resumed", |v| v["paused"] == false).await;

    // Rollback takes two clicks; the incident it opens is acknowledged from its row.
    b.eval(&click("rollback")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_ne!(service(&app, a)["state"], "rolled_back", "one click rolled back");
    b.eval(&click("rollback")).await;
    until(&app, a, "the rollback button never rolled back", |v| v["state"] == "rolled_back").await;
    let id = service(&app, a)["incident"].as_str().unwrap().to_string();
    let ack = format!("document.querySelector('button[data-action=\"ack\"][data-target=\"{id}\"]')");
    b.wait("an ack button", &format!("{ack} !== null")).await;
    b.eval(&format!("{ack}.click()")).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let inc = admin_get(&app, &format!("/incidents/{id}")).await;
        if inc["escalation"]["acknowledged"]["by"] == "ana" {
            break;
        }
        let said = b.eval(result).await;
        assert!(
            tokio::time::Instant::now() < deadline,
            "the ack button never acknowledged {id}: {inc:#} (page: {said})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(b.eval("document.cookie").await, "", "no cookie");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_banners_a_live_pool_with_no_healthy_endpoint() {
    let (blue, green) = (mock("ld-blue").await, mock("ld-green").await);
    let probes = "health = { interval = \"100ms\", timeout = \"100ms\" }";
    let env = Env::new(
        QUICK,
        &config("ld", (&blue, "1.0"), (&green, "1.1"), probes).replace("hold = \"100ms\"", "hold = \"1h\""),
    );
    let app = env.start().await;
    let Some(mut b) = open(&app).await else { return };
    assert_eq!(b.eval("document.getElementById('live-down-banner').hidden").await, true);
    let addr = blue.addr();
    until(&app, "ld", "the live endpoint never passed its probes", |s| s["endpoints"]["blue"][0]["healthy"] == true)
        .await;
    blue.shutdown().await;
    until(&app, "ld", "the live endpoint never failed its probes", |s| s["endpoints"]["blue"][0]["healthy"] == false)
        .await;
    b.wait("the banner", "!document.getElementById('live-down-banner').hidden").await;
    let text = b.eval("document.getElementById('live-down-text').textContent").await;
    assert!(text.as_str().unwrap().contains("ld: live 1.0 (blue)"), "{text}");
    let ep = b.eval(&in_card("ld", &format!("card.querySelector('[data-endpoint=\"{addr}\"]').dataset.value"))).await;
    assert_eq!(ep, "down");
    app.shutdown().await;
}
