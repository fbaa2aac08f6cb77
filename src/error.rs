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
}

impl UpstreamErrorKind {
    /// All kinds, in index order.
    pub const ALL: [UpstreamErrorKind; 4] = [Self::Connect, Self::Timeout, Self::Reset, Self::Protocol];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Timeout => "timeout",
            Self::Reset => "reset",
            Self::Protocol => "protocol",
        }
    }

    /// Dense index for handle arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Why a proxied request failed, tagged by origin.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The upstream failed; counts against its color.
    #[error("upstream {kind:?} error: {source}")]
    Upstream {
        kind: UpstreamErrorKind,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The client sent something we refuse (never counted against a color).
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// Body larger than `limits.max_body_bytes`.
    #[error("request body too large")]
    BodyTooLarge,
    /// The service disappeared in a reload between accept and routing.
    #[error("service is not configured")]
    NoRoute,
    /// Every endpoint of the chosen color is at `limits.max_in_flight_per_endpoint`.
    #[error("every upstream endpoint is at its in-flight limit")]
    Saturated,
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
