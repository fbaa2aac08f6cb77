//! `/status` is a typed document. Its field names and shapes are an external
//! contract (scripts, the status page, `switchyard status`), so the key set of the top level and
//! of a service mid-plan is pinned here against what the untyped `json!` builder produced, plus
//! the role fields added since (`candidate_weight`, `live_weight`, `override_weight`, `live_down`).

use crate::support::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;
use switchyard::control::StatusDoc;

/// Every key path with the JSON kind found there; arrays contribute their elements as `[]`.
fn shape(v: &Value, at: &str, out: &mut BTreeSet<String>) {
    let kind = match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    out.insert(format!("{at}: {kind}"));
    match v {
        Value::Object(m) => m.iter().for_each(|(k, v)| shape(v, &format!("{at}.{k}"), out)),
        Value::Array(a) => a.iter().for_each(|v| shape(v, &format!("{at}[]"), out)),
        _ => {}
    }
}

fn shape_of(v: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    shape(v, "", &mut out);
    out
}

/// The `json!` builder's output for a progressive service at step 1 of 3, with measurements.
const SERVICE_MID_PLAN: &[&str] = &[
    ".admin_weight: null",
    ".candidate: string",
    ".candidate_release: string",
    ".candidate_weight: number",
    ".endpoints.blue: array",
    ".endpoints.blue[].address: string",
    ".endpoints.blue[].ejected: bool",
    ".endpoints.blue[].healthy: bool",
    ".endpoints.blue[]: object",
    ".endpoints.green: array",
    ".endpoints.green[].address: string",
    ".endpoints.green[].ejected: bool",
    ".endpoints.green[].healthy: bool",
    ".endpoints.green[]: object",
    ".endpoints: object",
    ".green_weight: number",
    ".health_score: number",
    ".history.blue: array",
    ".history.blue[].at: string",
    ".history.blue[].compliance: number",
    ".history.blue[].error_rate: number",
    ".history.blue[].p95_ms: number",
    ".history.blue[].samples: number",
    ".history.blue[]: object",
    ".history.green: array",
    ".history.green[].at: string",
    ".history.green[].compliance: number",
    ".history.green[].error_rate: number",
    ".history.green[].p95_ms: number",
    ".history.green[].samples: number",
    ".history.green[]: object",
    ".history: object",
    ".incident: null",
    ".incident_paging: null",
    ".latched: bool",
    ".listen: string",
    ".live: string",
    ".live_down: bool",
    ".live_release: null",
    ".live_weight: number",
    ".mode: string",
    ".name: string",
    ".override_weight: null",
    ".paused: bool",
    ".progress.healthy: string",
    ".progress.hold_remaining: string",
    ".progress.hold_remaining_ms: number",
    ".progress.reason: string",
    ".progress.step: string",
    ".progress: object",
    ".release: string",
    ".state: string",
    ".step.gated: bool",
    ".step.healthy_measurements: number",
    ".step.index: number",
    ".step.of: number",
    ".step.since: string",
    ".step.weights: array",
    ".step.weights[]: number",
    ".step: object",
    ".window.blue.availability: number",
    ".window.blue.compliance: number",
    ".window.blue.error_rate: number",
    ".window.blue.hash_mismatches: number",
    ".window.blue.max_ms: number",
    ".window.blue.p50_ms: number",
    ".window.blue.p95_ms: number",
    ".window.blue.p99_ms: number",
    ".window.blue.rps: number",
    ".window.blue.samples: number",
    ".window.blue: object",
    ".window.green.availability: number",
    ".window.green.compliance: number",
    ".window.green.error_rate: number",
    ".window.green.hash_mismatches: number",
    ".window.green.max_ms: number",
    ".window.green.p50_ms: number",
    ".window.green.p95_ms: number",
    ".window.green.p99_ms: number",
    ".window.green.rps: number",
    ".window.green.samples: number",
    ".window.green: object",
    ".window: object",
    ": object",
];

/// The `json!` builder's top level (services excluded), without a fleet.
const TOP_LEVEL: &[&str] = &[
    ".config.generation: number",
    ".config.last_reload_error: null",
    ".config.path: string",
    ".config.state_error: null",
    ".config: object",
    ".control.interval_ms: number",
    ".control.min_samples: number",
    ".control.window_ms: number",
    ".control: object",
    ".generation: number",
    ".health_score: number",
    ".sequence.current: string",
    ".sequence.halted: bool",
    ".sequence.order: array",
    ".sequence.order[]: string",
    ".sequence.sequential: bool",
    ".sequence: object",
    ": object",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_keeps_every_field_and_shape() {
    let m = Mocks::start("docp").await;
    let plan = "[rollout]\norder = [\"docp\"]\nhealthy_measurements = 2\nsteps = [10, 50, 100]\nhold = \"60s\"\n";
    let svc = service_toml("docp", "127.0.0.1:0", "mode = \"progressive\"", &m.pools("r1"));
    let env = Env::new("interval = \"100ms\"\nwindow = \"300ms\"\nmin_samples = 3", &format!("{plan}{svc}"));
    let app = env.start().await;
    let load = Load::gapped(app.service_addr("docp").unwrap(), 1, Duration::from_millis(2), Duration::from_secs(20));
    let ready = eventually(Duration::from_secs(15), || {
        let s = service(&app, "docp");
        s["step"]["healthy_measurements"].as_u64() >= Some(2)
            && s["history"]["green"].as_array().is_some_and(|h| !h.is_empty())
            && s["health_score"].is_number()
    })
    .await;
    assert!(ready, "never reached a held step with measurements: {:#}", service(&app, "docp"));
    let mut top = app.status();
    let http = admin_get(&app, "/status").await;
    let s = service(&app, "docp");
    load.stop().await;

    let got: Vec<String> = shape_of(&s).into_iter().collect();
    top.as_object_mut().unwrap().remove("services");
    let got_top: Vec<String> = shape_of(&top).into_iter().collect();
    assert_eq!(got, SERVICE_MID_PLAN);
    assert_eq!(got_top, TOP_LEVEL);
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&http), keys(&app.status()), "the admin endpoint serves the same document");
    let typed: StatusDoc = serde_json::from_value(http.clone()).expect("readers parse /status back");
    assert_eq!(serde_json::to_value(&typed).unwrap(), http, "parsing and writing back loses nothing");
    app.shutdown().await;
}
