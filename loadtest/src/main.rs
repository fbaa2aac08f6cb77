//! `switchyard-load`: a small, efficient HTTP load generator for Switchyard.
//!
//! Closed loop (`--connections` workers sending back to back) or open loop (`--rate`, latency
//! measured from the intended send time). Workers keep their own stats and share only two
//! progress counters; everything is merged once at the end. See `loadtest/README.md`.
#![forbid(unsafe_code)]

mod cli;
mod closed;
mod conn;
mod open;
mod plan;
mod report;
mod stats;
mod target;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use tokio::time::Instant;

use cli::Args;
use conn::{Dial, SharedH2};
use plan::Plan;
use report::Summary;
use stats::{Live, Stats};
use target::Target;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    validate(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
        .context("building the runtime")?;
    let summary = runtime.block_on(run(&args))?;
    if !args.json {
        eprint!("{}", summary.human());
    }
    println!("{}", serde_json::to_string(&summary)?);
    Ok(())
}

fn validate(args: &Args) -> anyhow::Result<()> {
    if args.connections == 0 {
        bail!("--connections must be at least 1");
    }
    if args.threads == 0 {
        bail!("--threads must be at least 1");
    }
    if let Some(rate) = args.rate {
        if !(rate.is_finite() && rate > 0.0) {
            bail!("--rate must be a positive number");
        }
    }
    if args.timeout.is_zero() {
        bail!("--timeout must be positive");
    }
    Ok(())
}

async fn run(args: &Args) -> anyhow::Result<Summary> {
    let target = Arc::new(Target::resolve(args).await?);
    let dials: Vec<Dial> = if args.http2 {
        let shared = SharedH2::new(target.addr);
        (0..args.connections).map(|_| Dial::H2(Arc::clone(&shared))).collect()
    } else {
        (0..args.connections).map(|_| Dial::H1(target.addr)).collect()
    };
    let live = Arc::new(Live::default());
    let plan = Arc::new(Plan::new(args));
    let progress = (!args.quiet).then(|| tokio::spawn(progress(Arc::clone(&live), plan.start)));
    let schedule = args.rate.map(|rate| Arc::new(open::Schedule::new(rate, args.warmup)));
    let workers = match &schedule {
        None => closed::spawn(dials, &target, &plan, &live),
        Some(schedule) => open::spawn(dials, &target, &plan, &live, schedule),
    };
    let mut stats = Stats::default();
    for worker in workers {
        stats.merge(worker.await.context("worker panicked")?);
    }
    if let Some(p) = progress {
        p.abort();
    }
    let elapsed = Instant::now().saturating_duration_since(plan.measure_start);
    let mut summary = Summary::new(&stats, elapsed);
    if let Some(schedule) = schedule {
        let run = plan.end.map_or(elapsed + args.warmup, |end| end - plan.start);
        summary.missed = Some(schedule.missed(run, stats.attempts(), plan.limit()));
    }
    Ok(summary)
}

/// Prints elapsed time, the last second's rate and the error total once per second.
async fn progress(live: Arc<Live>, start: Instant) {
    let mut tick = tokio::time::interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
    let mut last = 0;
    loop {
        let now = tick.tick().await;
        let done = live.done.load(Ordering::Relaxed);
        let errors = live.errors.load(Ordering::Relaxed);
        eprintln!(
            "[{:>5.1}s] {:>8} req/s  total {:>9}  errors {}",
            (now - start).as_secs_f64(),
            done - last,
            done,
            errors
        );
        last = done;
    }
}
