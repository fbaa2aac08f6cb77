//! Process-level behaviour: the real binary drains in-flight requests on SIGTERM and exits 0;
//! `/metrics` counts exactly what was sent.

use super::support::*;
use crate::support::{client, metric, scrape, Env, Mocks};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::time::Instant;

/// Kills the child if the test fails before it exits by itself.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Polls for the child's exit for at most `limit`.
async fn exit_status(p: &mut Proc, limit: Duration) -> Option<std::process::ExitStatus> {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if let Some(s) = p.0.try_wait().unwrap() {
            return Some(s);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// Starts `switchyard run --config ENV` with stderr to `switchyard.log` in the env's dir.
fn spawn_binary(env: &Env) -> Proc {
    let log = std::fs::File::create(env.dir.path().join("switchyard.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["run", "--config"])
        .arg(&env.path)
        .env("RUST_LOG", "info")
        .env_remove("SWITCHYARD_ADMIN_TOKEN")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    Proc(child)
}

/// Sends SIGTERM to the child.
fn sigterm(p: &Proc) {
    let sent = Command::new("kill").args(["-TERM", &p.0.id().to_string()]).status().unwrap();
    assert!(sent.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_the_in_flight_request_refuses_new_connections_and_exits_0() {
    // No in-process app here, so nothing else installs the provider reqwest needs.
    switchyard::tls::install_provider();
    let m = Mocks::start("dp_drain").await;
    let addr: SocketAddr = closed_port();
    let env = Env::new(QUIET, &service_toml("dp_drain", &addr.to_string(), "", &m.pools("r1")));
    let mut p = spawn_binary(&env);
    let logs = || std::fs::read_to_string(env.dir.path().join("switchyard.log")).unwrap_or_default();

    let c = client();
    let up = eventually_async(Duration::from_secs(15), || async { get_with(&c, addr, "/", &[]).await.0 == 200 }).await;
    assert!(up, "the binary never served; log:\n{}", logs());

    // The in-flight request sleeps 2.5 s upstream: wide enough that a loaded machine still sees
    // the listener close while it is in flight.
    let served = m.blue.requests();
    let slow = tokio::spawn(async move {
        let c = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
        c.get(format!("http://{addr}/__sleep?ms=2500")).send().await.map(|r| r.status().as_u16())
    });
    assert!(eventually_async(Duration::from_secs(5), || async { m.blue.requests() > served }).await);
    sigterm(&p);
    let signalled = Instant::now();

    let refused =
        eventually_async(Duration::from_secs(2), || async { tokio::net::TcpStream::connect(addr).await.is_err() })
            .await;
    let refused_after = signalled.elapsed();
    let in_flight = !slow.is_finished();
    let outcome = slow.await.unwrap();
    assert!(refused, "new connections are still accepted 2 s after SIGTERM; log:\n{}", logs());
    assert!(
        in_flight,
        "refused only after {refused_after:?}, slow request already ended: {outcome:?}; log:\n{}",
        logs()
    );
    assert_eq!(outcome.expect("the in-flight request completes"), 200);
    let status = exit_status(&mut p, Duration::from_secs(10)).await;
    assert!(status.is_some_and(|s| s.success()), "exit {status:?}; log:\n{}", logs());
    m.blue.shutdown().await;
    m.green.shutdown().await;
}

/// Regression: the signal handlers used to be installed only after start-up finished, so a
/// SIGTERM arriving once the listener accepted connections killed the process undrained (143).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_as_soon_as_the_listener_accepts_still_exits_0() {
    let addr = closed_port();
    let pools = "blue = { endpoints = [\"127.0.0.1:1\"] }\ngreen = { endpoints = [\"127.0.0.1:1\"] }";
    let env = Env::new(QUIET, &service_toml("dp_early_term", &addr.to_string(), "", pools));
    let mut p = spawn_binary(&env);
    let end = Instant::now() + Duration::from_secs(15);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < end, "the listener never opened");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    sigterm(&p);
    let status = exit_status(&mut p, Duration::from_secs(10)).await;
    let log = std::fs::read_to_string(env.dir.path().join("switchyard.log")).unwrap_or_default();
    assert!(status.is_some_and(|s| s.success()), "exit {status:?}; log:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_exactly_what_was_sent() {
    let name = "dp_metrics";
    let f = Fixture::builder(name).service(&format!("force_header = \"{FORCE}\"")).start().await;
    let c = client();
    for _ in 0..37 {
        assert_eq!(get_with(&c, f.addr, "/", &[]).await.0, 200);
    }
    for _ in 0..5 {
        assert_eq!(get_with(&c, f.addr, "/", &[(FORCE, "green")]).await.0, 200);
    }
    let count = |text: &str, color: &str, class: &str| {
        let labels = [("service", name), ("color", color), ("status_class", class)];
        metric(text, "switchyard_requests_total", &labels).unwrap_or(0.0)
    };
    // Recorded when each response body ends, which may trail the client's read by a moment.
    let settled = eventually_async(Duration::from_secs(5), || async {
        let t = scrape(&f.app).await;
        count(&t, "blue", "2xx") >= 37.0 && count(&t, "green", "2xx") >= 5.0
    })
    .await;
    let text = scrape(&f.app).await;
    assert!(settled, "counts never arrived:\n{text}");
    assert_eq!(count(&text, "blue", "2xx"), 37.0);
    assert_eq!(count(&text, "green", "2xx"), 5.0);
    for class in ["4xx", "5xx", "error"] {
        assert_eq!(count(&text, "blue", class) + count(&text, "green", class), 0.0, "{class}");
    }
    let weight = |t: &str| metric(t, "switchyard_green_weight_percent", &[("service", name)]);
    assert_eq!(weight(&text), Some(0.0));
    f.set_weight(name, 25.0).await;
    assert_eq!(weight(&scrape(&f.app).await), Some(25.0));
    f.stop().await;
}
