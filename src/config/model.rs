//! Validated domain types. A value of these types cannot be wrong: weights are basis points in
//! range, endpoint sets are non-empty, durations are positive. Everything downstream trusts them.

use crate::route::Weight;
use http::header::HeaderName;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The default constitutional hash of the migration spec.
pub const DEFAULT_CONSTITUTIONAL_HASH: &str = "cdd01ef066bc6cf2";

/// A whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// File it was read from (for messages and `/status`).
    pub source: PathBuf,
    /// Expected hash header value of green responses.
    pub constitutional_hash: Arc<str>,
    /// Directory for `state.json` and `incidents.jsonl`.
    pub state_dir: PathBuf,
    /// Admin listener.
    pub admin: AdminConfig,
    /// Measurement and trigger settings.
    pub control: ControlConfig,
    /// Sequence settings of the migration.
    pub rollout: RolloutConfig,
    /// Protective limits.
    pub limits: Limits,
    /// Webhook channels.
    pub alerts: AlertConfig,
    /// Services, in file order.
    pub services: Vec<ServiceConfig>,
}

impl Config {
    /// Looks a service up by name (control-plane use only, never per request).
    pub fn service(&self, name: &str) -> Option<&ServiceConfig> {
        self.services.iter().find(|s| &*s.name == name)
    }
}

/// Admin listener settings.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// Bind address; loopback by default so nothing is exposed by accident.
    pub listen: SocketAddr,
    /// File holding the bearer token.
    pub token_file: Option<PathBuf>,
}

/// `[control]`: how measurements are taken and judged.
#[derive(Debug, Clone)]
pub struct ControlConfig {
    /// Measurement period.
    pub interval: Duration,
    /// History a measurement covers; a whole number of intervals.
    pub window: Duration,
    /// Green samples below which rate and percentile triggers are inconclusive.
    pub min_samples: u64,
    /// Header carrying compliance.
    pub compliance_header: HeaderName,
    /// Header carrying the constitutional hash.
    pub hash_header: HeaderName,
    /// Header carrying per-principle compliance.
    pub principles_header: HeaderName,
    /// Global triggers (services may override each key).
    pub triggers: Triggers,
}

/// One threshold with the number of consecutive bad measurements that trips it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trigger<T> {
    /// The threshold.
    pub threshold: T,
    /// Consecutive bad measurements needed (≥ 1).
    pub consecutive: u32,
}

/// A status-share trigger (e.g. auth's JWT failures as 401s).
#[derive(Debug, Clone, PartialEq)]
pub struct StatusTrigger {
    /// Statuses counted.
    pub statuses: Vec<u16>,
    /// Share of green responses above which a measurement is bad.
    pub above: f64,
    /// Consecutive bad measurements needed.
    pub consecutive: u32,
}

/// The rollback triggers; `None` means disabled.
#[derive(Debug, Clone, PartialEq)]
pub struct Triggers {
    /// Green p95 latency above.
    pub p95_latency: Option<Trigger<Duration>>,
    /// Green error rate above.
    pub error_rate: Option<Trigger<f64>>,
    /// Green availability below.
    pub availability: Option<Trigger<f64>>,
    /// Green mean compliance below.
    pub compliance: Option<Trigger<f64>>,
    /// Mismatching green responses needed to trip.
    pub hash_mismatch: Option<u32>,
    /// Status-share triggers.
    pub status_rate: Vec<StatusTrigger>,
}

impl Default for Triggers {
    /// The migration spec §3.1 defaults.
    fn default() -> Self {
        Triggers {
            p95_latency: Some(Trigger { threshold: Duration::from_secs(2), consecutive: 2 }),
            error_rate: Some(Trigger { threshold: 0.01, consecutive: 3 }),
            availability: Some(Trigger { threshold: 0.999, consecutive: 1 }),
            compliance: Some(Trigger { threshold: 0.95, consecutive: 3 }),
            hash_mismatch: Some(1),
            status_rate: Vec::new(),
        }
    }
}

/// `[rollout]`: sequence of the migration.
#[derive(Debug, Clone)]
pub struct RolloutConfig {
    /// Order in which progressive services migrate.
    pub order: Vec<Arc<str>>,
    /// Whether a plan waits for the previous service's promotion.
    pub sequential: bool,
    /// Healthy measurements needed at a step.
    pub healthy_measurements: u32,
}

