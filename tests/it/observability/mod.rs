//! Every request visible: request ids, W3C trace context exported over OTLP to a real receiver
//! (`support::otlp`), and the access log read back as JSON lines. Real mocks, real sockets.

mod access_log;
mod incidents;
mod traces;

use crate::support::*;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

pub const FORCE: &str = "x-switchyard-color";

/// A port nothing listens on (connect refused).
pub fn closed_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// `/__echo` through the proxy with `headers`: (status, response headers, the headers the
/// upstream received).
pub async fn echo(addr: SocketAddr, headers: &[(&str, &str)]) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
    let mut rb = client().get(format!("http://{addr}/__echo"));
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    let r = rb.send().await.unwrap();
    let (status, h) = (r.status().as_u16(), r.headers().clone());
    let body: serde_json::Value = r.json().await.unwrap_or_default();
    (status, h, body["headers"].clone())
}

/// The access log's lines parsed as JSON, once `pred` holds for them (up to 10 s).
pub async fn log_lines(path: &Path, pred: impl Fn(&[serde_json::Value]) -> bool) -> Vec<serde_json::Value> {
    let end = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<serde_json::Value> =
            text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();
        if pred(&lines) || tokio::time::Instant::now() > end {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The line of request `id`, waiting for it.
pub async fn line_of(path: &Path, id: &str) -> serde_json::Value {
    let lines = log_lines(path, |l| l.iter().any(|v| v["request_id"] == id)).await;
    lines.into_iter().find(|v| v["request_id"] == id).unwrap_or_else(|| panic!("no access log line for {id}"))
}
