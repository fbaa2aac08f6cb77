//! The etcd JSON client against a real etcd: CAS, leases, watch resume, and timeouts when the
//! store is frozen.

use super::etcd_server::EtcdServer;
use std::time::{Duration, Instant};
use switchyard::fleet::etcd::{Cas, Etcd, Event, StoreError};

/// Generous per-call timeout: etcd's fsync on this shared box can take hundreds of ms.
fn client(server: &EtcdServer) -> Etcd {
    Etcd::new(vec![server.url.parse().unwrap()], Duration::from_secs(2))
}

#[tokio::test]
async fn cas_lets_exactly_one_of_two_writers_win() {
    let server = EtcdServer::start();
    let etcd = client(&server);
    let rev = match etcd.cas("/t/s", b"first", 0, 0).await.unwrap() {
        Cas::Written(r) => r,
        other => panic!("create failed: {other:?}"),
    };
    assert!(matches!(etcd.cas("/t/s", b"again", 0, 0).await.unwrap(), Cas::Conflict(Some(_))));
    let a = etcd.cas("/t/s", b"a", rev, 0).await.unwrap();
    let b = etcd.cas("/t/s", b"b", rev, 0).await.unwrap();
    assert!(matches!(a, Cas::Written(_)));
    match b {
        Cas::Conflict(Some(kv)) => assert_eq!(kv.value, b"a"),
        other => panic!("second writer must see the first one's value: {other:?}"),
    }
    let (kvs, read_rev) = etcd.range_prefix("/t/").await.unwrap();
    assert_eq!(kvs.len(), 1);
    assert!(read_rev > rev);
}

#[tokio::test]
async fn a_lease_keeps_its_keys_only_while_kept_alive() {
    let server = EtcdServer::start();
    let etcd = client(&server);
    let lease = etcd.lease_grant(Duration::from_secs(2)).await.unwrap();
    etcd.put("/t/member", b"x", lease).await.unwrap();
    assert!(etcd.lease_keepalive(lease).await.unwrap());
    assert_eq!(etcd.get("/t/member").await.unwrap().unwrap().lease, lease);
    etcd.lease_revoke(lease).await.unwrap();
    assert_eq!(etcd.get("/t/member").await.unwrap(), None);
    assert!(!etcd.lease_keepalive(lease).await.unwrap(), "a revoked lease is not alive");
}

#[tokio::test]
async fn a_watch_from_read_revision_plus_one_misses_nothing() {
    let server = EtcdServer::start();
    let etcd = client(&server);
    etcd.put("/w/a", b"1", 0).await.unwrap();
    let (_, rev) = etcd.range_prefix("/w/").await.unwrap();
    // Written between the read and the watch: must still be seen.
    etcd.put("/w/b", b"2", 0).await.unwrap();
    let mut watch = etcd.watch("/w/", rev + 1).await.unwrap();
    etcd.delete("/w/a").await.unwrap();
    etcd.put("/other", b"x", 0).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let batch = tokio::time::timeout(Duration::from_secs(5), watch.next()).await.unwrap().unwrap();
        seen.extend(batch.events);
    }
    assert!(matches!(&seen[0], Event::Put(kv) if kv.key == "/w/b" && kv.value == b"2"));
    assert!(matches!(&seen[1], Event::Delete(kv) if kv.key == "/w/a"));
}

#[tokio::test]
async fn a_compacted_start_revision_is_reported() {
    let server = EtcdServer::start();
    let etcd = client(&server);
    for i in 0..5 {
        etcd.put("/c/k", i.to_string().as_bytes(), 0).await.unwrap();
    }
    let (_, rev) = etcd.range_prefix("/c/").await.unwrap();
    let out = std::process::Command::new("etcdctl")
        .args(["--endpoints", &server.url, "compact", &rev.to_string()])
        .env("ETCDCTL_API", "3")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // etcd confirms the watch first, then cancels it with the compaction revision.
    let mut watch = etcd.watch("/c/", 2).await.unwrap();
    match tokio::time::timeout(Duration::from_secs(5), watch.next()).await.unwrap() {
        Err(StoreError::Compacted(r)) => assert!(r >= rev, "compacted at {r}"),
        other => panic!("watch from a compacted revision must be cancelled: {other:?}"),
    }
}

#[tokio::test]
async fn a_frozen_store_is_unreachable_within_the_timeout() {
    let server = EtcdServer::start();
    let etcd = client(&server);
    etcd.put("/f/k", b"v", 0).await.unwrap();
    server.pause();
    let t = Instant::now();
    let r = etcd.get("/f/k").await;
    assert!(matches!(r, Err(StoreError::Unreachable(_))), "{r:?}");
    assert!(t.elapsed() < Duration::from_secs(4), "took {:?}", t.elapsed());
    server.resume();
    // A resumed member may need a moment before it answers within the call timeout.
    let until = Instant::now() + Duration::from_secs(10);
    let back = loop {
        match etcd.get("/f/k").await {
            Ok(v) => break v,
            Err(e) if Instant::now() > until => panic!("store not back: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    assert_eq!(back.unwrap().value, b"v");
}