/// How a service's green weight is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// From config or the admin API; the loop only rolls back.
    Manual,
    /// From the step plan, advanced on healthy measurements.
    Progressive,
}

/// A step plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Increasing weights, the last one 100 %.
    pub steps: Vec<Weight>,
    /// Minimum time at each step.
    pub hold: Duration,
    /// Wait for `/advance` before moving to this weight.
    pub manual_gate_before: Option<Weight>,
}

/// One service.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Unique name; also the metrics label.
    pub name: Arc<str>,
    /// Listener address.
    pub listen: SocketAddr,
    /// Manual or progressive.
    pub mode: Mode,
    /// File weight (manual mode).
    pub green_weight: Weight,
    /// Blue pool.
    pub blue: PoolConfig,
    /// Green pool.
    pub green: PoolConfig,
    /// Sticky key, if any.
    pub sticky: Option<Sticky>,
    /// Header forcing a color (testers), off unless set.
    pub force_header: Option<HeaderName>,
    /// TLS termination.
    pub tls: Option<TlsConfig>,
    /// Active health checks.
    pub health: HealthConfig,
    /// Effective triggers (global merged with the service's overrides).
    pub triggers: Triggers,
    /// Step plan (progressive mode).
    pub plan: Plan,
    /// Retries onto blue.
    pub retry: RetryConfig,
}

/// Endpoints of one color.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    /// `host:port` authorities, never empty.
    pub endpoints: Vec<http::uri::Authority>,
    /// Release label.
    pub release: Option<Arc<str>>,
    /// CA bundle for TLS to these endpoints (`None`: plain HTTP).
    pub tls_ca: Option<PathBuf>,
}

/// What makes a client stick to a color.
#[derive(Debug, Clone, PartialEq)]
pub enum Sticky {
    /// A request header's value.
    Header(HeaderName),
    /// A cookie's value.
    Cookie(Arc<str>),
    /// The peer address.
    ClientIp,
}

/// TLS termination material.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsConfig {
    /// PEM chain.
    pub cert: PathBuf,
    /// PEM key.
    pub key: PathBuf,
    /// Only TLS 1.3 when true.
    pub tls13_only: bool,
    /// PEM CA bundle: when set, clients must present a certificate it signed (mTLS).
    pub client_ca: Option<PathBuf>,
}

/// Active health checking.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthConfig {
    /// Probe path.
    pub path: Arc<str>,
    /// Probe period.
    pub interval: Duration,
    /// Probe timeout.
    pub timeout: Duration,
}

/// Retries of failed green attempts onto blue.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryConfig {
    /// On or off.
    pub enabled: bool,
    /// Green statuses that are retried.
    pub on: Vec<u16>,
    /// Retry budget as a fraction of requests.
    pub budget: f64,
    /// Largest body buffered for replay.
    pub max_body_bytes: usize,
}

/// Protective limits.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Request head bytes (→ 431).
    pub max_header_bytes: usize,
    /// Head read timeout (slowloris).
    pub header_read_timeout: Duration,
    /// How long an idle keep-alive client connection stays open (75 s, nginx's default): longer
    /// than the 60 s a load balancer in front keeps its side, so it never reuses a connection
    /// we are closing (its 502s).
    pub idle_timeout: Duration,
    /// Body limit (→ 413).
    pub max_body_bytes: Option<u64>,
    /// Connections per listener.
    pub max_connections: usize,
    /// Concurrent HTTP/2 streams per connection.
    pub max_h2_streams: u32,
    /// Upstream connect timeout (→ 502).
    pub connect_timeout: Duration,
    /// Upstream response head timeout (→ 504).
    pub response_timeout: Duration,
    /// Shutdown drain timeout.
    pub drain_timeout: Duration,
    /// Consecutive failures that eject an endpoint.
    pub eject_after: u32,
    /// Ejection time.
    pub eject_for: Duration,
    /// Requests outstanding per upstream endpoint (full endpoints are skipped; all full → 503).
    pub max_in_flight_per_endpoint: u32,
}

/// Alert webhooks.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AlertConfig {
    /// Critical URLs.
    pub critical: Vec<String>,
    /// High URLs.
    pub high: Vec<String>,
    /// Medium URLs.
    pub medium: Vec<String>,
    /// Per attempt timeout.
    pub timeout: Duration,
    /// Attempts.
    pub retries: u32,
}
