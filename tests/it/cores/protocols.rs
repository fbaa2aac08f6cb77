//! What a connection spawns stays on its worker and works there: HTTP/2 streams (hyper spawns one
//! task per stream) and upgrade tunnels, on both workers.

use super::support::*;
use crate::data_plane::support::*;
use reqwest::Version;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_streams_and_upgrade_tunnels_work_on_both_workers() {
    let name = "cores_proto";
    let f = Fixture::builder(name).threads(THREADS).start().await;
    // A client per call: one h2c connection each, three concurrent streams on it.
    let (h2, per) = spread(&f.app, name, 2, async || {
        let c = reqwest::Client::builder().http2_prior_knowledge().timeout(Duration::from_secs(10)).build().unwrap();
        let url = format!("http://{}/", f.addr);
        let streams = (0..3).map(|_| c.get(&url).send());
        let answers = futures_util::future::join_all(streams).await;
        answers.into_iter().map(|r| r.map(|r| (r.status().as_u16(), r.version()))).collect::<Vec<_>>()
    })
    .await;
    for r in h2.iter().flatten() {
        assert_eq!(r.as_ref().ok(), Some(&(200, Version::HTTP_2)), "{per:?} connections per worker: {r:?}");
    }

    let (tunnels, per) = spread(&f.app, name, 2, async || {
        let mut s = TcpStream::connect(f.addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await.unwrap().unwrap();
        let switched = String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 101");
        s.write_all(b"ping").await.unwrap();
        let mut echo = [0u8; 4];
        let echoed =
            tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut echo)).await.is_ok_and(|r| r.is_ok());
        (switched, echoed && &echo == b"ping")
    })
    .await;
    assert!(tunnels.iter().all(|t| *t == (true, true)), "{per:?} connections per worker: {tunnels:?}");
    f.stop().await;
}
