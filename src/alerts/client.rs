//! The webhook client: http and https through one pooled client. https trusts the system store
//! (Debian's `ca-certificates` in the image, so Slack and PagerDuty verify) plus an optional
//! extra bundle, `alerts.ca`, for private receivers and for tests that run their own CA.

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use std::path::Path;

/// Pooled http/https client for webhooks.
pub type WebhookClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Reads a PEM CA bundle; the error is a message for `file:line: key: message` reports.
pub fn read_ca(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate found", path.display()));
    }
    Ok(certs)
}

/// Builds the client. A missing or partly unreadable system store is logged, not fatal: alerts to
/// plain http receivers and to receivers signed by `extra_ca` must still go out.
pub fn build(extra_ca: Option<&Path>) -> WebhookClient {
    crate::tls::install_provider();
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        tracing::warn!(error = %e, "system CA store partly unreadable for https webhooks");
    }
    let (system, _) = roots.add_parsable_certificates(native.certs);
    if let Some(ca) = extra_ca {
        match read_ca(ca) {
            Ok(certs) => {
                roots.add_parsable_certificates(certs);
            }
            Err(e) => tracing::error!(error = %e, "alerts.ca unusable; https webhooks trust the system store only"),
        }
    }
    if roots.is_empty() {
        tracing::warn!("no CA certificates for https webhooks: install ca-certificates or set alerts.ca");
    }
    tracing::debug!(system, total = roots.len(), "webhook trust store loaded");
    let tls = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new()).build(https)
}
