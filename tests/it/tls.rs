//! TLS on listeners: certificate and key reloaded when their files change
//! (a broken new pair keeps the old one), and optional client-certificate verification (mTLS).

use crate::support::*;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

pub(crate) struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    pub(crate) fn new() -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        Ca { cert: p.self_signed(&key).unwrap(), key }
    }

    /// A leaf for `localhost` signed by this CA: (cert PEM, key PEM, cert DER).
    pub(crate) fn leaf(&self) -> (String, String, Vec<u8>) {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&key, &self.cert, &self.key)
            .unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().to_vec())
    }
}

pub(crate) fn connector(ca: &Ca, client: Option<(&str, &str)>) -> TlsConnector {
    switchyard::tls::install_provider();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert.der().clone()).unwrap();
    let b = rustls::ClientConfig::builder().with_root_certificates(roots);
    let mut cfg = match client {
        None => b.with_no_client_auth(),
        Some((cert, key)) => {
            use rustls::pki_types::pem::PemObject;
            let chain = vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()];
            b.with_client_auth_cert(chain, PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap()).unwrap()
        }
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    // A resumed session shows the certificate of the session, not the one served now.
    cfg.resumption = rustls::client::Resumption::disabled();
    TlsConnector::from(Arc::new(cfg))
}

/// Handshakes, sends one GET and returns (served certificate DER, status or 0 on failure).
pub(crate) async fn https_get(addr: SocketAddr, tls: &TlsConnector) -> (Vec<u8>, u16) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let Ok(Ok(mut s)) = tokio::time::timeout(Duration::from_secs(5), tls.connect(name, tcp)).await else {
        return (Vec::new(), 0);
    };
    let served = s.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| c.to_vec()).unwrap_or_default();
    let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    (served, text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0))
}

pub(crate) fn write_pair(dir: &Path, cert: &str, key: &str) {
    // Key first, then the certificate by rename: the way a renewal tool replaces files.
    std::fs::write(dir.join("key.pem"), key).unwrap();
    std::fs::write(dir.join("cert.pem.tmp"), cert).unwrap();
    std::fs::rename(dir.join("cert.pem.tmp"), dir.join("cert.pem")).unwrap();
}

async fn start(
    name: &str,
    tls_extra: &str,
    ca: &Ca,
) -> (Mocks, Env, switchyard::app::App, SocketAddr, (String, String, Vec<u8>)) {
    let mocks = Mocks::start(name).await;
    let env = Env::new("", "");
    let first = ca.leaf();
    write_pair(env.dir.path(), &first.0, &first.1);
    let d = env.dir.path().display();
    env.write(
        "",
        &format!(
            "[[services]]\nname = \"{name}\"\nlisten = \"127.0.0.1:0\"\n\
             tls = {{ cert = \"{d}/cert.pem\", key = \"{d}/key.pem\"{tls_extra} }}\n{}",
            mocks.pools("r1")
        ),
    );
    let app = env.start().await;
    let addr = app.service_addr(name).unwrap();
    (mocks, env, app, addr, first)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_connections_see_a_renewed_certificate_and_a_broken_one_is_ignored() {
    let ca = Ca::new();
    let (_mocks, env, app, addr, first) = start("tls_reload", "", &ca).await;
    let tls = connector(&ca, None);
    assert_eq!(https_get(addr, &tls).await, (first.2.clone(), 200));

    // Reloads are counted per certificate path: other tests' certificates share the recorder.
    let cert = env.dir.path().join("cert.pem").display().to_string();
    let reloads = |result: &'static str| [("cert", cert.clone()), ("result", result.to_string())];
    let wait = |result: &'static str, above: f64| {
        let labels = reloads(result);
        let app = &app;
        async move {
            let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
            wait_metric(app, switchyard::tls::CERT_RELOADS_TOTAL, &labels, |v| v > above).await
        }
    };

    let second = ca.leaf();
    write_pair(env.dir.path(), &second.0, &second.1);
    wait("ok", 0.0).await;
    assert_eq!(https_get(addr, &tls).await.0, second.2, "the renewed certificate is served once reloaded");

    // A broken certificate file and then a key that does not match: the last good pair stays.
    let errors = scrape_metric(&app, switchyard::tls::CERT_RELOADS_TOTAL, &[("cert", &cert), ("result", "error")])
        .await
        .unwrap_or(0.0);
    std::fs::write(env.dir.path().join("cert.pem"), "-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap();
    let errors = wait("error", errors).await;
    assert_eq!(https_get(addr, &tls).await, (second.2.clone(), 200));
    let third = ca.leaf();
    write_pair(env.dir.path(), &third.0, &first.1);
    wait("error", errors).await;
    assert_eq!(https_get(addr, &tls).await, (second.2.clone(), 200));
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_are_required_with_client_ca() {
    let ca = Ca::new();
    let clients = Ca::new();
    let dir = tempfile::tempdir().unwrap();
    let ca_path = dir.path().join("clients-ca.pem");
    std::fs::write(&ca_path, clients.cert.pem()).unwrap();
    let extra = format!(", client_ca = \"{}\"", ca_path.display());
    let (_mocks, _env, app, addr, _) = start("tls_mtls", &extra, &ca).await;

    assert_eq!(https_get(addr, &connector(&ca, None)).await.1, 0, "no client certificate: refused");
    let stranger = Ca::new().leaf();
    assert_eq!(https_get(addr, &connector(&ca, Some((&stranger.0, &stranger.1)))).await.1, 0, "unknown CA: refused");
    let good = clients.leaf();
    assert_eq!(https_get(addr, &connector(&ca, Some((&good.0, &good.1)))).await.1, 200);
    app.shutdown().await;
}

#[test]
fn a_missing_client_ca_is_a_config_time_error_naming_the_file() {
    let cfg = switchyard::config::TlsConfig {
        cert: "/nonexistent/cert.pem".into(),
        key: "/nonexistent/key.pem".into(),
        tls13_only: false,
        client_ca: None,
    };
    let e = switchyard::tls::server_config(&cfg).unwrap_err().to_string();
    assert!(e.contains("/nonexistent/cert.pem"), "{e}");
}
