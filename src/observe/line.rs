//! One access log line, preformatted on the request's task (the writer thread only writes
//! bytes). JSON keys follow OpenTelemetry's HTTP semantic conventions where one exists.

use super::ids::{hex16, hex8};
use super::record::{AttemptEnd, RequestData};
use super::time::rfc3339;
use crate::config::{AccessLogConfig, LogFormat};
use std::fmt::Write as _;

/// The line for `d`, ending in `\n`.
pub fn format(d: &RequestData, cfg: &AccessLogConfig) -> String {
    let mut out = String::with_capacity(640);
    let mut w = Fields { out: &mut out, json: cfg.format == LogFormat::Json, first: true };
    w.open();
    fields(&mut w, d, cfg.log_query);
    w.close();
    out.push('\n');
    out
}

fn fields(w: &mut Fields<'_>, d: &RequestData, log_query: bool) {
    w.time("time", d.start_unix_ns);
    w.str("service", &d.service);
    // The attempt whose response the client got (else the last one tried) names who answered.
    let answered = d.attempts.iter().rev().find(|a| matches!(a.end, AttemptEnd::Status(_))).or(d.attempts.last());
    if let Some(a) = answered {
        w.str("role", a.role);
        w.str("color", a.color.as_str());
        w.opt("release", a.release.as_deref());
    }
    w.str("http.request.method", d.method.as_str());
    w.str("url.path", d.uri.path());
    if log_query {
        w.opt("url.query", d.uri.query());
    }
    w.str("network.protocol.version", version(d.version));
    w.num("http.response.status_code", d.status as u64);
    w.opt_num("http.request.body.size", d.bytes_in);
    w.num("http.response.body.size", d.bytes_out);
    w.ms("duration_ms", d.duration_us);
    if let Some(a) = answered {
        w.str("upstream.address", a.endpoint.as_str());
        if let Some(c) = a.connect_us {
            w.ms("upstream.connect_ms", c);
        }
        if let Some(t) = a.ttfb_us {
            w.ms("upstream.ttfb_ms", t);
        }
    }
    w.opt("error.type", d.error);
    w.bytes("server.address", d.host.as_ref().map(|v| v.as_bytes()));
    w.display("client.address", d.client.ip());
    w.bytes("http.request.header.x-forwarded-for", d.forwarded_for.as_ref().map(|v| v.as_bytes()));
    w.bytes("user_agent.original", d.user_agent.as_ref().map(|v| v.as_bytes()));
    w.opt("tls.protocol.version", d.tls);
    w.bytes("request_id", Some(d.request_id.as_bytes()));
    let trace_id = d.trace.map(|t| t.trace_id).or(d.caller_trace);
    if let Some(t) = trace_id {
        w.bytes("trace_id", Some(&hex16(&t)));
    }
    if let Some(t) = d.trace {
        w.bytes("span_id", Some(&hex8(&t.span_id)));
    }
    attempts(w, d);
}

fn attempts(w: &mut Fields<'_>, d: &RequestData) {
    w.key("attempts");
    w.out.push(if w.json { '[' } else { '"' });
    for (i, a) in d.attempts.iter().enumerate() {
        if i > 0 {
            w.out.push(if w.json { ',' } else { ' ' });
        }
        let (outcome, status) = match a.end {
            AttemptEnd::Status(s) => ("response", Some(s)),
            AttemptEnd::Failed(r) => (r, None),
            AttemptEnd::Cancelled => ("cancelled", None),
            AttemptEnd::Open => ("open", None),
        };
        if w.json {
            let _ = write!(
                w.out,
                "{{\"reason\":\"{}\",\"role\":\"{}\",\"color\":\"{}\"",
                a.why.as_str(),
                a.role,
                a.color.as_str()
            );
            if let Some(r) = &a.release {
                w.out.push_str(",\"release\":");
                escape(w.out, r.as_bytes());
            }
            let _ = write!(w.out, ",\"upstream.address\":\"{}\",\"outcome\":\"{outcome}\"", a.endpoint.as_str());
            if let Some(s) = status {
                let _ = write!(w.out, ",\"http.response.status_code\":{s}");
            }
            if let Some(c) = a.connect_us {
                let _ = write!(w.out, ",\"connect_ms\":{:.3}", c as f64 / 1000.0);
            }
            if let Some(t) = a.ttfb_us {
                let _ = write!(w.out, ",\"ttfb_ms\":{:.3}", t as f64 / 1000.0);
            }
            if d.trace.is_some() {
                let _ = write!(w.out, ",\"span_id\":\"{}\"", std::str::from_utf8(&hex8(&a.span_id)).unwrap_or(""));
            }
            w.out.push('}');
        } else {
            let _ = write!(w.out, "{}:{}:{}:{outcome}", a.why.as_str(), a.color.as_str(), a.endpoint.as_str());
            if let Some(s) = status {
                let _ = write!(w.out, ":{s}");
            }
        }
    }
    w.out.push(if w.json { ']' } else { '"' });
}

fn version(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "0.9",
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_11 => "1.1",
        http::Version::HTTP_2 => "2",
        http::Version::HTTP_3 => "3",
        _ => "",
    }
}

