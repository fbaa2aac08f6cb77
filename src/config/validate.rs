//! `FileConfig` → `Config`. Every problem is collected with its key path so an operator fixes a
//! broken file in one pass instead of one error per reload.

use super::file::*;
use super::model::*;
use crate::types::Weight;
use http::header::HeaderName;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

mod observe;

/// Collects `(key path, message)` pairs while building.
#[derive(Default)]
pub(crate) struct Problems(pub(crate) Vec<(String, String)>);

impl Problems {
    pub(crate) fn push(&mut self, key: impl Into<String>, msg: impl Into<String>) {
        self.0.push((key.into(), msg.into()));
    }

    fn duration(&mut self, key: &str, v: Option<&str>, default: Duration) -> Duration {
        let Some(v) = v else { return default };
        match humantime::parse_duration(v) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                self.push(key, "must be greater than zero");
                default
            }
            Err(e) => {
                self.push(key, format!("invalid duration {v:?}: {e} (use e.g. \"30s\", \"200ms\")"));
                default
            }
        }
    }

    fn weight(&mut self, key: &str, pct: f64) -> Weight {
        Weight::from_percent(pct).unwrap_or_else(|e| {
            self.push(key, e.to_string());
            Weight::ZERO
        })
    }

    fn fraction(&mut self, key: &str, v: f64) -> f64 {
        if !(0.0..=1.0).contains(&v) {
            self.push(key, format!("must be a fraction between 0 and 1, got {v}"));
        }
        v
    }

    fn consecutive(&mut self, key: &str, v: Option<u32>, default: u32) -> u32 {
        let v = v.unwrap_or(default);
        if v == 0 {
            self.push(key, "must be at least 1");
            return 1;
        }
        v
    }

    fn header(&mut self, key: &str, v: &str) -> Option<HeaderName> {
        HeaderName::from_bytes(v.to_ascii_lowercase().as_bytes())
            .map_err(|_| self.push(key, format!("{v:?} is not a valid header name")))
            .ok()
    }

    /// `IP:port`, or `localhost:port` (loopback, as every resolver answers it, without a lookup).
    fn addr(&mut self, key: &str, v: &str) -> SocketAddr {
        let local = v.strip_prefix("localhost:").and_then(|port| port.parse::<u16>().ok());
        if let Some(port) = local {
            return SocketAddr::from(([127, 0, 0, 1], port));
        }
        v.parse().unwrap_or_else(|_| {
            self.push(key, format!("{v:?} is not an IP:port socket address (or localhost:port)"));
            SocketAddr::from(([127, 0, 0, 1], 0))
        })
    }
}

/// Builds a validated `Config`, or returns every problem found.
pub(crate) fn build(file: FileConfig, source: &Path) -> Result<Config, Problems> {
    let mut p = Problems::default();
    let control = control(&mut p, &file.control);
    let rollout_defaults = plan(&mut p, "rollout", &file.rollout, None);
    let limits = limits(&mut p, &file.limits);
    let alerts = alerts(&mut p, &file.alerts);
    let admin_listen = file.admin.listen.as_deref().unwrap_or("127.0.0.1:9900");
    let admin = AdminConfig { listen: p.addr("admin.listen", admin_listen), token_file: file.admin.token_file.clone() };
    let mut services = Vec::with_capacity(file.services.len());
    for (i, s) in file.services.iter().enumerate() {
        services.push(service(&mut p, i, s, &control.triggers, &rollout_defaults));
    }
    check_unique(&mut p, &services);
    let order = rollout_order(&mut p, &file.rollout, &services);
    let healthy = file.rollout.healthy_measurements.unwrap_or(3);
    if healthy == 0 {
        p.push("rollout.healthy_measurements", "must be at least 1");
    }
    let fleet = file.fleet.as_ref().map(|f| fleet(&mut p, f));
    let hash = file.constitutional_hash.as_deref().unwrap_or(DEFAULT_CONSTITUTIONAL_HASH);
    if hash.is_empty() || http::HeaderValue::from_str(hash).is_err() {
        p.push("constitutional_hash", "must be a non-empty header-safe string");
    }
    let config = Config {
        source: source.to_path_buf(),
        constitutional_hash: hash.into(),
        state_dir: file.state_dir.clone().unwrap_or_else(|| DEFAULT_STATE_DIR.into()),
        admin,
        control,
        rollout: RolloutConfig {
            order,
            sequential: file.rollout.sequential.unwrap_or(true),
            healthy_measurements: healthy.max(1),
        },
        limits,
        proxy: ProxyConfig { via: file.proxy.via.unwrap_or(true) },
        alerts,
        services,
        fleet,
        access_log: observe::access_log(&mut p, &file.access_log),
        tracing: observe::tracing(&mut p, &file.tracing),
    };
    super::rules::check(&mut p, &config, file.rollout.order.as_deref());
    if !p.0.is_empty() {
        return Err(p);
    }
    Ok(config)
}

