//! Structured shutdown: with an upgrade tunnel open, idle keep-alive
//! connections and traffic just served, `App::shutdown` returns within the drain timeout and
//! leaves no task of its own running. Its own test binary, so the runtime's task count belongs
//! to this test alone.

use crate::support::Fixture as Fx;
use crate::support::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

fn alive() -> usize {
    tokio::runtime::Handle::current().metrics().num_alive_tasks()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_what_is_left_after_the_drain_timeout_and_leaves_no_task() {
    let name = "inf_shutdown";
    let mocks = Mocks::start(name).await;
    let before_app = alive();
    let body = format!(
        "[limits]\ndrain_timeout = \"300ms\"\n[[services]]\nname = \"{name}\"\nlisten = \"127.0.0.1:0\"\n\
         green_weight = 50\nhealth = {{ interval = \"50ms\" }}\n{}",
        mocks.pools("r1")
    );
    let Fx { mocks, _env, app, addr } = Fx::launch(mocks, name, FAST, &body).await;
    let results = burst(addr, 200, 4).await;
    assert!(results.iter().all(|r| r.0 == 200));
    // A WebSocket-style tunnel, proven open by an echo through it.
    let mut tunnel = TcpStream::connect(addr).await.unwrap();
    tunnel.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 1024];
    let n = tunnel.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 101"));
    tunnel.write_all(b"ping").await.unwrap();
    let mut echo = [0u8; 4];
    tunnel.read_exact(&mut echo).await.unwrap();
    assert_eq!(&echo, b"ping");
    // An idle keep-alive connection that never sends another request.
    let idle = TcpStream::connect(addr).await.unwrap();
    assert!(alive() > before_app, "the app runs tasks");

    let started = Instant::now();
    app.shutdown().await;
    let took = started.elapsed();
    println!("shutdown took {took:?}");
    assert!(took < Duration::from_secs(3), "shutdown waited {took:?} with a 300 ms drain timeout");
    // The tunnel was closed by the proxy, not left to the client.
    let closed = tokio::time::timeout(Duration::from_secs(2), tunnel.read(&mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "tunnel still open after shutdown: {closed:?}");
    let ok = eventually(Duration::from_secs(5), || alive() <= before_app).await;
    assert!(ok, "{} tasks still alive after shutdown (the mocks alone run {before_app})", alive());
    drop(idle);
    mocks.blue.shutdown().await;
    mocks.green.shutdown().await;
}