/// Writes `key: value` pairs as JSON members or text `key=value` pairs.
struct Fields<'a> {
    out: &'a mut String,
    json: bool,
    first: bool,
}

impl Fields<'_> {
    fn open(&mut self) {
        if self.json {
            self.out.push('{');
        }
    }

    fn close(&mut self) {
        if self.json {
            self.out.push('}');
        }
    }

    fn key(&mut self, k: &str) {
        if !self.first {
            self.out.push(if self.json { ',' } else { ' ' });
        }
        self.first = false;
        if self.json {
            self.out.push('"');
            self.out.push_str(k);
            self.out.push_str("\":");
        } else {
            self.out.push_str(k);
            self.out.push('=');
        }
    }

    fn str(&mut self, k: &str, v: &str) {
        self.bytes(k, Some(v.as_bytes()));
    }

    fn opt(&mut self, k: &str, v: Option<&str>) {
        self.bytes(k, v.map(str::as_bytes));
    }

    fn bytes(&mut self, k: &str, v: Option<&[u8]>) {
        let Some(v) = v else { return };
        self.key(k);
        escape(self.out, v);
    }

    fn display(&mut self, k: &str, v: impl std::fmt::Display) {
        self.key(k);
        let _ = write!(self.out, "\"{v}\"");
    }

    fn num(&mut self, k: &str, v: u64) {
        self.key(k);
        let _ = write!(self.out, "{v}");
    }

    fn opt_num(&mut self, k: &str, v: Option<u64>) {
        if let Some(v) = v {
            self.num(k, v);
        }
    }

    fn ms(&mut self, k: &str, us: u64) {
        self.key(k);
        let _ = write!(self.out, "{:.3}", us as f64 / 1000.0);
    }

    fn time(&mut self, k: &str, unix_ns: u64) {
        self.key(k);
        self.out.push('"');
        rfc3339(unix_ns, self.out);
        self.out.push('"');
    }
}

/// A JSON string (also used quoted in text lines): header bytes may be anything but control
/// characters, so quotes, backslashes, controls and non-UTF-8 bytes are escaped.
fn escape(out: &mut String, v: &[u8]) {
    out.push('"');
    for &b in v {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\u{:04x}", b);
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> RequestData {
        RequestData {
            start_unix_ns: 1_709_210_096_789_000_000,
            service: "auth".into(),
            method: http::Method::POST,
            uri: "/login?user=a".parse().unwrap(),
            version: http::Version::HTTP_2,
            host: Some(http::HeaderValue::from_static("auth.example")),
            user_agent: None,
            forwarded_for: Some(http::HeaderValue::from_static("203.0.113.7")),
            client: "10.0.0.1:5000".parse().unwrap(),
            tls: Some("1.3"),
            request_id: http::HeaderValue::from_static("r-1"),
            trace: None,
            caller_trace: None,
            bytes_in: Some(12),
            attempts: Vec::new(),
            status: 503,
            bytes_out: 80,
            duration_us: 1500,
            error: Some("upstream saturated"),
        }
    }

    fn cfg(format: LogFormat, log_query: bool) -> AccessLogConfig {
        AccessLogConfig {
            enabled: true,
            format,
            path: None,
            log_query,
            sample: 1.0,
            slow: std::time::Duration::from_secs(1),
            queue: 1,
        }
    }

    #[test]
    fn a_json_line_names_fields_by_the_http_conventions() {
        let line = format(&data(), &cfg(LogFormat::Json, true));
        assert!(line.ends_with('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).expect("one JSON object");
        assert_eq!(v["time"], "2024-02-29T12:34:56.789Z");
        assert_eq!(v["url.query"], "user=a");
        assert_eq!(v["network.protocol.version"], "2");
        assert_eq!(v["tls.protocol.version"], "1.3");
        assert_eq!(v["http.request.header.x-forwarded-for"], "203.0.113.7");
        assert_eq!(v["http.request.body.size"], 12);
        assert_eq!(v["duration_ms"], 1.5);
        assert!(v.get("trace_id").is_none() && v.get("role").is_none());
        assert!(!format(&data(), &cfg(LogFormat::Json, false)).contains("user=a"), "query left out by default");
    }

    #[test]
    fn a_text_line_is_key_value_pairs() {
        let line = format(&data(), &cfg(LogFormat::Text, false));
        assert!(line.starts_with("time=\"2024-02-29T12:34:56.789Z\" service=\"auth\" "), "{line}");
        assert!(line.contains(" http.response.status_code=503 "), "{line}");
        assert!(line.contains(" error.type=\"upstream saturated\" "), "{line}");
        assert!(line.trim_end().ends_with("attempts=\"\""), "{line}");
    }

    #[test]
    fn escaping_keeps_a_line_one_valid_json_string() {
        let mut s = String::new();
        escape(&mut s, b"a\"b\\c\nd\xff");
        let back: String = serde_json::from_str(&s).expect("valid JSON string");
        assert_eq!(back, "a\"b\\c\nd\u{ff}");
    }
}
