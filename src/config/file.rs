//! serde mirror of `switchyard.toml`. No logic lives here: every field is optional where the file
//! may omit it, and `deny_unknown_fields` turns a typo into an error instead of a silent default.
//! `model.rs` turns these into validated domain types.

use serde::Deserialize;
use std::path::PathBuf;

/// The whole file, exactly as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Expected value of the upstreams' `X-Constitutional-Hash` header.
    pub constitutional_hash: Option<String>,
    /// Where `state.json` and `incidents.jsonl` live.
    pub state_dir: Option<PathBuf>,
    /// Admin listener.
    #[serde(default)]
    pub admin: FileAdmin,
    /// Measurement interval, window and rollback triggers.
    #[serde(default)]
    pub control: FileControl,
    /// Progressive rollout defaults and migration order.
    #[serde(default)]
    pub rollout: FileRollout,
    /// Protective limits on listeners and upstreams.
    #[serde(default)]
    pub limits: FileLimits,
    /// What forwarded requests carry.
    #[serde(default)]
    pub proxy: FileProxy,
    /// Webhook channels per severity.
    #[serde(default)]
    pub alerts: FileAlerts,
    /// One entry per proxied service.
    #[serde(default)]
    pub services: Vec<FileService>,
    /// Fleet mode: replicas share rollout state through etcd (absent = one process, state.json).
    pub fleet: Option<FileFleet>,
    /// One line per request (on by default, JSON lines to stdout).
    #[serde(default)]
    pub access_log: FileAccessLog,
    /// Request ids, W3C trace context and OTLP span export.
    #[serde(default)]
    pub tracing: FileTracing,
}

/// `[access_log]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileAccessLog {
    pub enabled: Option<bool>,
    /// `json` (default) or `text`.
    pub format: Option<String>,
    /// A file, reopened on SIGUSR1 (logrotate); absent: stdout.
    pub path: Option<PathBuf>,
    pub log_query: Option<bool>,
    /// Share of ordinary requests logged; errors and slow requests always are.
    pub sample: Option<f64>,
    pub slow: Option<String>,
    /// Lines waiting for the writer thread before new ones are dropped.
    pub queue: Option<usize>,
}

/// `[tracing]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTracing {
    /// OTLP/HTTP traces URL (`http://collector:4318`, `/v1/traces` implied); absent: no spans.
    pub endpoint: Option<String>,
    /// Share of new traces sampled; an incoming `traceparent`'s flag is obeyed.
    pub sample: Option<f64>,
    /// Trace UI base URL the status page links incident examples to.
    pub ui: Option<String>,
    pub service_name: Option<String>,
    /// Spans waiting for export before new ones are dropped.
    pub queue: Option<usize>,
    /// Spans per export request.
    pub batch: Option<usize>,
    pub request_id_header: Option<String>,
}

/// `[fleet]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileFleet {
    /// Store kind; only `etcd` for now.
    pub store: Option<String>,
    /// etcd client URLs.
    #[serde(default)]
    pub endpoints: Vec<String>,
    /// Every key lives under it; one fleet per prefix.
    pub prefix: Option<String>,
    /// This replica's name (default: env SWITCHYARD_REPLICA, else the hostname).
    pub replica: Option<String>,
    /// Membership and leadership lease.
    pub lease_ttl: Option<String>,
    /// CA bundle for `https://` members (default: the system store).
    pub ca: Option<PathBuf>,
    /// Client certificate for members started with `--client-cert-auth` (with `key`).
    pub cert: Option<PathBuf>,
    /// Key of `cert`.
    pub key: Option<PathBuf>,
    /// A watch silent for this long (no event, no progress answer) is re-opened.
    pub watch_silence: Option<String>,
    /// How long a rollback decided while the store is away waits to learn whether the fleet
    /// already alerted it, before it alerts anyway.
    pub alert_hold: Option<String>,
}

/// `[admin]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileAdmin {
    /// Address of the admin HTTP API.
    pub listen: Option<String>,
    /// File holding the bearer token (the env var `SWITCHYARD_ADMIN_TOKEN` wins).
    pub token_file: Option<PathBuf>,
}

/// `[control]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileControl {
    /// How often a measurement is taken.
    pub interval: Option<String>,
    /// How much history a measurement covers.
    pub window: Option<String>,
    /// Minimum green samples for a conclusive measurement.
    pub min_samples: Option<u64>,
    /// Header carrying the upstream's compliance score.
    pub compliance_header: Option<String>,
    /// Header carrying the upstream's constitutional hash.
    pub hash_header: Option<String>,
    /// Header carrying per-principle compliance (`name=score, ...`).
    pub principles_header: Option<String>,
    /// Global rollback triggers.
    pub triggers: Option<FileTriggers>,
}

