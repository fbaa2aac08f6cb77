//! Wall-clock time for log lines and spans: nanoseconds since the epoch and RFC 3339 (UTC,
//! milliseconds), written without a date library.

use std::time::{SystemTime, UNIX_EPOCH};

pub fn unix_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// `2026-12-02T03:04:05.678Z`.
pub fn rfc3339(unix_ns: u64, out: &mut String) {
    use std::fmt::Write as _;
    let secs = unix_ns / 1_000_000_000;
    let ms = (unix_ns / 1_000_000) % 1000;
    let (y, m, d) = civil(secs.div_euclid(86_400) as i64);
    let s = secs % 86_400;
    let _ = write!(out, "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z", s / 3600, s / 60 % 60, s % 60);
}

/// Days since 1970-01-01 → (year, month, day), Howard Hinnant's `civil_from_days`.
fn civil(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_known_instants() {
        let mut s = String::new();
        super::rfc3339(0, &mut s);
        assert_eq!(s, "1970-01-01T00:00:00.000Z");
        s.clear();
        super::rfc3339(1_709_210_096_789_000_000, &mut s);
        assert_eq!(s, "2024-02-29T12:34:56.789Z");
    }
}
