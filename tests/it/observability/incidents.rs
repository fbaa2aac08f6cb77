//! A rollback report points at real requests: an incident's example request ids and trace ids
//! are those of failing candidate requests, found again in the access log.

use super::*;
use crate::support::otlp::Collector;
use mock_upstream::MockPatch;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incidents_examples_match_access_log_lines() {
    let name = "obs_incident";
    let m = Mocks::start(name).await;
    m.green.set(MockPatch { error_rate: Some(1.0), ..Default::default() });
    let col = Collector::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let body = format!(
        "{}[access_log]\npath = \"{}\"\n{}ui = \"http://jaeger.example:16686\"\n",
        service_toml(name, "127.0.0.1:0", "green_weight = 50", &m.pools("r9")),
        path.display(),
        col.tracing_toml(1.0)
    );
    let f = Fixture::launch(m, name, FAST, &body).await;
    let load = Load::closed(f.addr, 4, Duration::from_secs(20));
    let tripped = eventually(Duration::from_secs(15), || service(&f.app, name)["state"] == "rolled_back").await;
    load.stop().await;
    assert!(tripped, "no rollback: {}", service(&f.app, name));
    let incidents = admin_get(&f.app, "/incidents").await;
    let examples = incidents[0]["examples"].as_array().cloned().unwrap_or_default();
    assert!(!examples.is_empty() && examples.len() <= 5, "{incidents}");
    for e in &examples {
        let line = line_of(&path, e["request_id"].as_str().unwrap()).await;
        assert_eq!(line["trace_id"], e["trace_id"], "{line}");
        let green = line["attempts"].as_array().unwrap().iter().find(|a| a["color"] == "green");
        let green = green.unwrap_or_else(|| panic!("no green attempt in {line}"));
        assert_eq!(green["http.response.status_code"], 500, "{line}");
        assert_eq!(green["release"], "r9");
    }
    assert_eq!(f.app.status()["tracing"]["ui"], "http://jaeger.example:16686");
    f.stop().await;
    col.stop();
}
