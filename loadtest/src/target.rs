//! The request to send, resolved once: socket address plus a template cloned per request.

use std::net::SocketAddr;

use anyhow::{bail, Context};
use bytes::Bytes;
use http::header::HOST;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::Full;

use crate::cli::Args;

/// Where to connect and what to send; built before the run so the hot loop only clones.
#[derive(Debug)]
pub struct Target {
    /// Resolved once: DNS is not part of what we measure.
    pub addr: SocketAddr,
    method: Method,
    /// Origin-form for HTTP/1.1, absolute for HTTP/2 (hyper derives `:authority` from it).
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

impl Target {
    /// Parses the URL and headers and resolves the host.
    pub async fn resolve(args: &Args) -> anyhow::Result<Self> {
        let url: Uri = args.url.parse().context("parsing --url")?;
        if url.scheme_str() != Some("http") {
            bail!("--url must be plain http://");
        }
        let authority = url.authority().context("--url needs a host")?.clone();
        let port = authority.port_u16().unwrap_or(80);
        let addr = tokio::net::lookup_host((authority.host(), port))
            .await
            .with_context(|| format!("resolving {authority}"))?
            .next()
            .with_context(|| format!("{authority} resolved to nothing"))?;
        let path = url.path_and_query().map_or("/", |p| p.as_str());
        let uri = if args.http2 { url.clone() } else { path.parse().context("parsing path")? };
        let mut headers = HeaderMap::new();
        if !args.http2 {
            headers.insert(HOST, HeaderValue::from_str(authority.as_str())?);
        }
        for raw in &args.headers {
            let (name, value) = parse_header(raw)?;
            headers.insert(name, value);
        }
        Ok(Self {
            addr,
            method: args.method.parse().context("parsing --method")?,
            uri,
            headers,
            body: Bytes::from(args.body.clone().unwrap_or_default()),
        })
    }

    /// A fresh request; clones are reference-counted except the header map.
    pub fn request(&self) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(self.body.clone()));
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.headers_mut() = self.headers.clone();
        req
    }
}

/// Parses `name: value` as given to `-H`.
pub fn parse_header(raw: &str) -> anyhow::Result<(HeaderName, HeaderValue)> {
    let (name, value) = raw.split_once(':').with_context(|| format!("header {raw:?} is not `name: value`"))?;
    Ok((
        name.trim().parse().with_context(|| format!("header name in {raw:?}"))?,
        value.trim().parse().with_context(|| format!("header value in {raw:?}"))?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_flag_splits_on_first_colon() {
        let (n, v) = parse_header("X-Forwarded-For: a:b ").unwrap();
        assert_eq!(n, "x-forwarded-for");
        assert_eq!(v, "a:b");
        assert!(parse_header("no-colon").is_err());
    }
}
