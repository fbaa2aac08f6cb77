//! Candidate attempts on both workers: a rollback's abandon signal (sent from the control loop
//! on the main runtime) rescues the requests waiting on green on every worker, and hedging to
//! blue works on both workers' timers.

use super::support::*;
use crate::data_plane::support::*;
use crate::support::admin_post;
use mock_upstream::{Fault, MockPatch};
use std::time::Duration;
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_rescues_the_candidate_requests_waiting_on_both_workers() {
    let name = "cores_rescue";
    let f = Fixture::builder(name)
        .limits("response_timeout = \"30s\"")
        .service("green_weight = 100")
        .threads(THREADS)
        .start()
        .await;
    f.mocks.green.set(MockPatch { fault: Some(Fault::Hang), ..Default::default() });
    let (waiting, per) = in_flight_on_both(&f.app, name, f.addr, "/", 3).await;
    let n = waiting.len() as u64;
    assert!(eventually_async(Duration::from_secs(10), || async { f.mocks.green.requests() >= n }).await);
    let t = Instant::now();
    let (code, _) = admin_post(&f.app, &format!("/services/{name}/rollback"), "").await;
    assert_eq!(code, 200);
    let blue = format!("{name}-blue");
    for mut s in waiting {
        assert_eq!(answer(&mut s).await, (200, blue.clone()), "{per:?} requests waiting per worker");
    }
    let rescued = t.elapsed();
    println!("{n} waiting requests ({per:?} per worker) answered by blue {rescued:?} after the rollback call");
    // Without the rescue they would wait for `response_timeout` (30 s); generous for a loaded box.
    assert!(rescued < Duration::from_secs(10), "{n} waiting requests answered {rescued:?} after the rollback call");
    assert_eq!(f.mocks.blue.requests(), n, "each waiting request was re-sent to blue once");
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_green_is_hedged_to_blue_on_both_workers() {
    let name = "cores_hedge";
    let f = Fixture::builder(name)
        .service("green_weight = 100\nhedge = { after = \"50ms\" }")
        .threads(THREADS)
        .start()
        .await;
    f.mocks.green.set(MockPatch { latency_ms: Some(3000), ..Default::default() });
    let (seen, per) = spread(&f.app, name, 4, async || {
        let t = Instant::now();
        let answer = fresh_get(f.addr, &[]).await;
        (answer, t.elapsed())
    })
    .await;
    let blue = format!("{name}-blue");
    for ((status, who), took) in &seen {
        assert_eq!((*status, who.as_str()), (200, blue.as_str()), "connections per worker {per:?}");
        // Green answers after 3 s, the hedge goes after 50 ms (the bound is for a loaded box).
        assert!(*took < Duration::from_secs(2), "waited {took:?} for a 3 s green ({per:?} per worker)");
    }
    f.stop().await;
}
