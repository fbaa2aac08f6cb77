//! `switchyard demo`: the whole migration compressed into about a minute, on loopback only.
//! Fourteen real mock upstreams (blue and green for each of the seven services), the real proxy
//! with progressive plans in the spec's order, a built-in traffic generator, and a live table.
//! auth is promoted step by step, ac starts stepping, then its green gets +2.5 s of latency: the
//! p95 trigger rolls ac back, the sequence halts, and the incident report is printed.

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use mock_upstream::{MockConfig, MockHandle, MockPatch};
use std::net::SocketAddr;
use std::time::Duration;
use switchyard::app::{App, AppOptions};
use switchyard::control::StatusDoc;
use switchyard::error::ServeError;
use tokio::time::Instant;

/// The spec's services in migration order.
pub const SERVICES: [&str; 7] = ["auth", "ac", "integrity", "fv", "gs", "pgc", "ec"];

/// Requests per second the generator sends to each service (7 × 150 ≈ the spec's 1000 RPS).
const RPS_PER_SERVICE: u64 = 150;

fn demo_config(state_dir: &std::path::Path, mocks: &[(MockHandle, MockHandle)]) -> String {
    let mut s = format!(
        r#"state_dir = "{}"
[admin]
listen = "127.0.0.1:0"
[control]
interval = "500ms"
window = "4s"
min_samples = 5
[rollout]
order = ["auth", "ac", "integrity", "fv", "gs", "pgc", "ec"]
sequential = true
steps = [1, 10, 50, 100]
hold = "3s"
healthy_measurements = 2
[access_log]
# The demo's live table owns the terminal.
enabled = false
"#,
        state_dir.display()
    );
    for (name, (b, g)) in SERVICES.iter().zip(mocks) {
        s.push_str(&format!(
            "[[services]]\nname = \"{name}\"\nlisten = \"127.0.0.1:0\"\nmode = \"progressive\"\n\
             blue = {{ endpoints = [\"{}\"] }}\ngreen = {{ endpoints = [\"{}\"], release = \"acge-1.0.0\" }}\n\
             health = {{ path = \"/health\", interval = \"1s\", timeout = \"500ms\" }}\n",
            b.addr(),
            g.addr()
        ));
        if *name == "ac" {
            s.push_str("steps = [5, 25, 75, 100]\n");
        }
    }
    s
}

/// Runs the demo until Ctrl-C or `duration`.
pub async fn run(duration: Option<Duration>) -> Result<(), ServeError> {
    let any: SocketAddr = ([127, 0, 0, 1], 0).into();
    let mut mocks = Vec::new();
    for name in SERVICES {
        let mut blue = MockConfig::new(format!("{name}-blue"));
        blue.hash = None;
        blue.compliance = Some(0.97);
        let green = MockConfig::new(format!("{name}-green"));
        mocks.push((mock_upstream::spawn(any, blue).await?, mock_upstream::spawn(any, green).await?));
    }
    let dir = std::env::temp_dir().join(format!("switchyard-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("switchyard.toml");
    std::fs::write(&path, demo_config(&dir.join("state"), &mocks))?;
    let cfg = switchyard::config::load(&path)?;
    let mut opts = AppOptions::new(&path);
    opts.watch = false;
    let app = App::start(cfg, opts).await?;
    println!("Switchyard demo: 7 services on loopback, {RPS_PER_SERVICE} req/s each, admin http://{}/", app.admin_addr);
    println!("Plans advance every 3 s when healthy; ac's green will get +2500 ms latency at its 25 % step.\n");
    let addrs: Vec<SocketAddr> = SERVICES.iter().map(|n| app.service_addr(n).expect("service is listening")).collect();
    let traffic: Vec<_> = addrs.iter().map(|a| tokio::spawn(traffic(*a))).collect();

    let start = Instant::now();
    let mut injected = false;
    let mut reported = false;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            _ = tick.tick() => {},
            _ = &mut ctrl_c => break,
        }
        let status = app.status_doc();
        print_table(&status, start.elapsed());
        let ac = &status.services[1];
        if !injected && ac.step.as_ref().is_some_and(|s| s.index == 1) {
            injected = true;
            mocks[1].1.set(MockPatch { latency_ms: Some(2500), ..Default::default() });
            println!(
                ">>> fault injected: ac green now answers 2.5 s slower (spec trigger: p95 > 2 s for 2 measurements)\n"
            );
        }
        if !reported {
            if let Some(inc) = app.control.published.incidents.load().iter().find(|i| i.report.completed_at.is_some()) {
                reported = true;
                println!(
                    ">>> ROLLBACK {}: trigger {} (observed {:.3}, threshold {}), decision→swap {} µs, \
                     green requests between first bad measurement and swap: {}\n>>> report: {}\n",
                    inc.id,
                    inc.trigger,
                    inc.value,
                    inc.threshold,
                    inc.decision_to_swap_us,
                    inc.green_requests_between,
                    inc.report.summary.as_deref().unwrap_or("")
                );
            }
        }
        if duration.is_some_and(|d| start.elapsed() >= d) {
            break;
        }
    }
    for t in traffic {
        t.abort();
    }
    app.shutdown().await;
    for (b, g) in mocks {
        b.shutdown().await;
        g.shutdown().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Sends `RPS_PER_SERVICE` requests per second to one service, each with a distinct user.
async fn traffic(addr: SocketAddr) {
    let client: Client<HttpConnector, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / RPS_PER_SERVICE));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let uri: http::Uri = format!("http://{addr}/api").parse().expect("valid uri");
    loop {
        tick.tick().await;
        let (c, u) = (client.clone(), uri.clone());
        tokio::spawn(async move {
            if let Ok(r) = c.get(u).await {
                let _ = http_body_util::BodyExt::collect(r.into_body()).await;
            }
        });
    }
}

fn print_table(s: &StatusDoc, t: Duration) {
    println!(
        "t={:>3}s  sequence: current {}{}",
        t.as_secs(),
        s.sequence.current.as_deref().unwrap_or("-"),
        if s.sequence.halted { "  HALTED (rollback)" } else { "" }
    );
    println!(
        "  {:<10} {:<12} {:>6} {:>7} {:>6} {:>9} {:>9} {:>7} {:>7} {:>7}",
        "service", "state", "green%", "step", "rps", "b.p95ms", "g.p95ms", "b.err%", "g.err%", "g.compl"
    );
    for svc in &s.services {
        let (b, g) = (&svc.window.blue, &svc.window.green);
        let step = svc.step.as_ref().map_or("-".into(), |st| format!("{}/{}", st.index + 1, st.of));
        println!(
            "  {:<10} {:<12} {:>6} {:>7} {:>6.0} {:>9.1} {:>9.1} {:>7.2} {:>7.2} {:>7}",
            svc.name,
            svc.state.as_str(),
            svc.green_weight,
            step,
            b.rps + g.rps,
            b.p95_ms,
            g.p95_ms,
            b.error_rate * 100.0,
            g.error_rate * 100.0,
            g.compliance.map_or("-".into(), |c| format!("{c:.3}")),
        );
    }
    println!();
}
