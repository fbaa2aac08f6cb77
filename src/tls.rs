//! rustls server configuration from PEM files, with typed errors naming the file at fault.
//!
//! The certificate and key are served by [`ReloadingCert`], which re-reads them when they
//! change on disk, so a renewed certificate needs no restart and no config reload. Optional
//! client-certificate verification (mTLS) against a CA bundle.

use crate::config::TlsConfig;
use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// How often the certificate files are checked for changes.
pub const RELOAD_POLL: Duration = Duration::from_secs(1);

/// `switchyard_tls_certificate_reloads_total{cert, result}`: changed files seen on disk, `ok` when
/// the new pair is served, `error` when it did not load and the previous one stays. Named here,
/// not in `stats::names`, because `stats` sits above `tls` in the module order.
pub const CERT_RELOADS_TOTAL: &str = "switchyard_tls_certificate_reloads_total";

/// Why TLS material could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    #[error("{path}: {reason}")]
    Pem { path: PathBuf, reason: String },
    /// rustls rejected the certificate/key pair.
    #[error("certificate {cert} / key {key}: {source}")]
    Rustls {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: rustls::Error,
    },
}

/// Installs the ring crypto provider process-wide (idempotent); see DEPENDENCIES.md trap 1.
pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Builds a server config offering h2 and http/1.1 by ALPN, serving a reloading certificate
/// and, with `client_ca`, requiring client certificates signed by that CA.
pub fn server_config(t: &TlsConfig) -> Result<Arc<ServerConfig>, TlsError> {
    install_provider();
    let resolver = ReloadingCert::watch(&t.cert, &t.key)?;
    let versions: &[&rustls::SupportedProtocolVersion] =
        if t.tls13_only { &[&rustls::version::TLS13] } else { rustls::ALL_VERSIONS };
    let builder = ServerConfig::builder_with_protocol_versions(versions);
    let mut cfg = match &t.client_ca {
        None => builder.with_no_client_auth().with_cert_resolver(resolver),
        Some(ca) => builder.with_client_cert_verifier(client_verifier(ca)?).with_cert_resolver(resolver),
    };
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

fn client_verifier(ca: &Path) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    let pem_err = |reason: String| TlsError::Pem { path: ca.into(), reason };
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).map_err(|e| pem_err(e.to_string()))? {
        roots.add(c.map_err(|e| pem_err(e.to_string()))?).map_err(|e| pem_err(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(pem_err("no CA certificate found".into()));
    }
    WebPkiClientVerifier::builder(Arc::new(roots)).build().map_err(|e| pem_err(e.to_string()))
}

/// Reads and checks a certificate chain and its key.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| TlsError::Pem { path: cert.into(), reason: e.to_string() })?;
    if certs.is_empty() {
        return Err(TlsError::Pem { path: cert.into(), reason: "no certificate found".into() });
    }
    let key_der =
        PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Pem { path: key.into(), reason: e.to_string() })?;
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(certs, key_der, &provider).map_err(|source| TlsError::Rustls {
        cert: cert.into(),
        key: key.into(),
        source,
    })
}

/// A hash of both files' contents: what "changed" means. Not modification times: they can be
/// coarse, preserved by copy tools, or (as on some CI machines) not move at all, and a renewed
/// certificate often has exactly the old length.
type Stamp = u64;

fn stamp(cert: &Path, key: &Path) -> Stamp {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for p in [cert, key] {
        std::fs::read(p).ok().hash(&mut h);
    }
    h.finish()
}

/// The served certificate, swapped in one step when its files change.
///
/// The files are polled (read and hashed once a second; a few KiB) rather than watched with `notify`:
/// certificates are usually replaced by renaming a new file over the old one or, in Kubernetes,
/// by swapping the `..data` symlink of a secret mount, and inotify watches on the old inode miss
/// both unless the parent directory is watched and events re-resolved. Polling sees every one
/// of those, on any filesystem, with one second of delay that nobody renewing a certificate
/// notices. A new pair that does not load (half-written, key not matching) is logged with the
/// file at fault and the previous certificate keeps being served.
pub struct ReloadingCert {
    /// Read by every handshake, written by the poll task: an `ArcSwap` so handshakes never lock.
    current: ArcSwap<CertifiedKey>,
    cert: PathBuf,
    key: PathBuf,
    /// Only the poll task touches it; a mutex for `Sync`, never contended.
    last: Mutex<Stamp>,
}

impl std::fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingCert").field("cert", &self.cert).field("key", &self.key).finish_non_exhaustive()
    }
}

impl ReloadingCert {
    /// Loads the pair (an error if it does not load) and, inside a tokio runtime, starts polling
    /// the files every [`RELOAD_POLL`]; polling stops once the resolver is dropped.
    pub fn watch(cert: &Path, key: &Path) -> Result<Arc<ReloadingCert>, TlsError> {
        let last = stamp(cert, key);
        let first = load_certified_key(cert, key)?;
        let me = Arc::new(ReloadingCert {
            current: ArcSwap::from_pointee(first),
            cert: cert.into(),
            key: key.into(),
            last: Mutex::new(last),
        });
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(poll(Arc::downgrade(&me)));
        }
        Ok(me)
    }

    /// Reloads if either file changed since the last check; returns whether a new pair is served.
    pub fn check(&self) -> bool {
        let now = stamp(&self.cert, &self.key);
        {
            let mut last = self.last.lock().expect("stamp lock");
            if *last == now {
                return false;
            }
            *last = now;
        }
        let loaded = load_certified_key(&self.cert, &self.key);
        let result = if loaded.is_ok() { "ok" } else { "error" };
        match loaded {
            Ok(ck) => {
                self.current.store(Arc::new(ck));
                tracing::info!(cert = %self.cert.display(), key = %self.key.display(), "TLS certificate reloaded");
            }
            Err(e) => {
                tracing::error!(error = %e, "TLS certificate files changed but do not load: keeping the previous certificate");
            }
        }
        // Counted after the swap, so a reader that sees the count also gets the new certificate.
        metrics::counter!(CERT_RELOADS_TOTAL, "cert" => self.cert.display().to_string(), "result" => result)
            .increment(1);
        result == "ok"
    }
}

async fn poll(me: Weak<ReloadingCert>) {
    loop {
        tokio::time::sleep(RELOAD_POLL).await;
        let Some(me) = me.upgrade() else { return };
        // File reads are small and rare; keep them off the async workers anyway.
        let _ = tokio::task::spawn_blocking(move || me.check()).await;
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// A rustls client config trusting exactly the CAs in `ca` (none when `None`).
pub fn client_config(ca: Option<&Path>) -> Result<rustls::ClientConfig, TlsError> {
    install_provider();
    let mut roots = rustls::RootCertStore::empty();
    if let Some(ca) = ca {
        let certs = CertificateDer::pem_file_iter(ca)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| TlsError::Pem { path: ca.into(), reason: e.to_string() })?;
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(TlsError::Pem { path: ca.into(), reason: "no usable CA certificate found".into() });
        }
    }
    Ok(rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth())
}
