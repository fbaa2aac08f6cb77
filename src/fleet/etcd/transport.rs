//! The HTTP side of the client: one pooled hyper client for `http://` and `https://` members
//! (rustls with the ring provider, an optional CA bundle and client certificate), one POST, and
//! the translation of transport failures and gateway error bodies into [`StoreError`]s.

use super::StoreError;
use crate::config::FleetTls;
use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;
use std::convert::Infallible;
use std::path::Path;
use std::time::Duration;

/// Request bodies: a whole JSON object for unary calls, an open stream for a watch.
pub(super) type Body = BoxBody<Bytes, Infallible>;

/// Pooled client for every member; a watch takes a connection of its own for its lifetime.
pub(super) type HttpClient = Client<HttpsConnector<HttpConnector>, Body>;

/// The gateway's `Authorization` header carries the token from `/v3/auth/authenticate` as is
/// (no `Bearer`): the gateway passes it to etcd as the `authorization` gRPC metadata.
const AUTHORIZATION: http::HeaderName = http::header::AUTHORIZATION;

/// `Grpc-Metadata-hasleader: true` is etcd's `WithRequireLeader`: a member that loses its leader
/// (cut from quorum) cancels the watch with "no leader" instead of keeping it open and silent.
const REQUIRE_LEADER: (&str, &str) = ("grpc-metadata-hasleader", "true");

/// Sent with the watch's open request stream. Checked against etcd 3.4.23's gateway: while a
/// chunked request body stays open, the watch is created only if the client announced
/// `Expect: 100-continue` (without it, no answer at all until the body ends). hyper sends the
/// body at once and skips the interim `100 Continue`.
pub(super) const EXPECT_CONTINUE: (&str, &str) = ("expect", "100-continue");

/// Builds the pooled client; `connect_timeout` bounds the TCP connect (the TLS handshake is
/// bounded by each call's timeout).
pub(super) fn client(tls: &FleetTls, connect_timeout: Duration) -> Result<HttpClient, StoreError> {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    http.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls_config(tls)?)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new()).build(https))
}

/// rustls settings for `https://` members: `fleet.ca` (else the system store) and, for members
/// started with `--client-cert-auth`, `fleet.cert`/`fleet.key`.
pub fn tls_config(tls: &FleetTls) -> Result<rustls::ClientConfig, StoreError> {
    crate::tls::install_provider();
    let mut roots = rustls::RootCertStore::empty();
    match &tls.ca {
        Some(ca) => {
            let (_, bad) = roots.add_parsable_certificates(certs(ca)?);
            if roots.is_empty() {
                return Err(StoreError::Tls(format!("{}: {bad} certificates, none usable as a CA", ca.display())));
            }
        }
        None => {
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        }
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    match &tls.identity {
        None => Ok(builder.with_no_client_auth()),
        Some((cert, key)) => {
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| pem_error(key, e))?;
            builder
                .with_client_auth_cert(certs(cert)?, key)
                .map_err(|e| StoreError::Tls(format!("{}: {e}", cert.display())))
        }
    }
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, StoreError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| pem_error(path, e))?;
    if certs.is_empty() {
        return Err(StoreError::Tls(format!("{}: no PEM certificate", path.display())));
    }
    Ok(certs)
}

fn pem_error(path: &Path, e: rustls_pki_types::pem::Error) -> StoreError {
    StoreError::Tls(format!("{}: {e}", path.display()))
}

/// A whole JSON body.
pub(super) fn json_body(v: &Value) -> Body {
    Full::new(Bytes::from(v.to_string())).boxed()
}

/// POSTs to `base` + `path`; only the response head is awaited.
pub(super) async fn post(
    http: &HttpClient,
    base: &Uri,
    path: &str,
    body: Body,
    token: Option<&str>,
    extra: Option<(&str, &str)>,
) -> Result<http::Response<Incoming>, StoreError> {
    let uri = format!("{}{}", base.to_string().trim_end_matches('/'), path);
    let mut req = Request::post(uri)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(REQUIRE_LEADER.0, REQUIRE_LEADER.1);
    if let Some((k, v)) = extra {
        req = req.header(k, v);
    }
    if let Some(t) = token {
        req = req.header(AUTHORIZATION, t);
    }
    let req = req.body(body).map_err(|e| StoreError::Decode(format!("request: {e}")))?;
    http.request(req).await.map_err(|e| StoreError::Unreachable(format!("{base}{path}: {}", chain(&e))))
}

/// An error with its causes: hyper's own message ("client error (Connect)") hides whether it was
/// a refused connection, a reset or a certificate etcd did not accept.
pub(super) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// A non-2xx answer. The gateway's body is `{"error": "...", "code": N, "message": "..."}`
/// (N a gRPC code); the message is kept, the status decides the retry class.
pub(super) fn status_error(status: u16, body: &[u8]) -> StoreError {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let body = match v["message"].as_str().or(v["error"].as_str()) {
        Some(m) => m.to_string(),
        None => String::from_utf8_lossy(body).into_owned(),
    };
    StoreError::Status { status, body }
}

/// An `{"error": {...}}` message inside a streamed answer (watch, lease keep-alive): etcd ended
/// the stream with a gRPC status, which the gateway renders as a line, not as an HTTP status.
pub(super) fn stream_error(err: &Value) -> StoreError {
    let status = match err["http_code"].as_u64() {
        Some(code) => code as u16,
        None => grpc_to_http(err["grpc_code"].as_u64().or(err["code"].as_u64()).unwrap_or(2)),
    };
    let message = err["message"].as_str().map_or_else(|| err.to_string(), str::to_string);
    StoreError::Status { status, body: message }
}

/// The gateway's mapping of gRPC codes to HTTP statuses (grpc-gateway `HTTPStatusFromCode`).
fn grpc_to_http(code: u64) -> u16 {
    match code {
        0 => 200,
        1 => 499,
        3 | 9 | 11 => 400,
        4 => 504,
        5 => 404,
        6 | 10 => 409,
        7 => 403,
        8 => 429,
        12 => 501,
        14 => 503,
        16 => 401,
        _ => 500,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_error_bodies_keep_the_message() {
        let e = status_error(
            400,
            br#"{"error":"etcdserver: user name is empty","code":3,"message":"etcdserver: user name is empty"}"#,
        );
        assert_eq!(e, StoreError::Status { status: 400, body: "etcdserver: user name is empty".into() });
        assert_eq!(status_error(502, b"bad gateway"), StoreError::Status { status: 502, body: "bad gateway".into() });
    }

    #[test]
    fn stream_errors_carry_an_http_status_for_the_retry_class() {
        let v: Value = serde_json::from_str(
            r#"{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader","http_status":"Service Unavailable"}"#,
        )
        .unwrap();
        assert_eq!(stream_error(&v), StoreError::Status { status: 503, body: "etcdserver: no leader".into() });
        let v: Value = serde_json::from_str(r#"{"grpc_code":16,"message":"etcdserver: invalid auth token"}"#).unwrap();
        assert!(matches!(stream_error(&v), StoreError::Status { status: 401, .. }));
    }
}
