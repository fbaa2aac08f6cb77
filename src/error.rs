//! Library error types. Proxy errors carry their origin so exactly one function
//! (`proxy::respond`) maps them to statuses and only upstream-origin failures count against a color.

/// How an upstream exchange failed at the transport level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UpstreamErrorKind {
    /// Could not connect (refused, unreachable, connect timeout).
    Connect,
    /// No response head within the response timeout.
    Timeout,
    /// Connection closed or reset before the exchange completed.
    Reset,
    /// The upstream spoke something that is not HTTP.
    Protocol,
    /// Given up while still waiting for the response head because green was rolled back (or
    /// lost its last endpoint) and the request was re-sent to blue: still green's failure.
    Abandoned,
}

impl UpstreamErrorKind {
    /// All kinds, in index order.
    pub const ALL: [UpstreamErrorKind; 5] =
        [Self::Connect, Self::Timeout, Self::Reset, Self::Protocol, Self::Abandoned];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Timeout => "timeout",
            Self::Reset => "reset",
            Self::Protocol => "protocol",
            Self::Abandoned => "abandoned",
        }
    }

    /// Dense index for handle arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Which side of the proxy an error came from (Pingora's `ErrorSource`): only upstream-origin
/// failures count against a color, and only they may be cured by another attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorSource {
    /// The upstream endpoint (connect, reset, timeout, garbage).
    Upstream,
    /// The client (bad framing, oversized or broken body).
    Downstream,
    /// The proxy itself (no route, every endpoint at its in-flight cap).
    Internal,
}

/// How far a failed upstream attempt got (Pingora's `RetryType`, narrowed to what decides a
/// retry): when nothing was sent, re-sending is safe for any method; once the request went out,
/// only a replayable request may go again, and only before any response byte reached the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Not a byte of the request reached the upstream (connect failed, TLS failed).
    NothingSent,
    /// The request (or part of it) was sent; no response head arrived.
    SentNoResponse,
}

/// Why a proxied request failed, tagged by origin.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The upstream failed; counts against its color.
    #[error("upstream {kind:?} error: {source}")]
    Upstream {
        kind: UpstreamErrorKind,
        /// What a retry may assume about the upstream having seen the request.
        progress: Progress,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The client sent something we refuse (never counted against a color).
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// Body larger than `limits.max_body_bytes`.
    #[error("request body too large")]
    BodyTooLarge,
    /// A transfer coding other than `chunked` (RFC 9112 §6.1: 501).
    #[error("not implemented: {0}")]
    Unsupported(&'static str),
    /// The service disappeared in a reload between accept and routing.
    #[error("service is not configured")]
    NoRoute,
    /// Every endpoint of the chosen color is at `limits.max_in_flight_per_endpoint`.
    #[error("every upstream endpoint is at its in-flight limit")]
    Saturated,
}

impl ProxyError {
    /// Which side caused it.
    pub fn origin(&self) -> ErrorSource {
        match self {
            ProxyError::Upstream { .. } => ErrorSource::Upstream,
            ProxyError::BadRequest(_) | ProxyError::BodyTooLarge | ProxyError::Unsupported(_) => {
                ErrorSource::Downstream
            }
            ProxyError::NoRoute | ProxyError::Saturated => ErrorSource::Internal,
        }
    }

    /// Whether another attempt elsewhere may cure it: an upstream failure where nothing was sent
    /// (any request), or one where the request went out but can be sent again in full.
    pub fn retryable(&self, replayable: bool) -> bool {
        match self {
            ProxyError::Upstream { progress: Progress::NothingSent, .. } => true,
            ProxyError::Upstream { progress: Progress::SentNoResponse, .. } => replayable,
            _ => false,
        }
    }

    /// The upstream failure kind, for metrics.
    pub fn upstream_kind(&self) -> Option<UpstreamErrorKind> {
        match self {
            ProxyError::Upstream { kind, .. } => Some(*kind),
            _ => None,
        }
    }
}

/// Errors starting or running the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Config could not be loaded.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A socket could not be bound.
    #[error("cannot bind {addr} for {what}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// TLS material could not be loaded.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// State directory problems.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    /// Other I/O.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Admin refused an unsafe bind.
    #[error("{0}")]
    Unsafe(String),
    /// The first config could not be applied (bind or TLS failure).
    #[error(transparent)]
    Start(#[from] ApplyError),
}

/// Why a validated config could not be applied: what it names on disk or on the network is not
/// usable. Defined here rather than in `control` so `ServeError` can carry it without `error`
/// depending on `control` (which depends on `error` through `upstream`). The texts are the
/// config key paths operators see in `/status` and in the reload answer. TLS causes are boxed:
/// `rustls::Error` would make every `Result` carrying this error large.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("services.{service}.tls: {source}")]
    Tls { service: String, source: Box<crate::tls::TlsError> },
    #[error("services.{service}.listen: cannot bind {addr}: {source}")]
    Bind { service: String, addr: std::net::SocketAddr, source: std::io::Error },
    #[error("services.{service}.{}.tls.ca: {source}", color.as_str())]
    UpstreamCa { service: String, color: crate::Color, source: Box<crate::tls::TlsError> },
}
