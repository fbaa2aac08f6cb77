//! Upstream connections: HTTP/1.1 (as nginx and HAProxy speak to upstreams by default) over
//! plain TCP or TLS, kept alive in a small LIFO stack on each [`Endpoint`].
//!
//! Why not hyper-util's pooled client: its pool is a `HashMap` keyed by (scheme, authority)
//! behind SipHash, checked out through a future and handed back by a spawned task; callgrind
//! put it at ~8.4k of the ~45k instructions a proxied request cost (see `loadtest/RESULTS.md`).
//! We already know the endpoint when we send, so the pool lives on the endpoint itself: a
//! checkout is a short uncontended lock and a `pop`, and the connection goes back when the
//! response body ends. Blue and green are different endpoints, so they never share a connection.

use crate::body::RequestBody;
use crate::body::RequestBodyError;
use crate::config::Limits;
use crate::error::{Progress, ProxyError, UpstreamErrorKind};
use crate::tls::TlsError;
use crate::upstream::Endpoint;
use http::uri::Authority;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use std::error::Error as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// The sending half of one upstream HTTP/1.1 connection (its connection task runs separately).
pub type Sender = http1::SendRequest<RequestBody>;

/// Idle connections are closed after this long unused (hyper-util's default was the same).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// At most this many idle connections are kept per endpoint; more are closed when returned.
const MAX_IDLE: usize = 1024;
/// Pooled connections tried before opening a new one (each failed try had gone stale).
const MAX_STALE_TRIES: usize = 4;

/// Why an upstream exchange failed before a response arrived.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// TCP connect failed (refused, unreachable, name not resolved).
    #[error("connect to {authority}: {source}")]
    Connect {
        /// Endpoint.
        authority: Authority,
        /// OS error.
        source: std::io::Error,
    },
    /// TCP connect plus TLS handshake took longer than `limits.connect_timeout`.
    #[error("connect to {0}: timed out")]
    ConnectTimeout(Authority),
    /// The TLS handshake failed (certificate not trusted, name mismatch, protocol).
    #[error("TLS handshake with {authority}: {source}")]
    Tls {
        /// Endpoint.
        authority: Authority,
        /// rustls' reason, as an I/O error.
        source: std::io::Error,
    },
    /// The connection failed before the request was written (hyper handed it back unsent).
    #[error("upstream connection closed before the request was sent: {0}")]
    Unsent(hyper::Error),
    /// The HTTP exchange failed (reset, malformed response, or the client's body failed).
    #[error("upstream exchange: {0}")]
    Http(#[from] hyper::Error),
}

impl UpstreamError {
    /// Whether the upstream may have seen any of the request: decides which requests a retry
    /// may re-send.
    pub fn progress(&self) -> Progress {
        match self {
            UpstreamError::Http(_) => Progress::SentNoResponse,
            _ => Progress::NothingSent,
        }
    }

    /// The classified error, origin upstream.
    pub fn into_proxy(self) -> ProxyError {
        ProxyError::Upstream { kind: classify(&self), progress: self.progress(), source: Box::new(self) }
    }
}

/// Idle-connection stacks per endpoint: one per worker (`crate::workers`), so a request reuses
/// a connection whose task runs on its own thread; index 0 serves non-worker threads and the
/// one-thread process. Workers past the last shard share one (correct, only less local).
const SHARDS: usize = 16;

/// Keep-alive connections of one endpoint, most recently used last, kept per worker, each with
/// when it expires (computed once when it is returned, so a checkout compares instants instead of
/// subtracting them, ~40 instructions per request). The callers pass the time (the request's start, the response's end) from
/// clock reads they make anyway: a read of its own in `take` and in `put` cost ~120 instructions
/// per request under callgrind.
pub struct IdleConns {
    shards: [Mutex<Vec<(Sender, Instant)>>; SHARDS],
    idle_timeout: Duration,
}