fn fleet(p: &mut Problems, f: &FileFleet) -> FleetConfig {
    let store = f.store.as_deref().unwrap_or("etcd");
    if store != "etcd" {
        p.push("fleet.store", format!("unknown store {store:?}; the only store is \"etcd\""));
    }
    if f.endpoints.is_empty() {
        p.push("fleet.endpoints", "needs at least one etcd URL such as \"http://127.0.0.1:2379\"");
    }
    let mut endpoints = Vec::with_capacity(f.endpoints.len());
    for (i, e) in f.endpoints.iter().enumerate() {
        match e.parse::<http::Uri>() {
            Ok(u) if matches!(u.scheme_str(), Some("http" | "https")) && u.authority().is_some() => endpoints.push(u),
            _ => p.push(format!("fleet.endpoints[{i}]"), format!("{e:?} is not an http:// or https://host:port URL")),
        }
    }
    let tls = fleet_tls(p, f, endpoints.iter().any(|u| u.scheme_str() == Some("https")));
    let credentials = etcd_credentials(p);
    let watch_silence = p.duration("fleet.watch_silence", f.watch_silence.as_deref(), Duration::from_secs(10));
    if watch_silence < Duration::from_secs(1) {
        p.push("fleet.watch_silence", "must be at least 1s (a progress request needs a round trip)");
    }
    let prefix = f.prefix.as_deref().unwrap_or("/switchyard").trim_end_matches('/').to_string();
    if !prefix.starts_with('/') {
        p.push("fleet.prefix", "must start with '/'");
    }
    let replica = f.replica.clone().or_else(|| std::env::var("SWITCHYARD_REPLICA").ok()).unwrap_or_else(hostname);
    if replica.is_empty() || replica.contains('/') {
        p.push("fleet.replica", format!("{replica:?} must be non-empty and contain no '/'"));
    }
    let lease_ttl = p.duration("fleet.lease_ttl", f.lease_ttl.as_deref(), Duration::from_secs(5));
    if lease_ttl < Duration::from_secs(1) || lease_ttl.subsec_nanos() != 0 {
        p.push("fleet.lease_ttl", "must be whole seconds, at least 1s (etcd leases count in seconds)");
    }
    let alert_hold = p.duration("fleet.alert_hold", f.alert_hold.as_deref(), Duration::from_secs(30));
    FleetConfig { endpoints, prefix, replica, lease_ttl, tls, credentials, watch_silence, alert_hold }
}

/// `fleet.ca` / `fleet.cert` / `fleet.key`: PEM files that parse, a certificate with its key,
/// and only when some endpoint is `https://` (on plain http they would silently do nothing).
fn fleet_tls(p: &mut Problems, f: &FileFleet, any_https: bool) -> FleetTls {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let files = [("fleet.ca", &f.ca), ("fleet.cert", &f.cert), ("fleet.key", &f.key)];
    for (key, path) in files {
        let Some(path) = path else { continue };
        if !any_https {
            p.push(key, "applies to https:// endpoints only, and every fleet.endpoints entry is http://");
        }
        let loaded = if key == "fleet.key" {
            PrivateKeyDer::from_pem_file(path).map(|_| 1)
        } else {
            CertificateDer::pem_file_iter(path).and_then(|it| it.collect::<Result<Vec<_>, _>>()).map(|c| c.len())
        };
        match loaded {
            Err(e) => p.push(key, format!("{}: {e}", path.display())),
            Ok(0) => p.push(key, format!("{}: no PEM certificate in it", path.display())),
            Ok(_) => {}
        }
    }
    let identity = match (&f.cert, &f.key) {
        (Some(c), Some(k)) => Some((c.clone(), k.clone())),
        (None, None) => None,
        _ => {
            p.push("fleet.cert", "fleet.cert and fleet.key go together (a client certificate and its key)");
            None
        }
    };
    FleetTls { ca: f.ca.clone(), identity }
}

