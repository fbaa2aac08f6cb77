mod common;
use common::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_rate_on_green_rolls_back_and_records_an_incident() {
    let m = Mocks::start("smoke").await;
    let env = Env::new(
        FAST,
        &format!("[[services]]\nname = \"smoke\"\nlisten = \"127.0.0.1:0\"\ngreen_weight = 50\n{}", m.pools("r1")),
    );
    let app = env.start().await;
    let addr = app.service_addr("smoke").unwrap();
    m.green.set(serde_json::from_str(r#"{"error_rate": 0.2}"#).unwrap());
    let load = tokio::spawn(burst(addr, 2000, 4));
    assert!(eventually(Duration::from_secs(10), || service(&app, "smoke")["state"] == "rolled_back").await);
    load.await.unwrap();
    let inc = admin_get(&app, "/incidents").await;
    assert_eq!(inc[0]["trigger"], "error_rate");
    app.shutdown().await;
}
