//! What bounds a service is one count for the whole process, not one per worker: the retry
//! budget and the per-endpoint in-flight cap hold across both workers' connections.

use super::support::*;
use crate::data_plane::support::*;
use crate::support::scrape_metric;
use mock_upstream::{Fault, MockPatch};
use std::time::Duration;
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_budget_is_spent_once_across_both_workers() {
    let name = "cores_budget";
    // No ratio and a floor of one retry a second: 10 retries over the 10 s window, per service.
    // Green resets every request; ejection and probes stay out of the way (no rescue).
    let service = "green_weight = 100\nretry = { budget = 0.0, min_per_second = 1 }\nhealth = { enabled = false }";
    let f = Fixture::builder(name).limits("eject_after = 1000").service(service).threads(THREADS).start().await;
    f.mocks.green.set(MockPatch { fault: Some(Fault::Reset), ..Default::default() });
    let started = Instant::now();
    // More failed green requests on each worker than the whole budget: a budget per worker would
    // have retried 20 of them.
    let (all, per) = spread(&f.app, name, 12, async || fresh_get(f.addr, &[]).await).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(9), "{took:?}: longer than the budget's 10 s window, nothing to judge");
    let blue = format!("{name}-blue");
    for (status, who) in &all {
        assert!((*status == 200 && *who == blue) || *status == 502, "{status} from {who:?}");
    }
    let retried = all.iter().filter(|a| a.0 == 200).count();
    assert_eq!(retried, 10, "retried on blue, of {} failed green requests ({per:?} per worker)", all.len());
    let counted = scrape_metric(&f.app, "switchyard_retries_total", &[("service", name)]).await;
    assert_eq!(counted, Some(10.0));
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_flight_cap_of_an_endpoint_counts_both_workers_requests() {
    let name = "cores_cap";
    // The held requests are closed at shutdown rather than waited for.
    let limits = "max_in_flight_per_endpoint = 2\ndrain_timeout = \"100ms\"";
    let f = Fixture::builder(name).limits(limits).threads(THREADS).start().await;
    // Two requests hold blue's only endpoint, on one worker or one on each: either way a cap
    // per worker would leave room on at least one of them.
    let _held = [send_only(f.addr, "/__sleep?ms=30000").await, send_only(f.addr, "/__sleep?ms=30000").await];
    assert!(eventually_async(Duration::from_secs(10), || async { f.mocks.blue.requests() >= 2 }).await);
    let (shed, per) = spread(&f.app, name, 3, async || fresh_get(f.addr, &[]).await).await;
    assert!(shed.iter().all(|a| a.0 == 503), "admitted past the cap ({per:?} connections per worker): {shed:?}");
    assert_eq!(f.mocks.blue.requests(), 2, "nothing past the cap reached blue");
    f.stop().await;
}

/// One GET on a fresh connection, answered within 5 s or reported as status 0.
async fn get_within(addr: std::net::SocketAddr) -> (u16, String) {
    tokio::time::timeout(Duration::from_secs(5), fresh_get(addr, &[])).await.unwrap_or((0, String::new()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_limit_is_the_listeners_and_a_free_slot_serves_either_worker() {
    let name = "cores_conns";
    let f = Fixture::builder(name).limits("max_connections = 1").threads(THREADS).start().await;
    // One slot for the listener: whichever worker's socket the kernel picks, its connection is
    // served once the slot is free (a worker waiting in accept with the only slot while the
    // connection sits on the other worker's socket would leave it there).
    let (answers, per) = spread(&f.app, name, 3, async || get_within(f.addr).await).await;
    assert!(answers.iter().all(|a| a.0 == 200), "{per:?} connections per worker: {answers:?}");

    // While one kept-alive connection holds the slot, no worker serves another.
    let mut held = tokio::net::TcpStream::connect(f.addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut held, b"GET / HTTP/1.1\r\nHost: cores\r\n\r\n").await.unwrap();
    assert_eq!(crate::support::read_response(&mut held).await.map(|r| r.status), Some(200));
    let waiting: Vec<_> = (0..4).map(|_| tokio::spawn(get_within(f.addr))).collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(waiting.iter().all(|w| !w.is_finished()), "a connection was served past the limit of 1");
    drop(held);
    for w in waiting {
        assert_eq!(w.await.unwrap().0, 200, "a waiting connection is served once the slot frees");
    }
    f.stop().await;
}
