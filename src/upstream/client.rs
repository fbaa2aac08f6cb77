//! The pooled upstream client: one hyper-util client with keep-alive pools keyed by endpoint,
//! so blue and green (different endpoints) never share a connection. HTTP/1.1 to upstreams, as
//! nginx and HAProxy do by default.

use crate::body::{RequestBody, RequestBodyError};
use crate::config::Limits;
use crate::error::UpstreamErrorKind;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::error::Error as _;
use std::time::Duration;

/// The client type used for every upstream request.
pub type UpstreamClient = Client<HttpConnector, RequestBody>;

/// Builds the client with the configured connect timeout.
pub fn build(limits: &Limits) -> UpstreamClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(limits.connect_timeout));
    connector.set_keepalive(Some(Duration::from_secs(60)));
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(1024)
        .build(connector)
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
