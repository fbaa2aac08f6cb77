//! Upstream keep-alive: requests share pooled connections, and a pooled connection the upstream
//! has closed is never the reason a request fails. The upstream here is a raw HTTP/1.1 server
//! that counts the connections it accepts, so reuse is observed on the upstream's side.

use super::support::*;
use crate::support::{client, Mocks};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves `GET` with `200 ok`, `HEAD` with the same head and no body, and paths ending in
/// `/204` with `204 No Content`; counts accepted connections that carried a request to a
/// path under `/pool` (health probes go elsewhere). `close_after_one`: the upstream closes every
/// connection right after its first response, without announcing it (`Connection: close`), as
/// an upstream whose keep-alive timeout just fired does.
pub(crate) async fn counting_upstream(close_after_one: bool) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let conns = Arc::new(AtomicUsize::new(0));
    let counter = conns.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut counted = false;
                loop {
                    let mut chunk = [0u8; 4096];
                    // Bounded: a request head must arrive within 5 s or the connection is dropped.
                    let n = match tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk)).await {
                        Ok(Ok(n)) if n > 0 => n,
                        _ => return,
                    };
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_string();
                        buf.drain(..end + 4);
                        if !counted && head.split(' ').nth(1).is_some_and(|p| p.starts_with("/pool")) {
                            counted = true;
                            counter.fetch_add(1, Ordering::SeqCst);
                        }
                        let resp: &[u8] = if head.starts_with("HEAD ") {
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-switchyard-mock: raw\r\n\r\n"
                        } else if head.split(' ').nth(1).is_some_and(|p| p.ends_with("/204")) {
                            b"HTTP/1.1 204 No Content\r\nx-switchyard-mock: raw\r\n\r\n"
                        } else {
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-switchyard-mock: raw\r\n\r\nok"
                        };
                        if s.write_all(resp).await.is_err() || close_after_one {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, conns)
}

async fn fixture(name: &str, upstream: SocketAddr) -> Fixture {
    let mocks = Mocks::start(name).await;
    let pools = format!(
        "blue = {{ endpoints = [\"{upstream}\"] }}\ngreen = {{ endpoints = [\"{}\"], release = \"r1\" }}",
        mocks.green.addr()
    );
    Fixture::builder(name).pools(mocks, &pools).start().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_requests_reuse_one_upstream_connection() {
    let (up, conns) = counting_upstream(false).await;
    let f = fixture("dp_pool_reuse", up).await;
    let c = client();
    for i in 0..50 {
        let (status, who) = get_with(&c, f.addr, &format!("/pool/{i}"), &[]).await;
        assert_eq!((status, who.as_str()), (200, "raw"), "request {i}");
    }
    assert_eq!(conns.load(Ordering::SeqCst), 1, "50 sequential requests should share one upstream connection");
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_open_no_more_connections_than_their_concurrency() {
    let (up, conns) = counting_upstream(false).await;
    let f = fixture("dp_pool_conc", up).await;
    for round in 0..5 {
        let mut tasks = Vec::new();
        for i in 0..8 {
            let addr = f.addr;
            tasks.push(tokio::spawn(async move {
                // One client per task: eight client connections in parallel.
                get_with(&client(), addr, &format!("/pool/{round}/{i}"), &[]).await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().0, 200);
        }
    }
    let n = conns.load(Ordering::SeqCst);
    assert!((1..=8).contains(&n), "40 requests, 8 at a time, used {n} upstream connections (expected 1..=8)");
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooled_connection_the_upstream_closed_never_fails_a_request() {
    let (up, conns) = counting_upstream(true).await;
    let f = fixture("dp_pool_stale", up).await;
    let c = client();
    for i in 0..60 {
        let (status, who) = get_with(&c, f.addr, &format!("/pool/{i}"), &[]).await;
        assert_eq!((status, who.as_str()), (200, "raw"), "request {i} after the upstream closed the previous one");
        // Vary the gap so some requests find the closed connection already noticed and some
        // race the close.
        if i % 3 == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    assert_eq!(conns.load(Ordering::SeqCst), 60, "every request needed a new connection");
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodiless_responses_keep_their_connection_reusable() {
    // HEAD, 204: hyper never polls an empty body, so the exchange ends when the body is dropped.
    let (up, conns) = counting_upstream(false).await;
    let f = fixture("dp_pool_bodiless", up).await;
    let c = client();
    for i in 0..30 {
        let r = match i % 3 {
            0 => c.head(format!("http://{}/pool/{i}", f.addr)).send().await.unwrap(),
            1 => c.get(format!("http://{}/pool/{i}/204", f.addr)).send().await.unwrap(),
            _ => c.get(format!("http://{}/pool/{i}", f.addr)).send().await.unwrap(),
        };
        let want = if i % 3 == 1 { 204 } else { 200 };
        assert_eq!(r.status().as_u16(), want, "request {i}");
        r.bytes().await.unwrap();
    }
    assert_eq!(conns.load(Ordering::SeqCst), 1, "HEAD, 204 and GET alternating should share one upstream connection");
    f.stop().await;
}