impl Default for IdleConns {
    fn default() -> Self {
        IdleConns::with_timeout(IDLE_TIMEOUT)
    }
}

impl std::fmt::Debug for IdleConns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdleConns").field("len", &self.len()).finish()
    }
}

impl IdleConns {
    fn with_timeout(idle_timeout: Duration) -> IdleConns {
        IdleConns { shards: std::array::from_fn(|_| Mutex::default()), idle_timeout }
    }

    /// This worker's stack: connections whose tasks run on the calling thread.
    fn mine(&self) -> std::sync::MutexGuard<'_, Vec<(Sender, Instant)>> {
        self.shards[crate::workers::current_index() % SHARDS].lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The most recently returned open connection, if any; those expired by `now` are closed on
    /// the way.
    pub fn take(&self, now: Instant) -> Option<Sender> {
        let mut v = self.mine();
        self.drop_expired(&mut v, now);
        while let Some((tx, _)) = v.pop() {
            if !tx.is_closed() {
                return Some(tx);
            }
        }
        None
    }

    /// Returns a connection whose response was read to its end at `now`.
    pub fn put(&self, tx: Sender, now: Instant) {
        if tx.is_closed() {
            return;
        }
        let mut v = self.mine();
        if v.len() < MAX_IDLE {
            v.push((tx, now + self.idle_timeout));
        }
    }

    /// Closes connections idle longer than the idle timeout and forgets closed ones. The health
    /// loop calls it every interval, so idle connections close even when traffic has stopped
    /// (after a rollback green gets none) rather than only at the next checkout.
    pub fn reap(&self) {
        let now = Instant::now();
        for shard in &self.shards {
            let mut v = shard.lock().unwrap_or_else(PoisonError::into_inner);
            self.drop_expired(&mut v, now);
            v.retain(|(tx, _)| !tx.is_closed());
        }
    }

    /// The oldest are at the front: drop the prefix past its expiry.
    fn drop_expired(&self, v: &mut Vec<(Sender, Instant)>, now: Instant) {
        let expired = v.iter().take_while(|(_, expiry)| *expiry <= now).count();
        if expired > 0 {
            v.drain(..expired);
        }
    }

    fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len()).sum()
    }
}

/// How to reach a pool's endpoints: plain TCP, or TLS verified against the pool's CA bundle.
#[derive(Clone)]
pub struct UpstreamClient {
    /// `limits.connect_timeout`: TCP connect plus, for TLS, the handshake.
    connect_timeout: Duration,
    /// rustls client config (ALPN `http/1.1`) when the pool is reached over TLS.
    tls: Option<tokio_rustls::TlsConnector>,
}

