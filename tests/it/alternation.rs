//! Blue and green alternate. A release goes into the idle pool, its plan moves traffic
//! from the live color to it, and when the plan completes it becomes live; a rollback returns all
//! traffic to the live color; a retired release never gets a request again. Also: the force
//! header never reaches a rolled-back or paused candidate and can require a token, and `/status`
//! (and `switchyard status`) say why a plan holds.
//!
//! Real app in-process, real mock upstreams on 127.0.0.1, one per release, counted at the mock.

use crate::support::*;
use mock_upstream::{self, MockConfig, MockHandle, MockPatch};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchyard::app::App;

/// 100 ms measurements over a 300 ms window; a handful of samples is conclusive.
const QUICK: &str = "interval = \"100ms\"\nwindow = \"300ms\"\nmin_samples = 3";

async fn mock(name: &str) -> MockHandle {
    mock_upstream::spawn("127.0.0.1:0".parse().unwrap(), MockConfig::new(name)).await.unwrap()
}

/// A progressive service whose pools hold the given `(mock, release)` pairs.
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

/// Steady traffic that counts responses per mock name and remembers any failure.
struct Traffic {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<HashMap<String, u64>>>,
    failures: Arc<Mutex<Vec<String>>>,
    tasks: tokio::task::JoinSet<()>,
}

