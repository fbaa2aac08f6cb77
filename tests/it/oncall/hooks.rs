//! A webhook receiver on 127.0.0.1:0 (plain or TLS with a test CA) that records every POST with
//! its arrival time, so tests can assert order and delays of pages.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// One received POST.
#[derive(Clone, Debug)]
pub struct Hit {
    pub path: String,
    pub body: Value,
    pub at: Instant,
    /// Wall clock, to compare with the persisted schedule (`escalation.since_ms`).
    pub wall: std::time::SystemTime,
}

/// A running receiver.
#[derive(Clone)]
pub struct Hooks {
    pub addr: SocketAddr,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl Hooks {
    /// Plain http receiver.
    pub async fn start() -> Hooks {
        Self::serve(None).await
    }

    /// https receiver presenting a certificate for 127.0.0.1 signed by a fresh CA; returns the
    /// CA's PEM for `alerts.ca`.
    pub async fn start_tls() -> (Hooks, String) {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().unwrap();
        let ca = p.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let leaf =
            CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap().signed_by(&key, &ca, &ca_key).unwrap();
        switchyard::tls::install_provider();
        let der = rustls_pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        let mut cfg = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der().clone()], der)
            .unwrap();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        (Self::serve(Some(acceptor)).await, ca.pem())
    }

    async fn serve(tls: Option<tokio_rustls::TlsAcceptor>) -> Hooks {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let hooks = Hooks { addr: listener.local_addr().unwrap(), hits: Arc::default() };
        let hits = hooks.hits.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let (hits, tls) = (hits.clone(), tls.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let hits = hits.clone();
                        async move {
                            let path = req.uri().path().to_string();
                            let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                            let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                            let (at, wall) = (Instant::now(), std::time::SystemTime::now());
                            hits.lock().unwrap().push(Hit { path, body, at, wall });
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::new())))
                        }
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        Some(a) => {
                            if let Ok(s) = a.accept(sock).await {
                                let _ = http.serve_connection(TokioIo::new(s), svc).await;
                            }
                        }
                        None => {
                            let _ = http.serve_connection(TokioIo::new(sock), svc).await;
                        }
                    }
                });
            }
        });
        hooks
    }

    /// Every hit so far.
    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    /// Hits on `path`.
    pub fn on(&self, path: &str) -> Vec<Hit> {
        self.hits().into_iter().filter(|h| h.path == path).collect()
    }

    /// Waits (up to `limit`) for the first hit on `path`.
    pub async fn first(&self, path: &str, limit: Duration) -> Hit {
        let end = Instant::now() + limit;
        loop {
            if let Some(h) = self.on(path).into_iter().next() {
                return h;
            }
            assert!(Instant::now() < end, "nothing posted to {path} within {limit:?}; got {:?}", self.hits());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
