//! W3C Trace Context (`traceparent`, version 00): parsing what a caller sent and writing what an
//! attempt forwards. `tracestate` is vendor data and passes through untouched.

use super::ids::{hex16, hex8, unhex};
use http::HeaderValue;

/// `traceparent`.
pub const TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");

/// The caller's span, as its `traceparent` named it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parent {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// The caller's sampled flag, obeyed (parent-based sampling).
    pub sampled: bool,
}

/// Parses `00-<32 hex>-<16 hex>-<2 hex>`. A later version is read by its first four fields, as
/// the spec asks; all-zero ids, version `ff` and malformed values are ignored (a new trace).
pub fn parse(v: &[u8]) -> Option<Parent> {
    if v.len() < 55 || v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    let version = unhex::<1>(&v[..2])?[0];
    if version == 0xff || (version == 0 && v.len() != 55) || (version != 0 && v.len() > 55 && v[55] != b'-') {
        return None;
    }
    let trace_id = unhex::<16>(&v[3..35])?;
    let span_id = unhex::<8>(&v[36..52])?;
    let flags = unhex::<1>(&v[53..55])?[0];
    if trace_id == [0; 16] || span_id == [0; 8] {
        return None;
    }
    Some(Parent { trace_id, span_id, sampled: flags & 1 == 1 })
}

/// The `traceparent` an attempt forwards: our trace, the attempt's span as the parent.
pub fn header(trace_id: &[u8; 16], span_id: &[u8; 8], sampled: bool) -> HeaderValue {
    let mut b = [0u8; 55];
    b[..3].copy_from_slice(b"00-");
    b[3..35].copy_from_slice(&hex16(trace_id));
    b[35] = b'-';
    b[36..52].copy_from_slice(&hex8(span_id));
    b[52..].copy_from_slice(if sampled { b"-01" } else { b"-00" });
    HeaderValue::from_bytes(&b).expect("hex and dashes are a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_spec_example_round_trips() {
        let p = parse(SPEC.as_bytes()).expect("valid");
        assert!(p.sampled);
        assert_eq!(header(&p.trace_id, &p.span_id, p.sampled).as_bytes(), SPEC.as_bytes());
    }

    #[test]
    fn invalid_values_start_a_new_trace() {
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "garbage",
        ] {
            assert_eq!(parse(bad.as_bytes()), None, "{bad}");
        }
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-what-comes-next";
        assert!(parse(later.as_bytes()).is_some_and(|p| !p.sampled));
    }
}
