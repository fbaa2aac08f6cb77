//! The etcd JSON client against a real etcd: CAS, leases, watch resume, timeouts when the
//! store is frozen, and which failures move on to the next member (connection errors, 5xx, 429)
//! and which do not (other 4xx), with fake members on loopback answering on cue.

use super::etcd_fakes::{refused_url, FakeMember};
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
    server.compact(rev);
    // etcd confirms the watch first, then cancels it with the compaction revision.
    let mut watch = etcd.watch("/c/", 2).await.unwrap();
    match tokio::time::timeout(Duration::from_secs(5), watch.next()).await.unwrap() {
        Err(e @ StoreError::Compacted(r)) => {
            assert!(r >= rev, "compacted at {r}");
            assert!(e.needs_relist() && !e.is_outage(), "a compaction is a resync, not an outage");
        }
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

fn members(urls: &[&str]) -> Etcd {
    Etcd::new(urls.iter().map(|u| u.parse().unwrap()).collect(), Duration::from_secs(2))
}

#[tokio::test]
async fn a_refused_member_fails_over_to_the_next() {
    let server = EtcdServer::start();
    let etcd = members(&[&refused_url(), &server.url]);
    etcd.put("/fo/k", b"v", 0).await.unwrap();
    assert_eq!(etcd.get("/fo/k").await.unwrap().unwrap().value, b"v");
    let mut watch = etcd.watch("/fo/", 1).await.expect("a watch fails over too");
    let batch = tokio::time::timeout(Duration::from_secs(5), watch.next()).await.unwrap().unwrap();
    assert!(matches!(&batch.events[..], [Event::Put(kv)] if kv.key == "/fo/k"));
}

#[tokio::test]
async fn a_5xx_or_429_answer_fails_over_to_the_next_member() {
    let server = EtcdServer::start();
    for status in ["503 Service Unavailable", "500 Internal Server Error", "429 Too Many Requests"] {
        let fake = FakeMember::start(
            status,
            r#"{"error":"etcdserver: no leader","code":14,"message":"etcdserver: no leader"}"#,
        )
        .await;
        let etcd = members(&[&fake.url, &server.url]);
        etcd.put("/5xx/k", status.as_bytes(), 0).await.unwrap_or_else(|e| panic!("{status}: {e}"));
        assert_eq!(fake.hits(), 1, "{status}: asked the failing member once");
        // The client now sticks to the member that answered.
        etcd.get("/5xx/k").await.unwrap();
        assert_eq!(fake.hits(), 1, "{status}: calls stay on the working member");
    }
}

#[tokio::test]
async fn a_4xx_answer_is_returned_without_failing_over() {
    let server = EtcdServer::start();
    let fake = FakeMember::start(
        "400 Bad Request",
        r#"{"error":"etcdserver: request is too large","code":3,"message":"etcdserver: request is too large"}"#,
    )
    .await;
    let etcd = members(&[&fake.url, &server.url]);
    match etcd.put("/4xx/k", b"v", 0).await {
        Err(e @ StoreError::Status { status: 400, .. }) => {
            assert!(e.to_string().contains("request is too large"), "{e}");
            assert!(!e.fails_over() && !e.is_outage());
        }
        other => panic!("a 400 is the request's fault, the same on every member: {other:?}"),
    }
    assert_eq!(fake.hits(), 1);
    assert_eq!(members(&[&server.url]).get("/4xx/k").await.unwrap(), None, "the next member was never asked");
}

#[tokio::test]
async fn an_error_line_on_the_keepalive_stream_is_an_error_not_an_expired_lease() {
    let line = r#"{"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader","http_status":"Service Unavailable"}}"#;
    let fake = FakeMember::start("200 OK", &format!("{line}\n")).await;
    match members(&[&fake.url]).lease_keepalive(7).await {
        Err(e @ StoreError::Status { status: 503, .. }) => {
            assert!(e.fails_over() && e.to_string().contains("no leader"))
        }
        other => panic!("an error line must not read as Ok(false), an expired lease: {other:?}"),
    }
    // Behind it, a working member takes over.
    let server = EtcdServer::start();
    let etcd = members(&[&fake.url, &server.url]);
    let lease = etcd.lease_grant(Duration::from_secs(5)).await.unwrap();
    assert!(etcd.lease_keepalive(lease).await.unwrap());
}

#[tokio::test]
async fn an_error_line_on_the_watch_stream_is_an_error() {
    let created = r#"{"result":{"header":{"revision":"3"},"created":true}}"#;
    for (code, http, fails_over) in [(14, 503, true), (7, 403, false)] {
        let err = format!(
            r#"{{"error":{{"grpc_code":{code},"http_code":{http},"message":"etcd says no","http_status":"x"}}}}"#
        );
        let fake = FakeMember::start("200 OK", &format!("{created}\n{err}\n")).await;
        let mut watch = members(&[&fake.url]).watch("/e/", 1).await.unwrap();
        let e = tokio::time::timeout(Duration::from_secs(5), watch.next()).await.unwrap().unwrap_err();
        assert_eq!(e, StoreError::Status { status: http, body: "etcd says no".into() });
        assert_eq!(e.fails_over(), fails_over, "{e}");
    }
}
