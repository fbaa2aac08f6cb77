//! OTLP/HTTP protobuf export: finished requests become one server span and a client span per
//! upstream attempt, batched into `ExportTraceServiceRequest`s (prost, via opentelemetry-proto)
//! and POSTed by one task over the pooled hyper client. The queue in front is bounded; while an
//! export is slow or failing the request path drops spans instead of waiting.

use super::record::{AttemptEnd, RequestData};
use crate::config::TracingConfig;
use bytes::Bytes;
use http_body_util::Full;
use metrics::Counter;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span::SpanKind, status::StatusCode, ResourceSpans, ScopeSpans, Span, Status,
};
use prost::Message;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Longest wait before a partial batch is sent.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// An export that takes longer is abandoned (its spans counted as dropped).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where and how spans go.
pub struct Exporter {
    endpoint: http::Uri,
    client: Client,
    resource: Resource,
    batch: usize,
    dropped: Counter,
    failures: Counter,
}

impl Exporter {
    pub fn new(cfg: &TracingConfig, endpoint: http::Uri, dropped: Counter, failures: Counter) -> Exporter {
        let resource = Resource {
            attributes: vec![
                kv("service.name", string(&cfg.service_name)),
                kv("service.version", string(env!("CARGO_PKG_VERSION"))),
            ],
            ..Default::default()
        };
        Exporter { endpoint, client: client(), resource, batch: cfg.batch, dropped, failures }
    }
}

/// http and https (system roots) collectors through one pooled hyper client: the same client
/// the alert webhooks use.
type Client = crate::alerts::client::WebhookClient;

fn client() -> Client {
    crate::alerts::client::build(None)
}

/// The export task: ends when every sender is gone and the queue is drained.
pub async fn export(mut rx: mpsc::Receiver<RequestData>, ex: Exporter) {
    let ex = Arc::new(ex);
    let mut batch = Vec::with_capacity(ex.batch);
    loop {
        let first = rx.recv().await;
        let Some(first) = first else { break };
        batch.push(first);
        let deadline = tokio::time::sleep(FLUSH_EVERY);
        tokio::pin!(deadline);
        while batch.len() < ex.batch {
            tokio::select! {
                r = rx.recv() => match r {
                    Some(d) => batch.push(d),
                    None => break,
                },
                _ = &mut deadline => break,
            }
        }
        let spans: Vec<Span> = batch.drain(..).flat_map(|d| spans(&d)).collect();
        // Sent inline: while it runs, the queue absorbs (then drops) what arrives.
        ex.send(spans).await;
    }
}

impl Exporter {
    async fn send(&self, spans: Vec<Span>) {
        let n = spans.len() as u64;
        let req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(self.resource.clone()),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope { name: "switchyard".into(), ..Default::default() }),
                    spans,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        };
        let body = Bytes::from(req.encode_to_vec());
        let post = http::Request::post(self.endpoint.clone())
            .header(http::header::CONTENT_TYPE, "application/x-protobuf")
            .body(Full::new(body))
            .expect("a POST to a validated URI");
        let ok = match tokio::time::timeout(EXPORT_TIMEOUT, self.client.request(post)).await {
            Ok(Ok(resp)) if resp.status().is_success() => true,
            Ok(Ok(resp)) => {
                tracing::debug!(status = resp.status().as_u16(), "OTLP export refused");
                false
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "OTLP export failed");
                false
            }
            Err(_) => false,
        };
        if !ok {
            self.failures.increment(1);
            self.dropped.increment(n);
        }
    }
}

/// The server span and one client span per attempt.
fn spans(d: &RequestData) -> Vec<Span> {
    let Some(t) = d.trace else { return Vec::new() };
    let start = d.start_unix_ns;
    let at = |us: u64| start + us * 1000;
    let path = d.uri.path();
    let mut server_attrs = vec![
        kv("http.request.method", string(d.method.as_str())),
        kv("url.path", string(path)),
        kv("http.response.status_code", int(d.status as i64)),
        kv("client.address", string(&d.client.ip().to_string())),
        kv("request_id", string(d.request_id.to_str().unwrap_or(""))),
        kv("service", string(&d.service)),
    ];
    if let Some(h) = d.host.as_ref().and_then(|h| h.to_str().ok()) {
        server_attrs.push(kv("server.address", string(h)));
    }
    if let Some(e) = d.error {
        server_attrs.push(kv("error.type", string(e)));
    }
    let mut out = Vec::with_capacity(1 + d.attempts.len());
    out.push(Span {
        trace_id: t.trace_id.to_vec(),
        span_id: t.span_id.to_vec(),
        parent_span_id: t.parent.map(|p| p.to_vec()).unwrap_or_default(),
        flags: 0x100 | u32::from(t.parent.is_some()) << 9 | 1,
        name: format!("{} {}", d.method, d.service),
        kind: SpanKind::Server as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: at(d.duration_us),
        attributes: server_attrs,
        status: Some(status(d.status >= 500)),
        ..Default::default()
    });
    for a in &d.attempts {
        let mut attrs = vec![
            kv("http.request.method", string(d.method.as_str())),
            kv("server.address", string(a.endpoint.host())),
            kv("switchyard.color", string(a.color.as_str())),
            kv("switchyard.role", string(a.role)),
            kv("switchyard.attempt.reason", string(a.why.as_str())),
        ];
        if let Some(p) = a.endpoint.port_u16() {
            attrs.push(kv("server.port", int(p as i64)));
        }
        if let Some(r) = &a.release {
            attrs.push(kv("switchyard.release", string(r)));
        }
        let failed = match a.end {
            AttemptEnd::Status(s) => {
                attrs.push(kv("http.response.status_code", int(s as i64)));
                s >= 500
            }
            AttemptEnd::Failed(r) => {
                attrs.push(kv("error.type", string(r)));
                true
            }
            AttemptEnd::Cancelled | AttemptEnd::Open => {
                attrs.push(kv("error.type", string("cancelled")));
                false
            }
        };
        out.push(Span {
            trace_id: t.trace_id.to_vec(),
            span_id: a.span_id.to_vec(),
            parent_span_id: t.span_id.to_vec(),
            flags: 0x100 | 1,
            name: format!("{} {}", d.method, a.role),
            kind: SpanKind::Client as i32,
            start_time_unix_nano: at(a.start_us),
            end_time_unix_nano: at(a.end_us.max(a.start_us)),
            attributes: attrs,
            status: Some(status(failed)),
            ..Default::default()
        });
    }
    out
}

fn status(error: bool) -> Status {
    let code = if error { StatusCode::Error } else { StatusCode::Unset };
    Status { code: code as i32, message: String::new() }
}

fn kv(key: &str, value: AnyValue) -> KeyValue {
    KeyValue { key: key.into(), value: Some(value), ..Default::default() }
}

fn string(s: &str) -> AnyValue {
    AnyValue { value: Some(any_value::Value::StringValue(s.into())) }
}

fn int(i: i64) -> AnyValue {
    AnyValue { value: Some(any_value::Value::IntValue(i)) }
}
