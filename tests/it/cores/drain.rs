//! Shutdown with requests in flight on both workers: every worker stops accepting, the requests
//! finish, and what is still running after `drain_timeout` is closed on both workers.

use super::support::*;
use crate::data_plane::support::*;
use crate::support::{read_to_eof, scrape_metric};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_the_requests_in_flight_on_both_workers() {
    let name = "cores_drain";
    let f = Fixture::builder(name).limits("drain_timeout = \"20s\"").threads(THREADS).start().await;
    let (slow, per) = in_flight_on_both(&f.app, name, f.addr, "/__sleep?ms=4000", 2).await;
    let n = slow.len() as u64;
    assert!(eventually_async(Duration::from_secs(10), || async { f.mocks.blue.requests() >= n }).await);
    let in_flight = scrape_metric(&f.app, "switchyard_in_flight_requests", &[("service", name)]).await;
    assert_eq!(in_flight, Some(n as f64), "all {n} requests ({per:?} per worker) are in flight when shutdown begins");
    let Fixture { mocks, _env, app, addr } = f;
    let started = Instant::now();
    let down = tokio::spawn(app.shutdown());
    // No worker accepts any more: while one socket is open, the kernel hands it some of these
    // (the workers close theirs a moment apart: each on its own thread).
    let refused = eventually_async(Duration::from_secs(3), || async {
        for _ in 0..20 {
            if TcpStream::connect(addr).await.is_ok() {
                return false;
            }
        }
        true
    })
    .await;
    assert!(refused, "a worker still accepts 3 s after shutdown began");
    assert!(!down.is_finished(), "shutdown returned with {n} requests in flight");
    for mut s in slow {
        assert_eq!(answer(&mut s).await.0, 200, "a request in flight completes ({per:?} per worker)");
    }
    tokio::time::timeout(Duration::from_secs(10), down).await.expect("shutdown ends once they finished").unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(15), "shutdown took {took:?}: it waited for the 20 s drain timeout");
    mocks.blue.shutdown().await;
    mocks.green.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_what_both_workers_still_serve_after_the_drain_timeout() {
    let name = "cores_drain_timeout";
    let f = Fixture::builder(name).limits("drain_timeout = \"300ms\"").threads(THREADS).start().await;
    let (stuck, per) = in_flight_on_both(&f.app, name, f.addr, "/__sleep?ms=30000", 2).await;
    let n = stuck.len() as u64;
    assert!(eventually_async(Duration::from_secs(10), || async { f.mocks.blue.requests() >= n }).await);
    let Fixture { mocks, _env, app, .. } = f;
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), app.shutdown()).await.expect("shutdown ends after the drain timeout");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(300), "shutdown took {took:?}, less than the drain timeout");
    for mut s in stuck {
        let (bytes, closed) = read_to_eof(&mut s, Duration::from_secs(5)).await;
        assert!(closed, "a connection is still open after shutdown ({per:?} per worker)");
        assert!(!bytes.starts_with(b"HTTP/1.1 200"), "a request past the drain timeout was answered");
    }
    mocks.blue.shutdown().await;
    mocks.green.shutdown().await;
}
