//! A response sent before the client finished its request body (RFC 9113 §8.1): HEADERS,
//! DATA(END_STREAM), RST_STREAM(NO_ERROR); DATA the client still sends on that stream gets
//! RST_STREAM(STREAM_CLOSED), never a connection-level GOAWAY.

use super::frames::*;
use crate::support::{Fixture, Mocks};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An upstream that answers every request as soon as its head has arrived, without reading the
/// body, then reads and discards whatever else comes until the proxy closes (nginx's way with a
/// request it refused early).
async fn early_upstream() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\n\r\nearly").await;
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// One try on a new connection: the outcome of the DATA frame sent after the early response.
async fn one_try(addr: SocketAddr) -> Result<(), String> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    open(&mut s).await;
    let block = header_block(&[(":method", "POST"), (":scheme", "http"), (":path", "/"), (":authority", "a")]);
    s.write_all(&frame(HEADERS, END_HEADERS, 1, &block)).await.unwrap();
    s.write_all(&frame(DATA, 0, 1, b"first")).await.unwrap();
    let limit = Duration::from_secs(5);
    let (seen, reset) = read_until(&mut s, limit, |f| f.stream == 1 && f.kind == RST_STREAM).await;
    let on_1: Vec<(u8, u8)> = seen.iter().filter(|f| f.stream == 1).map(|f| (f.kind, f.flags & END_STREAM)).collect();
    let want = [(HEADERS, 0), (DATA, END_STREAM), (RST_STREAM, 0)];
    if !reset || on_1 != want || seen.last().and_then(Frame::error_code) != Some(NO_ERROR) {
        return Err(format!("early response: {on_1:?} (want {want:?}), frames {seen:?}"));
    }
    s.write_all(&frame(DATA, 0, 1, b"second")).await.unwrap();
    let (seen, got) = read_until(&mut s, limit, |f| f.kind == GOAWAY || (f.stream == 1 && f.kind == RST_STREAM)).await;
    match seen.last() {
        Some(f) if got && f.kind == RST_STREAM && f.error_code() == Some(STREAM_CLOSED) => Ok(()),
        Some(f) if got => Err(format!("DATA after the reset got {f:?}")),
        _ => Err(format!("DATA after the reset was ignored: {seen:?}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_after_an_early_response_gets_stream_closed_in_100_of_100_tries() {
    let up = early_upstream().await;
    let pools =
        format!("blue = {{ endpoints = [\"{up}\"] }}\ngreen = {{ endpoints = [\"{up}\"], release = \"r1\" }}\n");
    let fx = Fixture::builder("pe_early").pools(Mocks::start("pe_early").await, &pools).start().await;
    let mut failures = Vec::new();
    for i in 0..100 {
        if let Err(e) = one_try(fx.addr).await {
            failures.push(format!("try {i}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{} of 100 tries failed:\n{}", failures.len(), failures.join("\n"));
    fx.stop().await;
}
