//! Wall-clock time for log lines and spans: nanoseconds since the epoch and RFC 3339 (UTC,
//! milliseconds), written without a date library.

use std::cell::Cell;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub fn unix_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// How long a thread reuses one reading of the wall clock, counting forward on the monotonic one.
const ANCHOR_FOR: Duration = Duration::from_secs(1);

/// The wall-clock time of the monotonic instant `at` (just read): the thread's last wall-clock
/// reading plus the monotonic time since, so a request needs one clock read, not two. A
/// stepped wall clock shows in the log within [`ANCHOR_FOR`].
pub fn unix_nanos_at(at: Instant) -> u64 {
    thread_local! {
        static ANCHOR: Cell<Option<(Instant, u64)>> = const { Cell::new(None) };
    }
    if let Some((mono, wall)) = ANCHOR.get() {
        if let Some(since) = at.checked_duration_since(mono).filter(|d| *d < ANCHOR_FOR) {
            return wall + since.as_nanos() as u64;
        }
    }
    let wall = unix_nanos();
    ANCHOR.set(Some((at, wall)));
    wall
}

/// `2026-12-02T03:04:05.678Z`. The part up to the seconds is formatted once per second and
/// thread (every line of a busy second shares it).
pub fn rfc3339(unix_ns: u64, out: &mut Vec<u8>) {
    thread_local! {
        static SECOND: std::cell::Cell<(u64, [u8; 19])> = const { std::cell::Cell::new((u64::MAX, [0; 19])) };
    }
    let secs = unix_ns / 1_000_000_000;
    let ms = ((unix_ns / 1_000_000) % 1000) as u16;
    let (at, mut prefix) = SECOND.get();
    if at != secs {
        prefix = seconds(secs);
        SECOND.set((secs, prefix));
    }
    out.extend_from_slice(&prefix);
    out.extend_from_slice(&[b'.', digit(ms / 100), digit(ms / 10 % 10), digit(ms % 10), b'Z']);
}

/// `2026-12-02T03:04:05` for whole seconds since the epoch.
fn seconds(secs: u64) -> [u8; 19] {
    use std::io::Write as _;
    let (y, m, d) = civil(secs.div_euclid(86_400) as i64);
    let s = secs % 86_400;
    let mut buf = [0u8; 19];
    let _ = write!(&mut buf[..], "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
    buf
}

fn digit(d: u16) -> u8 {
    b'0' + d as u8
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
    fn the_anchored_wall_clock_follows_the_monotonic_one() {
        let t0 = std::time::Instant::now();
        let wall = super::unix_nanos_at(t0);
        assert!(wall.abs_diff(super::unix_nanos()) < 1_000_000_000);
        assert_eq!(super::unix_nanos_at(t0 + std::time::Duration::from_millis(5)), wall + 5_000_000);
        // Past the anchor's second the wall clock is read again.
        let later = t0 + std::time::Duration::from_secs(3);
        assert!(super::unix_nanos_at(later) < wall + 2_000_000_000, "a fresh reading, not the anchor + 3 s");
    }

    #[test]
    fn formats_known_instants() {
        let mut s = Vec::new();
        super::rfc3339(0, &mut s);
        assert_eq!(s, b"1970-01-01T00:00:00.000Z");
        s.clear();
        super::rfc3339(1_709_210_096_789_000_000, &mut s);
        assert_eq!(s, b"2024-02-29T12:34:56.789Z");
        s.clear();
        // The same second again (from the per-thread prefix), then the next one.
        super::rfc3339(1_709_210_096_001_000_000, &mut s);
        super::rfc3339(1_709_210_097_000_000_000, &mut s);
        assert_eq!(s, b"2024-02-29T12:34:56.001Z2024-02-29T12:34:57.000Z");
    }
}
