//! What goes over the wire: header rewriting, streamed bodies, Upgrade tunnels, malformed input.

use super::support::*;
use crate::support::{client, raw_exchange, read_head, read_response, read_to_eof};
use bytes::Bytes;
use mock_upstream::{Fault, MockPatch};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_headers_are_stripped_and_forwarded_headers_added() {
    let f = Fixture::builder("dp_hop").start().await;
    let request = "GET /__echo HTTP/1.1\r\nHost: app.example\r\nConnection: x-secret, keep-alive\r\n\
                   x-secret: 1\r\nTE: trailers\r\nKeep-Alive: timeout=5\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\n\
                   X-Forwarded-For: 10.1.2.3\r\nx-keep: yes\r\n\r\n";
    let (_s, r) = raw_exchange(f.addr, request).await;
    let r = r.expect("a response");
    assert_eq!(r.status, 200);
    let echo: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let h = &echo["headers"];
    for gone in ["connection", "x-secret", "te", "keep-alive", "proxy-authorization"] {
        assert!(h.get(gone).is_none(), "{gone} reached the upstream: {h:#}");
    }
    assert_eq!(h["x-keep"], "yes");
    assert_eq!(h["host"], "app.example", "Host is preserved");
    assert_eq!(h["x-forwarded-for"], "10.1.2.3, 127.0.0.1", "the peer is appended");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], "app.example");
    assert!(h["via"].as_str().is_some_and(|v| v.contains("switchyard")), "{h:#}");
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_incoming_forwarded_for_line_is_kept_in_the_chain() {
    let f = Fixture::builder("dp_xff").start().await;
    let request = "GET /__echo HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.0.0.1\r\n\
                   X-Forwarded-For: 10.0.0.2, 10.0.0.3\r\n\r\n";
    let (_s, r) = raw_exchange(f.addr, request).await;
    let echo: serde_json::Value = serde_json::from_slice(&r.expect("a response").body).unwrap();
    assert_eq!(echo["headers"]["x-forwarded-for"], "10.0.0.1, 10.0.0.2, 10.0.0.3, 127.0.0.1");
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_connection_close_does_not_reach_the_client() {
    let f = Fixture::builder("dp_hopresp").start().await;
    f.mocks.blue.set(MockPatch { fault: Some(Fault::CloseAfterResponse), ..Default::default() });
    let mut s = TcpStream::connect(f.addr).await.unwrap();
    for i in 0..3 {
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let r = read_response(&mut s).await.unwrap_or_else(|| panic!("response {i} on the same connection"));
        assert_eq!(r.status, 200);
        assert!(r.header("connection").is_none(), "upstream's Connection leaked: {:?}", r.headers);
    }
    f.stop().await;
}

/// 256 MiB (1 GiB adds only run time): generated 1 MiB at a time, never held in memory at once.
const UPLOAD: u64 = 256 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_256_mib_upload_streams_through_intact() {
    let f = Fixture::builder("dp_upload").start().await;
    let chunk = Bytes::from(vec![0x5a; 1 << 20]);
    let chunks = futures_util::stream::iter((0..UPLOAD >> 20).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
    let c = reqwest::Client::builder().timeout(Duration::from_secs(180)).build().unwrap();
    let r = c
        .post(format!("http://{}/__upload", f.addr))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .expect("upload completes");
    assert_eq!(r.status().as_u16(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["bytes"].as_u64(), Some(UPLOAD));
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_is_tunnelled_both_ways() {
    let f = Fixture::builder("dp_ws").start().await;
    let mut s = TcpStream::connect(f.addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n").await.unwrap();
    let (status, headers) = read_head(&mut s).await.expect("a response head");
    assert_eq!(status, 101, "{headers:?}");
    assert!(headers.iter().any(|(k, v)| k == "upgrade" && v == "websocket"), "{headers:?}");
    for msg in [&b"hello switchyard"[..], &[0u8, 1, 2, 255, 254][..]] {
        s.write_all(msg).await.unwrap();
        let mut back = vec![0u8; msg.len()];
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut back)).await.expect("echo in time").unwrap();
        assert_eq!(back, msg);
    }
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_request_gets_400_and_a_closed_connection_and_nothing_else_breaks() {
    let f = Fixture::builder("dp_garbage").start().await;
    let mut s = TcpStream::connect(f.addr).await.unwrap();
    s.write_all(b"\x01\x02 NOT HTTP \xff\r\n\r\n").await.unwrap();
    let (bytes, eof) = read_to_eof(&mut s, Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 400"), "got {text:?}");
    assert!(eof, "the connection must be closed");
    assert_eq!(get_with(&client(), f.addr, "/", &[]).await.0, 200, "the listener still serves");
    f.stop().await;
}
