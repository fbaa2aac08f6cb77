//! Admin exposure rules and HTTP/1.1 keep-alive idle bounds.
use crate::support::*;
use std::time::Duration;
use switchyard::app::{App, AppOptions};
use switchyard::error::ServeError;
use tokio::io::AsyncWriteExt;

/// Starts one service with the admin API on a non-loopback address (`0.0.0.0:0`), with or
/// without a bearer token; returns the temp dir too so the config outlives the call.
async fn start_with_public_admin(name: &str, token: Option<&str>) -> (tempfile::TempDir, Result<App, ServeError>) {
    let m = Mocks::start(name).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switchyard.toml");
    let text = format!(
        "state_dir = \"{}\"\n[admin]\nlisten = \"0.0.0.0:0\"\n[[services]]\nname = \"{name}\"\nlisten = \"127.0.0.1:0\"\n{}",
        dir.path().join("state").display(),
        m.pools("r1")
    );
    std::fs::write(&path, text).unwrap();
    let cfg = switchyard::config::load(&path).unwrap();
    let mut opts = AppOptions::new(&path);
    opts.watch = false;
    opts.token = token.map(switchyard::admin::Token::new);
    (dir, App::start(cfg, opts).await)
}

#[tokio::test]
async fn admin_refuses_a_non_loopback_address_without_a_token() {
    match start_with_public_admin("adm", None).await.1 {
        Err(ServeError::Unsafe(msg)) => assert!(msg.contains("SWITCHYARD_ADMIN_TOKEN"), "{msg}"),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("admin bound 0.0.0.0 without a token"),
    }
}

#[tokio::test]
async fn admin_binds_a_non_loopback_address_when_a_token_is_set() {
    let (_dir, app) = start_with_public_admin("adm2", Some(TOKEN)).await;
    let app = app.expect("token makes a public admin address acceptable");
    assert!(app.admin_addr.ip().is_unspecified());
    app.shutdown().await;
}

#[test]
fn the_token_never_appears_in_debug_output() {
    let t = switchyard::admin::Token::new("s3cr3t-value");
    assert!(!format!("{t:?}").contains("s3cr3t"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let f = Fixture::builder("idle")
        .control(FAST)
        .limits("header_read_timeout = \"300ms\"\nidle_timeout = \"600ms\"")
        .start()
        .await;
    let addr = f.addr;
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: idle\r\n\r\n").await.unwrap();
    let first = read_response(&mut s).await.expect("a response to the first request");
    assert_eq!(first.status, 200, "first request is served");
    // Now stay silent: the connection must be closed by the proxy well before our bound.
    let started = tokio::time::Instant::now();
    let (_, closed) = read_to_eof(&mut s, Duration::from_secs(5)).await;
    assert!(closed, "idle keep-alive connection still open after 5 s");
    assert!(started.elapsed() >= Duration::from_millis(500), "closed before the idle timeout: {:?}", started.elapsed());
    f.stop().await;
}
