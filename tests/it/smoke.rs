use crate::support::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_rate_on_green_rolls_back_and_records_an_incident() {
    let m = Mocks::start("smoke").await;
    let env = Env::new(FAST, &service_toml("smoke", "127.0.0.1:0", "green_weight = 50", &m.pools("r1")));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_principle_compliance_is_exported_and_hostile_values_are_ignored() {
    let m = Mocks::start("princ").await;
    m.green
        .set(serde_json::from_str(r#"{"principles": "fairness=0.5, Bad=0.2, transparency=2, safety=0.9"}"#).unwrap());
    let env = Env::new(FAST, &service_toml("princ", "127.0.0.1:0", "green_weight = 100", &m.pools("r1")));
    let app = env.start().await;
    let addr = app.service_addr("princ").unwrap();
    for r in burst(addr, 20, 2).await {
        assert_eq!(r.0, 200);
    }
    let text = client().get(format!("http://{}/metrics", app.admin_addr)).send().await.unwrap().text().await.unwrap();
    let count = |p: &str| {
        text.lines()
            .find(|l| {
                l.starts_with(&format!(
                    "switchyard_principle_compliance_count{{service=\"princ\",color=\"green\",principle=\"{p}\"}}"
                ))
            })
            .map(|l| l.rsplit(' ').next().unwrap().to_string())
    };
    assert_eq!(count("fairness").as_deref(), Some("20"));
    assert_eq!(count("safety").as_deref(), Some("20"));
    assert_eq!(count("Bad"), None, "names outside [a-z0-9_-] are ignored");
    assert_eq!(count("transparency"), None, "scores outside 0..=1 are ignored");
    app.shutdown().await;
}
