//! TLS on two workers: the served certificate is one value both workers' handshakes read, so a
//! renewed one reaches both; a reload that switches TLS on hands the port's sockets to new accept
//! loops on every worker.

use super::support::*;
use crate::data_plane::support::{eventually_async, QUIET};
use crate::support::{admin_post, free_port, service_toml, wait_metric, Env, Mocks};
use crate::tls::{connector, https_get, write_pair, Ca};
use std::time::Duration;
use switchyard::app::App;

/// TLS lines for the pair written in `env`'s dir.
fn tls_line(env: &Env) -> String {
    let d = env.dir.path().display();
    format!("tls = {{ cert = \"{d}/cert.pem\", key = \"{d}/key.pem\" }}")
}

/// Handshakes on fresh connections until each worker has done `each`; every one must serve `der`.
async fn served_on_both(app: &App, name: &str, ca: &Ca, der: &[u8]) {
    let tls = connector(ca, None);
    let addr = app.service_addr(name).unwrap();
    let mut at = Attribution::new(app, name).await;
    let seen = at.on_both(3, async || https_get(addr, &tls).await).await;
    for (worker, answers) in seen.iter().enumerate() {
        for (cert, status) in answers {
            assert_eq!(*status, 200, "worker {}", worker + 1);
            assert!(cert == der, "worker {} served another certificate", worker + 1);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_reaches_the_handshakes_of_both_workers() {
    let name = "cores_cert";
    let ca = Ca::new();
    let m = Mocks::start(name).await;
    let mut env = Env::new("", "");
    env.threads = THREADS;
    let first = ca.leaf();
    write_pair(env.dir.path(), &first.0, &first.1);
    env.write(QUIET, &service_toml(name, "127.0.0.1:0", &tls_line(&env), &m.pools("r1")));
    let app = env.start().await;
    served_on_both(&app, name, &ca, &first.2).await;

    let second = ca.leaf();
    write_pair(env.dir.path(), &second.0, &second.1);
    let cert = env.dir.path().join("cert.pem").display().to_string();
    wait_metric(&app, switchyard::tls::CERT_RELOADS_TOTAL, &[("cert", &cert), ("result", "ok")], |v| v > 0.0).await;
    served_on_both(&app, name, &ca, &second.2).await;
    app.shutdown().await;
    m.blue.shutdown().await;
    m.green.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_switches_tls_on_reaches_both_workers_on_the_same_port() {
    let name = "cores_tls_on";
    let ca = Ca::new();
    let m = Mocks::start(name).await;
    let listen = format!("127.0.0.1:{}", free_port());
    let mut env = Env::new(QUIET, &service_toml(name, &listen, "", &m.pools("r1")));
    env.threads = THREADS;
    let app = env.start().await;
    let addr = app.service_addr(name).unwrap();
    let mut at = Attribution::new(&app, name).await;
    let plain = at.on_both(2, async || fresh_get(addr, &[]).await).await;
    assert!(plain.iter().flatten().all(|a| a.0 == 200), "{plain:?}");

    let leaf = ca.leaf();
    write_pair(env.dir.path(), &leaf.0, &leaf.1);
    env.write(QUIET, &service_toml(name, &listen, &tls_line(&env), &m.pools("r1")));
    let (status, body) = admin_post(&app, "/reload", "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.service_addr(name), Some(addr), "the port was handed over, not re-bound");
    // The plain accept loops stop a moment after the reload answered.
    let tls = connector(&ca, None);
    assert!(eventually_async(Duration::from_secs(5), || async { https_get(addr, &tls).await.1 == 200 }).await);
    served_on_both(&app, name, &ca, &leaf.2).await;
    app.shutdown().await;
    m.blue.shutdown().await;
    m.green.shutdown().await;
}
