//! W3C trace context and OTLP export: the server span's parent is the caller's span, each
//! attempt is a client span under it, the forwarded `traceparent` names the attempt (once).

use super::*;
use crate::support::otlp::{attr, hex, Collector};
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, Span};

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// (trace id, parent span id, sampled) of a forwarded `traceparent`, which must be one header.
fn forwarded(upstream_headers: &serde_json::Value) -> (String, String, bool) {
    let tp = upstream_headers["traceparent"].as_str().expect("a traceparent went upstream");
    assert!(!tp.contains(','), "exactly one traceparent header upstream, got {tp:?}");
    let parts: Vec<&str> = tp.split('-').collect();
    assert_eq!(parts.len(), 4, "{tp}");
    (parts[1].to_string(), parts[2].to_string(), parts[3] == "01")
}

fn one(spans: &[Span], kind: SpanKind) -> &Span {
    let of: Vec<&Span> = spans.iter().filter(|s| s.kind == kind as i32).collect();
    assert_eq!(of.len(), 1, "{spans:#?}");
    of[0]
}

async fn traced(name: &str, sample: f64, service: &str, pools: Option<(Mocks, String)>) -> (Fixture, Collector) {
    let col = Collector::start().await;
    let mut b = Fixture::builder(name).service(&format!("{service}\n{}", col.tracing_toml(sample)));
    if let Some((m, p)) = pools {
        b = b.pools(m, &p);
    }
    (b.start().await, col)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_traceparent_starts_a_trace_with_a_server_and_a_client_span() {
    let (f, col) = traced("obs_new", 1.0, "", None).await;
    let (status, resp, up) = echo(f.addr, &[]).await;
    assert_eq!(status, 200);
    let (trace, parent, sampled) = forwarded(&up);
    assert!(sampled, "sample = 1.0 samples a new trace");
    let spans = col.trace(&trace, 2).await;
    let server = one(&spans, SpanKind::Server);
    let client = one(&spans, SpanKind::Client);
    assert!(server.parent_span_id.is_empty(), "a new trace's server span is its root");
    assert_eq!(client.parent_span_id, server.span_id, "the attempt is a child of the request");
    assert_eq!(hex(&client.span_id), parent, "the forwarded traceparent names the attempt's span");
    assert_eq!(attr(client, "switchyard.color").as_deref(), Some("blue"));
    assert_eq!(attr(client, "http.response.status_code").as_deref(), Some("200"));
    assert_eq!(attr(server, "url.path").as_deref(), Some("/__echo"));
    // The request id: generated, sent upstream, returned to the client, on the server span.
    let rid = resp["x-request-id"].to_str().unwrap();
    assert_eq!(rid.len(), 32, "{rid}");
    assert_eq!(up["x-request-id"], rid);
    assert_eq!(attr(server, "request_id").as_deref(), Some(rid));
    f.stop().await;
    col.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incoming_traceparent_parents_the_server_span_and_is_replaced_upstream() {
    let (f, col) = traced("obs_parent", 0.0, "", None).await;
    let tp = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    let headers = [("traceparent", tp.as_str()), ("tracestate", "vendor=abc"), ("x-request-id", "client-req-7")];
    let (status, resp, up) = echo(f.addr, &headers).await;
    assert_eq!(status, 200);
    let (trace, parent, sampled) = forwarded(&up);
    assert_eq!(trace, CALLER_TRACE, "the caller's trace continues");
    assert_ne!(parent, CALLER_SPAN, "the proxy's own span is the upstream's parent");
    assert!(sampled, "the caller's sampled flag is obeyed over sample = 0");
    assert_eq!(up["tracestate"], "vendor=abc", "tracestate passes unchanged");
    assert_eq!(up["x-request-id"], "client-req-7", "a sane client request id is kept");
    assert_eq!(resp["x-request-id"], "client-req-7");
    let spans = col.trace(CALLER_TRACE, 2).await;
    let server = one(&spans, SpanKind::Server);
    let client = one(&spans, SpanKind::Client);
    assert_eq!(hex(&server.parent_span_id), CALLER_SPAN, "the server span's parent is the caller's span");
    assert_eq!(client.parent_span_id, server.span_id);
    assert_eq!(hex(&client.span_id), parent);
    f.stop().await;
    col.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_request_has_two_client_spans_and_forwards_the_retry_span_once() {
    let m = Mocks::start("obs_retry").await;
    let pools = format!(
        "blue = {{ endpoints = [\"{}\"] }}\ngreen = {{ endpoints = [\"{}\"], release = \"r2\" }}",
        m.blue.addr(),
        closed_port()
    );
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let service = format!("force_header = \"{FORCE}\"\n[access_log]\npath = \"{}\"\n", log.display());
    let (f, col) = traced("obs_retry", 1.0, &service, Some((m, pools))).await;
    let tp = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    let (status, _, up) = echo(f.addr, &[(FORCE, "green"), ("traceparent", &tp)]).await;
    assert_eq!(status, 200, "the refused candidate attempt was retried on the live color");
    let (_, parent, _) = forwarded(&up);
    let spans = col.trace(CALLER_TRACE, 3).await;
    let server = one(&spans, SpanKind::Server);
    let mut clients: Vec<&Span> = spans.iter().filter(|s| s.kind == SpanKind::Client as i32).collect();
    clients.sort_by_key(|s| s.start_time_unix_nano);
    assert_eq!(clients.len(), 2, "{spans:#?}");
    let (green, blue) = (clients[0], clients[1]);
    assert!(clients.iter().all(|c| c.parent_span_id == server.span_id));
    assert_eq!(attr(green, "switchyard.color").as_deref(), Some("green"));
    assert_eq!(attr(green, "switchyard.role").as_deref(), Some("candidate"));
    assert_eq!(attr(green, "switchyard.release").as_deref(), Some("r2"));
    assert_eq!(attr(green, "error.type").as_deref(), Some("connect"));
    assert_eq!(attr(blue, "switchyard.color").as_deref(), Some("blue"));
    assert_eq!(attr(blue, "switchyard.attempt.reason").as_deref(), Some("retry"));
    assert_eq!(hex(&blue.span_id), parent, "blue saw the retry's own span id");
    assert_ne!(green.span_id, blue.span_id);
    // The access log line names the same trace, server span and attempt spans.
    let line = line_of(&log, up["x-request-id"].as_str().unwrap()).await;
    assert_eq!(line["trace_id"], CALLER_TRACE);
    assert_eq!(line["span_id"], hex(&server.span_id));
    assert_eq!(line["attempts"][0]["span_id"], hex(&green.span_id));
    assert_eq!(line["attempts"][1]["span_id"], hex(&blue.span_id));
    let id = line["request_id"].as_str().unwrap();
    let raw = std::fs::read_to_string(&log).unwrap().lines().find(|l| l.contains(id)).unwrap().to_string();
    println!("{}\n{raw}", tree(server, &clients));
    f.stop().await;
    col.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hedged_request_shows_both_attempts_and_the_winner_forwards_its_own_span() {
    let service = format!("force_header = \"{FORCE}\"\nhedge = {{ after = \"50ms\" }}");
    let (f, col) = traced("obs_hedge", 1.0, &service, None).await;
    f.mocks.green.set(mock_upstream::MockPatch { latency_ms: Some(800), ..Default::default() });
    let (status, _, up) = echo(f.addr, &[(FORCE, "green")]).await;
    assert_eq!(status, 200);
    let (trace, parent, _) = forwarded(&up);
    let spans = col.trace(&trace, 3).await;
    let server = one(&spans, SpanKind::Server);
    let clients: Vec<&Span> = spans.iter().filter(|s| s.kind == SpanKind::Client as i32).collect();
    assert_eq!(clients.len(), 2, "{spans:#?}");
    let by = |color: &str| *clients.iter().find(|c| attr(c, "switchyard.color").as_deref() == Some(color)).unwrap();
    let (green, blue) = (by("green"), by("blue"));
    assert_eq!(attr(green, "error.type").as_deref(), Some("cancelled"), "the slow candidate lost the race");
    assert_eq!(attr(blue, "switchyard.attempt.reason").as_deref(), Some("hedge"));
    assert_eq!(attr(blue, "http.response.status_code").as_deref(), Some("200"));
    assert_eq!(hex(&blue.span_id), parent, "the live color saw the hedge's span id");
    assert!(clients.iter().all(|c| c.parent_span_id == server.span_id));
    f.stop().await;
    col.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_flags_are_obeyed_and_unsampled_requests_export_nothing() {
    let (f, col) = traced("obs_sample", 0.0, "", None).await;
    // Not sampled by the caller: propagated with flag 00 under a new parent, never exported.
    let unsampled = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-00");
    let (_, _, up) = echo(f.addr, &[("traceparent", &unsampled)]).await;
    let (trace, parent, sampled) = forwarded(&up);
    assert_eq!(trace, CALLER_TRACE);
    assert!(!sampled);
    assert_ne!(parent, CALLER_SPAN);
    // No caller, sample = 0: a new trace, not sampled.
    let (_, _, up) = echo(f.addr, &[]).await;
    let (fresh, _, sampled) = forwarded(&up);
    assert!(!sampled, "sample = 0 samples no new trace");
    // A sampled caller afterwards: once its spans arrive, the earlier ones would have too.
    let marker = "0af7651916cd43dd8448eb211c80319c";
    let (_, _, _) = echo(f.addr, &[("traceparent", &format!("00-{marker}-b7ad6b7169203331-01"))]).await;
    assert_eq!(col.trace(marker, 2).await.len(), 2);
    let all = col.spans();
    assert!(all.iter().all(|s| hex(&s.trace_id) == marker), "unsampled traces {CALLER_TRACE} / {fresh} were exported");
    f.stop().await;
    col.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_is_down_costs_no_request() {
    let down = closed_port();
    let tracing = format!("[tracing]\nendpoint = \"http://{down}\"\nsample = 1.0\nqueue = 8\nbatch = 4\n");
    let f = Fixture::builder("obs_down").service(&tracing).start().await;
    let results = burst(f.addr, 300, 6).await;
    assert!(results.iter().all(|(s, _)| *s == 200), "every request answered while the collector is down");
    let dropped =
        wait_metric(&f.app, "switchyard_trace_spans_dropped_total", &[], |v| v >= 300.0 * 2.0 - 8.0 * 2.0).await;
    println!("spans dropped with the collector down: {dropped}");
    f.stop().await;
}

/// The trace as an indented tree, for reading (`--nocapture`).
fn tree(server: &Span, clients: &[&Span]) -> String {
    let ms = |s: &Span| (s.end_time_unix_nano - s.start_time_unix_nano) as f64 / 1e6;
    let keys =
        ["switchyard.role", "switchyard.color", "switchyard.release", "switchyard.attempt.reason", "server.port"];
    let mut out = format!(
        "trace {}\n  (caller span {})\n  └─ {} [server] span {} {:.2} ms status={} request_id={}\n",
        hex(&server.trace_id),
        hex(&server.parent_span_id),
        server.name,
        hex(&server.span_id),
        ms(server),
        attr(server, "http.response.status_code").unwrap_or_default(),
        attr(server, "request_id").unwrap_or_default(),
    );
    for (i, c) in clients.iter().enumerate() {
        let branch = if i + 1 == clients.len() { "└─" } else { "├─" };
        let fields: Vec<String> = keys.iter().filter_map(|k| Some(format!("{k}={}", attr(c, k)?))).collect();
        let end = attr(c, "http.response.status_code").map(|s| format!("status={s}"));
        let end = end.or_else(|| attr(c, "error.type").map(|e| format!("error.type={e}"))).unwrap_or_default();
        out += &format!(
            "       {branch} {} [client] span {} {:.2} ms {} {end}\n",
            c.name,
            hex(&c.span_id),
            ms(c),
            fields.join(" ")
        );
    }
    out
}
