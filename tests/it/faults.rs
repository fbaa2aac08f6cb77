//! Upstream faults and retries onto blue. Green is killed under
//! load, hangs, resets, returns garbage, or closes keep-alive connections; the proxy keeps
//! serving, idempotent requests are retried on blue within the budget so users see no failure,
//! the failed green attempts still count against green (scraped from `/metrics`), and the
//! control loop still rolls back.

use crate::support::Fixture as Fx;
use crate::support::*;
use mock_upstream::{Fault, MockPatch};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const LIMITS: &str =
    "response_timeout = \"300ms\"\nconnect_timeout = \"200ms\"\neject_after = 3\neject_for = \"500ms\"";
const RETRY: &str = "retry = { on = [502, 503], budget = 0.2 }";

/// Green at `weight` %, health checks every 100 ms, short timeouts, `extra` service lines.
fn fixture(name: &str, control: &str, weight: f64, extra: &str) -> FixtureBuilder {
    let service = format!("green_weight = {weight}\nhealth = {{ interval = \"100ms\", timeout = \"200ms\" }}\n{extra}");
    Fx::builder(name).control(control).limits(LIMITS).service(&service)
}

fn fault(f: Fault) -> MockPatch {
    MockPatch { fault: Some(f), ..Default::default() }
}

fn failed(results: &[(u16, String)]) -> Vec<u16> {
    results.iter().map(|r| r.0).filter(|&s| s != 200).collect()
}