impl std::fmt::Debug for UpstreamClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamClient")
            .field("connect_timeout", &self.connect_timeout)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl UpstreamClient {
    /// Sends `req` (origin-form URI, `Host` set) to `ep` on a kept-alive connection, or a new
    /// one. A pooled connection that turns out closed before the request was written gives the
    /// request back and the next one is tried, so a stale keep-alive connection never fails a
    /// request. Returns the response and the connection, which the caller hands back to
    /// `ep.idle` once the response body has been read to its end. A new connection's set-up
    /// time (TCP, TLS, handshake) is stored in `connect_us` (left alone on a pooled one). `now`
    /// (the request's start will do) decides which pooled connections have expired.
    /// `target` is the request's method and URI, for a re-send (borrowed, not copied, since
    /// nearly always there is none).
    pub async fn send(
        &self,
        ep: &Endpoint,
        mut req: Request<RequestBody>,
        connect_us: &std::sync::atomic::AtomicU64,
        now: Instant,
        target: (&http::Method, &http::Uri),
    ) -> Result<(Response<Incoming>, Sender), UpstreamError> {
        for _ in 0..MAX_STALE_TRIES {
            let Some(mut tx) = ep.idle.take(now) else { break };
            // Just returned: its connection task may not have marked it idle yet.
            if !tx.is_ready() && tx.ready().await.is_err() {
                continue;
            }
            // The upstream may close a kept-alive connection while the request is on its way
            // (its keep-alive timeout, or a close right after its last response): the request was
            // written, so hyper cannot give it back. A bodiless safe request is then sent again on
            // another connection, as browsers and Go's transport do; its head is kept first.
            let again = resendable(&req).then(|| Head::of(&req));
            match tx.try_send_request(req).await {
                Ok(resp) => return Ok((resp, tx)),
                Err(mut e) => match (e.take_message(), again) {
                    (Some(r), _) => req = r,
                    (None, Some(h)) if closed_before_response(e.error()) => req = h.into_request(target),
                    (None, _) => return Err(e.into_error().into()),
                },
            }
        }
        // Boxed: a connect (TLS state inline) is rare on the pooled path, and inline it would
        // make every request's future, which hyper moves twice per request, kilobytes larger.
        let started = Instant::now();
        let mut tx = Box::pin(self.connect(&ep.authority)).await?;
        connect_us.store(started.elapsed().as_micros() as u64, std::sync::atomic::Ordering::Relaxed);
        match tx.try_send_request(req).await {
            Ok(resp) => Ok((resp, tx)),
            Err(mut e) => match e.take_message() {
                Some(_) => Err(UpstreamError::Unsent(e.into_error())),
                None => Err(e.into_error().into()),
            },
        }
    }

    /// One request on a fresh connection that is closed afterwards (health probes: a probe also
    /// proves a new connection can be made, and never touches the request path's connections).
    pub async fn send_once(
        &self,
        authority: &Authority,
        req: Request<RequestBody>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let mut tx = self.connect(authority).await?;
        Ok(tx.send_request(req).await?)
    }

    async fn connect(&self, authority: &Authority) -> Result<Sender, UpstreamError> {
        tokio::time::timeout(self.connect_timeout, self.connect_inner(authority))
            .await
            .map_err(|_| UpstreamError::ConnectTimeout(authority.clone()))?
    }

    async fn connect_inner(&self, authority: &Authority) -> Result<Sender, UpstreamError> {
        let tcp = TcpStream::connect(authority.as_str())
            .await
            .map_err(|source| UpstreamError::Connect { authority: authority.clone(), source })?;
        let _ = tcp.set_nodelay(true);
        let keepalive = socket2::TcpKeepalive::new().with_time(Duration::from_secs(60));
        let _ = socket2::SockRef::from(&tcp).set_tcp_keepalive(&keepalive);
        match &self.tls {
            None => handshake(TokioIo::new(tcp)).await,
            Some(tls) => {
                let host = authority.host().trim_start_matches('[').trim_end_matches(']');
                let name = ServerName::try_from(host.to_owned()).map_err(|e| UpstreamError::Tls {
                    authority: authority.clone(),
                    source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
                })?;
                let stream = tls
                    .connect(name, tcp)
                    .await
                    .map_err(|source| UpstreamError::Tls { authority: authority.clone(), source })?;
                handshake(TokioIo::new(stream)).await
            }
        }
    }
}

/// Safe to send twice: a safe method (RFC 9110 §9.2.1) and no body.
fn resendable(req: &Request<RequestBody>) -> bool {
    use http_body::Body as _;
    matches!(*req.method(), http::Method::GET | http::Method::HEAD | http::Method::OPTIONS)
        && req.body().is_end_stream()
}

/// A bodiless request's head, kept while the request goes out on a pooled connection so it can be
/// sent again. The headers are kept as a flat list, not a `HeaderMap` clone: nearly always the
/// copy is dropped unused, and the map's two allocations, its index table and the rebuilt
/// `Request` cost ~1 250 instructions per pooled request under callgrind, against ~450 for this.
/// The method and URI are the caller's (`send`'s `target`): copying the URI cost ~90 more.
struct Head {
    version: http::Version,
    headers: Vec<(http::HeaderName, http::HeaderValue)>,
}

