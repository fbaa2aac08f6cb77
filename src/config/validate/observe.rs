//! `[access_log]` and `[tracing]` → their validated forms.

use super::Problems;
use crate::config::file::{FileAccessLog, FileTracing};
use crate::config::model::{AccessLogConfig, LogFormat, TracingConfig};
use http::header::HeaderName;
use std::time::Duration;

/// Default capacity of the access log queue: about a second of a busy listener's lines.
const LOG_QUEUE: usize = 8192;
/// Default capacity of the span queue; a span waiting for export is ~300 B.
const SPAN_QUEUE: usize = 4096;

pub(super) fn access_log(p: &mut Problems, f: &FileAccessLog) -> AccessLogConfig {
    let format = match f.format.as_deref() {
        None | Some("json") => LogFormat::Json,
        Some("text") => LogFormat::Text,
        Some(other) => {
            p.push("access_log.format", format!("{other:?} is neither \"json\" nor \"text\""));
            LogFormat::Json
        }
    };
    AccessLogConfig {
        enabled: f.enabled.unwrap_or(true),
        format,
        path: f.path.clone(),
        log_query: f.log_query.unwrap_or(false),
        sample: p.fraction("access_log.sample", f.sample.unwrap_or(1.0)),
        slow: p.duration("access_log.slow", f.slow.as_deref(), Duration::from_secs(1)),
        queue: positive(p, "access_log.queue", f.queue, LOG_QUEUE),
    }
}

pub(super) fn tracing(p: &mut Problems, f: &FileTracing) -> TracingConfig {
    let endpoint = f.endpoint.as_deref().and_then(|e| match traces_url(e) {
        Some(u) => Some(u),
        None => {
            p.push("tracing.endpoint", format!("{e:?} is not an http(s)://host:port URL"));
            None
        }
    });
    let ui = f.ui.as_ref().map(|u| u.trim_end_matches('/').to_string());
    if let Some(u) = &ui {
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            p.push("tracing.ui", format!("{u:?} is not an http(s) URL"));
        }
    }
    let rid = f.request_id_header.as_deref().unwrap_or("x-request-id");
    TracingConfig {
        endpoint,
        sample: p.fraction("tracing.sample", f.sample.unwrap_or(0.01)),
        ui,
        service_name: f.service_name.as_deref().unwrap_or("switchyard").into(),
        queue: positive(p, "tracing.queue", f.queue, SPAN_QUEUE),
        batch: positive(p, "tracing.batch", f.batch, 512),
        request_id_header: p
            .header("tracing.request_id_header", rid)
            .unwrap_or(HeaderName::from_static("x-request-id")),
    }
}

/// The collector URL with OTLP/HTTP's traces path when none is given.
fn traces_url(e: &str) -> Option<http::Uri> {
    let u: http::Uri = e.parse().ok()?;
    let scheme = u.scheme_str()?;
    if !matches!(scheme, "http" | "https") || u.authority().is_none() {
        return None;
    }
    if matches!(u.path(), "" | "/") {
        return format!("{}://{}/v1/traces", scheme, u.authority()?).parse().ok();
    }
    Some(u)
}

fn positive(p: &mut Problems, key: &str, v: Option<usize>, default: usize) -> usize {
    match v {
        Some(0) => {
            p.push(key, "must be at least 1");
            default
        }
        Some(n) => n,
        None => default,
    }
}
