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

/// Operator output goes to pipes (`switchyard status | head`, `grep -q`): a reader that left
/// early is not an error worth a panic, so the standard `println!` (which panics on a broken
/// pipe) is replaced in this module by one that drops the write.
macro_rules! println {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
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
    /// Pause a service's plan: it stays at its step and the hold clock stands still.
    Pause(Named),
    /// End a pause (the hold runs on where it stood), or hand a `weight` override back to the
    /// plan at the step nearest below it.
    Resume(Named),
    /// Move a service's plan to its next step now, with that step's weight (ends an override).
    Advance(Named),
    /// Make the candidate live now: the release is finished (the old live pool is retired).
    /// A manual service keeps blue live and sends green 100 %.
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
    /// Override a service's green weight in percent: temporary, shown as an override;
    /// `resume` hands it back to the plan, `promote` finishes the release.
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
        "config generation {} (reloads applied; route table {})  sequence: {}{}",
        doc.config.generation,
        doc.generation,
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
        "{:<10} {:<12} {:>6} {:>7} {:>9} {:>9} {:>8} {:>8} {:>8}  incident",
        "service", "state", "cand%", "green%", "l.p95ms", "c.p95ms", "l.err%", "c.err%", "c.compl"
    );
    for s in &doc.services {
        // An empty window has no rate or latency: "—", not a zero that reads as perfect.
        let stat = |c: Option<Color>, read: fn(&MeasurementView) -> Option<f64>, scale: f64, prec: usize| {
            let Some(m) = c.map(|c| s.window.get(c)) else { return "—".to_string() };
            match read(m) {
                Some(x) if m.samples > 0 => format!("{:.prec$}", x * scale),
                _ => "—".to_string(),
            }
        };
        let (live, cand) = (Some(s.live), s.candidate);
        println!(
            "{:<10} {:<12} {:>6} {:>7} {:>9} {:>9} {:>8} {:>8} {:>8}  {}",
            s.name,
            s.state.as_str(),
            s.candidate_weight,
            s.green_weight,
            stat(live, |m| Some(m.p95_ms), 1.0, 1),
            stat(cand, |m| Some(m.p95_ms), 1.0, 1),
            stat(live, |m| Some(m.error_rate), 100.0, 2),
            stat(cand, |m| Some(m.error_rate), 100.0, 2),
            stat(cand, |m| m.compliance, 1.0, 3),
            s.incident.as_deref().unwrap_or("-")
        );
        println!("{:<10} {}", "", progress_line(s));
    }
}

fn with_release(color: Color, r: &Option<std::sync::Arc<str>>) -> String {
    match r.as_deref() {
        Some(r) => format!("{} ({r})", color.as_str()),
        None => color.as_str().to_string(),
    }
}

/// Who is live, who is the candidate, and why its plan is (not) moving:
/// `live blue (1.0) 90 % → candidate green (1.1) 10 %: step 1/3, healthy 0/3, hold 4s left — inconclusive: 37 of 100 samples`.
fn progress_line(s: &ServiceStatus) -> String {
    let down = if s.live_down { "LIVE DOWN (no healthy endpoint) · " } else { "" };
    let live = format!("{down}live {} {} %", with_release(s.live, &s.live_release), s.live_weight);
    let Some(cand) = s.candidate else {
        return format!("{live}, no candidate: the next release goes into the idle pool");
    };
    let mut line = format!("{live} → candidate {} {} %", with_release(cand, &s.candidate_release), s.candidate_weight);
    let Some(p) = &s.progress else { return line };
    if let (Some(step), Some(healthy)) = (&p.step, &p.healthy) {
        let hold = match (p.hold_remaining_ms, &p.hold_remaining) {
            (Some(0), _) => "hold done".to_string(),
            (_, Some(left)) if s.paused => format!("hold {left} left (frozen)"),
            (_, Some(left)) => format!("hold {left} left"),
            _ => "hold —".to_string(),
        };
        line += &format!(": step {step}, healthy {healthy}, {hold}");
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
            let by = a["by"].as_str().unwrap_or("?");
            match a["level"].as_u64().unwrap_or(0) {
                0 => format!("acknowledged by {by} before any page"),
                l => format!("acknowledged by {by} after level {l}"),
            }
        }
        _ if level > 0 => format!("escalated to level {level}"),
        _ => "unacknowledged".into(),
    }
}

