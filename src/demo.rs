//! `switchyard demo`: the whole migration compressed into about a minute, on loopback only.
//! Fourteen real mock upstreams (blue and green for each of the seven services), the real proxy
//! with progressive plans in the spec's order, a built-in traffic generator, and a live table.
//! auth is promoted step by step, ac starts stepping, then its candidate gets +2.5 s of latency:
//! the p95 trigger rolls ac back, the sequence halts, and the incident report is printed.
//!
//! On a terminal the table refreshes in place; piped or redirected (or `TERM=dumb`), it prints
//! plain lines, one table per second, without control codes. A legend comes first and a summary
//! last: what happened, and what to try next.

mod screen;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use mock_upstream::{MockConfig, MockHandle, MockPatch};
use std::net::SocketAddr;
use std::time::Duration;
use switchyard::app::{App, AppOptions};
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
             blue = {{ endpoints = [\"{}\"], release = \"legacy\" }}\ngreen = {{ endpoints = [\"{}\"], release = \"acge-1.0.0\" }}\n\
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
    // With a token in the environment, operator commands and the page's buttons work on the demo.
    opts.token =
        std::env::var("SWITCHYARD_ADMIN_TOKEN").ok().filter(|t| !t.is_empty()).map(switchyard::admin::Token::new);
    let app = App::start(cfg, opts).await?;
    let mut screen = screen::Screen::new(app.admin_addr);
    screen.intro(RPS_PER_SERVICE);
    let addrs: Vec<SocketAddr> = SERVICES.iter().map(|n| app.service_addr(n).expect("service is listening")).collect();
    let traffic: Vec<_> = addrs.iter().map(|a| tokio::spawn(traffic(*a))).collect();

    let start = Instant::now();
    let mut injected = false;
    let mut reported = false;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let interrupted = loop {
        tokio::select! {
            _ = tick.tick() => {},
            _ = &mut ctrl_c => break true,
        }
        let status = app.status_doc();
        let ac = &status.services[1];
        if !injected && ac.step.as_ref().is_some_and(|s| s.index == 1) {
            injected = true;
            let color = ac.candidate.map_or("green", |c| c.as_str());
            mocks[1].1.set(MockPatch { latency_ms: Some(2500), ..Default::default() });
            screen.event(format!(
                "fault injected: ac's candidate acge-1.0.0 ({color}) now answers 2.5 s slower \
                 (trigger: p95 > 2 s for 2 measurements)"
            ));
        }
        if !reported {
            if let Some(inc) = app.control.published.incidents.load().iter().find(|i| i.report.completed_at.is_some()) {
                reported = true;
                screen.event(format!(
                    "ROLLBACK {}: trigger {} (observed {:.3}, threshold {}), decision→swap {} µs, \
                     candidate requests between the first bad measurement and the swap: {}",
                    inc.id, inc.trigger, inc.value, inc.threshold, inc.decision_to_swap_us, inc.green_requests_between
                ));
                screen.event(format!("report: {}", inc.report.summary.as_deref().unwrap_or("")));
            }
        }
        screen.draw(&status, start.elapsed());
        if duration.is_some_and(|d| start.elapsed() >= d) {
            break false;
        }
    };
    let incidents = app.control.published.incidents.load_full();
    screen.summary(&app.status_doc(), &incidents, start.elapsed(), interrupted);
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
