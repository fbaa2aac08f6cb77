//! What the thread-per-core tests share: requests on fresh connections (each one a new accept,
//! so the kernel's `SO_REUSEPORT` hash picks the worker) and how many of them each worker
//! accepted, read from `switchyard_worker_connections_total`: per round of connections
//! (`spread`, `in_flight_on_both`), or per connection when a test must know which worker served
//! which request (`Attribution`). Every bound is generous: these tests also run on a loaded box.

use crate::support::{read_to_eof, scrape};
use std::net::SocketAddr;
use std::time::Duration;
use switchyard::app::App;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Worker runtimes of every fixture here (`--threads 2`).
pub const THREADS: usize = 2;

/// Connections opened between two reads of the per-worker counters.
const ROUND: usize = 8;

/// Connections each worker accepted for `service` so far (worker `i + 1` at index `i`).
pub async fn accepted(app: &App, service: &str) -> [u64; THREADS] {
    let text = scrape(app).await;
    std::array::from_fn(|i| {
        let worker = (i + 1).to_string();
        let labels = [("service", service), ("worker", worker.as_str())];
        crate::support::metric(&text, "switchyard_worker_connections_total", &labels).unwrap_or(0.0) as u64
    })
}

/// Waits (10 s at most) until `service`'s workers accepted `total` connections since `base`;
/// returns how many each accepted.
async fn accepted_since(app: &App, service: &str, base: [u64; THREADS], total: usize) -> [u64; THREADS] {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let now = accepted(app, service).await;
        let per: [u64; THREADS] = std::array::from_fn(|i| now[i] - base[i]);
        if per.iter().sum::<u64>() >= total as u64 {
            return per;
        }
        assert!(Instant::now() < end, "{total} connections opened, the workers accepted {per:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs `request` (each call opens exactly one connection to `service`) in rounds until each
/// worker has accepted at least `each` of them (at most `40 × each` calls): every result, and how
/// many connections each worker accepted.
pub async fn spread<T>(
    app: &App,
    service: &str,
    each: usize,
    mut request: impl AsyncFnMut() -> T,
) -> (Vec<T>, [u64; THREADS]) {
    let base = accepted(app, service).await;
    let mut out = Vec::new();
    loop {
        for _ in 0..ROUND {
            out.push(request().await);
        }
        let per = accepted_since(app, service, base, out.len()).await;
        if per.iter().all(|&n| n >= each as u64) {
            return (out, per);
        }
        assert!(out.len() < 40 * each, "the kernel never spread {each} connections to each worker: {per:?}");
    }
}

/// Requests of `path` left in flight (sent, not read) until each worker holds at least `each`
/// of them: the connections, and how many each worker accepted.
pub async fn in_flight_on_both(
    app: &App,
    service: &str,
    addr: SocketAddr,
    path: &str,
    each: usize,
) -> (Vec<TcpStream>, [u64; THREADS]) {
    let base = accepted(app, service).await;
    let mut out = Vec::new();
    loop {
        for _ in 0..ROUND / 2 {
            out.push(send_only(addr, path).await);
        }
        let per = accepted_since(app, service, base, out.len()).await;
        if per.iter().all(|&n| n >= each as u64) {
            return (out, per);
        }
        assert!(out.len() < 40 * each, "the kernel never spread {each} connections to each worker: {per:?}");
    }
}

/// Names the worker of each new connection to one service, one connection at a time.
pub struct Attribution<'a> {
    app: &'a App,
    service: String,
    last: [u64; THREADS],
}

impl<'a> Attribution<'a> {
    pub async fn new(app: &'a App, service: &str) -> Attribution<'a> {
        Attribution { app, service: service.into(), last: accepted(app, service).await }
    }

    /// The worker (0-based) that accepted the one connection opened since the last call.
    pub async fn next(&mut self) -> usize {
        let per = accepted_since(self.app, &self.service, self.last, 1).await;
        let grew: Vec<usize> = (0..THREADS).filter(|&i| per[i] > 0).collect();
        assert_eq!((per.iter().sum::<u64>(), grew.len()), (1, 1), "one connection at a time: {per:?}");
        self.last[grew[0]] += 1;
        grew[0]
    }

    /// Runs `request` (which opens exactly one connection to the service) until each worker has
    /// accepted at least `each` of them, at most `40 × each` times; what each worker's requests gave.
    pub async fn on_both<T>(&mut self, each: usize, mut request: impl AsyncFnMut() -> T) -> [Vec<T>; THREADS] {
        let mut out: [Vec<T>; THREADS] = std::array::from_fn(|_| Vec::new());
        for _ in 0..40 * each {
            if out.iter().all(|v| v.len() >= each) {
                break;
            }
            let r = request().await;
            out[self.next().await].push(r);
        }
        let counts = out.each_ref().map(Vec::len);
        assert!(
            counts.iter().all(|&n| n >= each),
            "the kernel never spread {each} connections to each worker: {counts:?}"
        );
        out
    }
}

/// The bytes of `GET path` on a connection the server is asked to close after answering.
pub fn request(path: &str, headers: &[(&str, &str)]) -> String {
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    format!("GET {path} HTTP/1.1\r\nHost: cores\r\nConnection: close\r\n{extra}\r\n")
}

/// One GET on a fresh connection: (status, `x-switchyard-mock`), status 0 when no answer came.
pub async fn fresh_get(addr: SocketAddr, headers: &[(&str, &str)]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request("/", headers).as_bytes()).await.unwrap();
    answer(&mut s).await
}

/// Opens a connection and sends `GET path` without reading the answer: a request left in flight.
pub async fn send_only(addr: SocketAddr, path: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request(path, &[]).as_bytes()).await.unwrap();
    s
}

/// The answer on a `Connection: close` exchange, read to its end (15 s at most): (status,
/// `x-switchyard-mock`), status 0 when the connection closed without one.
pub async fn answer(s: &mut TcpStream) -> (u16, String) {
    let (bytes, _) = read_to_eof(s, Duration::from_secs(15)).await;
    let text = String::from_utf8_lossy(&bytes);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let mock = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("x-switchyard-mock"))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    (status, mock)
}
