//! Examples of failing candidate requests (request id, trace id), so that a rollback report can
//! point at real requests rather than aggregates only. Offered by the data path on failures
//! only; read by the control loop when it rolls back.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures remembered per service: the most recent ones, enough to cover a window's first few.
const KEPT: usize = 32;

/// One failing request, as the access log and the trace UI name it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    pub request_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

/// The recent failures of a service's candidate.
#[derive(Debug, Default)]
pub struct Examples(Mutex<VecDeque<(Instant, Example)>>);

impl Examples {
    /// Remembers a failing request. Never waits: a request that finds the list busy (another
    /// failing at the same instant) is simply not kept.
    pub fn offer(&self, request_id: &str, trace_id: Option<&str>) {
        let Ok(mut list) = self.0.try_lock() else { return };
        if list.len() == KEPT {
            list.pop_front();
        }
        let e = Example { request_id: request_id.to_string(), trace_id: trace_id.map(str::to_string) };
        list.push_back((Instant::now(), e));
    }

    /// The first `n` failures of the last `window` (those that fed the measurement that
    /// tripped), oldest first.
    pub fn first_within(&self, window: Duration, n: usize) -> Vec<Example> {
        let list = self.0.lock().unwrap_or_else(|e| e.into_inner());
        list.iter().filter(|(at, _)| at.elapsed() <= window).take(n).map(|(_, e)| e.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_oldest_recent_failures_first() {
        let ex = Examples::default();
        for i in 0..40 {
            ex.offer(&format!("r{i}"), Some("t"));
        }
        let first = ex.first_within(Duration::from_secs(60), 3);
        let ids: Vec<_> = first.iter().map(|e| e.request_id.as_str()).collect();
        assert_eq!(ids, ["r8", "r9", "r10"]);
        assert!(ex.first_within(Duration::ZERO, 3).len() <= 3);
    }
}
