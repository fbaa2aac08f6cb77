//! The one place where errors become HTTP responses.

use crate::body::ResponseBody;
use crate::error::{ProxyError, UpstreamErrorKind};
use http::{header, HeaderValue, Response, StatusCode};

/// Status for an error: connect/reset/protocol/abandoned → 502, timeout → 504, client faults →
/// 4xx (501 for a transfer coding we do not implement), the proxy's own limits → 503.
pub fn status_of(e: &ProxyError) -> StatusCode {
    match e {
        ProxyError::Upstream { kind: UpstreamErrorKind::Timeout, .. } => StatusCode::GATEWAY_TIMEOUT,
        ProxyError::Upstream { .. } => StatusCode::BAD_GATEWAY,
        ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
        ProxyError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ProxyError::Unsupported(_) => StatusCode::NOT_IMPLEMENTED,
        ProxyError::NoRoute | ProxyError::Saturated => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// The short reason of an error (error bodies, `error.type` in the access log).
pub fn reason(e: &ProxyError) -> &'static str {
    match e {
        ProxyError::Upstream { kind, .. } => kind.as_str(),
        ProxyError::BadRequest(r) | ProxyError::Unsupported(r) => r,
        ProxyError::BodyTooLarge => "body too large",
        ProxyError::NoRoute => "no route",
        ProxyError::Saturated => "upstream saturated",
    }
}

/// A short JSON error response naming the request id; `close` asks the client to drop the
/// connection.
pub fn error_response(e: &ProxyError, service: &str, request_id: &HeaderValue) -> Response<ResponseBody> {
    let status = status_of(e);
    let body = serde_json::json!({
        "error": status.canonical_reason().unwrap_or("error"),
        "reason": reason(e),
        "service": service,
        "status": status.as_u16(),
        "request_id": request_id.to_str().unwrap_or(""),
    });
    let mut r = Response::new(ResponseBody::full(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    // Closing after a refused request or an unread oversized body leaves nothing of it on the
    // connection to be parsed as a next request (with ambiguous framing, nothing else is safe).
    if e.origin() == crate::error::ErrorSource::Downstream {
        r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    r
}
