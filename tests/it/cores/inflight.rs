//! Candidate attempts on both workers: a rollback's abandon signal (sent from the control loop
//! on the main runtime) rescues the requests waiting on green on every worker, and hedging to
//! blue works on both workers' timers.

use super::support::*;
use crate::data_plane::support::*;
use crate::support::{admin_post, read_response};
use mock_upstream::{Fault, MockPatch};
use std::time::Duration;
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_rescues_the_candidate_requests_waiting_on_both_workers() {
    let name = "cores_rescue";
    let f = Fixture::builder(name).service("green_weight = 100").threads(THREADS).start().await;
    f.mocks.green.set(MockPatch { fault: Some(Fault::Hang), ..Default::default() });
    let mut at = Attribution::new(&f.app, name).await;
    let waiting = in_flight_on_both(&mut at, f.addr, "/", 3).await;
    let n = waiting.len() as u64;
    assert!(eventually_async(Duration::from_secs(5), || async { f.mocks.green.requests() >= n }).await);
    let t = Instant::now();
    let (code, _) = admin_post(&f.app, &format!("/services/{name}/rollback"), "").await;
    assert_eq!(code, 200);
    let blue = format!("{name}-blue");
    for (mut s, worker) in waiting {
        let r =
            read_response(&mut s).await.unwrap_or_else(|| panic!("a request on worker {} was not rescued", worker + 1));
        assert_eq!((r.status, r.header("x-switchyard-mock")), (200, Some(blue.as_str())), "worker {}", worker + 1);
    }
    let rescued = t.elapsed();
    // Without the rescue they would wait for `response_timeout` (30 s).
    assert!(rescued < Duration::from_secs(2), "{n} waiting requests answered {rescued:?} after the rollback call");
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
    f.mocks.green.set(MockPatch { latency_ms: Some(1000), ..Default::default() });
    let mut at = Attribution::new(&f.app, name).await;
    let seen = at
        .on_both(4, async || {
            let t = Instant::now();
            let answer = fresh_get(f.addr, &[]).await;
            (answer, t.elapsed())
        })
        .await;
    let blue = format!("{name}-blue");
    for (worker, answers) in seen.iter().enumerate() {
        for ((status, who), took) in answers {
            assert_eq!((*status, who.as_str()), (200, blue.as_str()), "worker {}", worker + 1);
            assert!(*took < Duration::from_millis(700), "worker {} waited {took:?} for a 1 s green", worker + 1);
        }
    }
    f.stop().await;
}
