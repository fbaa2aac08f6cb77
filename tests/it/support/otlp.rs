//! A real OTLP/HTTP receiver: accepts `POST /v1/traces`, decodes `ExportTraceServiceRequest`
//! with opentelemetry-proto + prost and keeps every span for the test to read.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Collector {
    pub addr: SocketAddr,
    spans: Arc<Mutex<Vec<Span>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Collector {
    pub async fn start() -> Collector {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let spans = Arc::new(Mutex::new(Vec::new()));
        let keep = spans.clone();
        let task = tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                let keep = keep.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let keep = keep.clone();
                        async move {
                            let path_ok = req.uri().path() == "/v1/traces";
                            let ct_ok =
                                req.headers().get("content-type").is_some_and(|v| v == "application/x-protobuf");
                            let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                            let status = match ExportTraceServiceRequest::decode(body) {
                                Ok(r) if path_ok && ct_ok => {
                                    let mut k = keep.lock().unwrap();
                                    for rs in r.resource_spans {
                                        for ss in rs.scope_spans {
                                            k.extend(ss.spans);
                                        }
                                    }
                                    200
                                }
                                _ => 400,
                            };
                            let mut resp = hyper::Response::new(Full::new(Bytes::new()));
                            *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(s), svc).await;
                });
            }
        });
        Collector { addr, spans, task }
    }

    /// `[tracing]` lines pointing at this receiver.
    pub fn tracing_toml(&self, sample: f64) -> String {
        format!("[tracing]\nendpoint = \"http://{}\"\nsample = {sample}\n", self.addr)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Span> {
        self.spans.lock().unwrap().clone()
    }

    /// The spans of trace `trace_id` (hex) once there are at least `n` (waits up to 10 s; the
    /// exporter flushes a partial batch every second).
    pub async fn trace(&self, trace_id: &str, n: usize) -> Vec<Span> {
        let id = unhex(trace_id);
        let end = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let spans: Vec<Span> = self.spans().into_iter().filter(|s| s.trace_id == id).collect();
            if spans.len() >= n || tokio::time::Instant::now() > end {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn stop(self) {
        self.task.abort();
    }
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// A string or int attribute of a span, as text.
pub fn attr(s: &Span, key: &str) -> Option<String> {
    let v = s.attributes.iter().find(|kv| kv.key == key)?.value.as_ref()?.value.as_ref()?;
    Some(match v {
        Value::StringValue(s) => s.clone(),
        Value::IntValue(i) => i.to_string(),
        other => format!("{other:?}"),
    })
}
