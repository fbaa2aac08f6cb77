//! The support kit of the integration suite: real mock upstreams on 127.0.0.1:0, the real app
//! in-process, a real HTTP client. Each test gets its own temp dir (config + state) and unique
//! service names. `fixture` (one builder), `metrics` (one scrape and matcher, retrying waits),
//! `load` (one background load generator; `burst` here is the fixed-count form), `raw` (one
//! raw-socket HTTP/1.1 client), `binary` (the real binary and its CLI), `service_toml` (one `[[services]]` builder).
#![allow(dead_code)]

use mock_upstream::{self, MockConfig, MockHandle};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use switchyard::app::{App, AppOptions};

mod binary;
mod fixture;
mod load;
mod metrics;
pub mod otlp;
mod raw;
pub use binary::{cli, Proxy};
pub use fixture::{Fixture, FixtureBuilder};
pub use load::Load;
pub use metrics::{metric, scrape, scrape_metric, wait_metric};
pub use raw::{raw_exchange, read_head, read_response, read_to_eof};

pub const TOKEN: &str = "test-token";

/// Blue and green mocks of one service.
pub struct Mocks {
    pub blue: MockHandle,
    pub green: MockHandle,
}

impl Mocks {
    /// Starts `NAME-blue` and `NAME-green` (green sends the right hash and 0.99 compliance).
    pub async fn start(name: &str) -> Mocks {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let mut blue = MockConfig::new(format!("{name}-blue"));
        blue.hash = None;
        let green = MockConfig::new(format!("{name}-green"));
        Mocks {
            blue: mock_upstream::spawn(any, blue).await.unwrap(),
            green: mock_upstream::spawn(any, green).await.unwrap(),
        }
    }

    /// `blue = {...}` and `green = {...}` lines for a `[[services]]` table.
    pub fn pools(&self, release: &str) -> String {
        format!(
            "blue = {{ endpoints = [\"{}\"] }}\ngreen = {{ endpoints = [\"{}\"], release = \"{release}\" }}\n",
            self.blue.addr(),
            self.green.addr()
        )
    }
}

/// A config file in a temp dir, with fast control settings by default.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
    /// Worker runtimes the app accepts on (1: the test's own runtime, as `--threads 1`).
    pub threads: usize,
}

impl Env {
    /// Writes `body` after a header with state_dir, a loopback admin on port 0 and the given control settings.
    pub fn new(control: &str, body: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("switchyard.toml");
        let env = Env { path, dir, threads: 1 };
        env.write(control, body);
        env
    }

    pub fn write(&self, control: &str, body: &str) {
        let mut text = format!(
            "state_dir = \"{}\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[control]\n{control}\n{body}",
            self.dir.path().join("state").display()
        );
        // The access log is on by default (stdout): the suite keeps its own output readable
        // unless a test configures the log itself.
        if !body.contains("[access_log]") {
            text.push_str("\n[access_log]\nenabled = false\n");
        }
        std::fs::write(&self.path, text).unwrap();
    }

    /// Starts the app on this config with the test token; watching the file.
    pub async fn start(&self) -> App {
        let cfg = switchyard::config::load(&self.path).unwrap_or_else(|e| panic!("{e}"));
        let mut opts = AppOptions::new(&self.path);
        opts.token = Some(switchyard::admin::Token::new(TOKEN));
        opts.debounce = Duration::from_millis(50);
        opts.workers = Some(switchyard::workers::Workers::spawn(self.threads).unwrap());
        App::start(cfg, opts).await.unwrap()
    }
}

/// One `[[services]]` table, the one TOML service builder: `pools` (`blue = ...`/`green = ...`)
/// come before the service's own `lines` so those may end in a sub-table.
pub fn service_toml(name: &str, listen: &str, lines: &str, pools: &str) -> String {
    format!("[[services]]\nname = \"{name}\"\nlisten = \"{listen}\"\n{pools}\n{lines}\n")
}

/// Fast control settings: 100 ms interval, window of 2 intervals.
pub const FAST: &str = "interval = \"100ms\"\nwindow = \"200ms\"\nmin_samples = 20";

/// A port that was free a moment ago (for configs and binaries that need a concrete port).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(64).timeout(Duration::from_secs(10)).build().unwrap()
}

/// GET http://addr/path and return (status, x-switchyard-mock header or "").
pub async fn get(c: &reqwest::Client, addr: SocketAddr, path: &str) -> (u16, String) {
    match c.get(format!("http://{addr}{path}")).send().await {
        Ok(r) => {
            let who = r.headers().get("x-switchyard-mock").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            (r.status().as_u16(), who)
        }
        Err(_) => (0, String::new()),
    }
}

/// Admin GET returning JSON.
pub async fn admin_get(app: &App, path: &str) -> serde_json::Value {
    client().get(format!("http://{}{path}", app.admin_addr)).send().await.unwrap().json().await.unwrap()
}

/// Admin POST with the token; returns (status, JSON).
pub async fn admin_post(app: &App, path: &str, body: &str) -> (u16, serde_json::Value) {
    let r = client()
        .post(format!("http://{}{path}", app.admin_addr))
        .bearer_auth(TOKEN)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(serde_json::Value::Null))
}

/// The `/status` entry of a service (from the published snapshot).
pub fn service(app: &App, name: &str) -> serde_json::Value {
    app.status()["services"].as_array().unwrap().iter().find(|s| s["name"] == name).cloned().unwrap()
}

/// Polls `cond` every 20 ms until it holds or `limit` passes; returns whether it held.
pub async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < end {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

/// Sends `n` requests with `conc` concurrency; returns (statuses, upstream names).
pub async fn burst(addr: SocketAddr, n: usize, conc: usize) -> Vec<(u16, String)> {
    let c = client();
    let mut out = Vec::with_capacity(n);
    let mut set = tokio::task::JoinSet::new();
    let per = n / conc.max(1);
    for _ in 0..conc {
        let c = c.clone();
        set.spawn(async move {
            let mut v = Vec::with_capacity(per);
            for _ in 0..per {
                v.push(get(&c, addr, "/").await);
            }
            v
        });
    }
    while let Some(r) = set.join_next().await {
        out.extend(r.unwrap());
    }
    out
}
