//! Shutdown with requests in flight on both workers: every worker stops accepting, the requests
//! finish, and what is still running after `drain_timeout` is closed on both workers.

use super::support::*;
use crate::data_plane::support::*;
use crate::support::{read_response, read_to_eof};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_the_requests_in_flight_on_both_workers() {
    let name = "cores_drain";
    let f = Fixture::builder(name).limits("drain_timeout = \"10s\"").threads(THREADS).start().await;
    let mut at = Attribution::new(&f.app, name).await;
    let slow = in_flight_on_both(&mut at, f.addr, "/__sleep?ms=1500", 2).await;
    let n = slow.len() as u64;
    assert!(eventually_async(Duration::from_secs(5), || async { f.mocks.blue.requests() >= n }).await);
    let Fixture { mocks, _env, app, addr } = f;
    let started = Instant::now();
    let down = tokio::spawn(app.shutdown());
    // No worker accepts any more: with one socket left open, some of these would connect.
    let closed = eventually_async(Duration::from_secs(2), || async { TcpStream::connect(addr).await.is_err() }).await;
    assert!(closed, "the port still accepts 2 s after shutdown began");
    for _ in 0..20 {
        assert!(TcpStream::connect(addr).await.is_err(), "a worker still accepts during the drain");
    }
    assert!(!down.is_finished(), "shutdown returned with {n} requests in flight");
    for (mut s, worker) in slow {
        let r = read_response(&mut s).await;
        assert_eq!(r.map(|r| r.status), Some(200), "the request in flight on worker {} completes", worker + 1);
    }
    tokio::time::timeout(Duration::from_secs(5), down).await.expect("shutdown ends once they finished").unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}: it waited for the 10 s drain timeout");
    mocks.blue.shutdown().await;
    mocks.green.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_what_both_workers_still_serve_after_the_drain_timeout() {
    let name = "cores_drain_timeout";
    let f = Fixture::builder(name).limits("drain_timeout = \"300ms\"").threads(THREADS).start().await;
    let mut at = Attribution::new(&f.app, name).await;
    let stuck = in_flight_on_both(&mut at, f.addr, "/__sleep?ms=20000", 2).await;
    let n = stuck.len() as u64;
    assert!(eventually_async(Duration::from_secs(5), || async { f.mocks.blue.requests() >= n }).await);
    let Fixture { mocks, _env, app, .. } = f;
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), app.shutdown()).await.expect("shutdown ends after the drain timeout");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(300), "shutdown took {took:?}, less than the drain timeout");
    for (mut s, worker) in stuck {
        let (bytes, closed) = read_to_eof(&mut s, Duration::from_secs(2)).await;
        assert!(closed, "the connection on worker {} is still open after shutdown", worker + 1);
        assert!(bytes.is_empty() || !bytes.starts_with(b"HTTP/1.1 200"), "worker {} answered 200", worker + 1);
    }
    mocks.blue.shutdown().await;
    mocks.green.shutdown().await;
}
