//! A 64 MiB upload to a green that refuses connections is retried on blue without being
//! buffered ahead of the first attempt. Its own test binary, so the process's
//! peak RSS (`VmHWM`) belongs to this one upload.

use crate::support::Fixture as Fx;
use crate::support::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MIB: usize = 1 << 20;
const SIZE: usize = 64 * MIB;

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_64_mib_upload_is_retried_on_blue_after_a_green_connect_failure_without_buffering() {
    let name = "inf_upload";
    let mocks = Mocks::start(name).await;
    let dead = free_port();
    let body = format!(
        "[[services]]\nname = \"{name}\"\nlisten = \"127.0.0.1:0\"\ngreen_weight = 100\n\
         blue = {{ endpoints = [\"{}\"] }}\ngreen = {{ endpoints = [\"127.0.0.1:{dead}\"] }}\n",
        mocks.blue.addr()
    );
    let fx = Fx::launch(mocks, name, "", &body).await;
    let before = peak_rss_kib();
    // A raw client writing the same 1 MiB buffer 64 times: the client holds 1 MiB, not 64.
    let mut s = TcpStream::connect(fx.addr).await.unwrap();
    let head = format!("POST /__upload HTTP/1.1\r\nHost: a\r\nContent-Length: {SIZE}\r\nConnection: close\r\n\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b'x'; MIB];
    let (mut rd, mut wr) = s.into_split();
    let writer = tokio::spawn(async move {
        for _ in 0..SIZE / MIB {
            wr.write_all(&chunk).await.unwrap();
        }
        wr
    });
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), rd.read_to_end(&mut answer)).await.unwrap().unwrap();
    let _wr = writer.await.unwrap();
    let after = peak_rss_kib();
    let text = String::from_utf8_lossy(&answer);
    println!("64 MiB upload: peak RSS {before} KiB before, {after} KiB after (+{} KiB)", after - before);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains(&format!("\"bytes\":{SIZE}")), "blue received all of it: {text}");
    assert!(text.contains(&format!("{name}-blue")), "{text}");
    // Buffering the body ahead of the first attempt would add 64 MiB; streaming adds a few.
    assert!(after - before < 16 * 1024, "peak RSS grew by {} KiB", after - before);
    fx.stop().await;
}
