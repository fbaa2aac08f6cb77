//! A green that stalls is caught while its requests are still running: requests in flight past
//! the p95 threshold count as slow samples, so the rollback does not wait for them to finish.
use crate::support::*;
use std::time::Duration;
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_green_rolls_back_before_its_slow_responses_finish() {
    let m = Mocks::start("stall").await;
    let control = "interval = \"250ms\"\nwindow = \"250ms\"\nmin_samples = 5\n\
                   [control.triggers]\np95_latency = { above = \"1s\", consecutive = 2 }\n\
                   error_rate = { enabled = false, above = 0.01 }\navailability = { enabled = false, below = 0.9 }";
    let env = Env::new(control, &service_toml("stall", "127.0.0.1:0", "green_weight = 50", &m.pools("r1")));
    let app = env.start().await;
    let addr = app.service_addr("stall").unwrap();
    // Healthy traffic first, so the loop has conclusive measurements.
    let stop = Instant::now() + Duration::from_secs(20);
    let mut load = tokio::task::JoinSet::new();
    for _ in 0..16 {
        load.spawn(async move {
            let c = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
            while Instant::now() < stop {
                let _ = c.get(format!("http://{addr}/")).send().await;
            }
        });
    }
    let measured = || service(&app, "stall")["history"]["green"].as_array().is_some_and(|h| h.len() >= 2);
    assert!(eventually(Duration::from_secs(10), measured).await, "two green measurements under healthy load");
    assert_eq!(service(&app, "stall")["state"], "canary");
    // Green now takes 10 s per response: none of them can finish before the assertion below.
    m.green.set(serde_json::from_str(r#"{"latency_ms": 10000}"#).unwrap());
    let injected = Instant::now();
    let rolled = eventually(Duration::from_secs(8), || service(&app, "stall")["state"] == "rolled_back").await;
    let took = injected.elapsed();
    assert!(rolled, "no rollback within 8 s of a 10 s stall");
    assert!(took < Duration::from_secs(8), "detected after {took:?}");
    let inc = admin_get(&app, "/incidents").await;
    assert_eq!(inc[0]["trigger"], "p95_latency");
    println!("stall detected and swapped after {took:?}");
    load.abort_all();
    app.shutdown().await;
}