/// A set of triggers, global (`[control.triggers]`) or per service (`triggers = {...}`).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTriggers {
    /// Green p95 latency above a duration.
    pub p95_latency: Option<FileDurationTrigger>,
    /// Green error rate above a fraction.
    pub error_rate: Option<FileAboveTrigger>,
    /// Green availability below a fraction.
    pub availability: Option<FileBelowTrigger>,
    /// Green mean compliance below a fraction.
    pub compliance: Option<FileBelowTrigger>,
    /// Green responses whose hash header is missing or wrong.
    pub hash_mismatch: Option<FileHashTrigger>,
    /// Share of given statuses above a fraction.
    pub status_rate: Option<Vec<FileStatusTrigger>>,
}

/// `{ above = "2s", consecutive = 2 }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDurationTrigger {
    /// Threshold duration (the inherited one when omitted).
    pub above: Option<String>,
    /// Consecutive bad measurements needed.
    pub consecutive: Option<u32>,
    /// `false` disables the trigger.
    pub enabled: Option<bool>,
}

/// `{ above = 0.01, consecutive = 3 }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileAboveTrigger {
    /// Threshold fraction (the inherited one when omitted).
    pub above: Option<f64>,
    /// Consecutive bad measurements needed.
    pub consecutive: Option<u32>,
    /// `false` disables the trigger.
    pub enabled: Option<bool>,
}

/// `{ below = 0.999, consecutive = 1 }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileBelowTrigger {
    /// Threshold fraction (the inherited one when omitted).
    pub below: Option<f64>,
    /// Consecutive bad measurements needed.
    pub consecutive: Option<u32>,
    /// `false` disables the trigger.
    pub enabled: Option<bool>,
}

/// `{ consecutive = 1 }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileHashTrigger {
    /// Mismatching green responses needed (1 = the first one trips).
    pub consecutive: Option<u32>,
    /// `false` disables the trigger.
    pub enabled: Option<bool>,
}

/// `{ status = [401], above = 0.001, consecutive = 3 }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileStatusTrigger {
    /// Statuses counted.
    pub status: Vec<u16>,
    /// Threshold fraction of green responses.
    pub above: f64,
    /// Consecutive bad measurements needed.
    pub consecutive: Option<u32>,
}

/// `[rollout]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRollout {
    /// Migration order of services.
    pub order: Option<Vec<String>>,
    /// Start a service's plan only when the previous one is promoted.
    pub sequential: Option<bool>,
    /// Default step weights in percent.
    pub steps: Option<Vec<f64>>,
    /// Default time at each step.
    pub hold: Option<String>,
    /// Healthy measurements needed at a step before advancing.
    pub healthy_measurements: Option<u32>,
    /// Wait for an explicit `/advance` before this weight.
    pub manual_gate_before: Option<f64>,
}

/// `[limits]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileLimits {
    /// Maximum request head size in bytes.
    pub max_header_bytes: Option<usize>,
    /// Time allowed to read a request head.
    pub header_read_timeout: Option<String>,
    /// Idle keep-alive connection timeout.
    pub idle_timeout: Option<String>,
    /// Optional maximum request body size in bytes.
    pub max_body_bytes: Option<u64>,
    /// Maximum concurrent connections per listener.
    pub max_connections: Option<usize>,
    /// Maximum concurrent HTTP/2 streams per connection.
    pub max_h2_streams: Option<u32>,
    /// Upstream connect timeout.
    pub connect_timeout: Option<String>,
    /// Upstream response-head timeout.
    pub response_timeout: Option<String>,
    /// How long shutdown waits for in-flight requests.
    pub drain_timeout: Option<String>,
    /// Consecutive failures that eject an endpoint.
    pub eject_after: Option<u32>,
    /// How long an ejected endpoint rests.
    pub eject_for: Option<String>,
    /// Requests outstanding per upstream endpoint before it is skipped.
    pub max_in_flight_per_endpoint: Option<u32>,
}

/// `[proxy]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileProxy {
    /// Whether forwarded requests carry `Via: 1.1 switchyard` (default true).
    pub via: Option<bool>,
}

/// `[alerts]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileAlerts {
    /// Webhook URLs for critical alerts.
    pub critical: Option<Vec<String>>,
    /// Webhook URLs for high alerts.
    pub high: Option<Vec<String>>,
    /// Webhook URLs for medium alerts.
    pub medium: Option<Vec<String>>,
    /// Per-attempt timeout.
    pub timeout: Option<String>,
    /// Attempts per alert and URL.
    pub retries: Option<u32>,
    /// Extra PEM CA bundle trusted for https webhooks besides the system roots.
    pub ca: Option<PathBuf>,
    /// `[alerts.escalation]`.
    pub escalation: Option<FileEscalation>,
}

