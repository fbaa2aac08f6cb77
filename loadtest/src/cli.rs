//! Command-line flags, and the run bounds derived from them.

use std::time::Duration;

use clap::Parser;

/// Flags of `switchyard-load`; see `loadtest/README.md` for the modes they select.
#[derive(Debug, Parser)]
#[command(name = "switchyard-load", version, about)]
pub struct Args {
    /// Target, e.g. http://127.0.0.1:8000/path (plain http only).
    #[arg(long)]
    pub url: String,
    /// Keep-alive connections (HTTP/1.1) or concurrent streams on one connection (--http2).
    #[arg(short = 'c', long, default_value_t = 16)]
    pub connections: usize,
    /// Open loop: constant arrival rate in requests per second. Without it the run is closed loop.
    #[arg(short = 'r', long)]
    pub rate: Option<f64>,
    /// Measured run length, e.g. 10s, 500ms, 2m. Defaults to 10s when --requests is not given.
    #[arg(short = 'd', long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Stop after this many measured requests.
    #[arg(short = 'n', long)]
    pub requests: Option<u64>,
    /// Traffic sent before measuring starts (not recorded).
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    pub warmup: Duration,
    /// Extra request header `name: value`; repeatable.
    #[arg(short = 'H', long = "header")]
    pub headers: Vec<String>,
    /// Use HTTP/2 with prior knowledge (h2c): one connection, --connections streams.
    #[arg(long)]
    pub http2: bool,
    /// Runtime worker threads; 1 leaves the other core to the proxy on a 2-core box.
    #[arg(short = 't', long, default_value_t = 1)]
    pub threads: usize,
    /// Per-request deadline (headers and body); a miss counts as a `timeout` error.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub timeout: Duration,
    /// Request method.
    #[arg(short = 'm', long, default_value = "GET")]
    pub method: String,
    /// Request body (sent with every request).
    #[arg(long)]
    pub body: Option<String>,
    /// Print only the JSON summary (no human summary on stderr).
    #[arg(long)]
    pub json: bool,
    /// No per-second progress lines.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

impl Args {
    /// The measured duration: the flag, or 10 s when neither bound was given.
    pub fn measured_duration(&self) -> Option<Duration> {
        match (self.duration, self.requests) {
            (None, None) => Some(Duration::from_secs(10)),
            (d, _) => d,
        }
    }
}

/// Parses `250ms`, `10s`, `2m`, `1h`, `500us`; a bare number means seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let secs = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1e3,
        "us" => value / 1e6,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("unknown duration unit {other:?} in {s:?}")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("bad duration {s:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_common_units() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5d").is_err());
    }
}
