//! A process-wide monotonic millisecond clock on tokio's `Instant`, so paused-time tests drive
//! ejection windows and in-flight ages the same way they drive timers. Values fit in atomics.

use std::sync::OnceLock;
use tokio::time::Instant;

/// Milliseconds since the first call in this process, plus one (so 0 can mean "never").
pub fn now_ms() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    let base = *BASE.get_or_init(Instant::now);
    Instant::now().saturating_duration_since(base).as_millis() as u64 + 1
}