/// `green (v2)` from an incident's `candidate_*` fields, or `-` in logs from before roles.
fn incident_role(i: &serde_json::Value, role: &str) -> String {
    match (i[format!("{role}_color")].as_str(), i[format!("{role}_release")].as_str()) {
        (Some(c), Some(r)) => format!("{c} ({r})"),
        (Some(c), None) => c.to_string(),
        _ => "-".into(),
    }
}

/// The incident list as a table whose columns fit their widest cell.
fn print_incidents(v: &serde_json::Value) {
    let header = ["id", "service", "trigger", "candidate", "live", "decided_at", "swap_us", "paging", "report"];
    let mut rows = vec![header.map(String::from).to_vec()];
    for i in v.as_array().into_iter().flatten() {
        let s = |k: &str| i[k].as_str().unwrap_or("").to_string();
        rows.push(vec![
            s("id"),
            s("service"),
            s("trigger"),
            incident_role(i, "candidate"),
            incident_role(i, "live"),
            s("decided_at"),
            i["decision_to_swap_us"].to_string(),
            paging(&i["escalation"]),
            i["report"]["summary"].as_str().unwrap_or("pending").to_string(),
        ]);
    }
    let last = header.len() - 1;
    let widths: Vec<usize> = (0..last).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    for r in &rows {
        let mut line = String::new();
        for (c, w) in widths.iter().enumerate() {
            // Numbers right-aligned, text left-aligned.
            if c == 6 {
                line += &format!("{:>w$}  ", r[c]);
            } else {
                line += &format!("{:<w$}  ", r[c]);
            }
        }
        line += &r[last];
        println!("{}", line.trim_end());
    }
}

/// An action's reply: what it did (with the way back), then where the service stands, roles
/// first: `shop: live blue (v1) 80 % · candidate green (v2) 20 % · state canary (green 20%)`.
fn print_action(v: &serde_json::Value) {
    let name = v["name"].as_str().unwrap_or("");
    if let Some(effect) = v["effect"].as_str() {
        println!("{name}: {effect}");
    }
    let Ok(s) = serde_json::from_value::<ServiceStatus>(v.clone()) else {
        println!("{name}: state {}, green {}%", v["state"].as_str().unwrap_or(""), percent(&v["green_weight"]));
        return;
    };
    let live = format!("live {} {} %", with_release(s.live, &s.live_release), s.live_weight);
    let cand = match s.candidate {
        Some(c) => format!("candidate {} {} %", with_release(c, &s.candidate_release), s.candidate_weight),
        None => "no candidate".into(),
    };
    println!("{name}: {live} · {cand} · state {} (green {}%)", s.state.as_str(), s.green_weight);
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
        Ops::Incidents { id: None, .. } => print_incidents(&v),
        Ops::Ack { .. } => println!("{}: {}", v["id"].as_str().unwrap_or(""), paging(&v["escalation"])),
        _ => print_action(&v),
    }
    Ok(())
}

/// One incident in full: what tripped, when, how fast the swap was, and the report.
fn print_incident(i: &serde_json::Value) {
    let s = |k: &str| i[k].as_str().unwrap_or("-").to_string();
    println!("incident {}  service {}  release {}", s("id"), s("service"), s("release"));
    println!("trigger {}: value {} vs threshold {}", s("trigger"), i["value"], s("threshold"));
    match i["candidate_weight_before"].as_f64() {
        Some(w) => {
            // Green's weight beside the candidate's share only when they differ (a blue candidate).
            let green = match i["candidate_color"].as_str() {
                Some("blue") => format!(" (green {}%)", percent(&i["weight_before"])),
                _ => String::new(),
            };
            println!(
                "candidate {} had {w}% before{green}; live {}",
                incident_role(i, "candidate"),
                incident_role(i, "live")
            )
        }
        None if i["live_color"].is_string() => println!("live {}", incident_role(i, "live")),
        None => println!("green weight before: {}%", percent(&i["weight_before"])),
    }
    println!("first bad {}  decided {}  swapped {}", s("first_bad_at"), s("decided_at"), s("swapped_at"));
    let between = i.get("candidate_requests_between").unwrap_or(&i["green_requests_between"]);
    println!("decision to swap: {} us; candidate requests in between: {}", i["decision_to_swap_us"], between);
    println!("paging: {}", paging(&i["escalation"]));
    println!("report: {}", i["report"]["summary"].as_str().unwrap_or("pending"));
}
