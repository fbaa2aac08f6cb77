//! `limits.max_in_flight_per_endpoint`: a full endpoint is skipped; when all are full the request
//! is shed with 503 and nothing is charged to the color.
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_the_per_endpoint_in_flight_cap_are_shed_with_503() {
    let f = Fixture::builder("cap").control(FAST).limits("max_in_flight_per_endpoint = 1").start().await;
    let (m, app, addr) = (&f.mocks, &f.app, f.addr);
    let c = client();
    let slow = {
        let c = c.clone();
        tokio::spawn(async move { c.get(format!("http://{addr}/__sleep?ms=1500")).send().await.unwrap().status() })
    };
    // Wait until the slow request holds the only blue endpoint's slot.
    assert!(eventually(std::time::Duration::from_secs(5), || m.blue.requests() >= 1).await);
    let shed = c.get(format!("http://{addr}/")).send().await.unwrap();
    assert_eq!(shed.status(), 503);
    let body: serde_json::Value = shed.json().await.unwrap();
    assert_eq!(body["reason"], "upstream saturated");
    assert_eq!(slow.await.unwrap(), 200);
    // The slot is free again.
    assert_eq!(get(&c, addr, "/").await.0, 200);
    let metrics =
        client().get(format!("http://{}/metrics", app.admin_addr)).send().await.unwrap().text().await.unwrap();
    let errors = metrics
        .lines()
        .find(|l| l.starts_with("switchyard_requests_total{service=\"cap\",color=\"blue\",status_class=\"5xx\"}"))
        .map(|l| l.rsplit(' ').next().unwrap().to_string());
    assert_eq!(errors.as_deref().unwrap_or("0"), "0", "shedding is not charged to blue");
    f.stop().await;
}