/// Runs `n` GETs with `conc` concurrency while `during` breaks green after `after`.
async fn load_while(
    addr: SocketAddr,
    n: usize,
    conc: usize,
    after: Duration,
    during: impl std::future::Future<Output = ()>,
) -> Vec<(u16, String)> {
    let load = tokio::spawn(burst(addr, n, conc));
    tokio::time::sleep(after).await;
    during.await;
    load.await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_green_under_load_loses_no_get_and_still_rolls_back() {
    let name = "flt_kill";
    let fx = fixture(name, FAST, 10.0, RETRY).start().await;
    let Fx { mocks, _env, app, addr } = fx;
    let green = mocks.green;
    let mut results = load_while(addr, 3000, 4, Duration::from_millis(300), green.shutdown()).await;
    // A 200 ms window needs `min_samples` green requests: on a loaded machine 3 000 requests may
    // end before one does, so keep the load on until the loop rolls back (bounded).
    for _ in 0..20 {
        if service(&app, name)["state"] == "rolled_back" {
            break;
        }
        results.extend(burst(addr, 400, 8).await);
    }
    assert_eq!(failed(&results), Vec::<u16>::new(), "users saw failures");
    assert!(eventually(Duration::from_secs(10), || service(&app, name)["state"] == "rolled_back").await);
    let inc = admin_get(&app, "/incidents").await;
    // A dead candidate is hard evidence: its failing probes usually roll it back first.
    let triggers = ["candidate_down", "error_rate", "availability"];
    assert!(triggers.contains(&inc[0]["trigger"].as_str().unwrap_or("")), "{inc}");
    let fx = Fx {
        mocks: Mocks {
            blue: mocks.blue,
            green: mock_upstream::spawn("127.0.0.1:0".parse().unwrap(), mock_upstream::MockConfig::new("spare"))
                .await
                .unwrap(),
        },
        _env,
        app,
        addr,
    };
    // Green's failures are counted, and so are the retries that hid them.
    wait_metric(&fx.app, "switchyard_upstream_errors_total", &[("service", name), ("color", "green")], |v| v > 0.0)
        .await;
    wait_metric(&fx.app, "switchyard_retries_total", &[("service", name)], |v| v > 0.0).await;
    fx.stop().await;
}

/// Hang, reset before the response, garbage bytes: each green attempt fails before any byte
/// reached the client, so every GET is retried on blue; green's errors of the right kind count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn green_hang_reset_and_garbage_are_retried_on_blue() {
    for (i, (f, kind)) in
        [(Fault::Hang, "timeout"), (Fault::Reset, "reset"), (Fault::Garbage, "protocol")].into_iter().enumerate()
    {
        let name = format!("flt_kind{i}");
        // A 1 s window: a hanging green slows the load, so 200 ms windows would hold too few
        // green samples to be conclusive.
        let control = "interval = \"100ms\"\nwindow = \"1s\"\nmin_samples = 10";
        let fx = fixture(&name, control, 10.0, RETRY).start().await;
        fx.mocks.green.set(fault(f));
        // Load until the loop rolls back (bounded): a window needs `min_samples` green samples.
        let mut results = Vec::new();
        for _ in 0..40 {
            results.extend(burst(fx.addr, 400, 8).await);
            if service(&fx.app, &name)["state"] == "rolled_back" {
                break;
            }
        }
        assert_eq!(failed(&results), Vec::<u16>::new(), "{f:?}: users saw failures");
        let labels = [("service", name.as_str()), ("color", "green"), ("kind", kind)];
        wait_metric(&fx.app, "switchyard_upstream_errors_total", &labels, |v| v > 0.0).await;
        assert!(
            eventually(Duration::from_secs(10), || service(&fx.app, &name)["state"] == "rolled_back").await,
            "{f:?}: rolled back"
        );
        fx.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_closing_keep_alive_connections_loses_nothing() {
    let fx = fixture("flt_close", "", 50.0, RETRY).start().await;
    fx.mocks.green.set(fault(Fault::CloseAfterResponse));
    fx.mocks.blue.set(fault(Fault::CloseAfterResponse));
    let results = burst(fx.addr, 600, 6).await;
    assert_eq!(failed(&results), Vec::<u16>::new());
    let errors = scrape_metric(&fx.app, "switchyard_upstream_errors_total", &[("service", "flt_close")]).await;
    assert_eq!(errors.unwrap_or(0.0), 0.0);
    // Green answers that needed no retry (retries enabled) still release the in-flight gauge.
    wait_metric(&fx.app, "switchyard_in_flight_requests", &[("service", "flt_close")], |v| v == 0.0).await;
    fx.stop().await;
}

/// A raw upstream that answers every request with a 200 head and then misbehaves: `mid_reset`
/// sends half the body and resets; otherwise it answers fully but closes the connection
/// silently (no `Connection: close`), so the proxy's pooled connection dies under it.
async fn raw_upstream(mid_reset: bool) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        for _ in 0..10_000 {
            let Ok((mut s, _)) = l.accept().await else { return };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                if !matches!(s.read(&mut buf).await, Ok(n) if n > 0) {
                    return;
                }
                let head = "HTTP/1.1 200 OK\r\nx-constitutional-hash: cdd01ef066bc6cf2\r\ncontent-length: 10\r\n\r\n";
                let _ = if mid_reset {
                    s.write_all(format!("{head}12345").as_bytes()).await
                } else {
                    s.write_all(format!("{head}1234567890").as_bytes()).await
                };
                tokio::time::sleep(Duration::from_millis(20)).await;
                if mid_reset {
                    let _ = s.set_zero_linger();
                }
                drop(s);
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silently_closed_keep_alive_connections_are_retried() {
    let mocks = Mocks::start("flt_silent").await;
    let green = raw_upstream(false).await;
    let pools = format!(
        "blue = {{ endpoints = [\"{}\"] }}\ngreen = {{ endpoints = [\"{green}\"], release = \"r1\" }}\n",
        mocks.blue.addr()
    );
    let fx = fixture("flt_silent", "", 50.0, RETRY).pools(mocks, &pools).start().await;
    let c = client();
    let mut bad = Vec::new();
    for _ in 0..200 {
        let (s, _) = get(&c, fx.addr, "/").await;
        if s != 200 {
            bad.push(s);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(bad, Vec::<u16>::new());
    fx.stop().await;
}

/// Once response bytes reached the client nothing can be retried: the client sees a truncated
/// body, green is charged with a reset, and the proxy and other requests are unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_mid_response_is_charged_to_green_and_nothing_else_breaks() {
    let mocks = Mocks::start("flt_mid").await;
    let green = raw_upstream(true).await;
    let pools = format!(
        "blue = {{ endpoints = [\"{}\"] }}\ngreen = {{ endpoints = [\"{green}\"], release = \"r1\" }}\n",
        mocks.blue.addr()
    );
    let fx = fixture("flt_mid", "", 100.0, RETRY).pools(mocks, &pools).start().await;
    let c = client();
    for _ in 0..3 {
        let r = c.get(format!("http://{}/", fx.addr)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.bytes().await.is_err(), "the body must fail, not end short silently");
    }
    let labels = [("service", "flt_mid"), ("color", "green"), ("kind", "reset")];
    wait_metric(&fx.app, "switchyard_upstream_errors_total", &labels, |v| v >= 3.0).await;
    let (s, _) = admin_post(&fx.app, "/services/flt_mid/weight", "{\"green\":0}").await;
    assert_eq!(s, 200);
    assert_eq!(get(&c, fx.addr, "/").await.0, 200);
    fx.stop().await;
}

/// Without a retry (POST, or retries off) the client gets the status of the failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_that_cannot_be_retried_get_the_right_status() {
    let fx = fixture("flt_status", "", 100.0, RETRY).start().await;
    let c = client();
    let post = |c: &reqwest::Client| c.post(format!("http://{}/", fx.addr)).body("x").send();
    fx.mocks.green.set(fault(Fault::Hang));
    assert_eq!(post(&c).await.unwrap().status(), 504);
    fx.mocks.green.set(fault(Fault::Garbage));
    assert_eq!(post(&c).await.unwrap().status(), 502);
    fx.mocks.green.set(fault(Fault::Reset));
    assert_eq!(post(&c).await.unwrap().status(), 502);
    fx.mocks.green.set(MockPatch { fault: Some(Fault::None), error_rate: Some(1.0), ..Default::default() });
    assert_eq!(post(&c).await.unwrap().status(), 500, "an upstream's own 500 is passed through");
    fx.stop().await;
}

/// A dead green at 50 % with a 20 % budget and a floor of 1 retry a second: retries stay within
/// `budget × requests + 10`, so blue never takes double load; the rest are reported as 502.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_budget_bounds_retries() {
    let retry = "retry = { on = [502, 503], budget = 0.2, min_per_second = 1 }";
    let fx = fixture("flt_budget", "", 50.0, retry).start().await;
    fx.mocks.green.set(fault(Fault::Reset));
    let results = burst(fx.addr, 1000, 4).await;
    let retries = scrape_metric(&fx.app, "switchyard_retries_total", &[("service", "flt_budget")]).await.unwrap_or(0.0);
    let failed = failed(&results);
    // Plus up to one rescue per client: attempts still waiting when green's last endpoint is
    // ejected are re-sent without asking the budget (they are bounded by what was in flight).
    assert!(retries <= 0.2 * 1000.0 + 10.0 + 1.0 + 4.0, "retries {retries}");
    assert!(retries >= 0.2 * 1000.0 - 20.0, "the budget is used: {retries}");
    assert!(failed.iter().all(|&s| s == 502), "{failed:?}");
    assert_eq!(failed.len() as f64 + retries, 500.0, "every green request was either retried or reported");
    // Requests refused a retry still release the in-flight gauge.
    wait_metric(&fx.app, "switchyard_in_flight_requests", &[("service", "flt_budget")], |v| v == 0.0).await;
    fx.stop().await;
}