impl Traffic {
    fn start(addr: SocketAddr) -> Traffic {
        let stop = Arc::<AtomicBool>::default();
        let seen = Arc::<Mutex<HashMap<String, u64>>>::default();
        let failures = Arc::<Mutex<Vec<String>>>::default();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..2 {
            let (stop, seen, failures) = (stop.clone(), seen.clone(), failures.clone());
            let c = client();
            tasks.spawn(async move {
                // Bounded: 60 s at most even if a test forgets to stop it.
                let end = tokio::time::Instant::now() + Duration::from_secs(60);
                while !stop.load(Ordering::Relaxed) && tokio::time::Instant::now() < end {
                    match get(&c, addr, "/").await {
                        (200, who) => *seen.lock().unwrap().entry(who).or_default() += 1,
                        (s, who) => failures.lock().unwrap().push(format!("{s} from {who:?}")),
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            });
        }
        Traffic { stop, seen, failures, tasks }
    }

    async fn finish(mut self) -> (HashMap<String, u64>, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        while self.tasks.join_next().await.is_some() {}
        let seen = self.seen.lock().unwrap().clone();
        let failures = self.failures.lock().unwrap().clone();
        (seen, failures)
    }
}

/// Waits until the service's `/status` entry satisfies `cond`; panics with the entry if not.
async fn until(app: &App, name: &str, what: &str, limit: Duration, cond: impl Fn(&serde_json::Value) -> bool) {
    let ok = eventually(limit, || cond(&service(app, name))).await;
    assert!(ok, "{what}: {:#}", service(app, name));
}

fn live_without_candidate(s: &serde_json::Value, color: &str) -> bool {
    s["live"] == color && s["candidate"].is_null()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_releases_alternate_and_a_rollback_of_the_third_returns_to_the_second() {
    let (legacy, r1, r2, r3) = (mock("legacy").await, mock("r1").await, mock("r2").await, mock("r3").await);
    let long = Duration::from_secs(15);
    let env = Env::new(QUICK, &config("alt", (&legacy, "1.0"), (&r1, "1.1"), ""));
    let app = env.start().await;
    let s = service(&app, "alt");
    assert_eq!((s["live"].as_str(), s["candidate"].as_str()), (Some("blue"), Some("green")), "{s:#}");
    let traffic = Traffic::start(app.service_addr("alt").unwrap());

    // Release 1.1 in green: the plan runs to 100 % and completes; green is live, blue retired.
    until(&app, "alt", "1.1 never became live", long, |s| live_without_candidate(s, "green")).await;
    let s = service(&app, "alt");
    assert_eq!((s["green_weight"].as_f64(), s["live_release"].as_str()), (Some(100.0), Some("1.1")), "{s:#}");
    let legacy_at_retirement = legacy.requests();

    // Release 1.2 goes into the idle pool (blue) with one config edit; its plan moves traffic
    // from green to blue: green_weight falls.
    env.write(QUICK, &config("alt", (&r2, "1.2"), (&r1, "1.1"), ""));
    until(&app, "alt", "1.2 never became the candidate", long, |s| s["candidate"] == "blue").await;
    until(&app, "alt", "1.2 never became live", long, |s| live_without_candidate(s, "blue")).await;
    assert_eq!(service(&app, "alt")["green_weight"].as_f64(), Some(0.0));
    let r1_at_retirement = r1.requests();
    assert!(r2.requests() > 0, "1.2 served nothing");

    // Release 1.3 into the idle pool (green); it fails, and the rollback returns every request to 1.2.
    env.write(QUICK, &config("alt", (&r2, "1.2"), (&r3, "1.3"), ""));
    until(&app, "alt", "1.3 never took traffic", long, |s| s["candidate"] == "green" && s["green_weight"] == 50.0)
        .await;
    r3.set(MockPatch { error_rate: Some(1.0), ..Default::default() });
    until(&app, "alt", "1.3 was never rolled back", long, |s| s["state"] == "rolled_back").await;
    let s = service(&app, "alt");
    assert_eq!(
        (s["live"].as_str(), s["candidate"].as_str(), s["green_weight"].as_f64()),
        (Some("blue"), Some("green"), Some(0.0)),
        "{s:#}"
    );
    let (seen, _failures) = traffic.finish().await;
    let after = burst(app.service_addr("alt").unwrap(), 100, 4).await;
    assert!(after.iter().all(|(st, who)| *st == 200 && who == "r2"), "after the rollback: {after:?}");

    // No request ever went back to a retired release.
    assert_eq!(legacy.requests(), legacy_at_retirement, "1.0 got requests after its retirement");
    assert_eq!(r1.requests(), r1_at_retirement, "1.1 got requests after its retirement");
    for (release, m) in [("1.0", &legacy), ("1.1", &r1), ("1.2", &r2), ("1.3", &r3)] {
        assert!(m.requests() > 0, "{release} was never reached; clients saw {seen:?}");
    }
    let inc = admin_get(&app, "/incidents").await;
    let last = inc.as_array().unwrap().last().unwrap().clone();
    assert_eq!((last["service"].as_str(), last["release"].as_str()), (Some("alt"), Some("1.3")), "{last:#}");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_the_live_color_and_a_retired_release_stays_retired() {
    let (legacy, r1) = (mock("rs-legacy").await, mock("rs-r1").await);
    let env = Env::new(QUICK, &config("rst", (&legacy, "1.0"), (&r1, "1.1"), ""));
    let app = env.start().await;
    let traffic = Traffic::start(app.service_addr("rst").unwrap());
    until(&app, "rst", "1.1 never became live", Duration::from_secs(15), |s| live_without_candidate(s, "green")).await;
    traffic.finish().await;
    app.shutdown().await;

    let app = env.start().await;
    let s = service(&app, "rst");
    assert!(live_without_candidate(&s, "green"), "{s:#}");
    let before = legacy.requests();
    let all = burst(app.service_addr("rst").unwrap(), 50, 2).await;
    assert!(all.iter().all(|(st, who)| *st == 200 && who == "rs-r1"), "{all:?}");
    assert_eq!(legacy.requests(), before, "the retired release got requests after a restart");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_force_header_needs_its_token_and_never_reaches_a_paused_or_rolled_back_candidate() {
    const VAR: &str = "SWITCHYARD_TEST_FORCE_TOKEN";
    std::env::set_var(VAR, "s3cret");
    let (blue, green) = (mock("fh-blue").await, mock("fh-green").await);
    let extra = format!("force_header = {{ name = \"x-switchyard-color\", token_env = \"{VAR}\" }}");
    let plan = config("fh", (&blue, "1.0"), (&green, "1.1"), &extra).replace("hold = \"100ms\"", "hold = \"1h\"");
    let env = Env::new(QUICK, &plan);
    let app = env.start().await;
    let addr = app.service_addr("fh").unwrap();
    let forced = |value: &'static str| async move {
        let r = client().get(format!("http://{addr}/")).header("x-switchyard-color", value).send().await.unwrap();
        r.headers()["x-switchyard-mock"].to_str().unwrap().to_string()
    };
    // Step 0 is 50 %: only a forced request can land on green every time.
    let with_token: Vec<String> = futures_util::future::join_all((0..20).map(|_| forced("green:s3cret"))).await;
    assert!(with_token.iter().all(|w| w == "fh-green"), "{with_token:?}");
    let without: Vec<String> = futures_util::future::join_all((0..20).map(|_| forced("green"))).await;
    assert!(without.iter().any(|w| w == "fh-blue"), "a value without the token forced green: {without:?}");
    let wrong: Vec<String> = futures_util::future::join_all((0..20).map(|_| forced("green:guess"))).await;
    assert!(wrong.iter().any(|w| w == "fh-blue"), "a wrong token forced green: {wrong:?}");

    let (s, _) = admin_post(&app, "/services/fh/pause", "").await;
    assert_eq!(s, 200);
    assert_eq!(forced("blue:s3cret").await, "fh-blue", "the live color stays forcible");
    let paused: Vec<String> = futures_util::future::join_all((0..20).map(|_| forced("green:s3cret"))).await;
    assert!(paused.iter().any(|w| w == "fh-blue"), "a paused candidate was forced: {paused:?}");

    let (s, v) = admin_post(&app, "/services/fh/rollback", "").await;
    assert_eq!((s, v["state"].as_str()), (200, Some("rolled_back")), "{v:#}");
    let before = green.requests();
    let after: Vec<String> = futures_util::future::join_all((0..50).map(|_| forced("green:s3cret"))).await;
    assert!(after.iter().all(|w| w == "fh-blue"), "a rolled-back candidate was forced: {after:?}");
    assert_eq!(green.requests(), before);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_says_why_a_plan_holds() {
    let (a_blue, a_green) = (mock("why-a-blue").await, mock("why-a-green").await);
    let (b_blue, b_green) = (mock("why-b-blue").await, mock("why-b-green").await);
    let thin = "interval = \"100ms\"\nwindow = \"300ms\"\nmin_samples = 100";
    let svc = |name: &str, blue: &MockHandle, green: &MockHandle| {
        config(name, (blue, "1.0"), (green, "1.1"), "").split_once("[[services]]").unwrap().1.to_string()
    };
    let body = format!(
        "[rollout]\norder = [\"whya\", \"whyb\"]\nsequential = true\nhealthy_measurements = 2\nsteps = [10, 100]\n\
         hold = \"1h\"\n[[services]]{}[[services]]{}",
        svc("whya", &a_blue, &a_green),
        svc("whyb", &b_blue, &b_green)
    );
    let env = Env::new(thin, &body);
    let app = env.start().await;
    let reason = |n: &str| service(&app, n)["progress"]["reason"].as_str().unwrap_or("").to_string();

    // A trickle of traffic: measurements come, but far fewer than 100 samples.
    let addr = app.service_addr("whya").unwrap();
    let trickle = tokio::spawn(async move {
        for _ in 0..40 {
            get(&client(), addr, "/").await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    until(&app, "whya", "no inconclusive reason", Duration::from_secs(5), |s| {
        s["progress"]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("inconclusive: ") && r.ends_with(" of 100 samples"))
    })
    .await;
    let s = service(&app, "whya");
    assert_eq!(
        (s["progress"]["step"].as_str(), s["progress"]["healthy"].as_str()),
        (Some("1/2"), Some("0/2")),
        "{s:#}"
    );
    assert!(s["progress"]["hold_remaining_ms"].as_u64().unwrap() > 3_500_000, "{s:#}");
    assert_eq!(reason("whyb"), "waiting for whya");
    assert!(service(&app, "whyb")["progress"]["step"].is_null());

    // `switchyard status` prints the same.
    let (ok, text, err) = cli(&["status", "--admin", &format!("http://{}", app.admin_addr)]).await;
    assert!(ok, "{text}\n{err}");
    println!("{text}"); // the closing note's sample: `cargo test --test it alternation::status_says -- --nocapture`
    assert!(text.contains("live blue (1.0) 90 % → candidate green (1.1) 10 %: step 1/2, healthy 0/2, hold"), "{text}");
    assert!(text.contains("of 100 samples"), "{text}");
    assert!(text.contains("— waiting for whya"), "{text}");

    let (st, _) = admin_post(&app, "/services/whya/pause", "").await;
    assert_eq!(st, 200);
    assert_eq!(reason("whya"), "paused");
    trickle.await.unwrap();
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gated_step_says_manual_gate_and_an_empty_window_is_a_dash() {
    let (blue, green) = (mock("gate-blue").await, mock("gate-green").await);
    let plan = config("gate", (&blue, "1.0"), (&green, "1.1"), "")
        .replace("steps = [50, 100]", "steps = [50, 100]\nmanual_gate_before = 100");
    let env = Env::new(QUICK, &plan);
    let app = env.start().await;
    until(&app, "gate", "an empty window is not inconclusive yet", Duration::from_secs(5), |s| {
        s["progress"]["reason"] == "inconclusive: 0 of 3 samples"
    })
    .await;
    let (_, text, _) = cli(&["status", "--admin", &format!("http://{}", app.admin_addr)]).await;
    let row = text.lines().find(|l| l.starts_with("gate ")).unwrap_or_else(|| panic!("{text}"));
    assert!(row.contains('—') && !row.contains("0.00"), "an empty window printed as numbers: {row}");

    let traffic = Traffic::start(app.service_addr("gate").unwrap());
    until(&app, "gate", "the gate never held", Duration::from_secs(10), |s| s["progress"]["reason"] == "manual gate")
        .await;
    let (seen, failures) = traffic.finish().await;
    assert!(failures.is_empty() && !seen.is_empty(), "{failures:?}");
    app.shutdown().await;
}

#[test]
fn a_force_header_token_from_an_unset_variable_is_a_config_error() {
    let text = "[[services]]\nname = \"fhc\"\nlisten = \"127.0.0.1:0\"\n\
        force_header = { name = \"x-switchyard-color\", token_env = \"SWITCHYARD_TEST_UNSET_FORCE_TOKEN\" }\n\
        blue = { endpoints = [\"127.0.0.1:1\"] }\ngreen = { endpoints = [\"127.0.0.1:2\"] }\n";
    let e = switchyard::config::parse(text, std::path::Path::new("t.toml")).unwrap_err().to_string();
    assert!(e.contains("force_header.token_env") && e.contains("SWITCHYARD_TEST_UNSET_FORCE_TOKEN"), "{e}");
    let plain = text.replace(
        "{ name = \"x-switchyard-color\", token_env = \"SWITCHYARD_TEST_UNSET_FORCE_TOKEN\" }",
        "\"x-switchyard-color\"",
    );
    assert!(switchyard::config::parse(&plain, std::path::Path::new("t.toml")).is_ok(), "the plain form keeps working");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_in_blue_is_hash_checked_and_rolls_back_to_live_green() {
    let (legacy, r1) = (mock("hb-legacy").await, mock("hb-r1").await);
    let mut bad = MockConfig::new("hb-r2");
    bad.hash = Some("not-the-constitutional-hash".into());
    let r2 = mock_upstream::spawn("127.0.0.1:0".parse().unwrap(), bad).await.unwrap();
    let env = Env::new(QUICK, &config("hb", (&legacy, "1.0"), (&r1, "1.1"), ""));
    let app = env.start().await;
    let traffic = Traffic::start(app.service_addr("hb").unwrap());
    until(&app, "hb", "1.1 never became live", Duration::from_secs(15), |s| live_without_candidate(s, "green")).await;

    env.write(QUICK, &config("hb", (&r2, "1.2"), (&r1, "1.1"), ""));
    until(&app, "hb", "1.2 in blue was never rolled back", Duration::from_secs(15), |s| s["state"] == "rolled_back")
        .await;
    let (_, failures) = traffic.finish().await;
    assert!(failures.is_empty(), "{failures:?}");
    let s = service(&app, "hb");
    assert_eq!(
        (s["live"].as_str(), s["candidate"].as_str(), s["green_weight"].as_f64()),
        (Some("green"), Some("blue"), Some(100.0)),
        "{s:#}"
    );
    let inc = admin_get(&app, "/incidents").await;
    let last = inc.as_array().unwrap().last().unwrap().clone();
    assert_eq!((last["trigger"].as_str(), last["release"].as_str()), (Some("hash_mismatch"), Some("1.2")), "{last:#}");
    let after = burst(app.service_addr("hb").unwrap(), 50, 2).await;
    assert!(after.iter().all(|(st, who)| *st == 200 && who == "hb-r1"), "{after:?}");
    app.shutdown().await;
}
