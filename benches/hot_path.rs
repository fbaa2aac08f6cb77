//! Micro-benchmarks of the hot pieces of the request path and the control loop: route pick, stats record, one control
//! decision over a full window, config parse+validate. Targets: pick ≤ 50 ns, record ≤ 100 ns.
//!
//! Run: `cargo bench --bench hot_path` (each group measures for ~2 s).

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;
use switchyard::config::{self, ForceHeader, RetryConfig, Sticky, Triggers};
use switchyard::control::decide::{self, PlanView, Streaks};
use switchyard::error::UpstreamErrorKind;
use switchyard::route::{Policy, Route, ServiceKey, Weight};
use switchyard::stats::{Aggregator, HashCheck, Sample, SampleKind, ServiceStats};
use switchyard::upstream::Pool;
use switchyard::Color;

fn route(sticky: Option<Sticky>, stats: Arc<ServiceStats>) -> Route {
    let pool = |c, a: &str| Arc::new(Pool::new(c, &[a.parse().unwrap()], 5, Duration::from_secs(10)));
    Route {
        key: ServiceKey(1),
        name: "auth".into(),
        weight: Weight::from_percent(10.0).unwrap(),
        sticky,
        force_header: Some(ForceHeader { name: HeaderName::from_static("x-switchyard-color"), token: None }),
        forcible: [true, true],
        live: Color::Blue,
        candidate: Some(Color::Green),
        blue: pool(Color::Blue, "127.0.0.1:9000"),
        green: pool(Color::Green, "127.0.0.1:9100"),
        split: Arc::new(AtomicU64::new(0)),
        stats,
        policy: Arc::new(Policy {
            expected_hash: "cdd01ef066bc6cf2".into(),
            check_hash: true,
            hash_header: HeaderName::from_static("x-constitutional-hash"),
            compliance_header: HeaderName::from_static("x-constitutional-compliance"),
            principles_header: HeaderName::from_static("x-constitutional-principles"),
            retry: RetryConfig {
                enabled: false,
                on: vec![],
                budget: 0.1,
                min_per_second: 10,
                max_body_bytes: 65536,
                hedge: None,
            },
            max_body_bytes: None,
            response_timeout: Duration::from_secs(30),
            via: true,
            releases: [None, None],
        }),
    }
}

/// Headers of a typical API request.
fn request_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("host", HeaderValue::from_static("auth.internal:8000"));
    h.insert("user-agent", HeaderValue::from_static("acge-client/1.4"));
    h.insert("accept", HeaderValue::from_static("application/json"));
    h.insert("authorization", HeaderValue::from_static("Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyLTQyIn0.sig"));
    h.insert("x-request-id", HeaderValue::from_static("8f6c1a2e-3b4d-4e5f-9a0b-1c2d3e4f5a6b"));
    h
}

fn stats() -> Arc<ServiceStats> {
    // Receiver kept alive for the whole bench so `try_send` takes the real path (full channel → drop counter).
    let (tx, rx) = tokio::sync::mpsc::channel(1 << 16);
    std::mem::forget(rx);
    Arc::new(ServiceStats::new(ServiceKey(1), "auth".into(), tx))
}

fn bench_pick(c: &mut Criterion) {
    let headers = request_headers();
    let peer: SocketAddr = "10.1.2.3:45678".parse().unwrap();
    let mut g = c.benchmark_group("route_pick");
    g.sample_size(50).measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    let unkeyed = route(None, stats());
    g.bench_function("exact_split", |b| b.iter(|| unkeyed.pick(black_box(&headers), black_box(peer))));
    let sticky = route(Some(Sticky::Header(HeaderName::from_static("authorization"))), stats());
    g.bench_function("sticky_header", |b| b.iter(|| sticky.pick(black_box(&headers), black_box(peer))));
    g.finish();
}

fn sample(color: Color, status: u16, latency_us: u64) -> Sample {
    Sample {
        service: ServiceKey(1),
        color,
        kind: SampleKind::Request,
        status,
        latency_us,
        error: None,
        hash: if color == Color::Green { HashCheck::Match } else { HashCheck::NotChecked },
        compliance: Some(0.99),
    }
}

