//! The `switchyard` binary: parse the command line, install logging, hand off to the library.

mod admin_client;
mod allocator;
mod check;
mod cli;
mod demo;
mod rules;

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

/// mimalloc, because glibc's malloc never gives back memory freed in the middle of its heap: a
/// burst of busy connections that then go idle (and free hyper's 16 KiB of buffers each, see
/// `serve::h1`) would keep their peak resident for the life of the process. mimalloc returns
/// whole free pages, and each worker collects its heap once it goes quiet (`allocator`).
#[global_allocator]
static ALLOC: allocator::Allocator = allocator::Allocator;

#[derive(Parser)]
#[command(name = "switchyard", version, about = "Blue/green reverse proxy with in-process automatic rollback")]
struct Args {
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, global = true, env = "SWITCHYARD_LOG_JSON")]
    log_json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the proxy.
    Run {
        /// Config file.
        #[arg(long, default_value = "config/switchyard.toml")]
        config: PathBuf,
        /// Worker runtimes, one thread each, sharing nothing on the request path (default: the
        /// CPUs this process may use, cgroup quota included). 1 runs everything on one thread.
        #[arg(long, env = "SWITCHYARD_THREADS")]
        threads: Option<usize>,
        /// State directory, overriding the file's `state_dir` (so a restart whose file is
        /// unreadable still finds its last good copy there).
        #[arg(long, env = "SWITCHYARD_STATE_DIR")]
        state_dir: Option<PathBuf>,
    },
    /// Validate a config file and print a summary.
    Check {
        /// Config file.
        #[arg(long, default_value = "config/switchyard.toml")]
        config: PathBuf,
    },
    /// Print Prometheus alert rules generated from the config's triggers (docker/prometheus/alerts.yml).
    Rules {
        /// Config file.
        #[arg(long, default_value = "config/switchyard.toml")]
        config: PathBuf,
    },
    /// Run a mock upstream (demo, tests, load tests, docker).
    MockUpstream {
        /// Listen address.
        #[arg(long)]
        listen: SocketAddr,
        /// Name returned in the body and `x-switchyard-mock`.
        #[arg(long)]
        name: String,
        /// Added latency.
        #[arg(long, default_value_t = 0)]
        latency_ms: u64,
        /// Exact share of 500 responses.
        #[arg(long, default_value_t = 0.0)]
        error_rate: f64,
        /// X-Constitutional-Hash value (omitted when not set).
        #[arg(long)]
        hash: Option<String>,
        /// X-Constitutional-Compliance value.
        #[arg(long)]
        compliance: Option<f64>,
    },
    /// The newcomer's tour: seven services, mock upstreams, traffic, a rollout and a rollback.
    Demo {
        /// Stop after this many seconds (default: until Ctrl-C).
        #[arg(long)]
        duration: Option<u64>,
    },
    /// Operator commands against a running proxy's admin API.
    #[command(flatten)]
    Ops(cli::Ops),
}

fn init_logging(json: bool) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour codes only for a person at a terminal: never in files and pipes, never with NO_COLOR
    // (https://no-color.org: set and not empty).
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let ansi = !no_color && std::io::stderr().is_terminal();
    let b = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    if json {
        b.json().init();
    } else {
        b.init();
    }
}

fn runtime(threads: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    // One thread asked for: a current-thread runtime runs the same tasks without the
    // work-stealing scheduler's cross-thread wake-ups and run-queue atomics (loadtest/RESULTS.md).
    let mut b = match threads {
        Some(0 | 1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    b.enable_all().build().context("cannot start the tokio runtime")
}

fn main() -> anyhow::Result<()> {
    allocator::init();
    let args = Args::parse();
    match args.cmd {
        Cmd::Check { config } => {
            if let Err(e) = check::check(&config) {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
            Ok(())
        }
        Cmd::Rules { config } => rules::print(&config),
        Cmd::Run { config, threads, state_dir } => {
            init_logging(args.log_json);
            switchyard::workers::set_housekeeping(allocator::collect_when_quiet);
            if let Some(dir) = state_dir {
                switchyard::config::override_state_dir(dir);
            }
            // The control loop, admin server and health probes: one thread beside the workers.
            runtime(Some(1))?.block_on(cli::run(config, threads))
        }
        Cmd::MockUpstream { listen, name, latency_ms, error_rate, hash, compliance } => {
            init_logging(args.log_json);
            let mut cfg = mock_upstream::MockConfig::new(name);
            cfg.latency_ms = latency_ms;
            cfg.error_rate = error_rate;
            cfg.hash = hash;
            cfg.compliance = compliance;
            runtime(None)?.block_on(async move {
                mock_upstream::run(listen, cfg, cli::shutdown_signal()).await.context("mock upstream failed")
            })
        }
        Cmd::Demo { duration } => {
            if std::env::var_os("RUST_LOG").is_none() {
                std::env::set_var("RUST_LOG", "warn,switchyard::control=warn");
            }
            init_logging(args.log_json);
            Ok(runtime(None)?.block_on(demo::run(duration.map(std::time::Duration::from_secs)))?)
        }
        Cmd::Ops(ops) => runtime(Some(1))?.block_on(cli::ops(ops)),
    }
}
