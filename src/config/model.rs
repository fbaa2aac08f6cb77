//! Validated domain types. A value of these types cannot be wrong: weights are basis points in
//! range, endpoint sets are non-empty, durations are positive. Everything downstream trusts them.

use crate::types::Weight;
use http::header::HeaderName;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The default constitutional hash of the migration spec.
pub const DEFAULT_CONSTITUTIONAL_HASH: &str = "cdd01ef066bc6cf2";

/// Where state lives when the file names no `state_dir` (relative to the working directory).
pub const DEFAULT_STATE_DIR: &str = "var/switchyard";

/// A whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// File it was read from (for messages and `/status`).
    pub source: PathBuf,
    /// Expected hash header value of green responses.
    pub constitutional_hash: Arc<str>,
    /// Directory for `state.json` and `incidents.jsonl`.
    pub state_dir: PathBuf,
    pub admin: AdminConfig,
    /// Measurement and trigger settings.
    pub control: ControlConfig,
    /// Sequence settings of the migration.
    pub rollout: RolloutConfig,
    pub limits: Limits,
    pub proxy: ProxyConfig,
    pub alerts: AlertConfig,
    /// Services, in file order.
    pub services: Vec<ServiceConfig>,
    /// `[fleet]`: None runs one independent process (state.json), exactly as before fleets.
    pub fleet: Option<FleetConfig>,
    pub access_log: AccessLogConfig,
    pub tracing: TracingConfig,
}

/// `[fleet]`: how this replica finds the others.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetConfig {
    /// etcd client URLs (`http://host:port` or `https://host:port`), at least one.
    pub endpoints: Vec<http::Uri>,
    /// Key prefix without a trailing slash.
    pub prefix: String,
    /// Unique name of this replica in the fleet.
    pub replica: String,
    /// A replica (or leader) that stops renewing is gone after this long.
    pub lease_ttl: Duration,
    /// TLS to `https://` members.
    pub tls: FleetTls,
    /// etcd user for clusters with auth enabled; from the environment, never the file.
    pub credentials: Option<EtcdCredentials>,
    /// A watch that delivers nothing (not even the answer to a progress request) for this long
    /// is stuck; it ends with an error and is opened again.
    pub watch_silence: Duration,
    /// A rollback decided while the store is away holds its alert this long for the store to
    /// say whether the fleet already latched (and alerted) it; `0s` = alert at once.
    pub alert_hold: Duration,
}

/// `fleet.ca`, `fleet.cert`, `fleet.key`: TLS to etcd members listed as `https://`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FleetTls {
    /// CA bundle that signed the members' certificates (None = the system trust store).
    pub ca: Option<PathBuf>,
    /// Client certificate chain and key, for members started with `--client-cert-auth`.
    pub identity: Option<(PathBuf, PathBuf)>,
}

/// SWITCHYARD_ETCD_USERNAME / SWITCHYARD_ETCD_PASSWORD. Kept out of the config file so the
/// file can be shared and logged; `Debug` never prints the password.
#[derive(Clone, PartialEq)]
pub struct EtcdCredentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for EtcdCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdCredentials").field("username", &self.username).field("password", &"***").finish()
    }
}

impl Config {
    /// Looks a service up by name (control-plane use only, never per request).
    pub fn service(&self, name: &str) -> Option<&ServiceConfig> {
        self.services.iter().find(|s| &*s.name == name)
    }
}

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
    pub interval: Duration,
    /// History a measurement covers; a whole number of intervals.
    pub window: Duration,
    /// Green samples below which rate and percentile triggers are inconclusive.
    pub min_samples: u64,
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
    pub threshold: T,
    /// Consecutive bad measurements needed (≥ 1).
    pub consecutive: u32,
}

/// A status-share trigger (e.g. auth's JWT failures as 401s).
#[derive(Debug, Clone, PartialEq)]
pub struct StatusTrigger {
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

pub use crate::types::Mode;

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Increasing weights, the last one 100 %.
    pub steps: Vec<Weight>,
    /// Minimum time at each step.
    pub hold: Duration,
    /// Wait for `/advance` before moving to this weight.
    pub manual_gate_before: Option<Weight>,
}

#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Unique name; also the metrics label.
    pub name: Arc<str>,
    pub listen: SocketAddr,
    /// Manual or progressive.
    pub mode: Mode,
    /// File weight (manual mode).
    pub green_weight: Weight,
    pub blue: PoolConfig,
    pub green: PoolConfig,
    /// Sticky key, if any.
    pub sticky: Option<Sticky>,
    /// Header forcing a color (testers), off unless set.
    pub force_header: Option<ForceHeader>,
    /// TLS termination.
    pub tls: Option<TlsConfig>,
    pub health: HealthConfig,
    /// Effective triggers (global merged with the service's overrides).
    pub triggers: Triggers,
    /// Step plan (progressive mode).
    pub plan: Plan,
    pub retry: RetryConfig,
}

/// Endpoints of one color.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    /// `host:port` authorities, never empty.
    pub endpoints: Vec<http::uri::Authority>,
    pub release: Option<Arc<str>>,
    /// CA bundle for TLS to these endpoints (`None`: plain HTTP).
    pub tls_ca: Option<PathBuf>,
}

