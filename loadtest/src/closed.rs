//! Closed loop: each worker sends its next request as soon as the previous one finishes, so
//! throughput is whatever the target sustains at this concurrency.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::conn::{Conn, Dial};
use crate::plan::Plan;
use crate::stats::{ErrorKind, Live, Stats};
use crate::target::Target;

/// Pause after a failed connect so a dead target does not turn the loop into a spin.
const CONNECT_BACKOFF: Duration = Duration::from_millis(10);

/// Starts one worker per dial.
pub fn spawn(dials: Vec<Dial>, target: &Arc<Target>, plan: &Arc<Plan>, live: &Arc<Live>) -> Vec<JoinHandle<Stats>> {
    dials
        .into_iter()
        .map(|dial| {
            let (target, plan, live) = (Arc::clone(target), Arc::clone(plan), Arc::clone(live));
            tokio::spawn(worker(Conn::new(dial), target, plan, live))
        })
        .collect()
}

async fn worker(mut conn: Conn, target: Arc<Target>, plan: Arc<Plan>, live: Arc<Live>) -> Stats {
    let mut stats = Stats::default();
    loop {
        let sent = Instant::now();
        if plan.is_over(sent) {
            break;
        }
        let measured = sent >= plan.measure_start;
        if measured && !plan.claim() {
            break;
        }
        let result = conn.exchange(target.request(), plan.timeout).await;
        let latency = sent.elapsed();
        live.finished(result.is_err());
        match result {
            Ok(answer) if measured => stats.response(answer.status, latency, answer.upstream.as_ref()),
            Ok(_) => {}
            Err(kind) => {
                if measured {
                    stats.error(kind);
                }
                if kind == ErrorKind::Connect {
                    tokio::time::sleep(CONNECT_BACKOFF).await;
                }
            }
        }
    }
    stats
}
