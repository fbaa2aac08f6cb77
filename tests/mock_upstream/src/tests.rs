//! Behaviour of the mock against real sockets on port 0.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

const LOCAL: &str = "127.0.0.1:0";

async fn start(cfg: MockConfig) -> MockHandle {
    spawn(LOCAL.parse().unwrap(), cfg).await.unwrap()
}

async fn connect(addr: SocketAddr) -> SendRequest<Full<Bytes>> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    send
}

async fn call(send: &mut SendRequest<Full<Bytes>>, req: Request<Full<Bytes>>) -> (Response<()>, Bytes) {
    let resp = send.send_request(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (Response::from_parts(parts, ()), body)
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path).header("host", "mock").body(Full::default()).unwrap()
}

fn post(path: &str, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    Request::post(path).header("host", "mock").body(Full::new(body.into())).unwrap()
}

/// Sends one raw HTTP/1.1 GET and returns everything the server writes until it closes.
async fn raw_get(addr: SocketAddr) -> std::io::Result<Vec<u8>> {
    let mut tcp = TcpStream::connect(addr).await?;
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: mock\r\n\r\n").await?;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut out)).await.expect("server should close")?;
    Ok(out)
}

#[tokio::test]
async fn plain_request_carries_name_and_identity_headers() {
    let mock = start(MockConfig::new("auth-blue")).await;
    let mut send = connect(mock.addr()).await;
    let (resp, body) = call(&mut send, get("/anything")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(body, "auth-blue\n");
    assert_eq!(resp.headers()["x-switchyard-mock"], "auth-blue");
    assert_eq!(resp.headers()["x-constitutional-hash"], "cdd01ef066bc6cf2");
    assert_eq!(resp.headers()["x-constitutional-compliance"], "0.99");
    assert_eq!(mock.requests(), 1);
    mock.shutdown().await;
}

#[tokio::test]
async fn absent_hash_and_compliance_omit_the_headers() {
    let cfg = MockConfig { hash: None, compliance: None, ..MockConfig::new("m") };
    let mock = start(cfg).await;
    let mut send = connect(mock.addr()).await;
    let (resp, _) = call(&mut send, get("/")).await;
    assert!(resp.headers().get("x-constitutional-hash").is_none());
    assert!(resp.headers().get("x-constitutional-compliance").is_none());
    mock.shutdown().await;
}

#[tokio::test]
async fn error_rate_fails_exactly_five_of_a_hundred() {
    let cfg = MockConfig { error_rate: 0.05, ..MockConfig::new("m") };
    let mock = start(cfg).await;
    let mut send = connect(mock.addr()).await;
    let mut errors = 0;
    for _ in 0..100 {
        let (resp, _) = call(&mut send, get("/")).await;
        errors += usize::from(resp.status() == StatusCode::INTERNAL_SERVER_ERROR);
    }
    assert_eq!(errors, 5);
    assert_eq!(mock.requests(), 100);
    mock.shutdown().await;
}

#[tokio::test]
async fn health_is_not_counted_and_ignores_errors() {
    let cfg = MockConfig { error_rate: 1.0, ..MockConfig::new("m") };
    let mock = start(cfg).await;
    let mut send = connect(mock.addr()).await;
    let (resp, body) = call(&mut send, get("/health")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(body, "ok");
    assert_eq!(resp.headers()["x-constitutional-hash"], "cdd01ef066bc6cf2");
    assert_eq!(mock.requests(), 0);
    mock.shutdown().await;
}

#[tokio::test]
async fn mock_patch_over_http_changes_behaviour() {
    let mock = start(MockConfig::new("m")).await;
    let mut send = connect(mock.addr()).await;
    let patch = r#"{"error_rate": 1.0, "hash": null, "latency_ms": 20}"#;
    let (resp, body) = call(&mut send, post("/__mock", patch)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let cfg: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(cfg["error_rate"], 1.0);
    assert!(cfg["hash"].is_null());
    let started = std::time::Instant::now();
    let (resp, _) = call(&mut send, get("/")).await;
    assert!(started.elapsed() >= Duration::from_millis(20));
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(resp.headers().get("x-constitutional-hash").is_none());
    assert_eq!(mock.requests(), 1);
    mock.shutdown().await;
}

#[tokio::test]
async fn unknown_patch_field_is_rejected() {
    let mock = start(MockConfig::new("m")).await;
    let mut send = connect(mock.addr()).await;
    let (resp, _) = call(&mut send, post("/__mock", r#"{"eror_rate": 1}"#)).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    mock.shutdown().await;
}

#[tokio::test]
async fn echo_reports_forwarded_headers_joined() {
    let mock = start(MockConfig::new("m")).await;
    let mut send = connect(mock.addr()).await;
    let req = Request::get("/__echo?x=1")
        .header("host", "mock")
        .header("x-forwarded-for", "10.0.0.1")
        .header("x-forwarded-for", "10.0.0.2")
        .body(Full::default())
        .unwrap();
    let (_, body) = call(&mut send, req).await;
    let echo: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(echo["method"], "GET");
    assert_eq!(echo["uri"], "/__echo?x=1");
    assert_eq!(echo["version"], "HTTP/1.1");
    assert_eq!(echo["headers"]["x-forwarded-for"], "10.0.0.1, 10.0.0.2");
    assert_eq!(mock.requests(), 1);
    mock.shutdown().await;
}

#[tokio::test]
async fn upload_counts_ten_mebibytes() {
    let mock = start(MockConfig::new("m")).await;
    let mut send = connect(mock.addr()).await;
    let body = Bytes::from(vec![7u8; 10 << 20]);
    let (resp, body) = call(&mut send, post("/__upload", body)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["bytes"], 10u64 << 20);
    mock.shutdown().await;
}

#[tokio::test]
async fn sleep_path_waits_the_requested_time() {
    let mock = start(MockConfig::new("m")).await;
    let mut send = connect(mock.addr()).await;
    let started = std::time::Instant::now();
    let (resp, _) = call(&mut send, get("/__sleep?ms=50")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(50));
    mock.shutdown().await;
}

#[tokio::test]
async fn upgrade_answers_101_and_echoes_bytes() {
    let mock = start(MockConfig::new("m")).await;
    let mut tcp = TcpStream::connect(mock.addr()).await.unwrap();
    tcp.write_all(b"GET /ws HTTP/1.1\r\nHost: mock\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        assert_eq!(tcp.read(&mut byte).await.unwrap(), 1, "closed before 101");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    tcp.write_all(b"ping-pong").await.unwrap();
    let mut echoed = [0u8; 9];
    tcp.read_exact(&mut echoed).await.unwrap();
    assert_eq!(&echoed, b"ping-pong");
    mock.shutdown().await;
}

#[tokio::test]
async fn hang_fault_never_answers() {
    let mock = start(MockConfig::new("m")).await;
    mock.set(MockPatch { fault: Some(Fault::Hang), ..MockPatch::default() });
    let mut send = connect(mock.addr()).await;
    let pending = send.send_request(get("/"));
    let res = tokio::time::timeout(Duration::from_millis(200), pending).await;
    assert!(res.is_err(), "a hanging upstream must not answer");
    mock.shutdown().await;
}

#[tokio::test]
async fn reset_fault_closes_without_a_response() {
    let mock = start(MockConfig::new("m")).await;
    mock.set(MockPatch { fault: Some(Fault::Reset), ..MockPatch::default() });
    match raw_get(mock.addr()).await {
        Ok(bytes) => assert!(bytes.is_empty(), "got {bytes:?}"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
    }
    mock.shutdown().await;
}

#[tokio::test]
async fn garbage_fault_writes_non_http_bytes() {
    let mock = start(MockConfig::new("m")).await;
    mock.set(MockPatch { fault: Some(Fault::Garbage), ..MockPatch::default() });
    let bytes = raw_get(mock.addr()).await.unwrap();
    assert_eq!(bytes, conn::GARBAGE);
    mock.shutdown().await;
}

#[tokio::test]
async fn close_after_response_sets_connection_close() {
    let mock = start(MockConfig::new("m")).await;
    mock.set(MockPatch { fault: Some(Fault::CloseAfterResponse), ..MockPatch::default() });
    let bytes = raw_get(mock.addr()).await.unwrap();
    let text = String::from_utf8(bytes).unwrap().to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 200"), "{text}");
    assert!(text.contains("connection: close"), "{text}");
    mock.shutdown().await;
}

#[tokio::test]
async fn h2c_prior_knowledge_is_served() {
    let mock = start(MockConfig::new("auth-green")).await;
    let tcp = TcpStream::connect(mock.addr()).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    let req = Request::get("http://mock/").body(Empty::<Bytes>::new()).unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.headers()["x-switchyard-mock"], "auth-green");
    mock.shutdown().await;
}

#[tokio::test]
async fn run_stops_when_shutdown_completes() {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(run(LOCAL.parse().unwrap(), MockConfig::new("m"), async {
        let _ = rx.await;
    }));
    tx.send(()).unwrap();
    let res = tokio::time::timeout(Duration::from_secs(5), server).await;
    assert!(res.unwrap().unwrap().is_ok());
}
