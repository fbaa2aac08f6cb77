//! The one background load generator: workers send GET / to one listener until stopped, a
//! deadline or a request cap, counting what came back so tests can wait on progress (`ok()`,
//! `sent()`) instead of sleeping. `burst` (in the kit root) is the fixed-count form.

use super::{client, get};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Hard cap on the requests of one load, whatever its time limit.
const MAX_REQUESTS: u64 = 2_000_000;

#[derive(Default)]
struct Counts {
    /// Responses received (any status, including transport failures).
    sent: AtomicU64,
    ok: AtomicU64,
    green: AtomicU64,
    /// 5xx responses and transport failures.
    failed: AtomicU64,
    /// Every non-200, described.
    failures: Mutex<Vec<String>>,
    /// Wall-clock time of the first green response (compared with `/status` step times).
    first_green: Mutex<Option<SystemTime>>,
}

/// What a load saw, once stopped.
#[derive(Debug)]
pub struct Outcome {
    pub ok: u64,
    pub green: u64,
    pub failures: Vec<String>,
}

pub struct Load {
    stop: Arc<AtomicBool>,
    counts: Arc<Counts>,
    tasks: JoinSet<()>,
}

/// How a worker spaces its requests.
#[derive(Clone, Copy)]
enum Pace {
    /// Back to back.
    Closed,
    /// A fixed pause after each answer.
    Gap(Duration),
    /// One slot per period; a late answer skips the missed slots rather than bursting.
    Period(Duration),
}

impl Load {
    /// `conc` closed-loop workers, each sending as fast as answers come, for at most `limit`.
    pub fn closed(addr: SocketAddr, conc: usize, limit: Duration) -> Load {
        Self::start(addr, conc, Pace::Closed, limit)
    }

    /// Open loop at about `rps` requests per second over `workers` paced workers.
    pub fn paced(addr: SocketAddr, workers: usize, rps: u64, limit: Duration) -> Load {
        Self::start(addr, workers, Pace::Period(Duration::from_secs_f64(workers as f64 / rps as f64)), limit)
    }

    /// Steady, light traffic: each worker pauses `gap` after every answer.
    pub fn gapped(addr: SocketAddr, workers: usize, gap: Duration, limit: Duration) -> Load {
        Self::start(addr, workers, Pace::Gap(gap), limit)
    }

    fn start(addr: SocketAddr, workers: usize, pace: Pace, limit: Duration) -> Load {
        let (stop, counts) = (Arc::new(AtomicBool::new(false)), Arc::new(Counts::default()));
        let mut tasks = JoinSet::new();
        let end = Instant::now() + limit;
        let c = client();
        for _ in 0..workers {
            let (c, stop, counts) = (c.clone(), stop.clone(), counts.clone());
            tasks.spawn(async move {
                let mut tick = match pace {
                    Pace::Period(p) => {
                        let mut t = tokio::time::interval(p);
                        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                        Some(t)
                    }
                    _ => None,
                };
                while !stop.load(Ordering::Relaxed)
                    && Instant::now() < end
                    && counts.sent.load(Ordering::Relaxed) < MAX_REQUESTS
                {
                    if let Some(t) = tick.as_mut() {
                        t.tick().await;
                    }
                    let (status, who) = get(&c, addr, "/").await;
                    counts.record(status, &who);
                    if let Pace::Gap(g) = pace {
                        tokio::time::sleep(g).await;
                    }
                }
            });
        }
        Load { stop, counts, tasks }
    }

    pub fn sent(&self) -> u64 {
        self.counts.sent.load(Ordering::Relaxed)
    }

    /// 200 responses so far.
    pub fn ok(&self) -> u64 {
        self.counts.ok.load(Ordering::Relaxed)
    }

    /// 5xx responses and transport failures so far.
    pub fn failed(&self) -> u64 {
        self.counts.failed.load(Ordering::Relaxed)
    }

    /// When the first green response arrived.
    pub fn first_green(&self) -> Option<SystemTime> {
        *self.counts.first_green.lock().unwrap()
    }

    /// Stops the workers and waits for their last requests; returns (sent, failed).
    pub async fn stop(self) -> (u64, u64) {
        let counts = self.counts.clone();
        self.finish().await;
        (counts.sent.load(Ordering::Relaxed), counts.failed.load(Ordering::Relaxed))
    }

    /// Stops the workers, waits for their last requests and reports what they saw.
    pub async fn finish(mut self) -> Outcome {
        self.stop.store(true, Ordering::Relaxed);
        while let Some(r) = self.tasks.join_next().await {
            r.unwrap();
        }
        Outcome {
            ok: self.ok(),
            green: self.counts.green.load(Ordering::Relaxed),
            failures: self.counts.failures.lock().unwrap().clone(),
        }
    }
}

impl Counts {
    fn record(&self, status: u16, who: &str) {
        if status == 200 {
            self.ok.fetch_add(1, Ordering::Relaxed);
            if who.ends_with("-green") {
                self.first_green.lock().unwrap().get_or_insert_with(SystemTime::now);
                self.green.fetch_add(1, Ordering::Relaxed);
            }
        } else {
            self.failures.lock().unwrap().push(format!("status {status} from {who:?}"));
        }
        if status == 0 || status >= 500 {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        self.sent.fetch_add(1, Ordering::Relaxed);
    }
}
