//! A connection that must be HTTP/2 speaks nothing else.

use super::frames::{self, assert_refused_as_h2, drain};
use crate::support::Fixture;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Bad prefaces that begin as the real one does (the method `PRI` is reserved for it).
const BAD: [&[u8]; 3] =
    [b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n", b"PRI * HTTP/1.1\r\nHost: a\r\n\r\n", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\r"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_h2c_preface_is_refused_in_http2_never_in_http1() {
    let fx = Fixture::builder("pe_h2c").start().await;
    for bad in BAD {
        let mut s = TcpStream::connect(fx.addr).await.unwrap();
        s.write_all(bad).await.unwrap();
        let (bytes, closed) = drain(&mut s, Duration::from_secs(5)).await;
        assert_refused_as_h2(&bytes, closed, &String::from_utf8_lossy(bad));
    }
    assert_eq!(fx.mocks.blue.requests(), 0);
    // The good preface still opens HTTP/2, and HTTP/1.1 is still HTTP/1.1.
    let mut s = TcpStream::connect(fx.addr).await.unwrap();
    frames::open(&mut s).await;
    let (seen, ok) = frames::read_until(&mut s, Duration::from_secs(5), |f| f.kind == frames::SETTINGS).await;
    assert!(ok, "no SETTINGS after a good preface: {seen:?}");
    let (_, r) = crate::support::raw_exchange(fx.addr, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").await;
    assert_eq!(r.map(|r| r.status), Some(200));
    fx.stop().await;
}

/// A self-signed `localhost` certificate in `dir`: (DER, `tls = {...}` line).
fn certificate(dir: &std::path::Path) -> (rustls_pki_types::CertificateDer<'static>, String) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&c, cert.cert.pem()).unwrap();
    std::fs::write(&k, cert.key_pair.serialize_pem()).unwrap();
    (cert.cert.der().clone(), format!("tls = {{ cert = \"{}\", key = \"{}\" }}", c.display(), k.display()))
}

/// A TLS connection offering only `alpn`; returns it with the protocol the server chose.
async fn connect(
    addr: SocketAddr,
    root: &rustls_pki_types::CertificateDer<'static>,
    alpn: &[u8],
) -> (tokio_rustls::client::TlsStream<TcpStream>, Option<Vec<u8>>) {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let mut cfg = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    cfg.alpn_protocols = vec![alpn.to_vec()];
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let s = tokio_rustls::TlsConnector::from(Arc::new(cfg)).connect(name, tcp).await.unwrap();
    let chosen = s.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    (s, chosen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_alpn_chose_h2_a_bad_preface_or_plain_http1_is_refused() {
    switchyard::tls::install_provider();
    let dir = tempfile::tempdir().unwrap();
    let (root, tls) = certificate(dir.path());
    let fx = Fixture::builder("pe_alpn").service(&tls).start().await;
    let http1: &[u8] = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    for bad in BAD.iter().copied().chain([http1]) {
        let (mut s, chosen) = connect(fx.addr, &root, b"h2").await;
        assert_eq!(chosen.as_deref(), Some(&b"h2"[..]));
        s.write_all(bad).await.unwrap();
        let (bytes, closed) = drain(&mut s, Duration::from_secs(5)).await;
        assert_refused_as_h2(&bytes, closed, &String::from_utf8_lossy(bad));
    }
    assert_eq!(fx.mocks.blue.requests(), 0, "nothing reached an upstream");
    // ALPN http/1.1 still speaks HTTP/1.1; ALPN h2 with a good preface still speaks HTTP/2.
    let (mut s, chosen) = connect(fx.addr, &root, b"http/1.1").await;
    assert_eq!(chosen.as_deref(), Some(&b"http/1.1"[..]));
    s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.unwrap();
    let (bytes, _) = drain(&mut s, Duration::from_secs(5)).await;
    assert!(bytes.starts_with(b"HTTP/1.1 200"), "{:?}", String::from_utf8_lossy(&bytes));
    let (mut s, _) = connect(fx.addr, &root, b"h2").await;
    frames::open(&mut s).await;
    let (seen, ok) = frames::read_until(&mut s, Duration::from_secs(5), |f| f.kind == frames::SETTINGS).await;
    assert!(ok, "no SETTINGS after a good preface: {seen:?}");
    fx.stop().await;
}
