//! rustls server configuration from PEM files, with typed errors naming the file at fault.

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why TLS material could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    #[error("{path}: {reason}")]
    Pem {
        /// File.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// rustls rejected the certificate/key pair.
    #[error("certificate {cert} / key {key}: {source}")]
    Rustls {
        /// Certificate file.
        cert: PathBuf,
        /// Key file.
        key: PathBuf,
        /// Cause.
        #[source]
        source: rustls::Error,
    },
}

/// Installs the ring crypto provider process-wide (idempotent); see DEPENDENCIES.md trap 1.
pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Builds a server config offering h2 and http/1.1 by ALPN.
pub fn server_config(cert: &Path, key: &Path, tls13_only: bool) -> Result<Arc<ServerConfig>, TlsError> {
    install_provider();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| TlsError::Pem { path: cert.into(), reason: e.to_string() })?;
    if certs.is_empty() {
        return Err(TlsError::Pem { path: cert.into(), reason: "no certificate found".into() });
    }
    let key_der =
        PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Pem { path: key.into(), reason: e.to_string() })?;
    let versions: &[&rustls::SupportedProtocolVersion] =
        if tls13_only { &[&rustls::version::TLS13] } else { rustls::ALL_VERSIONS };
    let mut cfg = ServerConfig::builder_with_protocol_versions(versions)
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|source| TlsError::Rustls { cert: cert.into(), key: key.into(), source })?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}