impl Head {
    fn of(req: &Request<RequestBody>) -> Head {
        let headers = req.headers().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        Head { version: req.version(), headers }
    }

    /// The request to `target` again, without its (empty) body; repeated names keep their order.
    fn into_request(self, (method, uri): (&http::Method, &http::Uri)) -> Request<RequestBody> {
        let mut r = Request::new(RequestBody::full(bytes::Bytes::new()));
        *r.method_mut() = method.clone();
        *r.uri_mut() = uri.clone();
        *r.version_mut() = self.version;
        let h = r.headers_mut();
        h.reserve(self.headers.len());
        for (k, v) in self.headers {
            h.append(k, v);
        }
        r
    }
}

/// The connection ended before any byte of the response: nothing of it reached anyone. An
/// upstream that closes a kept-alive connection with our request already unread in its socket
/// makes the kernel answer with a reset, not a clean end: the request fails with
/// `ECONNRESET` (or `EPIPE` while writing) instead of an incomplete message. Under load that
/// was 3 to 6 in 60 runs of `a_pooled_connection_the_upstream_closed_never_fails_a_request`
/// (four at once), each a 502 whose log line named the first attempt's outcome `reset`; counted
/// as closed, 0 in 100 runs of the `data_plane::pooling` tests four at once.
fn closed_before_response(e: &hyper::Error) -> bool {
    e.is_incomplete_message() || e.is_canceled() || e.is_closed() || reset_by_peer(e)
}

fn reset_by_peer(e: &hyper::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return matches!(io.kind(), ConnectionReset | BrokenPipe | ConnectionAborted);
        }
        src = s.source();
    }
    false
}

/// HTTP/1.1 handshake on a connected stream; the connection task (with upgrades, for
/// WebSocket) runs until the connection closes.
async fn handshake<T>(io: T) -> Result<Sender, UpstreamError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    // Flattened writes: hyper copies a body chunk behind the head in its write buffer instead of
    // queueing it for `writev`; for the small or empty bodies of most requests the queue's
    // bookkeeping cost more than the copy (callgrind, `loadtest/profile`).
    let (tx, conn) = http1::Builder::new().writev(false).handshake(io).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "upstream connection ended with an error");
        }
    });
    Ok(tx)
}

/// The plain client with the configured connect timeout.
pub fn build(limits: &Limits) -> UpstreamClient {
    plain(limits.connect_timeout)
}

/// A plain client.
pub fn plain(connect_timeout: Duration) -> UpstreamClient {
    UpstreamClient { connect_timeout, tls: None }
}

/// A TLS client verifying upstream certificates against exactly the CAs in `ca` (TLS 1.2+,
/// ring provider, ALPN `http/1.1`).
pub fn build_tls(limits: &Limits, ca: &std::path::Path) -> Result<UpstreamClient, TlsError> {
    let mut tls = crate::tls::client_config(Some(ca))?;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(UpstreamClient {
        connect_timeout: limits.connect_timeout,
        tls: Some(tokio_rustls::TlsConnector::from(Arc::new(tls))),
    })
}

/// Whether the failure came from the client's own request body (not the upstream's fault):
/// `Some(true)` when it exceeded the size limit.
pub fn is_client_body_error(e: &UpstreamError) -> Option<bool> {
    let mut src = e.source();
    while let Some(s) = src {
        if let Some(b) = s.downcast_ref::<RequestBodyError>() {
            return Some(matches!(b, RequestBodyError::TooLarge));
        }
        src = s.source();
    }
    None
}

