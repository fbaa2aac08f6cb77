//! One access log line, preformatted on the request's task (the writer thread only writes
//! bytes). JSON keys follow OpenTelemetry's HTTP semantic conventions where one exists.
//!
//! Written as bytes, numbers with `itoa` and milliseconds as integer parts, not through
//! `core::fmt`: formatting was most of the log's cost (a line took ~12 000 instructions with
//! `write!` and float formatting, measured with `CALLGRIND=1 ACCESS_LOG=json loadtest/profile`).

use super::ids::{hex16, hex8};
use super::record::{AttemptEnd, RequestData};
use super::time::rfc3339;
use crate::config::{AccessLogConfig, LogFormat};
use std::net::IpAddr;

/// Bytes reserved for a line: a typical line with one attempt is ~560.
const LINE_CAPACITY: usize = 768;

/// Appends the line for `d`, ending in `\n`, to `out`.
pub fn format(out: &mut Vec<u8>, d: &RequestData, cfg: &AccessLogConfig) {
    out.reserve(LINE_CAPACITY);
    match cfg.format {
        LogFormat::Json => line(&mut Fields::<true> { out }, d, cfg.log_query),
        LogFormat::Text => line(&mut Fields::<false> { out }, d, cfg.log_query),
    }
    out.push(b'\n');
}

/// One format's line: monomorphized per format, so every key is a constant the compiler copies
/// inline rather than through `memcpy`.
fn line<const JSON: bool>(w: &mut Fields<'_, JSON>, d: &RequestData, log_query: bool) {
    w.open();
    fields(w, d, log_query);
    w.close();
}

fn fields<const JSON: bool>(w: &mut Fields<'_, JSON>, d: &RequestData, log_query: bool) {
    w.time(d.start_unix_ns);
    // Validated at config load: letters, digits, '-' and '_'.
    w.plain(key!("service"), &d.service);
    // The attempt whose response the client got (else the last one tried) names who answered.
    let answered = d.attempts.iter().rev().find(|a| matches!(a.end, AttemptEnd::Status(_))).or(d.attempts.last());
    if let Some(a) = answered {
        w.plain(key!("role"), a.role);
        w.plain(key!("color"), a.color.as_str());
        w.opt(key!("release"), a.release.as_deref());
    }
    // A method is a token: no quote, backslash or control character.
    w.plain(key!("http.request.method"), d.method.as_str());
    w.str(key!("url.path"), d.uri.path());
    if log_query {
        w.opt(key!("url.query"), d.uri.query());
    }
    w.plain(key!("network.protocol.version"), version(d.version));
    w.num(key!("http.response.status_code"), d.status as u64);
    w.opt_num(key!("http.request.body.size"), d.bytes_in);
    w.num(key!("http.response.body.size"), d.bytes_out);
    w.ms(key!("duration_ms"), d.duration_us);
    if let Some(a) = answered {
        // A parsed URI authority holds no quote, backslash, control or non-ASCII byte.
        w.plain(key!("upstream.address"), a.endpoint.as_str());
        if let Some(c) = a.connect_us {
            w.ms(key!("upstream.connect_ms"), c);
        }
        if let Some(t) = a.ttfb_us {
            w.ms(key!("upstream.ttfb_ms"), t);
        }
    }
    if let Some(e) = d.error {
        w.plain(key!("error.type"), e);
    }
    w.bytes(key!("server.address"), d.host.as_ref().map(|v| v.as_bytes()));
    w.ip(key!("client.address"), d.client.ip());
    w.bytes(key!("http.request.header.x-forwarded-for"), d.forwarded_for.as_ref().map(|v| v.as_bytes()));
    w.bytes(key!("user_agent.original"), d.user_agent.as_ref().map(|v| v.as_bytes()));
    if let Some(t) = d.tls {
        w.plain(key!("tls.protocol.version"), t);
    }
    // Kept from the client only when sane (no quote, backslash or control), else ours: hex.
    w.plain_bytes(key!("request_id"), d.request_id.as_bytes());
    let trace_id = d.trace.map(|t| t.trace_id).or(d.caller_trace);
    if let Some(t) = trace_id {
        w.bytes(key!("trace_id"), Some(&hex16(&t)));
    }
    if let Some(t) = d.trace {
        w.bytes(key!("span_id"), Some(&hex8(&t.span_id)));
    }
    attempts(w, d);
}