/// Username and password come from the environment only, so the config file never holds a
/// secret; one without the other is a mistake worth stopping for.
fn etcd_credentials(p: &mut Problems) -> Option<EtcdCredentials> {
    let var = |k| std::env::var(k).ok().filter(|v: &String| !v.is_empty());
    match (var("SWITCHYARD_ETCD_USERNAME"), var("SWITCHYARD_ETCD_PASSWORD")) {
        (Some(username), Some(password)) => Some(EtcdCredentials { username, password }),
        (None, None) => None,
        (u, _) => {
            let missing = if u.is_some() { "SWITCHYARD_ETCD_PASSWORD" } else { "SWITCHYARD_ETCD_USERNAME" };
            p.push("fleet", format!("etcd credentials need both environment variables; {missing} is not set"));
            None
        }
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

fn control(p: &mut Problems, f: &FileControl) -> ControlConfig {
    let before = p.0.len();
    let interval = p.duration("control.interval", f.interval.as_deref(), Duration::from_secs(30));
    let window = p.duration("control.window", f.window.as_deref(), Duration::from_secs(300));
    // Compare only values that parsed: a bad interval must not also blame a good window.
    if p.0.len() == before && window < interval {
        p.push("control.window", "must be at least control.interval");
    }
    let triggers = triggers(p, "control.triggers", f.triggers.as_ref(), &Triggers::default());
    ControlConfig {
        interval,
        window,
        min_samples: f.min_samples.unwrap_or(100),
        compliance_header: p
            .header(
                "control.compliance_header",
                f.compliance_header.as_deref().unwrap_or("x-constitutional-compliance"),
            )
            .unwrap_or(HeaderName::from_static("x-constitutional-compliance")),
        hash_header: p
            .header("control.hash_header", f.hash_header.as_deref().unwrap_or("x-constitutional-hash"))
            .unwrap_or(HeaderName::from_static("x-constitutional-hash")),
        principles_header: p
            .header(
                "control.principles_header",
                f.principles_header.as_deref().unwrap_or("x-constitutional-principles"),
            )
            .unwrap_or(HeaderName::from_static("x-constitutional-principles")),
        triggers,
    }
}

/// Overlays `f` on `base`, key by key. A threshold left out is inherited (from `base`, else the
/// spec's default), so `{ enabled = false }` or `{ consecutive = 5 }` is a whole trigger.
fn triggers(p: &mut Problems, key: &str, f: Option<&FileTriggers>, base: &Triggers) -> Triggers {
    let mut t = base.clone();
    let Some(f) = f else { return t };
    let spec = Triggers::default();
    let inherit =
        |slot: &Option<Trigger<f64>>, spec: &Option<Trigger<f64>>| slot.or(*spec).map_or(0.0, |tr| tr.threshold);
    if let Some(x) = &f.p95_latency {
        let k = format!("{key}.p95_latency");
        let prev = t.p95_latency.or(spec.p95_latency).map_or(Duration::from_secs(2), |tr| tr.threshold);
        let threshold = p.duration(&format!("{k}.above"), x.above.as_deref(), prev);
        let consecutive = p.consecutive(&format!("{k}.consecutive"), x.consecutive, 2);
        t.p95_latency = x.enabled.unwrap_or(true).then_some(Trigger { threshold, consecutive });
    }
    if let Some(x) = &f.error_rate {
        let k = format!("{key}.error_rate");
        let threshold = match x.above {
            Some(v) => p.fraction(&format!("{k}.above"), v),
            None => inherit(&t.error_rate, &spec.error_rate),
        };
        let consecutive = p.consecutive(&format!("{k}.consecutive"), x.consecutive, 3);
        t.error_rate = x.enabled.unwrap_or(true).then_some(Trigger { threshold, consecutive });
    }
    for (name, x, slot, spec_slot, d) in [
        ("availability", &f.availability, &mut t.availability, &spec.availability, 1),
        ("compliance", &f.compliance, &mut t.compliance, &spec.compliance, 3),
    ] {
        if let Some(x) = x {
            let k = format!("{key}.{name}");
            let threshold = match x.below {
                Some(v) => p.fraction(&format!("{k}.below"), v),
                None => inherit(slot, spec_slot),
            };
            let consecutive = p.consecutive(&format!("{k}.consecutive"), x.consecutive, d);
            *slot = x.enabled.unwrap_or(true).then_some(Trigger { threshold, consecutive });
        }
    }
    if let Some(x) = &f.hash_mismatch {
        let c = p.consecutive(&format!("{key}.hash_mismatch.consecutive"), x.consecutive, 1);
        t.hash_mismatch = x.enabled.unwrap_or(true).then_some(c);
    }
    if let Some(list) = &f.status_rate {
        t.status_rate = list
            .iter()
            .enumerate()
            .map(|(i, x)| {
                let k = format!("{key}.status_rate[{i}]");
                if x.status.is_empty() || x.status.iter().any(|s| !(100..=599).contains(s)) {
                    p.push(format!("{k}.status"), "must list HTTP statuses between 100 and 599");
                }
                StatusTrigger {
                    statuses: x.status.clone(),
                    above: p.fraction(&format!("{k}.above"), x.above),
                    consecutive: p.consecutive(&format!("{k}.consecutive"), x.consecutive, 3),
                }
            })
            .collect();
    }
    t
}

fn plan(p: &mut Problems, key: &str, f: &FileRollout, base: Option<&Plan>) -> Plan {
    steps_plan(p, key, f.steps.as_deref(), f.hold.as_deref(), f.manual_gate_before, base)
}

fn steps_plan(
    p: &mut Problems,
    key: &str,
    steps: Option<&[f64]>,
    hold: Option<&str>,
    gate: Option<f64>,
    base: Option<&Plan>,
) -> Plan {
    let default_steps = || [1.0, 10.0, 50.0, 100.0].iter().map(|&s| Weight::from_percent(s).expect("valid")).collect();
    let steps: Vec<Weight> = match steps {
        Some(s) => {
            let w: Vec<Weight> =
                s.iter().enumerate().map(|(i, &v)| p.weight(&format!("{key}.steps[{i}]"), v)).collect();
            if w.is_empty()
                || w.windows(2).any(|x| x[0] >= x[1])
                || w.last() != Some(&Weight::FULL)
                || w[0] == Weight::ZERO
            {
                p.push(format!("{key}.steps"), "must be strictly increasing percentages above 0 ending at 100");
            }
            w
        }
        None => base.map(|b| b.steps.clone()).unwrap_or_else(default_steps),
    };
    let hold = p.duration(&format!("{key}.hold"), hold, base.map(|b| b.hold).unwrap_or(Duration::from_secs(600)));
    let manual_gate_before = match gate {
        Some(g) => Some(p.weight(&format!("{key}.manual_gate_before"), g)),
        None => base.and_then(|b| b.manual_gate_before),
    };
    Plan { steps, hold, manual_gate_before }
}

fn limits(p: &mut Problems, f: &FileLimits) -> Limits {
    let d = |p: &mut Problems, k: &str, v: &Option<String>, def: u64| {
        p.duration(&format!("limits.{k}"), v.as_deref(), Duration::from_millis(def))
    };
    let l = Limits {
        max_header_bytes: f.max_header_bytes.unwrap_or(64 * 1024),
        header_read_timeout: d(p, "header_read_timeout", &f.header_read_timeout, 10_000),
        idle_timeout: d(p, "idle_timeout", &f.idle_timeout, 75_000),
        max_body_bytes: f.max_body_bytes,
        max_connections: f.max_connections.unwrap_or(10_000),
        max_h2_streams: f.max_h2_streams.unwrap_or(256),
        connect_timeout: d(p, "connect_timeout", &f.connect_timeout, 1_000),
        response_timeout: d(p, "response_timeout", &f.response_timeout, 30_000),
        drain_timeout: d(p, "drain_timeout", &f.drain_timeout, 30_000),
        eject_after: f.eject_after.unwrap_or(5),
        eject_for: d(p, "eject_for", &f.eject_for, 10_000),
        max_in_flight_per_endpoint: f.max_in_flight_per_endpoint.unwrap_or(10_000),
    };
    if l.max_header_bytes < 1024 {
        p.push("limits.max_header_bytes", "must be at least 1024");
    }
    if l.max_in_flight_per_endpoint == 0 {
        p.push("limits.max_in_flight_per_endpoint", "must be at least 1");
    }
    if l.max_connections == 0 {
        p.push("limits.max_connections", "must be at least 1");
    }
    l
}

fn alerts(p: &mut Problems, f: &FileAlerts) -> AlertConfig {
    let (critical, high, medium) = (
        webhook_urls(p, "alerts.critical", f.critical.as_deref()),
        webhook_urls(p, "alerts.high", f.high.as_deref()),
        webhook_urls(p, "alerts.medium", f.medium.as_deref()),
    );
    AlertConfig {
        critical,
        high,
        medium,
        timeout: p.duration("alerts.timeout", f.timeout.as_deref(), Duration::from_secs(5)),
        retries: f.retries.unwrap_or(3).max(1),
        ca: f.ca.clone(),
        escalation: escalation(p, f.escalation.as_ref()),
    }
}

fn webhook_urls(p: &mut Problems, key: &str, v: Option<&[String]>) -> Vec<String> {
    let v = v.unwrap_or_default().to_vec();
    for (i, u) in v.iter().enumerate() {
        match u.parse::<http::Uri>() {
            Ok(uri) if matches!(uri.scheme_str(), Some("http" | "https")) && uri.authority().is_some() => {}
            _ => p.push(format!("{key}[{i}]"), format!("{u:?} is not an http:// or https:// URL")),
        }
    }
    v
}

/// The spec's levels (5m, 15m, 30m) unless the file lists its own; `after` must increase.
fn escalation(p: &mut Problems, f: Option<&FileEscalation>) -> Vec<EscalationLevel> {
    let Some(levels) = f.and_then(|f| f.levels.as_ref()) else {
        return [5, 15, 30]
            .map(|m| EscalationLevel { after: Duration::from_secs(m * 60), webhooks: Vec::new() })
            .to_vec();
    };
    let mut out: Vec<EscalationLevel> = Vec::with_capacity(levels.len());
    for (i, l) in levels.iter().enumerate() {
        let key = format!("alerts.escalation.levels[{i}]");
        let after = p.duration(&format!("{key}.after"), Some(&l.after), Duration::from_secs(300));
        if out.last().is_some_and(|prev| prev.after >= after) {
            p.push(format!("{key}.after"), "must be later than the previous level's");
        }
        let webhooks = webhook_urls(p, &format!("{key}.webhooks"), l.webhooks.as_deref());
        out.push(EscalationLevel { after, webhooks });
    }
    out
}

fn pool(p: &mut Problems, key: &str, f: &FilePool) -> PoolConfig {
    if f.endpoints.is_empty() {
        p.push(format!("{key}.endpoints"), "must list at least one host:port");
    }
    let endpoints = f
        .endpoints
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match e.parse::<http::uri::Authority>() {
            Ok(a) if a.port_u16().is_some() => Some(a),
            _ => {
                p.push(format!("{key}.endpoints[{i}]"), format!("{e:?} is not host:port"));
                None
            }
        })
        .collect();
    PoolConfig { endpoints, release: f.release.as_deref().map(Arc::from), tls_ca: f.tls.as_ref().map(|t| t.ca.clone()) }
}

fn force_header(p: &mut Problems, k: &str, f: &FileForceHeader) -> Option<ForceHeader> {
    let key = format!("{k}.force_header");
    match f {
        FileForceHeader::Name(n) => p.header(&key, n).map(|name| ForceHeader { name, token: None }),
        FileForceHeader::Secret(s) => {
            let name = p.header(&format!("{key}.name"), &s.name);
            let token = match std::env::var(&s.token_env) {
                Ok(t) if !t.is_empty() => Some(Arc::from(t)),
                _ => {
                    p.push(
                        format!("{key}.token_env"),
                        format!("environment variable {} is unset or empty", s.token_env),
                    );
                    None
                }
            };
            Some(ForceHeader { name: name?, token: Some(token?) })
        }
    }
}

fn service(p: &mut Problems, i: usize, f: &FileService, global: &Triggers, plan_defaults: &Plan) -> ServiceConfig {
    let k = format!("services[{i}]");
    if f.name.is_empty() || !f.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        p.push(format!("{k}.name"), "must be non-empty letters, digits, '-' or '_'");
    }
    let mode = match f.mode.as_deref() {
        None | Some("manual") => Mode::Manual,
        Some("progressive") => Mode::Progressive,
        Some(m) => {
            p.push(format!("{k}.mode"), format!("{m:?} is not \"manual\" or \"progressive\""));
            Mode::Manual
        }
    };
    let sticky = f.sticky.as_ref().and_then(|s| match s {
        FileSticky::Header { header } => p.header(&format!("{k}.sticky.header"), header).map(Sticky::Header),
        FileSticky::Cookie { cookie } => Some(Sticky::Cookie(cookie.as_str().into())),
        FileSticky::Named(n) if n == "client_ip" => Some(Sticky::ClientIp),
        FileSticky::Named(n) => {
            p.push(
                format!("{k}.sticky"),
                format!("{n:?} is not \"client_ip\", {{ header = ... }} or {{ cookie = ... }}"),
            );
            None
        }
    });
    let tls = f.tls.as_ref().map(|t| TlsConfig {
        cert: t.cert.clone(),
        key: t.key.clone(),
        tls13_only: match t.min_version.as_deref() {
            None | Some("1.2") => false,
            Some("1.3") => true,
            Some(v) => {
                p.push(format!("{k}.tls.min_version"), format!("{v:?} is not \"1.2\" or \"1.3\""));
                false
            }
        },
        client_ca: t.client_ca.clone(),
    });
    let h = f.health.as_ref();
    let triggers = triggers(p, &format!("{k}.triggers"), f.triggers.as_ref(), global);
    let health = HealthConfig {
        enabled: h.and_then(|h| h.enabled).unwrap_or(true),
        require_hash: triggers.hash_mismatch.is_some(),
        path: h.and_then(|h| h.path.as_deref()).unwrap_or("/health").into(),
        interval: p.duration(
            &format!("{k}.health.interval"),
            h.and_then(|h| h.interval.as_deref()),
            Duration::from_secs(5),
        ),
        timeout: p.duration(
            &format!("{k}.health.timeout"),
            h.and_then(|h| h.timeout.as_deref()),
            Duration::from_secs(1),
        ),
    };
    let r = f.retry.as_ref();
    let retry = RetryConfig {
        enabled: r.and_then(|r| r.enabled).unwrap_or(true),
        on: r.and_then(|r| r.on.clone()).unwrap_or_else(|| vec![502, 503]),
        budget: p.fraction(&format!("{k}.retry.budget"), r.and_then(|r| r.budget).unwrap_or(0.2)),
        min_per_second: r.and_then(|r| r.min_per_second).unwrap_or(10),
        max_body_bytes: r.and_then(|r| r.max_body_bytes).unwrap_or(64 * 1024),
        hedge: f.hedge.as_ref().map(|h| hedge_after(p, &format!("{k}.hedge.after"), &h.after)),
    };
    ServiceConfig {
        name: f.name.as_str().into(),
        listen: p.addr(&format!("{k}.listen"), &f.listen),
        mode,
        green_weight: p.weight(&format!("{k}.green_weight"), f.green_weight.unwrap_or(0.0)),
        blue: pool(p, &format!("{k}.blue"), &f.blue),
        green: pool(p, &format!("{k}.green"), &f.green),
        sticky,
        force_header: f.force_header.as_ref().and_then(|h| force_header(p, &k, h)),
        tls,
        health,
        triggers,
        plan: steps_plan(p, &k, f.steps.as_deref(), f.hold.as_deref(), f.manual_gate_before, Some(plan_defaults)),
        retry,
    }
}

