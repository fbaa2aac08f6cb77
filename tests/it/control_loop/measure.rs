//! A measurement, not a timed test: how long the loop takes to roll back a green that returns
//! 5 % errors at 10 % weight under ~1000 RPS, and how many failed responses clients saw.
//! Spec triggers (error_rate > 1 % for 3 measurements), `min_samples = 20`.
//!
//! The fault starts within ~20 ms after a measurement (the warm-up waits for one), so the first
//! bad interval is a whole one and fault→swap is about `3 × interval`: the case to plan for.
//!
//! Run: `cargo test --release --test control_loop -- --ignored --nocapture`

use super::support::*;
use crate::support::*;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

struct Row {
    interval: &'static str,
    window: &'static str,
    rps: f64,
    detection_ms: f64,
    first_bad_to_swap_ms: Option<f64>,
    client_failures: u64,
    green_between: u64,
    swap_us: u64,
}

async fn run(label: &str, interval: &'static str, window: &'static str) -> Row {
    let name = format!("measure-{label}");
    let m = Mocks::start(&name).await;
    let control = format!("interval = \"{interval}\"\nwindow = \"{window}\"\nmin_samples = 20");
    let env = Env::new(&control, &weighted(&name, &m, 10.0, ""));
    let app = env.start().await;
    let load = Load::paced(app.service_addr(&name).unwrap(), 20, 1000, Duration::from_secs(60));
    let warm = eventually(Duration::from_secs(30), || conclusive(&green_history(&service(&app, &name)), 20) >= 3).await;
    assert!(warm, "{name}: no conclusive measurements at ~1000 RPS: {}", service(&app, &name));
    let (s0, f0) = (load.sent(), load.failed());
    assert_eq!(f0, 0, "failures before the fault");
    let (fault_at, t0) = (SystemTime::now(), Instant::now());
    m.green.set(patch(r#"{"error_rate": 0.05}"#));
    let tripped = eventually(Duration::from_secs(40), || service(&app, &name)["state"] == "rolled_back").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (s1, f1) = load.stop().await;
    let elapsed = t0.elapsed();
    assert!(tripped, "{name}: no rollback: {}", service(&app, &name));
    let inc = admin_get(&app, "/incidents").await[0].clone();
    assert_eq!(inc["trigger"], "error_rate", "{inc}");
    let fault = humantime::format_rfc3339_nanos(fault_at).to_string();
    let swapped = inc["swapped_at"].as_str().unwrap();
    let row = Row {
        interval,
        window,
        rps: (s1 - s0) as f64 / elapsed.as_secs_f64(),
        detection_ms: ms_between(&fault, swapped),
        first_bad_to_swap_ms: inc["first_bad_at"].as_str().map(|b| ms_between(b, swapped)),
        client_failures: f1 - f0,
        green_between: inc["green_requests_between"].as_u64().unwrap_or(0),
        swap_us: inc["decision_to_swap_us"].as_u64().unwrap_or(0),
    };
    app.shutdown().await;
    row
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run with --release -- --ignored --nocapture"]
async fn detection_time_and_client_failures() {
    let mut rows = Vec::new();
    for (label, interval, window) in
        [("a", "250ms", "250ms"), ("b", "250ms", "1s"), ("c", "1s", "1s"), ("d", "1s", "5s")]
    {
        rows.push(run(label, interval, window).await);
    }
    println!("\ngreen 10 %, 5 % errors, ~1000 RPS open loop, error_rate > 1 % x3, min_samples 20");
    println!(
        "interval window  rps    fault→swap  first-bad→swap  client 5xx  green reqs first-bad→swap  decision→swap"
    );
    for r in rows {
        println!(
            "{:>8} {:>6} {:>6.0} {:>9.0} ms {:>12} {:>11} {:>26} {:>11} µs",
            r.interval,
            r.window,
            r.rps,
            r.detection_ms,
            r.first_bad_to_swap_ms.map_or("-".into(), |x| format!("{x:.0} ms")),
            r.client_failures,
            r.green_between,
            r.swap_us
        );
    }
}