fn attempts<const JSON: bool>(w: &mut Fields<'_, JSON>, d: &RequestData) {
    w.key(key!("attempts"));
    w.out.push(if JSON { b'[' } else { b'"' });
    for (i, a) in d.attempts.iter().enumerate() {
        if i > 0 {
            w.out.push(if JSON { b',' } else { b' ' });
        }
        let (outcome, status) = match a.end {
            AttemptEnd::Status(s) => ("response", Some(s)),
            AttemptEnd::Failed(r) => (r, None),
            AttemptEnd::Cancelled => ("cancelled", None),
            AttemptEnd::Open => ("open", None),
        };
        let out = &mut *w.out;
        if JSON {
            for (k, v) in
                [("{\"reason\":\"", a.why.as_str()), ("\",\"role\":\"", a.role), ("\",\"color\":\"", a.color.as_str())]
            {
                out.extend_from_slice(k.as_bytes());
                out.extend_from_slice(v.as_bytes());
            }
            out.push(b'"');
            if let Some(r) = &a.release {
                out.extend_from_slice(b",\"release\":");
                escape(out, r.as_bytes());
            }
            out.extend_from_slice(b",\"upstream.address\":\"");
            out.extend_from_slice(a.endpoint.as_str().as_bytes());
            out.extend_from_slice(b"\",\"outcome\":\"");
            out.extend_from_slice(outcome.as_bytes());
            out.push(b'"');
            if let Some(s) = status {
                out.extend_from_slice(b",\"http.response.status_code\":");
                int(out, s as u64);
            }
            if let Some(c) = a.connect_us {
                out.extend_from_slice(b",\"connect_ms\":");
                millis(out, c);
            }
            if let Some(t) = a.ttfb_us {
                out.extend_from_slice(b",\"ttfb_ms\":");
                millis(out, t);
            }
            if d.trace.is_some() {
                out.extend_from_slice(b",\"span_id\":\"");
                out.extend_from_slice(&hex8(&a.span_id));
                out.push(b'"');
            }
            out.push(b'}');
        } else {
            for (i, part) in [a.why.as_str(), a.color.as_str(), a.endpoint.as_str(), outcome].into_iter().enumerate() {
                if i > 0 {
                    out.push(b':');
                }
                out.extend_from_slice(part.as_bytes());
            }
            if let Some(s) = status {
                out.push(b':');
                int(out, s as u64);
            }
        }
    }
    w.out.push(if JSON { b']' } else { b'"' });
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

/// A field's name as it is written after another field: `,"name":` in JSON, ` name=` in text
/// (one copy per key instead of four pushes).
#[derive(Clone, Copy)]
struct Key {
    json: &'static str,
    text: &'static str,
}

macro_rules! key {
    ($name:literal) => {
        Key { json: concat!(",\"", $name, "\":"), text: concat!(" ", $name, "=") }
    };
}
use key;

/// Writes `key: value` pairs as JSON members or text `key=value` pairs.
struct Fields<'a, const JSON: bool> {
    out: &'a mut Vec<u8>,
}

impl<const JSON: bool> Fields<'_, JSON> {
    fn open(&mut self) {
        if JSON {
            self.out.push(b'{');
        }
    }

    fn close(&mut self) {
        if JSON {
            self.out.push(b'}');
        }
    }

    /// Every field but the first (`time`) is written after another one.
    #[inline(always)]
    fn key(&mut self, k: Key) {
        self.out.extend_from_slice(if JSON { k.json } else { k.text }.as_bytes());
    }

    fn str(&mut self, k: Key, v: &str) {
        self.bytes(k, Some(v.as_bytes()));
    }

    /// A value Switchyard itself wrote or validated as a token: quoted, not escaped.
    fn plain(&mut self, k: Key, v: &str) {
        self.plain_bytes(k, v.as_bytes());
    }

    fn plain_bytes(&mut self, k: Key, v: &[u8]) {
        self.key(k);
        self.out.push(b'"');
        self.out.extend_from_slice(v);
        self.out.push(b'"');
    }

    fn opt(&mut self, k: Key, v: Option<&str>) {
        self.bytes(k, v.map(str::as_bytes));
    }

    fn bytes(&mut self, k: Key, v: Option<&[u8]>) {
        let Some(v) = v else { return };
        self.key(k);
        escape(self.out, v);
    }

    fn ip(&mut self, k: Key, ip: IpAddr) {
        self.key(k);
        self.out.push(b'"');
        match ip {
            IpAddr::V4(v4) => {
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        self.out.push(b'.');
                    }
                    int(self.out, octet.into());
                }
            }
            IpAddr::V6(v6) => {
                use std::io::Write as _;
                let _ = write!(self.out, "{v6}");
            }
        }
        self.out.push(b'"');
    }

    fn num(&mut self, k: Key, v: u64) {
        self.key(k);
        int(self.out, v);
    }

    fn opt_num(&mut self, k: Key, v: Option<u64>) {
        if let Some(v) = v {
            self.num(k, v);
        }
    }

    fn ms(&mut self, k: Key, us: u64) {
        self.key(k);
        millis(self.out, us);
    }

    /// The first field.
    fn time(&mut self, unix_ns: u64) {
        self.out.extend_from_slice(if JSON { b"\"time\":\"" } else { b"time=\"" });
        rfc3339(unix_ns, self.out);
        self.out.push(b'"');
    }
}