fn hedge_after(p: &mut Problems, key: &str, v: &str) -> HedgeAfter {
    if v == "p99" {
        return HedgeAfter::BlueP99;
    }
    HedgeAfter::Fixed(p.duration(key, Some(v), Duration::from_millis(500)))
}

fn check_unique(p: &mut Problems, services: &[ServiceConfig]) {
    for (i, s) in services.iter().enumerate() {
        if services[..i].iter().any(|o| o.name == s.name) {
            p.push(format!("services[{i}].name"), format!("duplicate service name {:?}", s.name));
        }
        if services[..i].iter().any(|o| o.listen == s.listen && s.listen.port() != 0) {
            p.push(format!("services[{i}].listen"), format!("{} is already used by another service", s.listen));
        }
    }
}

fn rollout_order(p: &mut Problems, f: &FileRollout, services: &[ServiceConfig]) -> Vec<Arc<str>> {
    match &f.order {
        None => services.iter().map(|s| s.name.clone()).collect(),
        Some(order) => order
            .iter()
            .enumerate()
            .filter_map(|(i, n)| match services.iter().find(|s| &*s.name == n) {
                Some(s) => Some(s.name.clone()),
                None => {
                    p.push(format!("rollout.order[{i}]"), format!("{n:?} is not a configured service"));
                    None
                }
            })
            .collect(),
    }
}
