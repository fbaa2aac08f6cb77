//! Idle keep-alive client connections: they stay open for `limits.idle_timeout`,
//! not `header_read_timeout`, survive being parked (hyper's state freed while idle), and the
//! head timeout still bounds a request head, even one split across a park.
//!
//! Real sockets and real time: the proxy parks a connection after one grace period of idleness
//! (a quarter of `header_read_timeout`, 250 ms here), so waits of a few seconds cover many.
use crate::support::*;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: idle\r\n\r\n";

/// Reads one response head (and the mock's short body) and returns its status line.
async fn response<S: AsyncRead + Unpin>(s: &mut S) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(5);
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout_at(deadline, s.read(&mut chunk)).await.expect("response within 5 s").unwrap();
        assert!(n > 0, "closed before a response: {}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
    }
    // The mock answers with a small Content-Length body; give it a moment to arrive.
    let _ = tokio::time::timeout(Duration::from_millis(50), s.read(&mut chunk)).await;
    String::from_utf8_lossy(&buf).lines().next().unwrap_or_default().to_string()
}

/// Waits until the proxy closes `s` (EOF or reset) and returns how long that took.
async fn closed_within(s: &mut TcpStream, bound: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(bound, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await
    .ok()
    .map(|_| started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_outlives_the_header_read_timeout_and_is_reused() {
    let f = Fixture::builder("idle").control(FAST).limits("header_read_timeout = \"1s\"").start().await;
    let mut s = TcpStream::connect(f.addr).await.unwrap();
    s.write_all(REQUEST).await.unwrap();
    assert_eq!(response(&mut s).await, "HTTP/1.1 200 OK");
    // Three header read timeouts and a dozen grace periods: parked, and still open.
    tokio::time::sleep(Duration::from_secs(3)).await;
    s.write_all(REQUEST).await.unwrap();
    assert_eq!(response(&mut s).await, "HTTP/1.1 200 OK", "the idle connection was reused");
    // And again, right away (the connection is live, not parked).
    s.write_all(REQUEST).await.unwrap();
    assert_eq!(response(&mut s).await, "HTTP/1.1 200 OK");
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let f = Fixture::builder("idle")
        .control(FAST)
        .limits("header_read_timeout = \"1s\"\nidle_timeout = \"2s\"")
        .start()
        .await;
    let mut s = TcpStream::connect(f.addr).await.unwrap();
    s.write_all(REQUEST).await.unwrap();
    assert_eq!(response(&mut s).await, "HTTP/1.1 200 OK");
    let took = closed_within(&mut s, Duration::from_secs(10)).await.expect("closed within 10 s");
    // Closed within one grace period (250 ms) of the idle timeout, not at the head timeout.
    assert!(took >= Duration::from_millis(1700), "closed after {took:?}, before the idle timeout");
    assert!(took <= Duration::from_secs(4), "closed only after {took:?}");
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_and_a_head_split_across_a_park_are_served() {
    let f = Fixture::builder("idle").control(FAST).limits("header_read_timeout = \"1s\"").start().await;
    let mut s = TcpStream::connect(f.addr).await.unwrap();
    s.write_all(REQUEST).await.unwrap();
    assert_eq!(response(&mut s).await, "HTTP/1.1 200 OK");
    // Half a head, then silence for longer than two grace periods: the connection parks with
    // those bytes and must hand them to the next hyper connection.
    s.write_all(&REQUEST[..10]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    s.write_all(&REQUEST[10..]).await.unwrap();
    assert_eq!(response(&mut s).await, "HTTP/1.1 200 OK");
    let mut two = REQUEST.to_vec();
    two.extend_from_slice(REQUEST);
    s.write_all(&two).await.unwrap();
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(5);
    while text.matches("HTTP/1.1 200 OK").count() < 2 {
        let n = tokio::time::timeout_at(deadline, s.read(&mut buf)).await.expect("two responses").unwrap();
        assert!(n > 0, "closed after {text}");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_dribbled_across_parks_keeps_its_header_read_timeout() {
    let f = Fixture::builder("idle").control(FAST).limits("header_read_timeout = \"1s\"").start().await;
    let mut s = TcpStream::connect(f.addr).await.unwrap();
    s.write_all(REQUEST).await.unwrap();
    assert_eq!(response(&mut s).await, "HTTP/1.1 200 OK");
    // One byte of a head every 600 ms: each pause parks the connection, which must not restart
    // the head's clock.
    let started = Instant::now();
    let mut closed = false;
    for b in b"GET /slow HTTP/1.1\r\nHost: idle\r\n" {
        if s.write_all(&[*b]).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(600)).await;
        if started.elapsed() > Duration::from_secs(4) {
            break;
        }
    }
    if !closed {
        closed = closed_within(&mut s, Duration::from_millis(100)).await.is_some();
    }
    assert!(closed, "a head dribbled for {:?} was not cut off", started.elapsed());
    assert!(started.elapsed() >= Duration::from_millis(700), "cut off too early: {:?}", started.elapsed());
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_keep_alive_connection_is_served_right_after_the_handshake_and_after_parking() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap().self_signed(&key).unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let mocks = Mocks::start("idletls").await;
    let body = format!(
        "[limits]\nheader_read_timeout = \"1s\"\n[[services]]\nname = \"idletls\"\nlisten = \"127.0.0.1:0\"\n{}\
         tls = {{ cert = \"{}\", key = \"{}\" }}\n",
        mocks.pools("r1"),
        cert_path.display(),
        key_path.display()
    );
    let f = Fixture::launch(mocks, "idletls", FAST, &body).await;
    switchyard::tls::install_provider();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).unwrap();
    let mut cfg = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = TcpStream::connect(f.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut s = connector.connect(name, tcp).await.unwrap();
    // The request follows the handshake at once: the server's TLS layer may already hold it.
    s.write_all(b"GET / HTTP/1.1\r\nHost: idletls\r\n\r\n").await.unwrap();
    assert_eq!(response(&mut s).await, "HTTP/1.1 200 OK");
    tokio::time::sleep(Duration::from_secs(3)).await;
    s.write_all(b"GET / HTTP/1.1\r\nHost: idletls\r\n\r\n").await.unwrap();
    assert_eq!(response(&mut s).await, "HTTP/1.1 200 OK", "the parked TLS connection was reused");
    f.stop().await;
}
