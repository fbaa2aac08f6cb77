//! Answers one request: control paths first, then the served-request pipeline
//! (count → fault → latency → error injection → handler → identity headers).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_TYPE, UPGRADE};
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde::Serialize;

use super::conn::ConnFault;
use super::state::{fails, Settings, Shared};
use super::{Fault, MockPatch};

/// Identifies which upstream answered; the load generator counts responses by it.
pub(crate) const MOCK_HEADER: HeaderName = HeaderName::from_static("x-switchyard-mock");
/// Checked by the proxy's health checks before a color is considered green.
pub(crate) const HASH_HEADER: HeaderName = HeaderName::from_static("x-constitutional-hash");
/// Reported compliance score of the upstream.
pub(crate) const COMPLIANCE_HEADER: HeaderName = HeaderName::from_static("x-constitutional-compliance");
/// Per-principle compliance scores of the upstream.
pub(crate) const PRINCIPLES_HEADER: HeaderName = HeaderName::from_static("x-constitutional-principles");

/// Response body type: every mock answer is small and fully built before it is sent.
type MockResponse = Response<Full<Bytes>>;

/// A fault the service inflicts by failing, so hyper drops the connection.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Injected {
    /// The `Reset` fault: the connection is closed with an RST and no response.
    #[error("injected connection reset")]
    Reset,
}

/// Entry point of the per-connection service.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    conn: Arc<ConnFault>,
    req: Request<Incoming>,
) -> Result<MockResponse, Injected> {
    match req.uri().path() {
        "/health" if req.method() == Method::GET => return Ok(health(&shared)),
        "/__mock" => return Ok(control(&shared, req).await),
        _ => {}
    }
    let index = shared.next_request();
    // One load per request; `load_full` because the snapshot is held across awaits.
    let settings = shared.settings.load_full();
    let version = req.version();
    match settings.cfg.fault {
        Fault::Hang => std::future::pending::<()>().await,
        Fault::Reset => {
            conn.reset();
            return Err(Injected::Reset);
        }
        Fault::Garbage => {
            conn.garbage();
            let mut resp = plain(StatusCode::OK, shared.name_body.clone());
            close_after(&mut resp, version);
            return Ok(resp);
        }
        Fault::None | Fault::CloseAfterResponse => {}
    }
    if settings.cfg.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(settings.cfg.latency_ms)).await;
    }
    let mut resp = if fails(index, settings.error_ppm) {
        plain(StatusCode::INTERNAL_SERVER_ERROR, "injected error\n")
    } else {
        route(&shared, req).await
    };
    identify(&mut resp, &shared, &settings);
    if settings.cfg.fault == Fault::CloseAfterResponse {
        close_after(&mut resp, version);
    }
    Ok(resp)
}

async fn route(shared: &Shared, req: Request<Incoming>) -> MockResponse {
    if is_upgrade(&req) {
        return upgrade(shared, req);
    }
    match req.uri().path() {
        "/__echo" => echo(&req),
        "/__upload" => upload(req).await,
        "/__sleep" => sleep(shared, &req).await,
        _ => plain(StatusCode::OK, shared.name_body.clone()),
    }
}

fn health(shared: &Shared) -> MockResponse {
    let mut resp = plain(StatusCode::OK, "ok");
    identify(&mut resp, shared, &shared.settings.load());
    resp
}

/// `POST /__mock` applies a patch; `GET /__mock` only reports. Both answer with the config.
async fn control(shared: &Shared, req: Request<Incoming>) -> MockResponse {
    match *req.method() {
        Method::GET => json(StatusCode::OK, &shared.settings.load().cfg),
        Method::POST => {
            let body = match req.into_body().collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) => return plain(StatusCode::BAD_REQUEST, format!("{e}\n")),
            };
            match serde_json::from_slice::<MockPatch>(&body) {
                Ok(patch) => json(StatusCode::OK, &shared.apply(patch)),
                Err(e) => plain(StatusCode::BAD_REQUEST, format!("bad patch: {e}\n")),
            }
        }
        _ => plain(StatusCode::METHOD_NOT_ALLOWED, "use GET or POST\n"),
    }
}

