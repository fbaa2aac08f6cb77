//! What the thread-per-core tests share: requests on fresh connections (each one a new accept,
//! so the kernel's `SO_REUSEPORT` hash picks the worker) and which worker accepted each one,
//! read from `switchyard_worker_connections_total` between connections.

use crate::support::{read_response, scrape};
use std::net::SocketAddr;
use std::time::Duration;
use switchyard::app::App;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Worker runtimes of every fixture here (`--threads 2`).
pub const THREADS: usize = 2;

/// Connections each worker accepted for `service` so far (worker `i + 1` at index `i`).
pub async fn accepted(app: &App, service: &str) -> [u64; THREADS] {
    let text = scrape(app).await;
    std::array::from_fn(|i| {
        let worker = (i + 1).to_string();
        let labels = [("service", service), ("worker", worker.as_str())];
        crate::support::metric(&text, "switchyard_worker_connections_total", &labels).unwrap_or(0.0) as u64
    })
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

    /// The worker (0-based) that accepted the one connection opened since the last call; waits
    /// (5 s at most) for the accept when the connection's request has not been answered yet.
    pub async fn next(&mut self) -> usize {
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            let now = accepted(self.app, &self.service).await;
            let grew: Vec<usize> = (0..THREADS).filter(|&i| now[i] > self.last[i]).collect();
            let added: u64 = now.iter().sum::<u64>() - self.last.iter().sum::<u64>();
            if added > 0 {
                assert_eq!((added, grew.len()), (1, 1), "one connection at a time: {:?} -> {now:?}", self.last);
                self.last = now;
                return grew[0];
            }
            assert!(Instant::now() < end, "no worker accepted the connection: {now:?}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
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
    match read_response(&mut s).await {
        Some(r) => (r.status, r.header("x-switchyard-mock").unwrap_or_default().to_string()),
        None => (0, String::new()),
    }
}

/// Opens a connection and sends `GET path` without reading the answer: a request left in flight.
pub async fn send_only(addr: SocketAddr, path: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request(path, &[]).as_bytes()).await.unwrap();
    s
}

/// Requests left in flight until each worker holds at least `each` of them: the connections,
/// each with the worker that accepted it.
pub async fn in_flight_on_both(
    at: &mut Attribution<'_>,
    addr: SocketAddr,
    path: &str,
    each: usize,
) -> Vec<(TcpStream, usize)> {
    let mut out = Vec::new();
    let mut per = [0usize; THREADS];
    while per.iter().any(|&n| n < each) {
        assert!(out.len() < 40 * each, "the kernel never spread {each} connections to each worker: {per:?}");
        let s = send_only(addr, path).await;
        let w = at.next().await;
        per[w] += 1;
        out.push((s, w));
    }
    out
}
