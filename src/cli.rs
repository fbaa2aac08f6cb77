//! Command implementations at the binary's edge (anyhow lives here, not in the library).

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::{Args, Subcommand};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use std::path::{Path, PathBuf};
use switchyard::app::{App, AppOptions};
use switchyard::config;

/// `switchyard check`.
pub fn check(path: &Path) -> anyhow::Result<()> {
    match config::load(path) {
        Ok(c) => {
            println!("{}: OK", path.display());
            println!(
                "control: interval {} window {} min_samples {}   admin: {}   state_dir: {}",
                humantime::format_duration(c.control.interval),
                humantime::format_duration(c.control.window),
                c.control.min_samples,
                c.admin.listen,
                c.state_dir.display()
            );
            println!("rollout order: {}  (sequential: {})", c.rollout.order.join(" → "), c.rollout.sequential);
            println!(
                "{:<10} {:<22} {:<12} {:>7}  {:<28} {:<28} release",
                "service", "listen", "mode", "green", "blue", "green endpoints"
            );
            for s in &c.services {
                let eps = |p: &config::PoolConfig| p.endpoints.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(",");
                let mode = match s.mode {
                    config::Mode::Manual => "manual".to_string(),
                    config::Mode::Progressive => format!(
                        "steps {}",
                        s.plan.steps.iter().map(|w| w.percent().to_string()).collect::<Vec<_>>().join("/")
                    ),
                };
                println!(
                    "{:<10} {:<22} {:<12} {:>6}%  {:<28} {:<28} {}",
                    s.name,
                    s.listen,
                    mode,
                    s.green_weight.percent(),
                    eps(&s.blue),
                    eps(&s.green),
                    s.green.release.as_deref().unwrap_or("-")
                );
            }
            Ok(())
        }
        Err(e) => {
            eprintln!("{e}");
            bail!("{} has {} problem(s)", path.display(), e.problems.len())
        }
    }
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called, not when the
/// future is first polled: a signal that arrives while the caller is still starting up must not
/// meet the default action, which kills the process without draining.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        async move {
            tokio::select! {
                _ = int.recv() => {},
                _ = term.recv() => {},
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `switchyard run`.
pub async fn run(path: PathBuf) -> anyhow::Result<()> {
    let cfg = config::load(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let token = switchyard::admin::Token::from_env_or_file(
        std::env::var("SWITCHYARD_ADMIN_TOKEN").ok(),
        cfg.admin.token_file.as_deref(),
    )
    .context("cannot read admin.token_file")?;
    let mut opts = AppOptions::new(&path);
    opts.token = token;
    // Before the listeners open: from the first accepted connection on, SIGTERM means drain.
    let shutdown = shutdown_signal();
    let app = App::start(cfg, opts).await?;
    shutdown.await;
    tracing::info!("shutting down: draining in-flight requests");
    app.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// Operator commands.
#[derive(Subcommand)]
pub enum Ops {
    /// Show every service's state, weight and window.
    Status(Common),
    /// List incidents.
    Incidents(Common),
    /// Roll a service back to its live color now.
    Rollback(Named),
    /// Clear a rollback latch.
    Reset(Named),
    /// Pause a service's plan.
    Pause(Named),
    /// Resume a service's plan.
    Resume(Named),
    /// Advance a service's plan one step.
    Advance(Named),
    /// Send all of a service's traffic to its candidate.
    Promote(Named),
    /// Acknowledge an incident: records who and stops its escalation.
    Ack {
        /// Incident id (see `switchyard incidents`).
        id: String,
        /// Who acknowledges (default: $USER).
        #[arg(long, env = "USER")]
        by: Option<String>,
        /// What is being done about it.
        #[arg(long)]
        note: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Set a service's green weight in percent.
    Weight {
        /// Service.
        service: String,
        /// Percent.
        percent: f64,
        #[command(flatten)]
        common: Common,
    },
}

/// Options shared by operator commands.
#[derive(Args)]
pub struct Common {
    /// Admin API base URL.
    #[arg(long, env = "SWITCHYARD_ADMIN", default_value = "http://127.0.0.1:9900")]
    admin: String,
    /// Print raw JSON.
    #[arg(long)]
    json: bool,
}

/// A command on one service.
#[derive(Args)]
pub struct Named {
    /// Service.
    service: String,
    #[command(flatten)]
    common: Common,
}

async fn call(common: &Common, method: &str, path: &str, body: Option<String>) -> anyhow::Result<serde_json::Value> {
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let mut req =
        http::Request::builder().method(method).uri(format!("{}{}", common.admin.trim_end_matches('/'), path));
    let token = std::env::var("SWITCHYARD_ADMIN_TOKEN").ok().filter(|t| !t.trim().is_empty());
    if let Some(t) = &token {
        req = req.header("authorization", format!("Bearer {}", t.trim()));
    }
    let req = req.header("content-type", "application/json").body(Full::new(Bytes::from(body.unwrap_or_default())))?;
    let resp = client.request(req).await.with_context(|| format!("cannot reach the admin API at {}", common.admin))?;
    let status = resp.status();
    let bytes = resp.into_body().collect().await?.to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    let msg = v["error"].as_str().unwrap_or("request failed");
    if status == http::StatusCode::UNAUTHORIZED && token.is_none() {
        bail!("SWITCHYARD_ADMIN_TOKEN is not set: {method} {path} needs the admin token ({status}: {msg})");
    }
    if !status.is_success() {
        bail!("{status}: {msg}");
    }
    Ok(v)
}

/// A weight as operators write it: `25`, `0.5` (not JSON's `25.0`).
fn percent(v: &serde_json::Value) -> String {
    v.as_f64().map_or("-".into(), |p| p.to_string())
}

fn print_status(v: &serde_json::Value) {
    println!(
        "config generation {}  sequence: {}{}",
        v["config"]["generation"],
        v["sequence"]["current"].as_str().unwrap_or("-"),
        if v["sequence"]["halted"] == true { "  (HALTED)" } else { "" }
    );
    if let Some(e) = v["config"]["last_reload_error"].as_str() {
        println!("last reload error: {e}");
    }
    if let Some(h) = v["health_score"].as_f64() {
        println!("health score {h:.1}{}", if h < 90.0 { "  (BELOW 90)" } else { "" });
    }
    println!(
        "{:<10} {:<12} {:>7} {:>9} {:>9} {:>8} {:>8} {:>8}  incident",
        "service", "state", "green%", "b.p95ms", "g.p95ms", "b.err%", "g.err%", "g.compl"
    );
    for s in v["services"].as_array().into_iter().flatten() {
        let w = &s["window"];
        // An empty window has no rate or latency: "—", not a zero that reads as perfect.
        let stat = |c: &str, key: &str, scale: f64, prec: usize| match w[c]["samples"].as_u64() {
            Some(n) if n > 0 => w[c][key].as_f64().map_or("—".into(), |x| format!("{:.prec$}", x * scale)),
            _ => "—".to_string(),
        };
        println!(
            "{:<10} {:<12} {:>7} {:>9} {:>9} {:>8} {:>8} {:>8}  {}",
            s["name"].as_str().unwrap_or(""),
            s["state"].as_str().unwrap_or(""),
            percent(&s["green_weight"]),
            stat("blue", "p95_ms", 1.0, 1),
            stat("green", "p95_ms", 1.0, 1),
            stat("blue", "error_rate", 100.0, 2),
            stat("green", "error_rate", 100.0, 2),
            stat("green", "compliance", 1.0, 3),
            s["incident"].as_str().unwrap_or("-")
        );
        println!("{:<10} {}", "", progress_line(s));
    }
}

/// Who is live, who is the candidate, and why its plan is (not) moving:
/// `live blue (1.0) → candidate green (1.1): step 1/3, healthy 0/3, hold 4s left — inconclusive: 37 of 100 samples`.
fn progress_line(s: &serde_json::Value) -> String {
    let release = |k: &str| s[k].as_str().map_or(String::new(), |r| format!(" ({r})"));
    let live = format!("live {}{}", s["live"].as_str().unwrap_or("blue"), release("live_release"));
    let Some(cand) = s["candidate"].as_str() else {
        return format!("{live}, no candidate: the next release goes into the idle pool");
    };
    let p = &s["progress"];
    let mut line = format!("{live} → candidate {cand}{}", release("candidate_release"));
    if let (Some(step), Some(healthy)) = (p["step"].as_str(), p["healthy"].as_str()) {
        line += &format!(": step {step}, healthy {healthy}, hold {} left", p["hold_remaining"].as_str().unwrap_or("—"));
    }
    if let Some(r) = p["reason"].as_str() {
        line += &format!(" — {r}");
    }
    line
}

/// An incident's paging state as `/incidents` carries it: acknowledged, escalated to level N, or
/// `-` for incidents that do not page.
fn paging(e: &serde_json::Value) -> String {
    if e.is_null() {
        return "-".into();
    }
    let level = e["level"].as_u64().unwrap_or(0);
    match &e["acknowledged"] {
        a if a.is_object() => {
            format!("acknowledged by {} at level {}", a["by"].as_str().unwrap_or("?"), a["level"].as_u64().unwrap_or(0))
        }
        _ if level > 0 => format!("escalated to level {level}"),
        _ => "unacknowledged".into(),
    }
}

/// Runs an operator command.
pub async fn ops(op: Ops) -> anyhow::Result<()> {
    let (common, v) = match &op {
        Ops::Status(c) => (c, call(c, "GET", "/status", None).await?),
        Ops::Incidents(c) => (c, call(c, "GET", "/incidents", None).await?),
        Ops::Ack { id, by, note, common } => {
            let Some(by) = by.as_deref().filter(|b| !b.trim().is_empty()) else {
                bail!("who acknowledges? pass --by NAME");
            };
            let body = serde_json::json!({"by": by, "note": note});
            (common, call(common, "POST", &format!("/incidents/{id}/ack"), Some(body.to_string())).await?)
        }
        Ops::Weight { service, percent, common } => (
            common,
            call(common, "POST", &format!("/services/{service}/weight"), Some(format!("{{\"green\": {percent}}}")))
                .await?,
        ),
        Ops::Rollback(n) | Ops::Reset(n) | Ops::Pause(n) | Ops::Resume(n) | Ops::Advance(n) | Ops::Promote(n) => {
            let verb = match op {
                Ops::Rollback(_) => "rollback",
                Ops::Reset(_) => "reset",
                Ops::Pause(_) => "pause",
                Ops::Resume(_) => "resume",
                Ops::Advance(_) => "advance",
                _ => "promote",
            };
            (&n.common, call(&n.common, "POST", &format!("/services/{}/{verb}", n.service), None).await?)
        }
    };
    if common.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    match op {
        Ops::Status(_) => print_status(&v),
        Ops::Incidents(_) => {
            println!(
                "{:<32} {:<10} {:<14} {:<26} {:>8}  {:<32} report",
                "id", "service", "trigger", "decided_at", "swap_us", "paging"
            );
            for i in v.as_array().into_iter().flatten() {
                println!(
                    "{:<32} {:<10} {:<14} {:<26} {:>8}  {:<32} {}",
                    i["id"].as_str().unwrap_or(""),
                    i["service"].as_str().unwrap_or(""),
                    i["trigger"].as_str().unwrap_or(""),
                    i["decided_at"].as_str().unwrap_or(""),
                    i["decision_to_swap_us"],
                    paging(&i["escalation"]),
                    i["report"]["summary"].as_str().unwrap_or("pending")
                );
            }
        }
        Ops::Ack { .. } => println!("{}: {}", v["id"].as_str().unwrap_or(""), paging(&v["escalation"])),
        _ => println!(
            "{}: state {}, green {}%",
            v["name"].as_str().unwrap_or(""),
            v["state"].as_str().unwrap_or(""),
            percent(&v["green_weight"])
        ),
    }
    Ok(())
}