#[derive(Serialize)]
struct Echo {
    method: String,
    uri: String,
    version: String,
    headers: serde_json::Map<String, serde_json::Value>,
}

fn echo(req: &Request<Incoming>) -> MockResponse {
    let mut headers = serde_json::Map::new();
    for name in req.headers().keys() {
        let joined = req
            .headers()
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()))
            .collect::<Vec<_>>()
            .join(", ");
        headers.insert(name.as_str().to_owned(), joined.into());
    }
    let echo = Echo {
        method: req.method().to_string(),
        uri: req.uri().to_string(),
        version: format!("{:?}", req.version()),
        headers,
    };
    json(StatusCode::OK, &echo)
}

/// Counts body bytes frame by frame, so a large upload never sits in memory.
async fn upload(req: Request<Incoming>) -> MockResponse {
    if !matches!(*req.method(), Method::POST | Method::PUT) {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "use POST or PUT\n");
    }
    let mut body = req.into_body();
    let mut bytes: u64 = 0;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => bytes += frame.data_ref().map_or(0, |d| d.len() as u64),
            Err(e) => return plain(StatusCode::BAD_REQUEST, format!("{e}\n")),
        }
    }
    json(StatusCode::OK, &serde_json::json!({ "bytes": bytes }))
}

async fn sleep(shared: &Shared, req: &Request<Incoming>) -> MockResponse {
    let ms = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("ms=")))
        .and_then(|v| v.parse::<u64>().ok());
    match ms {
        Some(ms) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            plain(StatusCode::OK, shared.name_body.clone())
        }
        None => plain(StatusCode::BAD_REQUEST, "expected ?ms=N\n"),
    }
}

fn is_upgrade(req: &Request<Incoming>) -> bool {
    let connection_upgrade = req
        .headers()
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    connection_upgrade && req.headers().contains_key(UPGRADE)
}

/// Answers `101` and echoes raw bytes on the upgraded stream until either side closes
/// or the mock shuts down.
fn upgrade(shared: &Shared, mut req: Request<Incoming>) -> MockResponse {
    let protocol = req.headers().get(UPGRADE).cloned();
    let on_upgrade = hyper::upgrade::on(&mut req);
    let closing = shared.tunnels_closing();
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => return tracing::debug!(error = %e, "mock upstream: upgrade failed"),
        };
        let (mut rd, mut wr) = tokio::io::split(TokioIo::new(upgraded));
        tokio::select! {
            res = tokio::io::copy(&mut rd, &mut wr) => {
                if let Err(e) = res {
                    tracing::debug!(error = %e, "mock upstream: echo tunnel ended");
                }
            }
            () = closing => {}
        }
    });
    let mut resp = plain(StatusCode::SWITCHING_PROTOCOLS, Bytes::new());
    let headers = resp.headers_mut();
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    if let Some(p) = protocol {
        headers.insert(UPGRADE, p);
    }
    resp
}

fn identify(resp: &mut MockResponse, shared: &Shared, settings: &Settings) {
    let headers = resp.headers_mut();
    headers.insert(MOCK_HEADER, shared.name_header.clone());
    if let Some(h) = &settings.hash {
        headers.insert(HASH_HEADER, h.clone());
    }
    if let Some(c) = &settings.compliance {
        headers.insert(COMPLIANCE_HEADER, c.clone());
    }
    if let Some(p) = &settings.principles {
        headers.insert(PRINCIPLES_HEADER, p.clone());
    }
}

/// `Connection: close` is HTTP/1 only; HTTP/2 forbids connection-specific headers.
fn close_after(resp: &mut MockResponse, version: Version) {
    if version < Version::HTTP_2 {
        resp.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
    }
}

fn plain(status: StatusCode, body: impl Into<Bytes>) -> MockResponse {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp
}

fn json(status: StatusCode, value: &impl Serialize) -> MockResponse {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let mut resp = plain(status, body);
            resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            resp
        }
        Err(e) => plain(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    }
}
