//! Command implementations at the binary's edge (anyhow lives here, not in the library).

use crate::admin_client::{self, Target};
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use switchyard::app::{App, AppOptions};
use switchyard::control::status::ServiceStatus;
use switchyard::control::StatusDoc;
use switchyard::stats::MeasurementView;
use switchyard::Color;
use switchyard::{preflight, reload};

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

/// `switchyard run`: the file if `check` would accept it, else the last good copy (loudly).
/// `threads` runtimes accept and serve connections (one per core by default); the control loop
/// and the admin server run beside them on the calling runtime.
pub async fn run(path: PathBuf, threads: Option<usize>) -> anyhow::Result<()> {
    let start = preflight::start_config(&path, env_token()).map_err(|e| {
        anyhow::anyhow!(
            "{e}\n{} has {} problem(s) and there is no last good copy to start from",
            path.display(),
            e.problems.len()
        )
    })?;
    let (accepted, refused) = (start.accepted, start.refused);
    let mut opts = AppOptions::new(&path);
    opts.token = accepted.token;
    let threads = threads.unwrap_or_else(switchyard::workers::default_count);
    opts.workers = Some(switchyard::workers::Workers::spawn(threads).context("cannot start the worker runtimes")?);
    let (state_dir, running_from) = (accepted.config.state_dir.clone(), accepted.config.source.clone());
    // Before the listeners open: from the first accepted connection on, SIGTERM means drain.
    let shutdown = shutdown_signal();
    let app = App::start(accepted.config, opts).await?;
    match refused {
        None => {
            reload::mark_refused(false);
            reload::keep_last_good(&state_dir, &accepted.source);
        }
        Some(e) => {
            reload::mark_refused(true);
            let msg = format!("{e}\n(refused at start: serving the last good copy {})", running_from.display());
            tracing::error!(error = %msg, "config file refused; running the last good copy");
            app.control.reload_failed(msg).await;
        }
    }
    // After the last good copy is written: from "ready" on, a restart with a broken file has
    // something to fall back to.
    tracing::info!(admin = %app.admin_addr, "switchyard ready");
    shutdown.await;
    tracing::info!("shutting down: draining in-flight requests");
    app.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

fn env_token() -> Option<String> {
    std::env::var("SWITCHYARD_ADMIN_TOKEN").ok()
}

/// Operator commands.
#[derive(Subcommand)]
pub enum Ops {
    /// Show every service's state, weight and window.
    Status(Common),
    /// List incidents, or show one in full: `switchyard incidents ID`.
    Incidents {
        /// Incident id (`inc-...`); without it, the list.
        id: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Re-read the config file now (as SIGHUP or POST /reload); prints every problem if refused.
    Reload(Common),
    /// Roll a service back to its live color now.
    Rollback(Named),
    /// Clear a rollback: green gets traffic again. Lifts the latch, drops any weight set by
    /// `weight`/`promote` and any pause, and forgets the measurement window; a progressive plan
    /// restarts at its first step, a manual service returns to its file's green_weight.
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
    /// Admin API base URL (http:// or https://).
    #[arg(long, env = "SWITCHYARD_ADMIN", default_value = "http://127.0.0.1:9900")]
    admin: String,
    /// Admin token for mutating calls.
    #[arg(long, env = "SWITCHYARD_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Give up when the admin API has not answered within this time.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: std::time::Duration,
    /// PEM CA bundle to trust for an https:// admin URL (default: the system's roots).
    #[arg(long, env = "SWITCHYARD_ADMIN_CA")]
    ca: Option<PathBuf>,
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
    let token = common.token.clone().filter(|t| !t.trim().is_empty());
    let target =
        Target { base: common.admin.clone(), token: token.clone(), timeout: common.timeout, ca: common.ca.clone() };
    let (status, bytes) = admin_client::send(&target, method, path, body).await?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    let msg = v["error"].as_str().unwrap_or("request failed");
    if status == http::StatusCode::UNAUTHORIZED && token.is_none() {
        bail!("no admin token (--token or SWITCHYARD_ADMIN_TOKEN): {method} {path} needs it ({status}: {msg})");
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

fn print_status(doc: &StatusDoc) {
    println!(
        "config generation {}  sequence: {}{}",
        doc.config.generation,
        doc.sequence.current.as_deref().unwrap_or("-"),
        if doc.sequence.halted { "  (HALTED)" } else { "" }
    );
    if let Some(e) = &doc.config.last_reload_error {
        println!("last reload error: {e}");
    }
    if let Some(f) = &doc.fleet {
        println!(
            "fleet: replica {}  leader {}  store {}  revision {}  replicas ({}): {}",
            f.replica,
            f.leader.as_deref().unwrap_or("-"),
            f.store,
            f.revision,
            f.replicas.len(),
            f.replicas.join(", ")
        );
    }
    if let Some(h) = doc.health_score {
        println!("health score {h:.1}{}", if h < 90.0 { "  (BELOW 90)" } else { "" });
    }
    println!(
        "{:<10} {:<12} {:>7} {:>9} {:>9} {:>8} {:>8} {:>8}  incident",
        "service", "state", "green%", "b.p95ms", "g.p95ms", "b.err%", "g.err%", "g.compl"
    );
    for s in &doc.services {
        // An empty window has no rate or latency: "—", not a zero that reads as perfect.
        let stat = |c: Color, read: fn(&MeasurementView) -> Option<f64>, scale: f64, prec: usize| {
            let m = s.window.get(c);
            match read(m) {
                Some(x) if m.samples > 0 => format!("{:.prec$}", x * scale),
                _ => "—".to_string(),
            }
        };
        println!(
            "{:<10} {:<12} {:>7} {:>9} {:>9} {:>8} {:>8} {:>8}  {}",
            s.name,
            s.state.as_str(),
            s.green_weight,
            stat(Color::Blue, |m| Some(m.p95_ms), 1.0, 1),
            stat(Color::Green, |m| Some(m.p95_ms), 1.0, 1),
            stat(Color::Blue, |m| Some(m.error_rate), 100.0, 2),
            stat(Color::Green, |m| Some(m.error_rate), 100.0, 2),
            stat(Color::Green, |m| m.compliance, 1.0, 3),
            s.incident.as_deref().unwrap_or("-")
        );
        println!("{:<10} {}", "", progress_line(s));
    }
}

/// Who is live, who is the candidate, and why its plan is (not) moving:
/// `live blue (1.0) → candidate green (1.1): step 1/3, healthy 0/3, hold 4s left — inconclusive: 37 of 100 samples`.
fn progress_line(s: &ServiceStatus) -> String {
    let release = |r: &Option<std::sync::Arc<str>>| r.as_deref().map_or(String::new(), |r| format!(" ({r})"));
    let live = format!("live {}{}", s.live.as_str(), release(&s.live_release));
    let Some(cand) = s.candidate else {
        return format!("{live}, no candidate: the next release goes into the idle pool");
    };
    let mut line = format!("{live} → candidate {}{}", cand.as_str(), release(&s.candidate_release));
    let Some(p) = &s.progress else { return line };
    if let (Some(step), Some(healthy)) = (&p.step, &p.healthy) {
        line += &format!(": step {step}, healthy {healthy}, hold {} left", p.hold_remaining.as_deref().unwrap_or("—"));
    }
    if let Some(r) = &p.reason {
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
        Ops::Incidents { id: None, common } => (common, call(common, "GET", "/incidents", None).await?),
        Ops::Incidents { id: Some(id), common } => {
            (common, call(common, "GET", &format!("/incidents/{id}"), None).await?)
        }
        Ops::Reload(c) => (c, call(c, "POST", "/reload", None).await?),
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
        Ops::Status(_) => print_status(&serde_json::from_value(v)?),
        Ops::Incidents { id: Some(_), .. } => print_incident(&v),
        Ops::Reload(_) => println!("config reloaded: generation {}", v["generation"]),
        Ops::Reset(_) => println!(
            "{}: state {}, green {}% (rollback cleared: latch, admin weight and pause dropped, window forgotten)",
            v["name"].as_str().unwrap_or(""),
            v["state"].as_str().unwrap_or(""),
            percent(&v["green_weight"])
        ),
        Ops::Incidents { id: None, .. } => {
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

/// One incident in full: what tripped, when, how fast the swap was, and the report.
fn print_incident(i: &serde_json::Value) {
    let s = |k: &str| i[k].as_str().unwrap_or("-").to_string();
    println!("incident {}  service {}  release {}", s("id"), s("service"), s("release"));
    println!("trigger {}: value {} vs threshold {}", s("trigger"), i["value"], s("threshold"));
    println!("green weight before: {}%", percent(&i["weight_before"]));
    println!("first bad {}  decided {}  swapped {}", s("first_bad_at"), s("decided_at"), s("swapped_at"));
    println!(
        "decision to swap: {} us; green requests in between: {}",
        i["decision_to_swap_us"], i["green_requests_between"]
    );
    println!("report: {}", i["report"]["summary"].as_str().unwrap_or("pending"));
}
