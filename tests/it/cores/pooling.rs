//! Idle upstream connections are kept per worker: a request reuses a connection whose task runs
//! on its own thread, so two workers serving one after the other hold one upstream connection
//! each, and reuse it.

use super::support::*;
use crate::data_plane::pooling::counting_upstream;
use crate::data_plane::support::*;
use crate::support::{read_response, Mocks};
use std::sync::atomic::Ordering;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// One keep-alive GET of `path` on `s`; its status.
async fn get_on(s: &mut TcpStream, path: &str) -> u16 {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: cores\r\n\r\n").as_bytes()).await.unwrap();
    read_response(s).await.map_or(0, |r| r.status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_worker_reuses_one_upstream_connection_of_its_own() {
    let name = "cores_pool";
    let (up, conns) = counting_upstream(false).await;
    let mocks = Mocks::start(name).await;
    let pools = format!(
        "blue = {{ endpoints = [\"{up}\"] }}\ngreen = {{ endpoints = [\"{}\"], release = \"r1\" }}",
        mocks.green.addr()
    );
    let f = Fixture::builder(name).pools(mocks, &pools).threads(THREADS).start().await;
    // One kept-alive client connection per worker (connections to a worker that has one already
    // are dropped after their request).
    let mut at = Attribution::new(&f.app, name).await;
    let mut kept: [Option<TcpStream>; THREADS] = [None, None];
    for i in 0..80 {
        if kept.iter().all(Option::is_some) {
            break;
        }
        let mut s = TcpStream::connect(f.addr).await.unwrap();
        assert_eq!(get_on(&mut s, &format!("/pool/warm/{i}")).await, 200);
        let w = at.next().await;
        kept[w].get_or_insert(s);
    }
    let mut kept = kept.map(|s| s.expect("the kernel spread the connections over both workers"));
    // Sequential, alternating workers: a stack shared by the workers would hand worker 2 the
    // connection worker 1 just returned (one upstream connection in all).
    for i in 0..40 {
        assert_eq!(get_on(&mut kept[i % THREADS], &format!("/pool/{i}")).await, 200, "request {i}");
    }
    assert_eq!(conns.load(Ordering::SeqCst), THREADS, "one upstream connection per worker, each reused");
    f.stop().await;
}
