//! Helpers of the control-loop tests: config snippets, a bounded background load, a webhook
//! receiver, `/metrics` scraping, and a replay of the consecutive-count rule over the
//! per-measurement history that the loop publishes in `/status`.

use mock_upstream::MockPatch;
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// A `[[services]]` table for `name` in manual mode at `weight` percent, plus `extra` lines.
pub fn weighted(name: &str, m: &crate::support::Mocks, weight: f64, extra: &str) -> String {
    crate::support::service_toml(name, "127.0.0.1:0", &format!("green_weight = {weight}\n{extra}"), &m.pools("r1"))
}

/// Trigger lines that disable every trigger except `key`, which gets `spec`
/// (so a fault that trips several triggers can only be attributed to the one under test).
pub fn only(key: &str, spec: &str) -> String {
    let off = [
        ("p95_latency", "{ above = \"2s\", enabled = false }"),
        ("error_rate", "{ above = 0.01, enabled = false }"),
        ("availability", "{ below = 0.999, enabled = false }"),
        ("compliance", "{ below = 0.95, enabled = false }"),
        ("hash_mismatch", "{ enabled = false }"),
    ];
    let mut out: String =
        off.iter().map(|(k, v)| format!("triggers.{k} = {}\n", if *k == key { spec } else { v })).collect();
    if key == "status_rate" {
        out.push_str(&format!("triggers.status_rate = {spec}\n"));
    }
    out
}

/// A mock patch from JSON (panics on a typo: `MockPatch` denies unknown fields).
pub fn patch(json: &str) -> MockPatch {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("bad mock patch {json}: {e}"))
}

/// A tiny HTTP/1.1 receiver on 127.0.0.1:0 that answers 200 to anything and forwards each
/// request body, parsed as JSON, to the returned channel.
pub async fn webhook_receiver() -> (SocketAddr, mpsc::UnboundedReceiver<Value>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let read = tokio::time::timeout(Duration::from_secs(5), read_request(&mut sock)).await;
                if let Ok(Some(body)) = read {
                    let _ = tx.send(serde_json::from_slice(&body).unwrap_or(Value::Null));
                }
                let _ = sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
            });
        }
    });
    (addr, rx)
}

/// Reads one request (head, then `content-length` bytes, at most 1 MiB); returns its body.
async fn read_request(sock: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return Some(buf[end + 4..end + 4 + len].to_vec());
            }
        }
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 || buf.len() > 1 << 20 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Green's measurement history from a `/status` service entry (oldest first).
pub fn green_history(svc: &Value) -> Vec<Value> {
    svc["history"]["green"].as_array().cloned().unwrap_or_default()
}

/// Green's history accumulated over many `/status` snapshots, so a test that polls more often
/// than every 30 intervals sees every measurement even though `/status` keeps only the last 30.
#[derive(Default)]
pub struct History(pub Vec<Value>);

impl History {
    /// Appends the points of `svc` newer than the last one held.
    pub fn absorb(&mut self, svc: &Value) {
        let last = self.0.last().and_then(|p| p["at"].as_str()).unwrap_or("").to_string();
        self.0.extend(green_history(svc).into_iter().filter(|p| p["at"].as_str().is_some_and(|at| at > last.as_str())));
    }
}

/// Replays the rule of `decide::evaluate` for one trigger over published measurements: a
/// measurement with fewer than `min` samples is inconclusive and leaves the streak alone, a
/// conclusive bad one extends it, a conclusive healthy one resets it. Replay starts after the
/// first conclusive healthy point (whatever streak existed before it is reset there). Returns
/// the index at which the streak first reaches `need`, or `None`; panics if no conclusive healthy
/// point exists, since then the replay would not know the starting streak.
pub fn replay(points: &[Value], min: u64, need: u32, bad: impl Fn(&Value) -> bool) -> Option<usize> {
    let conclusive = |p: &Value| p["samples"].as_u64().unwrap_or(0) >= min.max(1);
    let start = points
        .iter()
        .position(|p| conclusive(p) && !bad(p))
        .unwrap_or_else(|| panic!("no conclusive healthy measurement to start the replay from: {points:#?}"));
    let mut streak = 0;
    for (i, p) in points.iter().enumerate().skip(start + 1) {
        if !conclusive(p) {
            continue;
        }
        streak = if bad(p) { streak + 1 } else { 0 };
        if streak >= need {
            return Some(i);
        }
    }
    None
}

/// Index of the measurement that led to a rollback decided at `decided_at`: the last one taken
/// at or before it (both are RFC 3339 UTC with milliseconds, so they compare as strings).
pub fn decision_point(points: &[Value], decided_at: &str) -> Option<usize> {
    points.iter().rposition(|p| p["at"].as_str().is_some_and(|at| at <= decided_at))
}

/// Number of conclusive measurements in a history.
pub fn conclusive(points: &[Value], min: u64) -> usize {
    points.iter().filter(|p| p["samples"].as_u64().unwrap_or(0) >= min).count()
}

/// Milliseconds between two RFC 3339 timestamps (`b - a`).
pub fn ms_between(a: &str, b: &str) -> f64 {
    let t = |s: &str| humantime::parse_rfc3339(s).unwrap_or_else(|e| panic!("{s}: {e}"));
    match t(b).duration_since(t(a)) {
        Ok(d) => d.as_secs_f64() * 1e3,
        Err(e) => -e.duration().as_secs_f64() * 1e3,
    }
}
