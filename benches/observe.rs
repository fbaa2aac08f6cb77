//! The per-request cost of request ids, the access log and tracing: what `proxy::handle` adds
//! to one request (read or make the id, begin the record, one attempt with its forwarded
//! `traceparent`, finish: format the line into the worker's log queue and `try_send` the spans).
//! The writer thread writes to /dev/null (a case that outruns its 25 ms tick by more than the
//! queue holds measures the drop path too); spans go to a collector that is not there, so the
//! span queue is mostly full and the measured cost is the drop path's after the first few
//! thousand requests.
//!
//! Run on a quiet machine: `cargo bench --bench observe` (each case measures for ~2 s).

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use http::Request;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use switchyard::observe::{AttemptStart, Telemetry, Why};
use switchyard::Color;

const BASE: &str = "[admin]\nlisten = \"127.0.0.1:9900\"\n[[services]]\nname = \"auth\"\nlisten = \"127.0.0.1:8000\"\n\
                    blue = { endpoints = [\"127.0.0.1:9000\"] }\ngreen = { endpoints = [\"127.0.0.1:9100\"] }\n";

fn telemetry(extra: &str) -> Arc<Telemetry> {
    let cfg = switchyard::config::parse(&format!("{BASE}{extra}"), Path::new("bench.toml")).expect("valid config");
    Telemetry::start(&cfg)
}

fn request(id: Option<&str>) -> Request<()> {
    let mut b = Request::get("/api/v1/items?id=7")
        .header("host", "auth.internal:8000")
        .header("user-agent", "acge-client/1.4")
        .header("accept", "application/json");
    if let Some(id) = id {
        b = b.header("x-request-id", id);
    }
    b.body(()).unwrap()
}

/// One request as the proxy observes it.
fn one(tel: &Arc<Telemetry>, req: &mut Request<()>, service: &Arc<str>, peer: SocketAddr, ep: &http::uri::Authority) {
    let id = tel.request_id(req.headers_mut());
    let Some(obs) = tel.begin(peer, None, service, req, &id) else { return };
    let g = obs.attempt(tokio::time::Instant::now(), || AttemptStart {
        color: Color::Blue,
        role: "live",
        release: None,
        endpoint: ep.clone(),
        why: Why::First,
    });
    black_box(obs.traceparent(&g.span_id));
    g.answered(200, 0);
    obs.finish(200, None);
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let _guard = rt.enter();
    let service: Arc<str> = "auth".into();
    let peer: SocketAddr = "10.0.0.7:50123".parse().unwrap();
    let ep: http::uri::Authority = "127.0.0.1:9000".parse().unwrap();
    let down = "[tracing]\nendpoint = \"http://127.0.0.1:9\"\n";
    let cases = [
        ("off (request id only)", "[access_log]\nenabled = false\n".to_string()),
        ("json log, every request", "[access_log]\npath = \"/dev/null\"\n".to_string()),
        ("text log, every request", "[access_log]\npath = \"/dev/null\"\nformat = \"text\"\n".to_string()),
        ("tracing 1 %, log off", format!("[access_log]\nenabled = false\n{down}sample = 0.01\n")),
        ("tracing 100 %, log off", format!("[access_log]\nenabled = false\n{down}sample = 1.0\n")),
    ];
    let mut g = c.benchmark_group("observe");
    g.measurement_time(std::time::Duration::from_secs(2));
    for (name, extra) in cases {
        let tel = telemetry(&extra);
        let mut req = request(Some("0123456789abcdef0123456789abcdef"));
        g.bench_function(name, |b| b.iter(|| one(&tel, &mut req, &service, peer, &ep)));
    }
    let tel = telemetry("[access_log]\nenabled = false\n");
    g.bench_function("off, request id generated", |b| {
        b.iter_batched(
            || request(None),
            |mut req| {
                one(&tel, &mut req, &service, peer, &ep);
                req
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
