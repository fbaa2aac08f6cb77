//! One request to a running proxy's admin API, over `http://` or `https://` (rustls, ring), with
//! the bearer token and a deadline on the whole exchange: an admin API behind a stalled ingress
//! must fail the command, not hang the operator's terminal.

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use http::{header, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Where and how to reach the admin API.
pub struct Target {
    /// Base URL, `http://HOST:PORT` or `https://HOST:PORT` (a path prefix is kept).
    pub base: String,
    /// Bearer token for mutating calls.
    pub token: Option<String>,
    /// Deadline of one exchange (connect, TLS, request, response body).
    pub timeout: Duration,
    /// PEM CA bundle trusted for `https://` instead of the system's roots.
    pub ca: Option<PathBuf>,
}

/// Sends one request; returns the status and the body.
pub async fn send(t: &Target, method: &str, path: &str, body: Option<String>) -> anyhow::Result<(StatusCode, Bytes)> {
    let url: http::Uri = format!("{}{}", t.base.trim_end_matches('/'), path)
        .parse()
        .with_context(|| format!("{:?} is not an admin URL (http://HOST:PORT or https://HOST:PORT)", t.base))?;
    let https = match url.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => bail!("{:?}: the admin URL must start with http:// or https://", t.base),
    };
    let authority = url.authority().ok_or_else(|| anyhow!("{:?} has no host", t.base))?.clone();
    let host = authority.host().trim_matches(['[', ']']).to_string();
    let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
    let mut req = Request::builder()
        .method(method)
        .uri(url.path_and_query().map_or("/", |p| p.as_str()))
        .header(header::HOST, authority.as_str())
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(token) = &t.token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {}", token.trim()));
    }
    let req = req.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
    let exchange = async {
        let tcp = TcpStream::connect((host.as_str(), port)).await?;
        if !https {
            return exchange(tcp, req).await;
        }
        let name = rustls_pki_types::ServerName::try_from(host.clone())?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(tls_config(t)?)).connect(name, tcp).await?;
        exchange(tls, req).await
    };
    tokio::time::timeout(t.timeout, exchange)
        .await
        .map_err(|_| anyhow!("no answer from the admin API at {} within {:?}", t.base, t.timeout))?
        .with_context(|| format!("cannot reach the admin API at {}", t.base))
}

async fn exchange<I>(io: I, req: Request<Full<Bytes>>) -> anyhow::Result<(StatusCode, Bytes)>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(conn);
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    Ok((status, resp.into_body().collect().await?.to_bytes()))
}

/// Trusts `--ca` when given, else the system's roots (an admin behind a public ingress).
fn tls_config(t: &Target) -> anyhow::Result<rustls::ClientConfig> {
    let mut cfg = match &t.ca {
        Some(ca) => switchyard::tls::client_config(Some(ca))?,
        None => {
            switchyard::tls::install_provider();
            let mut roots = rustls::RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                bail!("no system CA certificates found; pass --ca PATH");
            }
            rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth()
        }
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}
