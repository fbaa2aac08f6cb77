//! Upstream failures: synthetic 502/504 with a JSON reason, passive ejection of a dead endpoint
//! and its return, and the same through active health checks.

use super::support::*;
use crate::support::{client, service, Mocks, FAST};
use mock_upstream::{self, MockConfig, MockHandle, MockPatch};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_green_endpoint_answers_502_with_a_json_reason() {
    let m = Mocks::start("dp_502").await;
    let pools = format!(
        "blue = {{ endpoints = [\"{}\"] }}\ngreen = {{ endpoints = [\"{}\"], release = \"r1\" }}",
        m.blue.addr(),
        closed_port()
    );
    // Retries off: with them (the default) the refused connection would be retried on blue.
    let extra = format!("force_header = \"{FORCE}\"\nretry = {{ enabled = false }}");
    let f = Fixture::builder("dp_502").service(&extra).pools(m, &pools).start().await;
    let r = client().get(format!("http://{}/", f.addr)).header(FORCE, "green").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 502);
    let body: serde_json::Value = r.json().await.expect("a JSON error body");
    assert_eq!(body["reason"], "connect", "{body}");
    assert_eq!(body["service"], "dp_502", "{body}");
    assert_eq!(get_with(&client(), f.addr, "/", &[]).await.0, 200, "blue is unaffected");
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_upstream_answers_504_after_the_response_timeout() {
    let f = Fixture::builder("dp_504").limits("response_timeout = \"300ms\"").start().await;
    f.mocks.blue.set(MockPatch { latency_ms: Some(2000), ..Default::default() });
    let start = Instant::now();
    let r = client().get(format!("http://{}/", f.addr)).send().await.unwrap();
    let took = start.elapsed();
    assert_eq!(r.status().as_u16(), 504);
    let body: serde_json::Value = r.json().await.expect("a JSON error body");
    assert_eq!(body["reason"], "timeout", "{body}");
    assert!(took >= Duration::from_millis(300) && took < Duration::from_millis(1500), "answered after {took:?}");
    f.stop().await;
}

/// `blue` lists a live mock and a second one (`victim`) that the test kills and revives.
pub(crate) async fn two_blue_endpoints(name: &str) -> (Mocks, MockHandle, String) {
    let mocks = Mocks::start(name).await;
    let victim =
        mock_upstream::spawn("127.0.0.1:0".parse().unwrap(), MockConfig::new(format!("{name}-victim"))).await.unwrap();
    let pools = format!(
        "blue = {{ endpoints = [\"{}\", \"{}\"] }}\ngreen = {{ endpoints = [\"{}\"], release = \"r1\" }}",
        mocks.blue.addr(),
        victim.addr(),
        mocks.green.addr()
    );
    (mocks, victim, pools)
}

/// `/status` flag of blue endpoint `i`.
fn blue_flag(f: &Fixture, name: &str, i: usize, flag: &str) -> bool {
    service(&f.app, name)["endpoints"]["blue"][i][flag] == true
}

/// Sends requests until one is answered by `who` (at most 200 requests and 5 s).
async fn reaches(addr: SocketAddr, who: &str) -> bool {
    let c = client();
    let end = Instant::now() + Duration::from_secs(5);
    for _ in 0..200 {
        if Instant::now() >= end {
            break;
        }
        if get_with(&c, addr, "/", &[]).await.1 == who {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_endpoint_is_ejected_after_failures_and_serves_again_once_back() {
    let name = "dp_eject";
    let (mocks, victim, pools) = two_blue_endpoints(name).await;
    let victim_addr = victim.addr();
    // Probes only at start (both endpoints healthy), so only passive ejection acts below.
    let limits = "eject_after = 2\neject_for = \"1s\"";
    let health = "health = { path = \"/health\", interval = \"1h\" }";
    let f = Fixture::builder(name).control(FAST).limits(limits).service(health).pools(mocks, &pools).start().await;
    assert!(reaches(f.addr, &format!("{name}-victim")).await, "both endpoints serve at first");
    victim.shutdown().await;

    // Round-robin sends every other request to the dead endpoint: 2 failures eject it.
    let c = client();
    let mut failures = 0;
    for _ in 0..20 {
        if get_with(&c, f.addr, "/", &[]).await.0 == 502 {
            failures += 1;
        }
        if failures == 2 {
            break;
        }
    }
    assert_eq!(failures, 2, "the dead endpoint should fail twice");
    let ejected_at = Instant::now();
    let mut within = 0;
    for _ in 0..30 {
        let sent = Instant::now();
        let (status, who) = get_with(&c, f.addr, "/", &[]).await;
        // Only requests sent well inside the ejection window are guaranteed to avoid it.
        if sent < ejected_at + Duration::from_millis(800) {
            assert_eq!((status, who.as_str()), (200, format!("{name}-blue").as_str()), "request {within}");
            within += 1;
        }
    }
    assert!(within >= 5, "only {within} requests fell inside the ejection window");
    assert!(eventually_async(Duration::from_secs(1), || async { blue_flag(&f, name, 1, "ejected") }).await);
    assert!(!blue_flag(&f, name, 0, "ejected"), "the live endpoint stays in");

    let revived = mock_upstream::spawn(victim_addr, MockConfig::new(format!("{name}-victim"))).await.unwrap();
    // The ejection ends when eject_for has passed (published in /status), and then it serves.
    assert!(eventually_async(Duration::from_secs(3), || async { !blue_flag(&f, name, 1, "ejected") }).await);
    assert!(reaches(f.addr, &format!("{name}-victim")).await, "the revived endpoint serves again");
    f.stop().await;
    revived.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_take_a_dead_endpoint_out_and_put_it_back() {
    let name = "dp_health";
    let (mocks, victim, pools) = two_blue_endpoints(name).await;
    let victim_addr = victim.addr();
    // Passive ejection effectively off: only the probes decide here.
    let limits = "eject_after = 1000";
    let health = "health = { path = \"/health\", interval = \"100ms\", timeout = \"100ms\" }";
    let f = Fixture::builder(name).control(FAST).limits(limits).service(health).pools(mocks, &pools).start().await;
    assert!(reaches(f.addr, &format!("{name}-victim")).await);
    victim.shutdown().await;

    assert!(eventually_async(Duration::from_secs(3), || async { !blue_flag(&f, name, 1, "healthy") }).await);
    let c = client();
    for i in 0..20 {
        let (status, who) = get_with(&c, f.addr, "/", &[]).await;
        assert_eq!((status, who.as_str()), (200, format!("{name}-blue").as_str()), "request {i}");
    }

    let revived = mock_upstream::spawn(victim_addr, MockConfig::new(format!("{name}-victim"))).await.unwrap();
    assert!(eventually_async(Duration::from_secs(3), || async { blue_flag(&f, name, 1, "healthy") }).await);
    assert!(reaches(f.addr, &format!("{name}-victim")).await, "the healthy endpoint serves again");
    f.stop().await;
    revived.shutdown().await;
}
