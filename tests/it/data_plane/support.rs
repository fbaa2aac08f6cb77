//! Helpers for the data-plane tests: one-service fixtures, raw HTTP/1.1 over a `TcpStream`,
//! Prometheus text parsing and bounded async polling.

pub use crate::support::{service_toml, Fixture};
use std::net::SocketAddr;
use std::time::Duration;

/// Control settings that keep the loop out of the way: the default 30 s interval means no
/// measurement closes (and no trigger fires) during a test.
pub const QUIET: &str = "";

/// The force header used throughout.
pub const FORCE: &str = "x-switchyard-color";

impl Fixture {
    /// Sets the green weight through the admin API and checks it was accepted.
    pub async fn set_weight(&self, name: &str, percent: f64) {
        let (status, body) = crate::support::admin_post(
            &self.app,
            &format!("/services/{name}/weight"),
            &format!("{{\"green\":{percent}}}"),
        )
        .await;
        assert_eq!(status, 200, "weight change refused: {body}");
    }
}

/// An address nothing listens on: bind port 0, note the port, close it.
pub fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// Whether a mock name (`x-switchyard-mock`) is a green one.
pub fn is_green(who: &str) -> bool {
    who.ends_with("-green")
}

/// GET with extra headers; returns (status, x-switchyard-mock or "").
pub async fn get_with(c: &reqwest::Client, addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut rb = c.get(format!("http://{addr}{path}"));
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    match rb.send().await {
        Ok(r) => {
            let who = r.headers().get("x-switchyard-mock").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            (r.status().as_u16(), who)
        }
        Err(_) => (0, String::new()),
    }
}

/// Polls an async condition every 20 ms until it holds or `limit` passes.
pub async fn eventually_async<F, Fut>(limit: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + limit;
    loop {
        if cond().await {
            return true;
        }
        if tokio::time::Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
