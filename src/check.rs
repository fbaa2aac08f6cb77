//! `switchyard check`: the verdict `run` would reach (one judge, `preflight`), and for an
//! accepted file what will actually be in effect — the defaults a file leaves unsaid included.

use anyhow::bail;
use std::path::Path;
use std::time::Duration;
use switchyard::config::{Config, Mode, PoolConfig, ServiceConfig, Triggers};
use switchyard::preflight;

/// Judges the file; prints every problem, or the summary of what `run` will do.
pub fn check(path: &Path) -> anyhow::Result<()> {
    match preflight::judge(path, std::env::var("SWITCHYARD_ADMIN_TOKEN").ok()) {
        Ok(a) => {
            println!("{}: OK", path.display());
            summary(&a.config);
            Ok(())
        }
        Err(e) => {
            eprintln!("{e}");
            bail!("{} has {} problem(s)", path.display(), e.problems.len())
        }
    }
}

fn summary(c: &Config) {
    println!(
        "control: interval {} window {} min_samples {}   admin: {}   state_dir: {}",
        dur(c.control.interval),
        dur(c.control.window),
        c.control.min_samples,
        c.admin.listen,
        c.state_dir.display()
    );
    println!("rollout order: {}  (sequential: {})", c.rollout.order.join(" → "), c.rollout.sequential);
    println!(
        "{:<10} {:<22} {:<12} {:>7}  {:<28} {:<28} release",
        "service", "listen", "mode", "green", "blue", "green endpoints"
    );
    for s in &c.services {
        service_line(s);
    }
    for s in &c.services {
        println!("{}:", s.name);
        println!("  triggers: {}", triggers(&s.triggers));
        println!("  health:   {}", health(c, s));
    }
}

fn service_line(s: &ServiceConfig) {
    let eps = |p: &PoolConfig| p.endpoints.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(",");
    let mode = match s.mode {
        Mode::Manual => "manual".to_string(),
        Mode::Progressive => {
            format!("steps {}", s.plan.steps.iter().map(|w| w.percent().to_string()).collect::<Vec<_>>().join("/"))
        }
    };
    println!(
        "{:<10} {:<22} {:<12} {:>6}%  {:<28} {:<28} {}",
        s.name,
        s.listen,
        mode,
        s.green_weight.percent(),
        eps(&s.blue),
        eps(&s.green),
        s.green.release.as_deref().unwrap_or("-")
    );
}

fn dur(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

fn pct(f: f64) -> String {
    format!("{}%", (f * 100_000.0).round() / 1000.0)
}

/// The triggers in effect, each with the consecutive bad measurements that trip it.
fn triggers(t: &Triggers) -> String {
    let mut out = Vec::new();
    if let Some(x) = t.p95_latency {
        out.push(format!("p95 > {} ×{}", dur(x.threshold), x.consecutive));
    }
    if let Some(x) = t.error_rate {
        out.push(format!("errors > {} ×{}", pct(x.threshold), x.consecutive));
    }
    if let Some(x) = t.availability {
        out.push(format!("availability < {} ×{}", pct(x.threshold), x.consecutive));
    }
    if let Some(x) = t.compliance {
        out.push(format!("compliance < {} ×{}", pct(x.threshold), x.consecutive));
    }
    if let Some(n) = t.hash_mismatch {
        out.push(format!("hash mismatch ×{n}"));
    }
    for s in &t.status_rate {
        out.push(format!("status {:?} > {} ×{}", s.statuses, pct(s.above), s.consecutive));
    }
    if out.is_empty() {
        return "none (green is never rolled back automatically)".into();
    }
    out.join(", ")
}

fn health(c: &Config, s: &ServiceConfig) -> String {
    let h = &s.health;
    if !h.enabled {
        return "off (passive ejection only)".into();
    }
    let probe = format!("GET {} every {}, timeout {}; 2xx passes", h.path, dur(h.interval), dur(h.timeout));
    match h.require_hash {
        true => format!("{probe}, and on green only with {}: {}", c.control.hash_header, c.constitutional_hash),
        false => probe,
    }
}