/// Classifies an upstream failure for metrics and status mapping.
pub fn classify(e: &UpstreamError) -> UpstreamErrorKind {
    let h = match e {
        UpstreamError::Connect { .. } | UpstreamError::ConnectTimeout(_) | UpstreamError::Tls { .. } => {
            return UpstreamErrorKind::Connect
        }
        UpstreamError::Unsent(h) | UpstreamError::Http(h) => h,
    };
    if h.is_timeout() {
        UpstreamErrorKind::Timeout
    } else if h.is_parse() || h.is_parse_status() {
        UpstreamErrorKind::Protocol
    } else {
        UpstreamErrorKind::Reset
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A real HTTP/1.1 client connection to a listener that accepts and holds (or drops) it.
    async fn connection(listener: &TcpListener) -> (Sender, TcpStream) {
        let addr = listener.local_addr().unwrap();
        let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let tx = handshake(TokioIo::new(client.unwrap())).await.unwrap();
        (tx, server.unwrap().0)
    }

    #[test]
    fn a_kept_head_gives_back_the_same_request_without_a_body() {
        let mut req = Request::new(RequestBody::full(bytes::Bytes::new()));
        *req.method_mut() = http::Method::HEAD;
        *req.uri_mut() = "/a?b=1".parse().unwrap();
        let h = req.headers_mut();
        h.insert(http::header::HOST, "a.example".parse().unwrap());
        h.append("x-forwarded-for", "10.0.0.1".parse().unwrap());
        h.append("x-forwarded-for", "10.0.0.2".parse().unwrap());
        let again = Head::of(&req).into_request((req.method(), req.uri()));
        assert_eq!((again.method(), again.uri(), again.version()), (req.method(), req.uri(), req.version()));
        assert_eq!(again.headers(), req.headers());
        let xff: Vec<_> = again.headers().get_all("x-forwarded-for").iter().collect();
        assert_eq!(xff, ["10.0.0.1", "10.0.0.2"], "repeated names keep their order");
        assert!(http_body::Body::is_end_stream(again.body()));
    }

    #[tokio::test]
    async fn reaping_closes_connections_idle_past_the_timeout_and_keeps_fresh_ones() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        // Generous margins: the fresh connection would only expire if this task stalled 200 ms.
        let idle = IdleConns::with_timeout(Duration::from_millis(200));
        let (old, _s1) = connection(&listener).await;
        idle.put(old, Instant::now());
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (fresh, _s2) = connection(&listener).await;
        idle.put(fresh, Instant::now());
        idle.reap();
        assert_eq!(idle.len(), 1, "the connection idle for 300 ms goes, the fresh one stays");
        assert!(idle.take(Instant::now()).is_some());
        assert!(idle.take(Instant::now()).is_none());
    }

    #[tokio::test]
    async fn a_reset_before_the_response_counts_as_closed_before_it() {
        use tokio::io::AsyncReadExt;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (mut tx, server) = connection(&listener).await;
        let upstream = tokio::spawn(async move {
            // Read the request, then close with it answered by nothing: linger 0 sends a reset.
            let mut buf = [0u8; 1024];
            let mut server = server;
            let _ = server.read(&mut buf).await;
            socket2::SockRef::from(&server).set_linger(Some(Duration::ZERO)).unwrap();
            drop(server);
        });
        let mut req = Request::new(RequestBody::full(bytes::Bytes::new()));
        *req.uri_mut() = "/".parse().unwrap();
        req.headers_mut().insert(http::header::HOST, "upstream".parse().unwrap());
        let err = tx.try_send_request(req).await.expect_err("the upstream reset the connection");
        upstream.await.unwrap();
        assert!(err.message().is_none(), "written before the reset: hyper cannot give it back");
        assert!(closed_before_response(err.error()), "{:?}", err.error());
    }

    #[tokio::test]
    async fn connections_the_upstream_closed_are_forgotten() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let idle = IdleConns::default();
        let (tx, server_side) = connection(&listener).await;
        idle.put(tx, Instant::now());
        drop(server_side);
        // The connection task sees EOF and closes; bounded wait for it.
        let mut closed = false;
        for _ in 0..100 {
            idle.reap();
            if idle.len() == 0 {
                closed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(closed, "a connection closed by the upstream is dropped from the pool within 1 s");
        assert!(idle.take(Instant::now()).is_none());
    }
}
