//! Runtime state of a mock upstream: one immutable settings snapshot behind one `ArcSwap`,
//! plus the counters the request path bumps.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::HeaderValue;
use tokio::sync::watch;

use super::{MockConfig, MockPatch};

/// Error rates are applied in parts per million so the "exactly k of every n" rule is integer
/// arithmetic and cannot drift with floating-point rounding (0.05 * 20 is not exactly 1.0).
const PPM: u64 = 1_000_000;

/// Everything a request needs, precomputed by the writer so the request path only clones
/// header values and never formats.
#[derive(Debug)]
pub(crate) struct Settings {
    /// The config as last applied; returned by `POST /__mock`.
    pub(crate) cfg: MockConfig,
    /// `X-Constitutional-Hash` value, `None` when the header is omitted.
    pub(crate) hash: Option<HeaderValue>,
    /// `X-Constitutional-Compliance` value, `None` when the header is omitted.
    pub(crate) compliance: Option<HeaderValue>,
    /// `X-Constitutional-Principles` value, `None` when the header is omitted.
    pub(crate) principles: Option<HeaderValue>,
    /// `error_rate` in parts per million, clamped to `0..=PPM`.
    pub(crate) error_ppm: u64,
}

impl Settings {
    /// Builds the snapshot; values that cannot be a header value are dropped with a warning
    /// rather than failing, because a test backend should keep serving.
    pub(crate) fn build(mut cfg: MockConfig) -> Self {
        cfg.error_rate = clamp_rate(cfg.error_rate);
        let hash = cfg.hash.as_deref().and_then(|h| header_value("hash", h));
        let compliance = cfg.compliance.and_then(|c| header_value("compliance", &c.to_string()));
        let principles = cfg.principles.as_deref().and_then(|p| header_value("principles", p));
        let error_ppm = (cfg.error_rate * PPM as f64).round() as u64;
        Self { cfg, hash, compliance, principles, error_ppm }
    }
}

fn clamp_rate(rate: f64) -> f64 {
    if rate.is_nan() {
        0.0
    } else {
        rate.clamp(0.0, 1.0)
    }
}

fn header_value(what: &str, value: &str) -> Option<HeaderValue> {
    match HeaderValue::from_str(value) {
        Ok(v) => Some(v),
        Err(_) => {
            tracing::warn!(what, value, "mock upstream: not a valid header value, omitting it");
            None
        }
    }
}

/// Whether request number `i` (0-based) must fail at `ppm` parts per million:
/// iff floor((i+1)·rate) > floor(i·rate), which fails exactly `rate·n` of every `n`.
pub(crate) fn fails(i: u64, ppm: u64) -> bool {
    let (i, ppm) = (u128::from(i), u128::from(ppm));
    let ppm_total = u128::from(PPM);
    (i + 1) * ppm / ppm_total > i * ppm / ppm_total
}

/// State shared by the accept loop, every connection and the [`super::MockHandle`].
#[derive(Debug)]
pub(crate) struct Shared {
    /// One snapshot, one swap: a request loads it once and sees a consistent config.
    pub(crate) settings: ArcSwap<Settings>,
    /// Serialises patches so two concurrent `set` calls cannot lose each other's fields.
    writer: Mutex<()>,
    /// Non-control requests seen; also the index `i` of the error-injection rule.
    requests: AtomicU64,
    /// `x-switchyard-mock` value, fixed for the life of the mock.
    pub(crate) name_header: HeaderValue,
    /// The body of a plain response, `"{name}\n"`, built once.
    pub(crate) name_body: Bytes,
    /// Tells upgraded (echo) tunnels to close on shutdown: they outlive hyper's connection
    /// future, so the graceful-shutdown watcher cannot reach them.
    closing: watch::Sender<bool>,
}

impl Shared {
    /// Creates the state for `cfg`; the name must be a valid header value.
    pub(crate) fn new(cfg: MockConfig) -> std::io::Result<Self> {
        let name_header = HeaderValue::from_str(&cfg.name).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("mock name {:?} is not a valid header value", cfg.name),
            )
        })?;
        let name_body = Bytes::from(format!("{}\n", cfg.name));
        Ok(Self {
            settings: ArcSwap::from_pointee(Settings::build(cfg)),
            writer: Mutex::new(()),
            requests: AtomicU64::new(0),
            name_header,
            name_body,
            closing: watch::Sender::new(false),
        })
    }

    /// Applies `patch` atomically and returns the resulting config.
    pub(crate) fn apply(&self, patch: MockPatch) -> MockConfig {
        let _guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut cfg = self.settings.load().cfg.clone();
        if let Some(v) = patch.latency_ms {
            cfg.latency_ms = v;
        }
        if let Some(v) = patch.error_rate {
            cfg.error_rate = v;
        }
        if let Some(v) = patch.hash {
            cfg.hash = v;
        }
        if let Some(v) = patch.compliance {
            cfg.compliance = v;
        }
        if let Some(v) = patch.principles {
            cfg.principles = v;
        }
        if let Some(v) = patch.fault {
            cfg.fault = v;
        }
        let settings = Settings::build(cfg);
        let applied = settings.cfg.clone();
        self.settings.store(std::sync::Arc::new(settings));
        applied
    }

    /// Counts one non-control request and returns its 0-based index.
    pub(crate) fn next_request(&self) -> u64 {
        self.requests.fetch_add(1, Ordering::Relaxed)
    }

    /// Non-control requests seen so far.
    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Signals every upgraded tunnel to close.
    pub(crate) fn close_tunnels(&self) {
        self.closing.send_replace(true);
    }

    /// Completes once [`Shared::close_tunnels`] has been called.
    pub(crate) fn tunnels_closing(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.closing.subscribe();
        async move {
            let _ = rx.wait_for(|closing| *closing).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failures(n: u64, rate: f64) -> usize {
        let ppm = Settings::build(MockConfig { error_rate: rate, ..MockConfig::new("t") }).error_ppm;
        (0..n).filter(|&i| fails(i, ppm)).count()
    }

    #[test]
    fn five_percent_fails_exactly_five_of_every_hundred() {
        assert_eq!(failures(100, 0.05), 5);
        assert_eq!(failures(1000, 0.05), 50);
    }

    #[test]
    fn rate_zero_never_fails_and_rate_one_always_fails() {
        assert_eq!(failures(1000, 0.0), 0);
        assert_eq!(failures(1000, 1.0), 1000);
    }

    #[test]
    fn out_of_range_rates_are_clamped() {
        assert_eq!(failures(10, 7.0), 10);
        assert_eq!(failures(10, -1.0), 0);
        assert_eq!(failures(10, f64::NAN), 0);
    }

    #[test]
    fn patch_with_null_hash_removes_the_header() {
        let shared = Shared::new(MockConfig::new("t")).unwrap();
        assert!(shared.settings.load().hash.is_some());
        let patch: MockPatch = serde_json::from_str(r#"{"hash": null}"#).unwrap();
        shared.apply(patch);
        assert!(shared.settings.load().hash.is_none());
        assert!(shared.settings.load().compliance.is_some());
    }
}
