//! The end-of-run summary: JSON for machines (stdout), a few lines for humans (stderr).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::stats::{ErrorKind, Stats};

/// Latency percentiles in milliseconds.
#[derive(Debug, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// The JSON summary printed on stdout; field names are a contract with scripts and CI.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Measured attempts: responses plus transport errors.
    pub requests: u64,
    /// From the end of warmup to the last worker finishing.
    pub duration_s: f64,
    /// `requests / duration_s`.
    pub rps: f64,
    pub latency_ms: Latency,
    /// Responses per status code.
    pub status: BTreeMap<String, u64>,
    /// Transport errors per kind (only kinds that occurred).
    pub errors: BTreeMap<String, u64>,
    /// Responses per color: `blue`/`green` when the upstream name contains it, else `other`.
    pub colors: BTreeMap<String, u64>,
    /// Responses per `x-switchyard-mock` value.
    pub upstreams: BTreeMap<String, u64>,
    /// Open loop only: slots due during the run that were never sent because every
    /// connection was busy until the end. Non-zero means the target (or this generator)
    /// could not keep up with `--rate`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missed: Option<u64>,
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

impl Summary {
    /// Builds the summary from merged stats.
    pub fn new(stats: &Stats, elapsed: Duration) -> Self {
        let h = &stats.latency;
        let q = |quantile| ms(h.value_at_quantile(quantile));
        let requests = stats.attempts();
        let duration_s = elapsed.as_secs_f64();
        let status = (0..stats.status.len())
            .filter(|&code| stats.status[code] > 0)
            .map(|code| (code.to_string(), stats.status[code]))
            .collect();
        let errors = ErrorKind::ALL
            .iter()
            .filter(|&&k| stats.errors[k as usize] > 0)
            .map(|&k| (k.name().to_owned(), stats.errors[k as usize]))
            .collect();
        let mut colors = BTreeMap::new();
        let mut upstreams = BTreeMap::new();
        for (name, n) in &stats.upstreams {
            let name = String::from_utf8_lossy(name.as_bytes()).into_owned();
            *colors.entry(color_of(&name).to_owned()).or_insert(0) += n;
            *upstreams.entry(name).or_insert(0) += n;
        }
        Self {
            requests,
            duration_s,
            rps: if duration_s > 0.0 { requests as f64 / duration_s } else { 0.0 },
            latency_ms: Latency {
                p50: q(0.5),
                p90: q(0.9),
                p95: q(0.95),
                p99: q(0.99),
                p999: q(0.999),
                max: ms(h.max()),
            },
            status,
            errors,
            colors,
            upstreams,
            missed: None,
        }
    }

    /// A few readable lines for stderr.
    pub fn human(&self) -> String {
        let missed = match self.missed {
            Some(n) if n > 0 => format!("missed     {n} scheduled requests never sent\n"),
            _ => String::new(),
        };
        let l = &self.latency_ms;
        let join = |m: &BTreeMap<String, u64>| {
            if m.is_empty() {
                return "-".to_owned();
            }
            m.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
        };
        format!(
            "requests   {} in {:.2}s = {:.1} req/s\n\
             latency ms p50 {:.3}  p90 {:.3}  p95 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}\n\
             status     {}\nerrors     {}\ncolors     {}\nupstreams  {}\n{}",
            self.requests,
            self.duration_s,
            self.rps,
            l.p50,
            l.p90,
            l.p95,
            l.p99,
            l.p999,
            l.max,
            join(&self.status),
            join(&self.errors),
            join(&self.colors),
            join(&self.upstreams),
            missed,
        )
    }
}

/// The color an upstream name belongs to, by substring (`auth-green` → `green`).
pub fn color_of(name: &str) -> &'static str {
    if name.contains("green") {
        "green"
    } else if name.contains("blue") {
        "blue"
    } else {
        "other"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn colors_are_derived_from_upstream_names() {
        assert_eq!(color_of("auth-green"), "green");
        assert_eq!(color_of("auth-blue-2"), "blue");
        assert_eq!(color_of("auth"), "other");
    }

    #[test]
    fn summary_counts_statuses_colors_and_rate() {
        let mut stats = Stats::default();
        let green = HeaderValue::from_static("auth-green");
        for _ in 0..3 {
            stats.response(200, Duration::from_millis(2), Some(&green));
        }
        stats.response(503, Duration::from_millis(4), None);
        stats.error(ErrorKind::Timeout);
        let s = Summary::new(&stats, Duration::from_secs(1));
        assert_eq!(s.requests, 5);
        assert_eq!(s.rps, 5.0);
        assert_eq!(s.status["200"], 3);
        assert_eq!(s.status["503"], 1);
        assert_eq!(s.errors["timeout"], 1);
        assert_eq!(s.colors["green"], 3);
        assert_eq!(s.upstreams["auth-green"], 3);
        assert!((s.latency_ms.max - 4.0).abs() < 0.01);
    }
}
