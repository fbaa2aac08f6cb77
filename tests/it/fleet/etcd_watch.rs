//! Watches that can be trusted: progress notifications from the member, a progress request of
//! the client's own when the prefix is quiet, and a typed error within the silence bound when
//! the path to the member is black-holed (a frozen proxy), after which a new watch from the
//! last revision + 1 misses nothing.

use super::etcd_fakes::FreezableProxy;
use super::etcd_server::{EtcdServer, Options as ServerOptions};
use std::time::{Duration, Instant};
use switchyard::fleet::etcd::{Etcd, Event, Options, StoreError};

fn with_silence(url: &str, silence: Duration) -> Etcd {
    let opts = Options { watch_silence: silence, ..Options::default() };
    Etcd::build(vec![url.parse().unwrap()], Duration::from_secs(2), opts).unwrap()
}

#[tokio::test]
async fn the_member_sends_progress_notifications_the_watch_asked_for() {
    // The watch's own progress request would come after 30 s; these come from the member.
    let server = EtcdServer::start_with(ServerOptions { progress_notify: Some("300ms"), ..Default::default() });
    let etcd = with_silence(&server.url, Duration::from_secs(60));
    let rev = etcd.put("/pn/k", b"v", 0).await.unwrap();
    let mut watch = etcd.watch("/pn/", rev + 1).await.unwrap();
    let batch = tokio::time::timeout(Duration::from_secs(5), watch.next()).await.expect("a notification").unwrap();
    assert!(batch.is_progress(), "{batch:?}");
    assert_eq!(batch.revision, rev);
    assert_eq!(watch.last_revision(), rev);
}

#[tokio::test]
async fn a_quiet_watch_asks_for_progress_and_is_never_called_silent() {
    // etcd's default notification interval (10 min) is far above the bound: the answers to the
    // client's progress requests are all that keeps the watch from being declared silent.
    let server = EtcdServer::start();
    let silence = Duration::from_millis(1500);
    let etcd = with_silence(&server.url, silence);
    let rev = etcd.put("/q/k", b"v", 0).await.unwrap();
    let mut watch = etcd.watch("/q/", rev + 1).await.unwrap();
    let (start, mut progress) = (Instant::now(), 0);
    while start.elapsed() < 3 * silence {
        match tokio::time::timeout(Duration::from_secs(5), watch.next()).await.expect("bounded") {
            Ok(b) if b.is_progress() => progress += 1,
            other => panic!("a live member answers progress requests: {other:?}"),
        }
    }
    assert!(progress >= 3, "{progress} progress answers in {:?} with a {silence:?} bound", 3 * silence);
    etcd.put("/q/k", b"w", 0).await.unwrap();
    let b = tokio::time::timeout(Duration::from_secs(5), watch.next()).await.unwrap().unwrap();
    assert!(matches!(&b.events[..], [Event::Put(kv)] if kv.value == b"w"), "{b:?}");
}

#[tokio::test]
async fn a_black_holed_watch_is_reported_silent_within_the_bound_and_resumes_without_loss() {
    let server = EtcdServer::start();
    let proxy = FreezableProxy::start(&server.url).await;
    let silence = Duration::from_millis(1000);
    let via_proxy = with_silence(&proxy.url, silence);
    let direct = with_silence(&server.url, silence);
    let rev = direct.put("/bh/a", b"1", 0).await.unwrap();
    let mut watch = via_proxy.watch("/bh/", rev).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), watch.next()).await.unwrap().unwrap();
    assert_eq!(first.revision, rev);

    proxy.freeze();
    let frozen_at = Instant::now();
    direct.put("/bh/b", b"2", 0).await.unwrap();
    let err = loop {
        match tokio::time::timeout(Duration::from_secs(5), watch.next()).await.expect("the watchdog fires") {
            Ok(b) => assert!(b.is_progress(), "nothing passes a frozen link: {b:?}"),
            Err(e) => break e,
        }
    };
    let took = frozen_at.elapsed();
    assert_eq!(err, StoreError::WatchSilent(silence));
    assert!(err.needs_rewatch() && !err.is_outage(), "{err}");
    assert!(took <= silence + Duration::from_millis(700), "noticed after {took:?}");

    // The caller re-watches from the last revision it saw; the write made meanwhile arrives.
    let resume = watch.last_revision() + 1;
    let mut again = direct.watch("/bh/", resume).await.unwrap();
    let b = tokio::time::timeout(Duration::from_secs(5), again.next()).await.unwrap().unwrap();
    assert!(matches!(&b.events[..], [Event::Put(kv)] if kv.key == "/bh/b"), "{b:?}");
}

#[tokio::test]
async fn a_watch_compacted_while_behind_is_a_typed_resync() {
    let server = EtcdServer::start();
    let etcd = with_silence(&server.url, Duration::from_secs(10));
    let first = etcd.put("/cw/k", b"0", 0).await.unwrap();
    for i in 1..5 {
        etcd.put("/cw/k", i.to_string().as_bytes(), 0).await.unwrap();
    }
    let (_, rev) = etcd.range_prefix("/cw/").await.unwrap();
    server.compact(rev);
    let mut watch = etcd.watch("/cw/", first).await.unwrap();
    let e = tokio::time::timeout(Duration::from_secs(5), watch.next()).await.unwrap().unwrap_err();
    assert_eq!(e, StoreError::Compacted(rev));
    assert!(e.needs_relist() && !e.is_outage() && !e.fails_over());
    // The resync: read again, watch from the read + 1.
    let (kvs, read) = etcd.range_prefix("/cw/").await.unwrap();
    assert_eq!(kvs[0].value, b"4");
    let mut watch = etcd.watch("/cw/", read + 1).await.unwrap();
    etcd.put("/cw/k", b"5", 0).await.unwrap();
    let b = tokio::time::timeout(Duration::from_secs(5), watch.next()).await.unwrap().unwrap();
    assert!(matches!(&b.events[..], [Event::Put(kv)] if kv.value == b"5"), "{b:?}");
}
