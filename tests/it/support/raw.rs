//! The one raw-socket HTTP/1.1 client: for what reqwest would normalise away (hop-by-hop
//! headers, malformed requests, connection closes, half-read bodies).

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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

/// Reads until EOF or `limit`: what arrived, and whether the peer closed (EOF or reset) in time.
pub async fn read_to_eof<S: tokio::io::AsyncRead + Unpin>(s: &mut S, limit: Duration) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let end = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(end, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (out, true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (out, false),
        }
    }
}