fn bench_record(c: &mut Criterion) {
    let mut g = c.benchmark_group("stats_record");
    g.sample_size(50).measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    // No recorder installed: metric handles are no-ops; this is the cost of our own bookkeeping
    // plus the channel send (the channel fills during warm-up, so this measures the drop path).
    let s = stats();
    g.bench_function("no_recorder", |b| b.iter(|| s.record(black_box(sample(Color::Blue, 200, 850)))));
    let _ = switchyard::stats::names::install_recorder();
    // With the Prometheus recorder and a draining consumer: the production path.
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Sample>(1 << 16);
    let s = Arc::new(ServiceStats::new(ServiceKey(2), "ac".into(), tx));
    let mut n = 0u64;
    g.bench_function("prometheus", |b| {
        b.iter(|| {
            s.record(black_box(sample(Color::Blue, 200, 850)));
            n += 1;
            if n.is_multiple_of(1024) {
                rt.block_on(async { while rx.try_recv().is_ok() {} });
            }
        })
    });
    g.finish();
}

/// 10 slots × 2 colors at 1000 RPS, 10 % green, 1 s interval: ~900 blue + ~100 green per slot.
fn filled_aggregator() -> Aggregator {
    let mut a = Aggregator::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _slot in 0..9 {
        fill_slot(&mut a, &mut x);
        a.close(10, Duration::from_secs(1));
    }
    fill_slot(&mut a, &mut x);
    a
}

fn fill_slot(a: &mut Aggregator, x: &mut u64) {
    for i in 0..1000u64 {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        let color = if i % 10 == 0 { Color::Green } else { Color::Blue };
        let status = if x.is_multiple_of(200) { 503 } else { 200 };
        let mut s = sample(color, status, 300 + *x % 5000);
        if *x % 1000 == 1 {
            s.error = Some(UpstreamErrorKind::Reset);
        }
        a.ingest(&s);
    }
}

fn bench_decision(c: &mut Criterion) {
    let mut g = c.benchmark_group("control_decision");
    g.sample_size(30).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_millis(500));
    let triggers = Triggers::default();
    let plan = PlanView {
        healthy_at_step: 2,
        healthy_needed: 3,
        at_step_for: Duration::from_secs(300),
        hold: Duration::from_secs(600),
        gated: false,
        has_next: true,
    };
    // The whole tick's work: close the interval (merge 10 slots × 2 colors), evaluate, decide.
    g.bench_function("close_evaluate_decide_10x2", |b| {
        b.iter_batched(
            filled_aggregator,
            |mut a| {
                let report = a.close(10, Duration::from_secs(1));
                let mut streaks = Streaks::default();
                let green = &report[0].1[Color::Green.index()];
                let v = decide::evaluate(green, &triggers, 100, &mut streaks);
                decide::decide(&v, Some(&plan))
            },
            criterion::BatchSize::LargeInput,
        )
    });
    let mut a = filled_aggregator();
    let green = a.close(10, Duration::from_secs(1))[0].1[Color::Green.index()].clone();
    g.bench_function("evaluate_decide", |b| {
        b.iter(|| {
            let mut streaks = Streaks::default();
            let v = decide::evaluate(black_box(&green), &triggers, 100, &mut streaks);
            decide::decide(&v, Some(&plan))
        })
    });
    g.finish();
}

fn bench_config(c: &mut Criterion) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/switchyard.toml");
    let text = std::fs::read_to_string(&path).expect("config/switchyard.toml");
    let mut g = c.benchmark_group("config");
    g.sample_size(30).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_millis(500));
    g.bench_function("parse_validate_7_services", |b| {
        b.iter(|| config::parse(black_box(&text), &path).expect("shipped config is valid"))
    });
    g.finish();
}

criterion_group!(benches, bench_pick, bench_record, bench_decision, bench_config);
criterion_main!(benches);
