//! One logical client connection per worker: HTTP/1.1 (its own socket) or a clone of the
//! shared HTTP/2 connection. Reconnects lazily after a failure.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use crate::stats::ErrorKind;

/// Identifies the upstream that answered; counted per value and per color.
pub const MOCK_HEADER: &str = "x-switchyard-mock";

type Body = Full<Bytes>;

/// The outcome of one completed exchange.
#[derive(Debug)]
pub struct Answer {
    /// Response status.
    pub status: u16,
    /// `x-switchyard-mock`, if present.
    pub upstream: Option<HeaderValue>,
}

/// The HTTP/2 connection all workers multiplex over; behind a mutex only so that exactly one
/// worker reconnects after it dies — the request path clones the sender and never locks again.
#[derive(Debug)]
pub struct SharedH2 {
    addr: SocketAddr,
    sender: Mutex<Option<http2::SendRequest<Body>>>,
}

impl SharedH2 {
    /// A not-yet-connected shared connection to `addr`.
    pub fn new(addr: SocketAddr) -> Arc<Self> {
        Arc::new(Self { addr, sender: Mutex::new(None) })
    }

    async fn sender(&self) -> Result<http2::SendRequest<Body>, ErrorKind> {
        let mut slot = self.sender.lock().await;
        if let Some(s) = slot.as_ref().filter(|s| !s.is_closed()) {
            return Ok(s.clone());
        }
        let io = TokioIo::new(tcp(self.addr).await?);
        let (send, conn) = http2::handshake(TokioExecutor::new(), io).await.map_err(|_| ErrorKind::Connect)?;
        tokio::spawn(conn);
        *slot = Some(send.clone());
        Ok(send)
    }
}

#[derive(Debug)]
enum Sender {
    H1(http1::SendRequest<Body>),
    H2(http2::SendRequest<Body>),
}

/// Where a worker gets its connection from.
#[derive(Clone, Debug)]
pub enum Dial {
    /// Its own HTTP/1.1 keep-alive socket.
    H1(SocketAddr),
    /// A stream on the shared HTTP/2 connection.
    H2(Arc<SharedH2>),
}

/// A worker's connection; `None` until first use and after any failure.
#[derive(Debug)]
pub struct Conn {
    dial: Dial,
    sender: Option<Sender>,
}

async fn tcp(addr: SocketAddr) -> Result<TcpStream, ErrorKind> {
    let tcp = TcpStream::connect(addr).await.map_err(|_| ErrorKind::Connect)?;
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}

impl Conn {
    /// A connection that dials on first use.
    pub fn new(dial: Dial) -> Self {
        Self { dial, sender: None }
    }

    /// Sends `req` and reads the whole body, within `timeout`.
    pub async fn exchange(&mut self, req: Request<Body>, timeout: Duration) -> Result<Answer, ErrorKind> {
        let result = tokio::time::timeout(timeout, self.exchange_inner(req)).await;
        let result = result.unwrap_or(Err(ErrorKind::Timeout));
        if result.is_err() {
            // The connection's state is unknown after a failure; start afresh next time.
            self.sender = None;
        }
        result
    }

    async fn exchange_inner(&mut self, req: Request<Body>) -> Result<Answer, ErrorKind> {
        let resp = match self.ready_sender().await? {
            Sender::H1(s) => s.send_request(req).await,
            Sender::H2(s) => s.send_request(req).await,
        }
        .map_err(|e| ErrorKind::classify(&e))?;
        let status = resp.status().as_u16();
        let upstream = resp.headers().get(MOCK_HEADER).cloned();
        let mut body = resp.into_body();
        // Drain frame by frame: the body is discarded, never buffered.
        while let Some(frame) = body.frame().await {
            frame.map_err(|e| ErrorKind::classify(&e))?;
        }
        Ok(Answer { status, upstream })
    }

    /// A sender ready for a request, reconnecting once if the kept-alive one was closed by
    /// the server (e.g. after `Connection: close`), which is not an error of this request.
    async fn ready_sender(&mut self) -> Result<&mut Sender, ErrorKind> {
        for _ in 0..2 {
            let ready = match self.sender.as_mut() {
                Some(Sender::H1(s)) => s.ready().await.is_ok(),
                Some(Sender::H2(s)) => s.ready().await.is_ok(),
                None => false,
            };
            if ready {
                break;
            }
            self.sender = Some(self.dial().await?);
        }
        self.sender.as_mut().ok_or(ErrorKind::Closed)
    }

    async fn dial(&self) -> Result<Sender, ErrorKind> {
        match &self.dial {
            Dial::H1(addr) => {
                let io = TokioIo::new(tcp(*addr).await?);
                let (send, conn) = http1::handshake(io).await.map_err(|_| ErrorKind::Connect)?;
                tokio::spawn(conn);
                Ok(Sender::H1(send))
            }
            Dial::H2(shared) => Ok(Sender::H2(shared.sender().await?)),
        }
    }
}
