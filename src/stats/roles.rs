//! The families that say which release each color runs and in which role, rendered as text when
//! `/metrics` is scraped, from the `/status` snapshot the control loop published. Rendered, not
//! recorded: a color changes role (and release) at every release, and a recorded series with the
//! old labels would linger forever at its last value, so a join on `(service, color)` would find
//! two matches. A rendered family has exactly one series per color, always current.

use super::names::{ENDPOINT_UP, RELEASE_INFO};
use std::fmt::Write;

/// One color of one service as the snapshot describes it.
#[derive(Debug, Clone)]
pub struct ColorRole<'a> {
    pub service: &'a str,
    pub color: &'static str,
    /// `live`, `candidate` (also while rolled back: it is still the release under judgement) or
    /// `idle` (the retired release, or an empty pool awaiting the next one).
    pub role: &'static str,
    /// Empty when the pool's config names no release.
    pub release: &'a str,
    /// `(address, healthy and not ejected)`.
    pub endpoints: Vec<(&'a str, bool)>,
}

/// `switchyard_release_info` and `switchyard_endpoint_up` in Prometheus text format.
pub fn render(rows: &[ColorRole<'_>]) -> String {
    let mut out = String::new();
    if rows.is_empty() {
        return out;
    }
    let _ = write!(
        out,
        "# HELP {RELEASE_INFO} 1 per service and color, labelled with the color's role (live, candidate, idle) and \
         release; join on (service, color).\n# TYPE {RELEASE_INFO} gauge\n"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{RELEASE_INFO}{{service=\"{}\",color=\"{}\",role=\"{}\",release=\"{}\"}} 1",
            escape(r.service),
            r.color,
            r.role,
            escape(r.release)
        );
    }
    let _ = write!(
        out,
        "\n# HELP {ENDPOINT_UP} 1 when the endpoint passes its probes and is not ejected, by service, color and \
         role.\n# TYPE {ENDPOINT_UP} gauge\n"
    );
    for r in rows {
        for (addr, up) in &r.endpoints {
            let _ = writeln!(
                out,
                "{ENDPOINT_UP}{{service=\"{}\",color=\"{}\",role=\"{}\",endpoint=\"{}\"}} {}",
                escape(r.service),
                r.color,
                r.role,
                escape(addr),
                u8::from(*up)
            );
        }
    }
    out.push('\n');
    out
}

/// A label value in the text format: backslash, quote and newline escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_series_per_color_and_endpoint() {
        let rows = [
            ColorRole {
                service: "ac",
                color: "blue",
                role: "candidate",
                release: "v3",
                endpoints: vec![("b:1", false)],
            },
            ColorRole { service: "ac", color: "green", role: "live", release: "v\"2", endpoints: vec![("g:1", true)] },
        ];
        let text = render(&rows);
        assert!(
            text.contains("switchyard_release_info{service=\"ac\",color=\"blue\",role=\"candidate\",release=\"v3\"} 1")
        );
        assert!(text.contains("release=\"v\\\"2\"} 1"), "{text}");
        assert!(text
            .contains("switchyard_endpoint_up{service=\"ac\",color=\"blue\",role=\"candidate\",endpoint=\"b:1\"} 0"));
        assert!(
            text.contains("switchyard_endpoint_up{service=\"ac\",color=\"green\",role=\"live\",endpoint=\"g:1\"} 1")
        );
        assert_eq!(render(&[]), "");
    }
}