fn int(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// Microseconds as milliseconds with three decimals (`1500` → `1.500`).
fn millis(out: &mut Vec<u8>, us: u64) {
    int(out, us / 1000);
    let frac = (us % 1000) as u16;
    out.extend_from_slice(&[b'.', b'0' + (frac / 100) as u8, b'0' + (frac / 10 % 10) as u8, b'0' + (frac % 10) as u8]);
}

/// A JSON string (also used quoted in text lines): header bytes may be anything but control
/// characters, so quotes, backslashes, controls and non-UTF-8 bytes are escaped. Runs of plain
/// bytes are copied whole.
fn escape(out: &mut Vec<u8>, v: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let mut rest = v;
    while let Some(at) = first_to_escape(rest) {
        out.extend_from_slice(&rest[..at]);
        match rest[at] {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b => out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]),
        }
        rest = &rest[at + 1..];
    }
    out.extend_from_slice(rest);
    out.push(b'"');
}

/// The index of the first byte [`escape`] must escape. Eight bytes at a time: header values are
/// almost always plain, and a byte-by-byte scan was the line's largest single cost.
fn first_to_escape(v: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let needs = |b: u8| !matches!(b, 0x20..=0x7e) || b == b'"' || b == b'\\';
    let mut chunks = v.chunks_exact(8);
    let mut at = 0;
    for c in &mut chunks {
        let x = u64::from_le_bytes(c.try_into().expect("eight bytes"));
        // A byte below 0x20, at or above 0x80, 0x7f, '"' or '\\' in this chunk.
        let flagged = (x.wrapping_sub(0x20 * ONES) & !x & HIGH)
            | (x & HIGH)
            | has_zero(x ^ (0x7f * ONES))
            | has_zero(x ^ (u64::from(b'"') * ONES))
            | has_zero(x ^ (u64::from(b'\\') * ONES));
        if flagged != 0 {
            return c.iter().position(|&b| needs(b)).map(|i| at + i);
        }
        at += 8;
    }
    chunks.remainder().iter().position(|&b| needs(b)).map(|i| at + i)
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

    fn to_vec(d: &RequestData, cfg: &AccessLogConfig) -> Vec<u8> {
        let mut out = Vec::new();
        format(&mut out, d, cfg);
        out
    }

    #[test]
    fn lines_appended_to_one_buffer_stay_whole_lines() {
        let (d, c) = (data(), cfg(LogFormat::Json, false));
        let mut out = b"earlier\n".to_vec();
        format(&mut out, &d, &c);
        format(&mut out, &d, &c);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(lines[0], "earlier");
        assert_eq!(lines[1], lines[2]);
        assert!(serde_json::from_str::<serde_json::Value>(lines[2]).is_ok(), "{text}");
    }

    #[test]
    fn a_json_line_names_fields_by_the_http_conventions() {
        let line = String::from_utf8(to_vec(&data(), &cfg(LogFormat::Json, true))).unwrap();
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
        let without = String::from_utf8(to_vec(&data(), &cfg(LogFormat::Json, false))).unwrap();
        assert!(!without.contains("user=a"), "query left out by default");
    }

    #[test]
    fn the_values_written_unescaped_cannot_hold_what_json_escapes() {
        // Upstream addresses are URI authorities; request ids pass `sane_request_id` or are ours.
        for bad in ["a\"b:80", "a\\b:80", "a\u{1}b:80", "é:80"] {
            assert!(bad.parse::<http::uri::Authority>().is_err(), "{bad:?}");
            assert!(!super::super::ids::sane_request_id(bad.as_bytes()), "{bad:?}");
        }
    }

    #[test]
    fn a_text_line_is_key_value_pairs() {
        let line = String::from_utf8(to_vec(&data(), &cfg(LogFormat::Text, false))).unwrap();
        assert!(line.starts_with("time=\"2024-02-29T12:34:56.789Z\" service=\"auth\" "), "{line}");
        assert!(line.contains(" http.response.status_code=503 "), "{line}");
        assert!(line.contains(" error.type=\"upstream saturated\" "), "{line}");
        assert!(line.trim_end().ends_with("attempts=\"\""), "{line}");
    }

    #[test]
    fn the_eight_byte_scan_finds_the_same_byte_as_a_plain_scan() {
        let plain = |v: &[u8]| v.iter().position(|&b| !matches!(b, 0x20..=0x7e) || b == b'"' || b == b'\\');
        let specials = [0u8, 0x1f, b'"', b'\\', 0x7f, 0x80, 0xff];
        for len in 0..20 {
            let base = vec![b'a'; len];
            assert_eq!(first_to_escape(&base), None);
            for at in 0..len {
                for &s in &specials {
                    let mut v = base.clone();
                    v[at] = s;
                    assert_eq!(first_to_escape(&v), plain(&v), "{v:?}");
                    assert_eq!(first_to_escape(&v), Some(at));
                }
            }
        }
        // Bytes next to the flagged ranges are plain.
        assert_eq!(first_to_escape(b" !#[]~~~~~~"), None);
    }

    #[test]
    fn escaping_keeps_a_line_one_valid_json_string() {
        let mut s = Vec::new();
        escape(&mut s, b"a\"b\\c\nd\xff");
        let back: String = serde_json::from_slice(&s).expect("valid JSON string");
        assert_eq!(back, "a\"b\\c\nd\u{ff}");
    }
}
