//! `Host` on HTTP/1.1 requests, and the `Via` the proxy adds.

use crate::support::{raw_exchange, read_response, Fixture};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http11_without_host_gets_400_at_once_and_reaches_no_upstream() {
    let fx = Fixture::builder("pe_host").start().await;
    // A declared body that never comes: refused at once, not after waiting for it. The
    // socket stays open for writing, so only the proxy can end the wait.
    for req in ["POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n", "GET / HTTP/1.1\r\n\r\n"] {
        let mut s = TcpStream::connect(fx.addr).await.unwrap();
        let t = Instant::now();
        s.write_all(req.as_bytes()).await.unwrap();
        let r = read_response(&mut s).await.unwrap_or_else(|| panic!("no response to {req:?}"));
        assert_eq!(r.status, 400, "{req:?}: {r:?}");
        assert!(t.elapsed() < Duration::from_secs(2), "{req:?}: answered after {:?}", t.elapsed());
        assert!(String::from_utf8_lossy(&r.body).contains("without Host"), "{r:?}");
        assert_eq!(r.header("connection"), Some("close"));
    }
    assert_eq!(fx.mocks.blue.requests() + fx.mocks.green.requests(), 0, "an upstream saw a refused request");
    // HTTP/1.0 had no Host rule: still served.
    let (_, r) = raw_exchange(fx.addr, "GET / HTTP/1.0\r\n\r\n").await;
    assert_eq!(r.map(|r| r.status), Some(200));
    assert_eq!(fx.mocks.blue.requests(), 1);
    fx.stop().await;
}

/// The `Via` header the upstream saw on one echoed request.
async fn via_seen(fx: &Fixture, extra: &str) -> serde_json::Value {
    let req = format!("GET /__echo HTTP/1.1\r\nHost: a\r\n{extra}Connection: close\r\n\r\n");
    let (_, r) = raw_exchange(fx.addr, &req).await;
    let r = r.expect("a response");
    assert_eq!(r.status, 200);
    let echo: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    echo["headers"]["via"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn via_is_sent_by_default_and_proxy_via_false_leaves_it_out() {
    let on = Fixture::builder("pe_via_on").start().await;
    assert_eq!(via_seen(&on, "").await, "1.1 switchyard");
    on.stop().await;
    let off = Fixture::builder("pe_via_off").limits("[proxy]\nvia = false").start().await;
    assert_eq!(via_seen(&off, "").await, serde_json::Value::Null, "no Via with via = false");
    assert_eq!(via_seen(&off, "Via: 1.1 edge\r\n").await, "1.1 edge", "a client's Via is forwarded as it was");
    off.stop().await;
}
