//! Client-side protocols: h2c with prior knowledge, TLS with ALPN (h2 and http/1.1), and a
//! TLS-1.3-only listener.

use super::support::*;
use crate::support::{Env, Mocks};
use reqwest::tls::Version as Tls;
use reqwest::Version;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_with_prior_knowledge_is_proxied() {
    let f = Fixture::builder("dp_h2c").start().await;
    let c = reqwest::Client::builder().http2_prior_knowledge().timeout(Duration::from_secs(10)).build().unwrap();
    for _ in 0..3 {
        let r = c.get(format!("http://{}/__echo", f.addr)).send().await.unwrap();
        assert_eq!((r.status().as_u16(), r.version()), (200, Version::HTTP_2));
        let echo: serde_json::Value = r.json().await.unwrap();
        assert_eq!(echo["headers"]["host"], f.addr.to_string(), "Host comes from :authority");
        assert_eq!(echo["headers"]["x-forwarded-proto"], "http");
    }
    f.stop().await;
}

/// Writes a self-signed `localhost` certificate into `dir`; returns (cert PEM, cert path, key path).
fn self_signed(dir: &Path) -> (String, String, String) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    (cert.cert.pem(), cert_path.display().to_string(), key_path.display().to_string())
}

/// A client trusting `pem` that resolves `localhost` to `addr` only (never `::1`).
fn tls_client(
    pem: &str,
    addr: SocketAddr,
    tune: impl FnOnce(reqwest::ClientBuilder) -> reqwest::ClientBuilder,
) -> reqwest::Client {
    let b = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
        .resolve("localhost", addr)
        .timeout(Duration::from_secs(10));
    tune(b).build().unwrap()
}

async fn https_echo(c: &reqwest::Client, addr: SocketAddr) -> Result<(Version, serde_json::Value), reqwest::Error> {
    let r = c.get(format!("https://localhost:{}/__echo", addr.port())).send().await?.error_for_status()?;
    let v = r.version();
    Ok((v, r.json().await?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_http1_and_h2_by_alpn_and_min_version_13_refuses_tls12() {
    switchyard::tls::install_provider();
    let (m12, m13) = (Mocks::start("dp_tls").await, Mocks::start("dp_tls13").await);
    let dir = tempfile::tempdir().unwrap();
    let (pem, cert, key) = self_signed(dir.path());
    let tls = format!("tls = {{ cert = \"{cert}\", key = \"{key}\" }}");
    let tls13 = format!("tls = {{ cert = \"{cert}\", key = \"{key}\", min_version = \"1.3\" }}");
    let body = format!(
        "{}{}",
        service_toml("dp_tls", "127.0.0.1:0", &tls, &m12.pools("r1")),
        service_toml("dp_tls13", "127.0.0.1:0", &tls13, &m13.pools("r1"))
    );
    let env = Env::new(QUIET, &body);
    let app = env.start().await;
    let (a12, a13) = (app.service_addr("dp_tls").unwrap(), app.service_addr("dp_tls13").unwrap());

    let (v, echo) = https_echo(&tls_client(&pem, a12, |b| b.http1_only()), a12).await.unwrap();
    assert_eq!(v, Version::HTTP_11);
    assert_eq!(echo["headers"]["x-forwarded-proto"], "https");
    let (v, echo) = https_echo(&tls_client(&pem, a12, |b| b), a12).await.unwrap();
    assert_eq!(v, Version::HTTP_2, "h2 is negotiated by ALPN");
    assert_eq!(echo["headers"]["x-forwarded-proto"], "https");

    let (v, _) = https_echo(&tls_client(&pem, a13, |b| b.min_tls_version(Tls::TLS_1_3)), a13).await.unwrap();
    assert_eq!(v, Version::HTTP_2);
    let only12 = |b: reqwest::ClientBuilder| b.max_tls_version(Tls::TLS_1_2);
    assert!(https_echo(&tls_client(&pem, a12, only12), a12).await.is_ok(), "TLS 1.2 works by default");
    assert!(https_echo(&tls_client(&pem, a13, only12), a13).await.is_err(), "min_version = 1.3 refuses TLS 1.2");
    app.shutdown().await;
    for m in [m12, m13] {
        m.blue.shutdown().await;
        m.green.shutdown().await;
    }
}
