//! The README's quick-start config for a generic service (no ACGE headers) runs as documented:
//! with its switches, a green that sends no constitutional hash is probed healthy and not rolled
//! back; without them, the same green is rolled back at once (the switches are what matters).

use crate::support::*;
use mock_upstream::{self, MockConfig, MockHandle};
use std::time::Duration;
use switchyard::app::{App, AppOptions};

/// The ```toml block after the `quickstart-config` marker in README.md.
fn readme_config() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let after = readme.split("<!-- quickstart-config -->").nth(1).expect("quick-start marker in README.md");
    let block = after.split("```toml\n").nth(1).unwrap().split("```").next().unwrap();
    assert!(block.lines().count() <= 15, "the quick start promises a 15-line config:\n{block}");
    block.to_string()
}

/// A generic upstream: no hash, no compliance header.
async fn plain_mock(name: &str) -> MockHandle {
    let mut cfg = MockConfig::new(name);
    (cfg.hash, cfg.compliance) = (None, None);
    mock_upstream::spawn("127.0.0.1:0".parse().unwrap(), cfg).await.unwrap()
}

/// The README config on test ports, a fast control loop, and the temp state dir.
fn adapted(text: &str, dir: &std::path::Path, blue: &MockHandle, green: &MockHandle) -> String {
    text.replace("state_dir = \"var/shop\"", &format!("state_dir = {:?}\n[admin]\nlisten = \"127.0.0.1:0\"", dir))
        .replace("interval = \"10s\"", "interval = \"100ms\"")
        .replace("window = \"1m\"", "window = \"200ms\"")
        .replace("127.0.0.1:8080", "127.0.0.1:0")
        .replace("127.0.0.1:9001", &blue.addr().to_string())
        .replace("127.0.0.1:9002", &green.addr().to_string())
}

async fn start(text: &str, dir: &std::path::Path) -> App {
    let path = dir.join("shop.toml");
    std::fs::write(&path, text).unwrap();
    let accepted = switchyard::preflight::judge(&path, None).unwrap_or_else(|e| panic!("{e}"));
    let mut opts = AppOptions::new(&path);
    opts.watch = false;
    App::start(accepted.config, opts).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quick_start_config_serves_a_generic_service() {
    switchyard::tls::install_provider();
    let (blue, green) = (plain_mock("shop-v1").await, plain_mock("shop-v2").await);
    let dir = tempfile::tempdir().unwrap();
    let text = adapted(&readme_config(), dir.path(), &blue, &green);
    let cfg = switchyard::config::parse(&text, std::path::Path::new("shop.toml")).unwrap();
    assert_eq!(cfg.services[0].triggers.hash_mismatch, None);
    assert!(!cfg.services[0].health.require_hash, "the probe no longer asks green for the hash");

    let app = start(&text, dir.path()).await;
    let addr = app.service_addr("shop").unwrap();
    let replies = burst(addr, 400, 4).await;
    assert!(replies.iter().all(|(s, _)| *s == 200), "every request answered");
    assert!(replies.iter().any(|(_, who)| who == "shop-v2"), "green takes its 10 %");
    tokio::time::sleep(Duration::from_millis(600)).await; // several measurements and probes
    let s = service(&app, "shop");
    assert_eq!(s["incident"], serde_json::Value::Null, "{s}");
    assert_eq!(s["state"], "canary", "{s}");
    assert_eq!(s["endpoints"]["green"][0]["healthy"], true, "{s}");
    let scrape = client().get(format!("http://{}/metrics", app.admin_addr)).send().await.unwrap().text().await.unwrap();
    let mismatches = scrape
        .lines()
        .filter(|l| l.starts_with("switchyard_hash_mismatches_total{"))
        .filter(|l| l.contains("service=\"shop\"") && l.contains("color=\"green\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>();
    assert_eq!(mismatches, 0.0, "a hash nobody asked for is not counted");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_switches_the_same_green_is_rolled_back() {
    switchyard::tls::install_provider();
    let (blue, green) = (plain_mock("acge-v1").await, plain_mock("acge-v2").await);
    let dir = tempfile::tempdir().unwrap();
    let text = adapted(&readme_config(), dir.path(), &blue, &green);
    // Another name: metrics are per process, and the other test asserts shop's are clean.
    let without = text.lines().filter(|l| !l.starts_with("triggers = ")).collect::<Vec<_>>().join("\n");
    let without = without.replace("name = \"shop\"", "name = \"acge\"");
    let app = start(&without, dir.path()).await;
    let addr = app.service_addr("acge").unwrap();
    burst(addr, 400, 4).await;
    let rolled = eventually(Duration::from_secs(10), || service(&app, "acge")["state"] == "rolled_back").await;
    assert!(rolled, "{}", service(&app, "acge"));
    app.shutdown().await;
}
