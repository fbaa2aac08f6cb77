//! The pooled upstream client: one hyper-util client with keep-alive pools keyed by endpoint,
//! so blue and green (different endpoints) never share a connection. HTTP/1.1 to upstreams, as
//! nginx and HAProxy do by default.

use crate::body::{RequestBody, RequestBodyError};
use crate::config::Limits;
use crate::error::UpstreamErrorKind;
use crate::tls::TlsError;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Client, ResponseFuture};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::error::Error as _;
use std::time::Duration;

/// A pooled upstream client: plain HTTP (the hot path, exactly hyper-util's `HttpConnector`),
/// or TLS verified against a pool's CA bundle. Both return the same future type.
#[derive(Clone, Debug)]
pub enum UpstreamClient {
    /// Plain HTTP/1.1.
    Plain(Client<HttpConnector, RequestBody>),
    /// HTTPS with the pool's CA bundle.
    Tls(Client<HttpsConnector<HttpConnector>, RequestBody>),
}

impl UpstreamClient {
    /// Sends a request on a pooled connection.
    pub fn request(&self, req: http::Request<RequestBody>) -> ResponseFuture {
        match self {
            UpstreamClient::Plain(c) => c.request(req),
            UpstreamClient::Tls(c) => c.request(req),
        }
    }

    /// Whether requests must use the `https` scheme.
    pub fn is_tls(&self) -> bool {
        matches!(self, UpstreamClient::Tls(_))
    }
}

fn connector(connect_timeout: Duration) -> HttpConnector {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(connect_timeout));
    connector.set_keepalive(Some(Duration::from_secs(60)));
    connector
}

fn builder() -> hyper_util::client::legacy::Builder {
    let mut b = Client::builder(TokioExecutor::new());
    b.pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(1024);
    b
}

/// The plain client with the configured connect timeout.
pub fn build(limits: &Limits) -> UpstreamClient {
    plain(limits.connect_timeout)
}

/// A plain client with its own connection pool (health checks use one so probes never hand a
/// stale connection to a proxied request).
pub fn plain(connect_timeout: Duration) -> UpstreamClient {
    UpstreamClient::Plain(builder().build(connector(connect_timeout)))
}

/// A TLS client verifying upstream certificates against exactly the CAs in `ca` (TLS 1.2+,
/// ring provider).
pub fn build_tls(limits: &Limits, ca: &std::path::Path) -> Result<UpstreamClient, TlsError> {
    let mut http = connector(limits.connect_timeout);
    http.enforce_http(false);
    let tls = crate::tls::client_config(Some(ca))?;
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .wrap_connector(http);
    Ok(UpstreamClient::Tls(builder().build(https)))
}

/// Whether the failure came from the client's own request body (not the upstream's fault).
pub fn is_client_body_error(e: &hyper_util::client::legacy::Error) -> Option<bool> {
    let mut src = e.source();
    while let Some(s) = src {
        if let Some(b) = s.downcast_ref::<RequestBodyError>() {
            return Some(matches!(b, RequestBodyError::TooLarge));
        }
        src = s.source();
    }
    None
}

/// Classifies a client error for metrics and status mapping.
pub fn classify(e: &hyper_util::client::legacy::Error) -> UpstreamErrorKind {
    if e.is_connect() {
        return UpstreamErrorKind::Connect;
    }
    let mut src = e.source();
    while let Some(s) = src {
        if let Some(h) = s.downcast_ref::<hyper::Error>() {
            if h.is_timeout() {
                return UpstreamErrorKind::Timeout;
            }
            if h.is_parse() || h.is_parse_status() {
                return UpstreamErrorKind::Protocol;
            }
            if h.is_incomplete_message() || h.is_canceled() || h.is_closed() {
                return UpstreamErrorKind::Reset;
            }
        }
        if s.downcast_ref::<std::io::Error>().is_some() {
            return UpstreamErrorKind::Reset;
        }
        src = s.source();
    }
    UpstreamErrorKind::Reset
}
