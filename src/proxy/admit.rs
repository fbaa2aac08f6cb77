//! The admit phase: what a reverse proxy must refuse before anything reaches an upstream.
//! Framing is checked as strictly as nginx does (RFC 9112 §3.2, §6.1, §6.3): when the proxy and
//! the upstream could disagree on where a request ends, one request can smuggle another.

use crate::error::ProxyError;
use crate::route::Route;
use http::{header, HeaderValue, Method, Request, Version};

/// Marks a request whose head had both `Content-Length` and `Transfer-Encoding` (hyper drops
/// the length before the headers reach us; the listener sees the raw head and says so).
#[derive(Clone, Copy, Debug)]
pub struct AmbiguousFraming;

/// Index (0-based, per connection) of the first request whose head carried both
/// `Content-Length` and `Transfer-Encoding`: set by the connection's byte watcher
/// (`serve::framing`), which sees the head before hyper drops `Content-Length`; read by
/// `proxy::handle` for each request in arrival order.
#[derive(Debug)]
pub struct Ambiguous(std::sync::atomic::AtomicU64);

impl Ambiguous {
    /// A tracker with no ambiguous request yet.
    pub fn new() -> std::sync::Arc<Self> {
        std::sync::Arc::new(Ambiguous(std::sync::atomic::AtomicU64::new(u64::MAX)))
    }

    /// Records the first ambiguous request's index (later ones: hyper closes after answering it).
    pub fn found(&self, index: u64) {
        let _ = self.0.compare_exchange(
            u64::MAX,
            index,
            std::sync::atomic::Ordering::AcqRel,
            std::sync::atomic::Ordering::Acquire,
        );
    }

    /// Whether the connection's `index`-th request had both framings.
    pub fn is(&self, index: u64) -> bool {
        self.0.load(std::sync::atomic::Ordering::Acquire) == index
    }
}

/// Refuses CONNECT, ambiguous framing or target, HTTP/1.1 without `Host`, absolute-form URIs to
/// other hosts, and declared bodies over the limit. Nothing here reads the body: a refusal is
/// answered at once, even when a declared body never comes.
pub fn admit<B>(req: &Request<B>, route: &Route) -> Result<(), ProxyError> {
    if req.method() == Method::CONNECT {
        return Err(ProxyError::BadRequest("CONNECT is not supported"));
    }
    let seen = Framing::scan(req.headers());
    if req.version() <= Version::HTTP_11 {
        if req.extensions().get::<AmbiguousFraming>().is_some() {
            return Err(ProxyError::BadRequest("both Content-Length and Transfer-Encoding"));
        }
        let host = framing(req.headers(), &seen)?;
        self::host(req, host)?;
        authority(req, host)?;
    }
    let declared = seen.content_length.and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if let (Some(limit), Some(len)) = (route.policy.max_body_bytes, declared) {
        if len > limit {
            return Err(ProxyError::BodyTooLarge);
        }
    }
    Ok(())
}

/// The headers admission reads, found in one pass (enum compares of standard names) instead of
/// three hashed lookups (`Host`, `Transfer-Encoding`, `Content-Length`: ~280 instructions per
/// request under callgrind).
struct Framing<'a> {
    /// The first `Host`, and whether there was another.
    host: Option<&'a HeaderValue>,
    more_hosts: bool,
    transfer_encoding: bool,
    /// The first `Content-Length` (what `HeaderMap::get` returns).
    content_length: Option<&'a HeaderValue>,
}