/// A header that lets testers pick a color. With a token, the value must be `<color>:<token>`.
#[derive(Clone, PartialEq)]
pub struct ForceHeader {
    /// Header name.
    pub name: HeaderName,
    /// Secret the value must carry (read from the environment at load time).
    pub token: Option<Arc<str>>,
}

impl std::fmt::Debug for ForceHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a secret: never in logs or `check` output.
        f.debug_struct("ForceHeader")
            .field("name", &self.name)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .finish()
    }
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

#[derive(Debug, Clone, PartialEq)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Only TLS 1.3 when true.
    pub tls13_only: bool,
    /// PEM CA bundle: when set, clients must present a certificate it signed (mTLS).
    pub client_ca: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HealthConfig {
    /// Whether probes run at all (`health = { enabled = false }`).
    pub enabled: bool,
    /// Whether a green probe must carry the constitutional hash: follows the `hash_mismatch`
    /// trigger, so a service that does not speak the hash switches both off with one key.
    pub require_hash: bool,
    pub path: Arc<str>,
    pub interval: Duration,
    pub timeout: Duration,
}

/// Retries of failed green attempts onto blue. On by default: a green attempt that failed before
/// any response byte reached the client is sent once to blue when that is safe.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryConfig {
    pub enabled: bool,
    /// Green statuses that are retried.
    pub on: Vec<u16>,
    /// Retry budget as a fraction of requests.
    pub budget: f64,
    /// Floor of the budget, so a quiet service (or a thin canary) can still retry.
    pub min_per_second: u32,
    /// Largest body prefix kept while streaming so the request can be replayed.
    pub max_body_bytes: usize,
    /// Hedging (`hedge = { after }`): it spends the same budget as retries, so it lives here
    /// and reaches the data path with the rest of the retry policy.
    pub hedge: Option<HedgeAfter>,
}

/// When a replayable green request still without a response head gets a second attempt on blue.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HedgeAfter {
    /// Blue's p99 over the last closed window (no hedge until a window has samples).
    BlueP99,
    /// A fixed delay.
    Fixed(Duration),
}

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
    pub max_connections: usize,
    /// Concurrent HTTP/2 streams per connection.
    pub max_h2_streams: u32,
    /// Upstream connect timeout (→ 502).
    pub connect_timeout: Duration,
    /// Upstream response head timeout (→ 504).
    pub response_timeout: Duration,
    pub drain_timeout: Duration,
    /// Consecutive failures that eject an endpoint.
    pub eject_after: u32,
    pub eject_for: Duration,
    /// Requests outstanding per upstream endpoint (full endpoints are skipped; all full → 503).
    pub max_in_flight_per_endpoint: u32,
}

/// `[proxy]`: what forwarded requests carry besides the client's headers.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyConfig {
    /// Add `Via: 1.1 switchyard` (RFC 9110 §7.6.3). On by default; off for upstreams that change
    /// behaviour on it, such as nginx with its default `gzip_proxied off`, which compresses no
    /// response to a request carrying `Via` (README: Deploy).
    pub via: bool,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig { via: true }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct AlertConfig {
    pub critical: Vec<String>,
    pub high: Vec<String>,
    pub medium: Vec<String>,
    /// Per attempt timeout.
    pub timeout: Duration,
    pub retries: u32,
    /// Extra CA bundle for https webhooks (private receivers, tests); system roots always apply.
    pub ca: Option<PathBuf>,
    /// Escalation levels, in increasing `after` order.
    pub escalation: Vec<EscalationLevel>,
}

impl AlertConfig {
    /// Escalation is off until some level names a webhook (the spec's defaults name none).
    pub fn escalation_enabled(&self) -> bool {
        self.escalation.iter().any(|l| !l.webhooks.is_empty())
    }
}

/// One escalation level (spec §4.3: team lead 5m, engineering manager 15m, director 30m).
#[derive(Debug, Clone, PartialEq)]
pub struct EscalationLevel {
    /// Time since the incident after which this level is paged.
    pub after: Duration,
    /// Webhooks paged at this level.
    pub webhooks: Vec<String>,
}

/// `[access_log]`: read once at start (the writer thread owns the file).
#[derive(Debug, Clone, PartialEq)]
pub struct AccessLogConfig {
    pub enabled: bool,
    pub format: LogFormat,
    /// `None`: stdout.
    pub path: Option<PathBuf>,
    /// Whether `url.query` is logged (queries often carry tokens).
    pub log_query: bool,
    /// Share of ordinary requests logged, 0..=1.
    pub sample: f64,
    /// Requests at least this slow are always logged.
    pub slow: Duration,
    /// Lines each worker may have queued for the writer thread before new ones are dropped.
    pub queue: usize,
}

/// Access log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, OpenTelemetry HTTP attribute names.
    Json,
    /// `key=value` pairs, for a terminal.
    Text,
}

/// `[tracing]`: read once at start.
#[derive(Debug, Clone, PartialEq)]
pub struct TracingConfig {
    /// OTLP/HTTP traces URL; `None`: Switchyard does not take part in traces (headers pass as sent).
    pub endpoint: Option<http::Uri>,
    /// Share of new traces sampled, 0..=1.
    pub sample: f64,
    pub ui: Option<String>,
    /// `service.name` of the exported resource.
    pub service_name: Arc<str>,
    pub queue: usize,
    pub batch: usize,
    pub request_id_header: HeaderName,
}
