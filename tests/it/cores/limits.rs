//! What bounds a service is one count for the whole process, not one per worker: the retry
//! budget and the per-endpoint in-flight cap hold across both workers' connections.

use super::support::*;
use crate::data_plane::support::*;
use crate::support::scrape_metric;
use mock_upstream::{Fault, MockPatch};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_budget_is_spent_once_across_both_workers() {
    let name = "cores_budget";
    // No ratio and a floor of one retry a second: 10 retries over the 10 s window, per service.
    // Green resets every request; ejection and probes stay out of the way (no rescue).
    let service = "green_weight = 100\nretry = { budget = 0.0, min_per_second = 1 }\nhealth = { enabled = false }";
    let f = Fixture::builder(name).limits("eject_after = 1000").service(service).threads(THREADS).start().await;
    f.mocks.green.set(MockPatch { fault: Some(Fault::Reset), ..Default::default() });
    let mut at = Attribution::new(&f.app, name).await;
    // More failed green requests on each worker than the whole budget: a budget per worker would
    // have retried 20 of them.
    let seen = at.on_both(12, async || fresh_get(f.addr, &[]).await).await;
    let blue = format!("{name}-blue");
    let all: Vec<&(u16, String)> = seen.iter().flatten().collect();
    for (status, who) in &all {
        assert!((*status == 200 && *who == blue) || *status == 502, "{status} from {who:?}");
    }
    let retried = all.iter().filter(|a| a.0 == 200).count();
    assert_eq!(
        retried,
        10,
        "retried on blue, of {} failed green requests ({} / {} per worker)",
        all.len(),
        seen[0].len(),
        seen[1].len()
    );
    let counted = scrape_metric(&f.app, "switchyard_retries_total", &[("service", name)]).await;
    assert_eq!(counted, Some(10.0));
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_flight_cap_of_an_endpoint_counts_both_workers_requests() {
    let name = "cores_cap";
    let f = Fixture::builder(name).limits("max_in_flight_per_endpoint = 2").threads(THREADS).start().await;
    // Two requests hold blue's only endpoint, on one worker or one on each: either way a cap
    // per worker would leave room on at least one of them.
    let slow = [send_only(f.addr, "/__sleep?ms=3000").await, send_only(f.addr, "/__sleep?ms=3000").await];
    assert!(eventually_async(Duration::from_secs(5), || async { f.mocks.blue.requests() >= 2 }).await);
    let mut at = Attribution::new(&f.app, name).await;
    let shed = at.on_both(3, async || fresh_get(f.addr, &[]).await).await;
    for (worker, answers) in shed.iter().enumerate() {
        assert!(answers.iter().all(|a| a.0 == 503), "worker {} admitted past the cap: {answers:?}", worker + 1);
    }
    assert_eq!(f.mocks.blue.requests(), 2, "nothing past the cap reached blue");
    for mut s in slow {
        let r = crate::support::read_response(&mut s).await.expect("the held request is answered");
        assert_eq!(r.status, 200);
    }
    // The slots are free again, for both workers.
    let mut at = Attribution::new(&f.app, name).await;
    let served = at.on_both(2, async || fresh_get(f.addr, &[]).await).await;
    assert!(served.iter().flatten().all(|a| a.0 == 200), "{served:?}");
    f.stop().await;
}