impl<'a> Framing<'a> {
    fn scan(h: &'a http::HeaderMap) -> Framing<'a> {
        let mut f = Framing { host: None, more_hosts: false, transfer_encoding: false, content_length: None };
        for (k, v) in h.iter() {
            if k == header::HOST {
                f.more_hosts |= f.host.is_some();
                f.host = f.host.or(Some(v));
            } else if k == header::TRANSFER_ENCODING {
                f.transfer_encoding = true;
            } else if k == header::CONTENT_LENGTH {
                f.content_length = f.content_length.or(Some(v));
            }
        }
        f
    }
}

/// One `Host` (returned), and a body framed one way only: `Transfer-Encoding` (ending in a single
/// `chunked`) or `Content-Length`, never both.
///
/// `Host` is found once for every later check (the HTTP/1.1 requirement, the absolute-form
/// comparison), which each looked the name up again.
fn framing<'a>(h: &'a http::HeaderMap, seen: &Framing<'a>) -> Result<Option<&'a HeaderValue>, ProxyError> {
    let host = seen.host;
    if seen.more_hosts {
        return Err(ProxyError::BadRequest("more than one Host header"));
    }
    if !seen.transfer_encoding {
        return Ok(host);
    }
    if seen.content_length.is_some() {
        return Err(ProxyError::BadRequest("both Content-Length and Transfer-Encoding"));
    }
    let codings: Vec<String> = h
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("?").split(','))
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty())
        .collect();
    let chunked = codings.iter().filter(|c| *c == "chunked").count();
    if chunked != 1 || codings.last().map(String::as_str) != Some("chunked") {
        return Err(ProxyError::BadRequest("Transfer-Encoding must end in exactly one chunked"));
    }
    if codings.len() > 1 {
        return Err(ProxyError::Unsupported("transfer codings other than chunked"));
    }
    Ok(host)
}

/// HTTP/1.1 requires `Host` (RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request)
/// status code to any HTTP/1.1 request message that lacks a Host header field"); forwarded
/// without one, the upstream would see the proxy's idea of its address instead. HTTP/1.0 had no
/// such rule and its clients are still served.
fn host<B>(req: &Request<B>, host: Option<&HeaderValue>) -> Result<(), ProxyError> {
    if req.version() == Version::HTTP_11 && host.is_none() {
        return Err(ProxyError::BadRequest("HTTP/1.1 request without Host"));
    }
    Ok(())
}

/// An absolute-form target must name the host the client also put in `Host`.
fn authority<B>(req: &Request<B>, host: Option<&HeaderValue>) -> Result<(), ProxyError> {
    if let Some(auth) = req.uri().authority() {
        let host = host.map(HeaderValue::as_bytes);
        // Without a Host line there is nothing to check the authority against (and HTTP/1.1
        // requires one): only a forward-proxy client sends that, so refuse it too.
        if host.is_none_or(|h| !h.eq_ignore_ascii_case(auth.as_str().as_bytes())) {
            return Err(ProxyError::BadRequest("absolute-form URI names another host"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorSource;
    use http::StatusCode;

    fn check(lines: &[(&str, &str)]) -> Option<StatusCode> {
        let mut h = http::HeaderMap::new();
        for (k, v) in lines {
            h.append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        framing(&h, &Framing::scan(&h)).err().map(|e| {
            assert_eq!(e.origin(), ErrorSource::Downstream);
            super::super::respond::status_of(&e)
        })
    }

    #[test]
    fn ambiguous_framing_is_refused() {
        let bad = StatusCode::BAD_REQUEST;
        assert_eq!(check(&[("host", "a"), ("host", "b")]), Some(bad));
        assert_eq!(check(&[("content-length", "3"), ("transfer-encoding", "chunked")]), Some(bad));
        assert_eq!(check(&[("transfer-encoding", "chunked, chunked")]), Some(bad));
        assert_eq!(check(&[("transfer-encoding", "chunked"), ("transfer-encoding", "chunked")]), Some(bad));
        assert_eq!(check(&[("transfer-encoding", "chunked, gzip")]), Some(bad));
        assert_eq!(check(&[("transfer-encoding", "gzip, chunked")]), Some(StatusCode::NOT_IMPLEMENTED));
    }

    #[test]
    fn host_is_required_of_http11_only() {
        let req = |v: Version, host: Option<&str>| {
            let mut b = Request::builder().version(v).uri("/");
            if let Some(h) = host {
                b = b.header(header::HOST, h);
            }
            b.body(()).unwrap()
        };
        let host = |r: &Request<()>| super::host(r, r.headers().get(header::HOST));
        assert!(matches!(host(&req(Version::HTTP_11, None)), Err(ProxyError::BadRequest(_))));
        assert!(host(&req(Version::HTTP_11, Some("a"))).is_ok());
        assert!(host(&req(Version::HTTP_10, None)).is_ok());
    }

    #[test]
    fn ordinary_framing_passes() {
        assert_eq!(check(&[("host", "a"), ("transfer-encoding", "Chunked")]), None);
        assert_eq!(check(&[("host", "a"), ("content-length", "3")]), None);
        assert_eq!(check(&[]), None);
    }
}
