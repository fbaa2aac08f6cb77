//! Helpers for the data-plane tests: one-service fixtures, raw HTTP/1.1 over a `TcpStream`,
//! Prometheus text parsing and bounded async polling.

pub use crate::support::{service_toml, Fixture};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Control settings that keep the loop out of the way: the default 30 s interval means no
/// measurement closes (and no trigger fires) during a test.
pub const QUIET: &str = "";

/// The force header used throughout.
pub const FORCE: &str = "x-switchyard-color";

impl Fixture {
    /// Sets the green weight through the admin API and checks it was accepted.
    pub async fn set_weight(&self, name: &str, percent: f64) {
        let (status, body) = crate::support::admin_post(
            &self.app,
            &format!("/services/{name}/weight"),
            &format!("{{\"green\":{percent}}}"),
        )
        .await;
        assert_eq!(status, 200, "weight change refused: {body}");
    }
}

/// An address nothing listens on: bind port 0, note the port, close it.
pub fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// Whether a mock name (`x-switchyard-mock`) is a green one.
pub fn is_green(who: &str) -> bool {
    who.ends_with("-green")
}

/// GET with extra headers; returns (status, x-switchyard-mock or "").
pub async fn get_with(c: &reqwest::Client, addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut rb = c.get(format!("http://{addr}{path}"));
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    match rb.send().await {
        Ok(r) => {
            let who = r.headers().get("x-switchyard-mock").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            (r.status().as_u16(), who)
        }
        Err(_) => (0, String::new()),
    }
}

/// Polls an async condition every 20 ms until it holds or `limit` passes.
pub async fn eventually_async<F, Fut>(limit: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + limit;
    loop {
        if cond().await {
            return true;
        }
        if tokio::time::Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A parsed HTTP/1.1 response read off a raw socket.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// Lowercased names, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// First value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Reads one response head (up to the blank line) within 5 s; `None` on EOF or timeout.
pub async fn read_head(s: &mut TcpStream) -> Option<(u16, Vec<(String, String)>)> {
    let mut buf = Vec::new();
    let read = async {
        let mut byte = [0u8; 1];
        while !buf.ends_with(b"\r\n\r\n") && buf.len() < 64 * 1024 {
            if s.read(&mut byte).await.ok()? == 0 {
                return None;
            }
            buf.push(byte[0]);
        }
        Some(())
    };
    tokio::time::timeout(Duration::from_secs(5), read).await.ok()??;
    let text = String::from_utf8_lossy(&buf);
    let mut lines = text.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Some((status, headers))
}

/// Reads one full response (content-length or chunked body) within 5 s.
pub async fn read_response(s: &mut TcpStream) -> Option<RawResponse> {
    let (status, headers) = read_head(s).await?;
    let mut r = RawResponse { status, headers, body: Vec::new() };
    let body = async {
        if r.header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            loop {
                let line = read_line(s).await?;
                let size = usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()?;
                let mut chunk = vec![0u8; size + 2];
                s.read_exact(&mut chunk).await.ok()?;
                if size == 0 {
                    return Some(());
                }
                r.body.extend_from_slice(&chunk[..size]);
            }
        }
        let len: usize = r.header("content-length").map_or(Some(0), |v| v.parse().ok())?;
        r.body.resize(len, 0);
        s.read_exact(&mut r.body).await.ok()?;
        Some(())
    };
    tokio::time::timeout(Duration::from_secs(5), body).await.ok()??;
    Some(r)
}

async fn read_line(s: &mut TcpStream) -> Option<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") && line.len() < 1024 {
        if s.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        line.push(byte[0]);
    }
    Some(String::from_utf8_lossy(&line).trim_end().to_string())
}

/// Connects, writes `request` verbatim and reads one response.
pub async fn raw_exchange(addr: SocketAddr, request: &str) -> (TcpStream, Option<RawResponse>) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let r = read_response(&mut s).await;
    (s, r)
}

/// Reads until EOF (or 5 s); returns what arrived and whether EOF was seen.
pub async fn read_to_eof(s: &mut TcpStream) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    (out, matches!(r, Ok(Ok(_)) | Ok(Err(_))))
}
