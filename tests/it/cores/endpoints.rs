//! Endpoint state is one set of atomics seen by both workers: an endpoint ejected after failures
//! (wherever they happened) or found dead by the probes is avoided by both, and both send to it
//! again once it is back.

use super::support::*;
use crate::data_plane::support::*;
use crate::support::{service, FAST};
use mock_upstream::{self, MockConfig};
use std::time::Duration;
use tokio::time::Instant;

use crate::data_plane::failures::two_blue_endpoints;

fn victim_flag(f: &Fixture, name: &str, flag: &str) -> bool {
    service(&f.app, name)["endpoints"]["blue"][1][flag] == true
}

/// Both workers answer only from the live blue endpoint.
async fn only_live_blue(f: &Fixture, name: &str) {
    let (answers, per) = spread(&f.app, name, 5, async || fresh_get(f.addr, &[]).await).await;
    for a in &answers {
        assert_eq!(a, &(200, format!("{name}-blue")), "connections per worker {per:?}");
    }
}

/// Both workers reach the victim again: fresh connections until each has had an answer from it.
async fn victim_on_both(f: &Fixture, name: &str) {
    let victim = format!("{name}-victim");
    let mut at = Attribution::new(&f.app, name).await;
    let mut reached = [false; THREADS];
    for _ in 0..200 {
        let (_, who) = fresh_get(f.addr, &[]).await;
        let w = at.next().await;
        reached[w] |= who == victim;
        if reached.iter().all(|r| *r) {
            return;
        }
    }
    panic!("the revived endpoint did not serve on every worker: {reached:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ejected_endpoint_is_avoided_by_both_workers_and_serves_on_both_once_back() {
    let name = "cores_eject";
    let (mocks, victim, pools) = two_blue_endpoints(name).await;
    let victim_addr = victim.addr();
    // Probes only at start; an ejection long enough to check both workers inside it.
    let limits = "eject_after = 2\neject_for = \"4s\"";
    let health = "health = { path = \"/health\", interval = \"1h\" }";
    let f = Fixture::builder(name)
        .control(FAST)
        .limits(limits)
        .service(health)
        .pools(mocks, &pools)
        .threads(THREADS)
        .start()
        .await;
    victim_on_both(&f, name).await;
    victim.shutdown().await;
    // Round-robin over both workers' requests: two failures, on whichever workers, eject it.
    let mut failures = 0;
    for _ in 0..20 {
        if failures == 2 {
            break;
        }
        failures += usize::from(fresh_get(f.addr, &[]).await.0 == 502);
    }
    assert_eq!(failures, 2, "the dead endpoint fails twice");
    let ejected = Instant::now();
    assert!(eventually_async(Duration::from_secs(2), || async { victim_flag(&f, name, "ejected") }).await);
    only_live_blue(&f, name).await;
    let took = ejected.elapsed();
    assert!(took < Duration::from_secs(4), "{took:?}: the checks outlasted the 4 s ejection");

    let revived = mock_upstream::spawn(victim_addr, MockConfig::new(format!("{name}-victim"))).await.unwrap();
    assert!(eventually_async(Duration::from_secs(8), || async { !victim_flag(&f, name, "ejected") }).await);
    victim_on_both(&f, name).await;
    f.stop().await;
    revived.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probed_dead_endpoint_is_avoided_by_both_workers_and_serves_on_both_once_healthy() {
    let name = "cores_health";
    let (mocks, victim, pools) = two_blue_endpoints(name).await;
    let victim_addr = victim.addr();
    // Passive ejection effectively off: only the probes (on the main runtime) decide.
    let health = "health = { path = \"/health\", interval = \"100ms\", timeout = \"100ms\" }";
    let f = Fixture::builder(name)
        .control(FAST)
        .limits("eject_after = 1000")
        .service(health)
        .pools(mocks, &pools)
        .threads(THREADS)
        .start()
        .await;
    victim_on_both(&f, name).await;
    victim.shutdown().await;
    assert!(eventually_async(Duration::from_secs(5), || async { !victim_flag(&f, name, "healthy") }).await);
    only_live_blue(&f, name).await;

    let revived = mock_upstream::spawn(victim_addr, MockConfig::new(format!("{name}-victim"))).await.unwrap();
    assert!(eventually_async(Duration::from_secs(5), || async { victim_flag(&f, name, "healthy") }).await);
    victim_on_both(&f, name).await;
    f.stop().await;
    revived.shutdown().await;
}
