//! OTLP/HTTP protobuf export: finished requests become one server span and a client span per
//! upstream attempt, batched into `ExportTraceServiceRequest`s (prost, via opentelemetry-proto)
//! and POSTed by one task over the pooled hyper client. The queue in front is bounded; while an
//! export is slow or failing the request path drops spans instead of waiting.

use super::record::{AttemptEnd, RequestData};
use crate::config::TracingConfig;
use bytes::Bytes;
use http_body_util::Full;
use metrics::Counter;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, status::StatusCode, Span, Status};
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
    /// `ResourceSpans.resource` and `ScopeSpans.scope`, encoded once (see [`Batch`]).
    resource: Vec<u8>,
    scope: Vec<u8>,
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
        let scope = InstrumentationScope { name: "switchyard".into(), ..Default::default() };
        Exporter {
            endpoint,
            client: client(),
            resource: field(RESOURCE_SPANS_RESOURCE, &resource),
            scope: field(SCOPE_SPANS_SCOPE, &scope),
            batch: cfg.batch,
            dropped,
            failures,
        }
    }
}

/// http and https (system roots) collectors through one pooled hyper client: the same client
/// the alert webhooks use.
type Client = crate::alerts::client::WebhookClient;

fn client() -> Client {
    crate::alerts::client::build(None)
}

// Field numbers of the OTLP messages the envelope is made of (opentelemetry/proto/trace/v1 and
// collector/trace/v1; the tests decode the result with opentelemetry-proto's own types).
const EXPORT_RESOURCE_SPANS: u32 = 1;
const RESOURCE_SPANS_RESOURCE: u32 = 1;
const RESOURCE_SPANS_SCOPE_SPANS: u32 = 2;
const SCOPE_SPANS_SCOPE: u32 = 1;
const SCOPE_SPANS_SPANS: u32 = 2;

/// `msg` encoded by prost as field `tag` of its parent.
fn field(tag: u32, msg: &impl Message) -> Vec<u8> {
    let mut v = Vec::new();
    prost::encoding::message::encode(tag, msg, &mut v);
    v
}

/// The spans of the next export request, already encoded: a finished request's record is
/// turned into its spans, encoded by prost and dropped as soon as it arrives.
///
/// Why not keep the records until the batch is sent, as before: a sampled request's record
/// (its attempt list, the copies of its path, host and id) then lived up to a second among the
/// allocations of requests that last a millisecond, and the allocator's pages stayed half used.
/// At 1 % sampling every request's allocations took the allocator's slow path more often
/// (`_mi_theap_malloc_zero` 1.1 % → 1.9 % of the CPU under `loadtest/profile`), and tracing at
/// 1 % cost 4.5 % of the requests per CPU-second; encoded on arrival, 2.4 % (`loadtest/paired`,
/// `loadtest/RESULTS.md`).
#[derive(Default)]
struct Batch {
    /// `ScopeSpans.spans` entries, each prost-encoded with its key and length.
    spans: Vec<u8>,
    count: usize,
}

impl Batch {
    fn add(&mut self, d: RequestData) {
        self.add_spans(spans(&d));
    }

    fn add_spans(&mut self, spans: impl IntoIterator<Item = Span>) {
        for span in spans {
            prost::encoding::message::encode(SCOPE_SPANS_SPANS, &span, &mut self.spans);
            self.count += 1;
        }
    }

    /// The `ExportTraceServiceRequest` holding the batch: one `ResourceSpans` with one
    /// `ScopeSpans`, the envelope's lengths written around the encoded spans (prost's own
    /// key and varint encoders; a message's fields may come in any order, so the spans can
    /// follow the scope as they are). `resource` and `scope` are the encoded fields, as
    /// [`Exporter`] keeps them.
    fn request(&mut self, resource: &[u8], scope: &[u8]) -> (Bytes, u64) {
        use prost::encoding::{encode_key, encode_varint, encoded_len_varint, key_len, WireType};
        let scope_spans = scope.len() + self.spans.len();
        let resource_spans =
            resource.len() + key_len(RESOURCE_SPANS_SCOPE_SPANS) + encoded_len_varint(scope_spans as u64) + scope_spans;
        let mut out = Vec::with_capacity(resource_spans + 16);
        encode_key(EXPORT_RESOURCE_SPANS, WireType::LengthDelimited, &mut out);
        encode_varint(resource_spans as u64, &mut out);
        out.extend_from_slice(resource);
        encode_key(RESOURCE_SPANS_SCOPE_SPANS, WireType::LengthDelimited, &mut out);
        encode_varint(scope_spans as u64, &mut out);
        out.extend_from_slice(scope);
        out.extend_from_slice(&self.spans);
        let n = self.count as u64;
        self.spans.clear();
        self.count = 0;
        (Bytes::from(out), n)
    }
}

/// The export task: ends when every sender is gone and the queue is drained.
pub async fn export(mut rx: mpsc::Receiver<RequestData>, ex: Exporter) {
    let ex = Arc::new(ex);
    let mut batch = Batch::default();
    loop {
        let first = rx.recv().await;
        let Some(first) = first else { break };
        batch.add(first);
        let deadline = tokio::time::sleep(FLUSH_EVERY);
        tokio::pin!(deadline);
        while batch.count < ex.batch {
            tokio::select! {
                r = rx.recv() => match r {
                    Some(d) => batch.add(d),
                    None => break,
                },
                _ = &mut deadline => break,
            }
        }
        let (body, n) = batch.request(&ex.resource, &ex.scope);
        // Sent inline: while it runs, the queue absorbs (then drops) what arrives.
        ex.send(body, n).await;
    }
}

impl Exporter {
    async fn send(&self, body: Bytes, n: u64) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};

    fn span(id: u8) -> Span {
        Span {
            trace_id: vec![7; 16],
            span_id: vec![id; 8],
            name: format!("GET span {id}"),
            kind: SpanKind::Client as i32,
            attributes: vec![kv("server.port", int(8000 + i64::from(id)))],
            status: Some(status(id.is_multiple_of(2))),
            ..Default::default()
        }
    }

    #[test]
    fn a_batch_encoded_as_it_fills_decodes_as_the_request_prost_would_build() {
        let resource = Resource { attributes: vec![kv("service.name", string("switchyard"))], ..Default::default() };
        let scope = InstrumentationScope { name: "switchyard".into(), ..Default::default() };
        let (resource_field, scope_field) =
            (field(RESOURCE_SPANS_RESOURCE, &resource), field(SCOPE_SPANS_SCOPE, &scope));
        let mut batch = Batch::default();
        batch.add_spans([span(1), span(2)]);
        batch.add_spans([span(3)]);
        let (body, n) = batch.request(&resource_field, &scope_field);
        assert_eq!(n, 3);
        let expected = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(resource),
                scope_spans: vec![ScopeSpans {
                    scope: Some(scope),
                    spans: vec![span(1), span(2), span(3)],
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        };
        assert_eq!(ExportTraceServiceRequest::decode(body.as_ref()).expect("valid protobuf"), expected);
        assert_eq!(body.as_ref(), expected.encode_to_vec(), "byte for byte what prost writes");
        // Taken: the next batch starts empty.
        batch.add_spans([span(4)]);
        let (body, n) = batch.request(&resource_field, &scope_field);
        assert_eq!(n, 1);
        let again = ExportTraceServiceRequest::decode(body.as_ref()).unwrap();
        assert_eq!(again.resource_spans[0].scope_spans[0].spans, vec![span(4)]);
    }
}