/// `[alerts.escalation]`: who is paged next while a critical incident stays unacknowledged.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEscalation {
    /// Levels in order; `after` counts from the incident, not from the previous level.
    pub levels: Option<Vec<FileEscalationLevel>>,
}

/// `{ after = "5m", webhooks = ["https://..."] }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEscalationLevel {
    /// Time since the incident at which this level is paged.
    pub after: String,
    /// Webhook URLs of this level.
    pub webhooks: Option<Vec<String>>,
}

/// `[[services]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileService {
    /// Service name, unique.
    pub name: String,
    /// Listener address.
    pub listen: String,
    /// `manual` (default) or `progressive`.
    pub mode: Option<String>,
    /// Percent of requests to green in manual mode.
    pub green_weight: Option<f64>,
    /// Blue pool.
    pub blue: FilePool,
    /// Green pool.
    pub green: FilePool,
    /// Sticky key.
    pub sticky: Option<FileSticky>,
    /// Header that forces a color: a name, or a name with a secret the value must carry.
    pub force_header: Option<FileForceHeader>,
    /// TLS termination.
    pub tls: Option<FileTls>,
    /// Active health checks.
    pub health: Option<FileHealth>,
    /// Per-service trigger overrides.
    pub triggers: Option<FileTriggers>,
    /// Step weights overriding `[rollout].steps`.
    pub steps: Option<Vec<f64>>,
    /// Hold overriding `[rollout].hold`.
    pub hold: Option<String>,
    /// Manual gate overriding `[rollout].manual_gate_before`.
    pub manual_gate_before: Option<f64>,
    /// Retries of failed green attempts onto blue.
    pub retry: Option<FileRetry>,
    /// A second attempt on blue when green is slow to answer.
    pub hedge: Option<FileHedge>,
}

/// `{ after = "p99" | "500ms" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileHedge {
    /// `"p99"` (blue's recent p99) or a duration.
    pub after: String,
}

/// `{ endpoints = [...], release = "...", tls = { ca = "PATH" } }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilePool {
    /// `host:port` of each endpoint.
    pub endpoints: Vec<String>,
    /// Release label (green's change restarts the plan).
    pub release: Option<String>,
    /// Speak TLS to these endpoints.
    pub tls: Option<FileUpstreamTls>,
}

/// `{ ca = "PATH" }`: upstream TLS verified against a CA bundle.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileUpstreamTls {
    /// PEM bundle of the CAs that sign the upstreams' certificates.
    pub ca: std::path::PathBuf,
}

/// `"name"` | `{ name = "...", token_env = "..." }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum FileForceHeader {
    /// `force_header = "x-switchyard-color"`: anyone may force.
    Name(String),
    /// `force_header = { name = "...", token_env = "..." }`: only requests whose value is
    /// `<color>:<token>` force, so outsiders cannot reach a candidate early.
    Secret(FileForceSecret),
}

/// The table form of `force_header`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileForceSecret {
    /// Header name.
    pub name: String,
    /// Environment variable holding the token (kept out of the config file).
    pub token_env: String,
}

/// `{ header = "..." } | { cookie = "..." } | "client_ip"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum FileSticky {
    /// Hash a request header.
    Header {
        /// Header name.
        header: String,
    },
    /// Hash a cookie.
    Cookie {
        /// Cookie name.
        cookie: String,
    },
    /// `"client_ip"`.
    Named(String),
}

/// `{ cert = "PATH", key = "PATH", min_version = "1.3", client_ca = "PATH" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTls {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// `"1.2"` (default) or `"1.3"`.
    pub min_version: Option<String>,
    /// PEM CA bundle; when set, client certificates are required and verified against it.
    pub client_ca: Option<PathBuf>,
}

/// `{ path = "/health", interval = "5s", timeout = "1s" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileHealth {
    /// `false`: no active probes (endpoints are judged by passive ejection alone), for upstreams
    /// without a health endpoint.
    pub enabled: Option<bool>,
    /// Probe path.
    pub path: Option<String>,
    /// Probe interval.
    pub interval: Option<String>,
    /// Probe timeout.
    pub timeout: Option<String>,
}

/// `{ enabled = true, on = [502, 503], budget = 0.2, min_per_second = 10, max_body_bytes = 65536 }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRetry {
    /// Retry green failures onto blue.
    pub enabled: Option<bool>,
    /// Green statuses that are retried (transport failures always are).
    pub on: Option<Vec<u16>>,
    /// Retries allowed as a fraction of requests.
    pub budget: Option<f64>,
    /// Retries always allowed per second, however thin the traffic (linkerd's
    /// `min_retries_per_second`).
    pub min_per_second: Option<u32>,
    /// Largest body buffered to make a request replayable.
    pub max_body_bytes: Option<usize>,
}
