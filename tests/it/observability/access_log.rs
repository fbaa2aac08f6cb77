//! The access log: one JSON line per request with OpenTelemetry HTTP attribute names, attempts
//! and their outcomes; written by a thread behind a bounded queue (full: dropped and counted);
//! the file reopened on SIGUSR1.

use super::*;
use mock_upstream::{Fault, MockPatch};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn log_toml(path: &Path, extra: &str) -> String {
    format!("[access_log]\npath = \"{}\"\n{extra}\n", path.display())
}

fn attempts(line: &serde_json::Value) -> Vec<(String, String, String)> {
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
    line["attempts"].as_array().unwrap().iter().map(|a| (s(&a["reason"]), s(&a["color"]), s(&a["outcome"]))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_retried_rescued_and_refused_requests_are_logged_as_json_lines() {
    let name = "obs_log";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let extra = format!("force_header = \"{FORCE}\"\n{}", log_toml(&path, ""));
    let f = Fixture::builder(name).service(&extra).start().await;
    let c = client();

    // Plain: the query is not logged unless asked for.
    let r =
        c.get(format!("http://{}/plain?token=secret", f.addr)).header("user-agent", "obs-test/1").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let plain = line_of(&path, &id).await;
    assert_eq!(plain["service"], name);
    assert_eq!(plain["http.request.method"], "GET");
    assert_eq!(plain["url.path"], "/plain");
    assert!(plain.get("url.query").is_none(), "{plain}");
    assert_eq!(plain["http.response.status_code"], 200);
    assert_eq!(plain["network.protocol.version"], "1.1");
    assert_eq!(plain["role"], "live");
    assert_eq!(plain["color"], "blue");
    assert_eq!(plain["client.address"], "127.0.0.1");
    assert_eq!(plain["user_agent.original"], "obs-test/1");
    assert_eq!(plain["upstream.address"], f.mocks.blue.addr().to_string());
    assert!(plain["http.response.body.size"].as_u64().unwrap() > 0, "{plain}");
    assert!(plain["duration_ms"].as_f64().is_some() && plain["upstream.ttfb_ms"].as_f64().is_some(), "{plain}");
    assert!(plain["upstream.connect_ms"].as_f64().is_some(), "the first request opened a connection: {plain}");
    assert!(plain["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(attempts(&plain), [("first".into(), "blue".into(), "response".into())]);

    // Refused before any upstream (4xx framing): logged with the id its error body names.
    let mut s = tokio::net::TcpStream::connect(f.addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    let body: serde_json::Value = serde_json::from_str(&text[text.find("\r\n\r\n").unwrap() + 4..]).unwrap();
    let refused = line_of(&path, body["request_id"].as_str().unwrap()).await;
    assert_eq!(refused["http.response.status_code"], 400);
    assert!(refused["error.type"].is_string(), "{refused}");
    assert_eq!(refused["attempts"], serde_json::json!([]));

    // Retried: green resets the connection, blue answers.
    f.mocks.green.set(MockPatch { fault: Some(Fault::Reset), ..Default::default() });
    let r = c.get(format!("http://{}/", f.addr)).header(FORCE, "green").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let retried = line_of(&path, r.headers()["x-request-id"].to_str().unwrap()).await;
    let a = attempts(&retried);
    assert_eq!(a.len(), 2, "{retried}");
    assert_eq!((a[0].0.as_str(), a[0].1.as_str()), ("first", "green"));
    assert_ne!(a[0].2, "response", "{retried}");
    assert_eq!(a[1], ("retry".into(), "blue".into(), "response".into()));
    assert_eq!(retried["attempts"][0]["role"], "candidate");
    assert_eq!(retried["attempts"][0]["release"], "r1");
    assert_eq!((retried["color"].as_str(), retried["role"].as_str()), (Some("blue"), Some("live")));

    // Rescued: waiting on a hung green when green is rolled back, re-sent to blue.
    f.mocks.green.set(MockPatch { fault: Some(Fault::Hang), ..Default::default() });
    let before = f.mocks.green.requests();
    let waiting = tokio::spawn(c.get(format!("http://{}/", f.addr)).header(FORCE, "green").send());
    assert!(eventually(Duration::from_secs(5), || f.mocks.green.requests() > before).await);
    let (code, _) = admin_post(&f.app, &format!("/services/{name}/rollback"), "").await;
    assert_eq!(code, 200);
    let r = waiting.await.unwrap().unwrap();
    assert_eq!(r.status(), 200);
    let rescued = line_of(&path, r.headers()["x-request-id"].to_str().unwrap()).await;
    let a = attempts(&rescued);
    assert_eq!(
        a,
        [("first".into(), "green".into(), "abandoned".into()), ("rescue".into(), "blue".into(), "response".into())]
    );
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_drops_lines_counts_them_and_slows_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("stuck.log");
    // A FIFO nobody reads: the writer thread blocks opening it, as on a stalled disk.
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let f = Fixture::builder("obs_full").service(&log_toml(&fifo, "queue = 4")).start().await;
    let results = burst(f.addr, 40, 4).await;
    assert!(results.iter().all(|(s, _)| *s == 200), "{results:?}");
    let dropped = wait_metric(&f.app, "switchyard_access_log_dropped_total", &[], |v| v >= 36.0).await;
    println!("dropped {dropped} of 40 lines behind a stuck writer");
    // The four queued lines come out once someone reads.
    let reader = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let r = std::io::BufReader::new(std::fs::File::open(&fifo).unwrap());
        r.lines().take(4).map(|l| l.unwrap()).collect::<Vec<_>>()
    });
    let lines = tokio::time::timeout(Duration::from_secs(10), reader).await.expect("queued lines written").unwrap();
    assert!(lines.iter().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()), "{lines:?}");
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigusr1_reopens_the_access_log_file() {
    let name = "obs_rotate";
    let m = Mocks::start(name).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let port = free_port();
    let config = dir.path().join("switchyard.toml");
    let text = format!(
        "state_dir = \"{}\"\n[admin]\nlisten = \"127.0.0.1:0\"\n{}\n{}",
        dir.path().join("state").display(),
        service_toml(name, &format!("127.0.0.1:{port}"), "", &m.pools("r1")),
        log_toml(&path, "")
    );
    std::fs::write(&config, text).unwrap();
    let proxy = Proxy::start(&config).await.unwrap_or_else(|e| panic!("{}", e.stderr));
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let c = client();
    let first = c.get(format!("http://{addr}/one")).send().await.unwrap();
    line_of(&path, first.headers()["x-request-id"].to_str().unwrap()).await;
    // logrotate: move the file away, then signal.
    let rotated = dir.path().join("access.log.1");
    std::fs::rename(&path, &rotated).unwrap();
    let ok = std::process::Command::new("kill").args(["-USR1", &proxy.pid().to_string()]).status().unwrap();
    assert!(ok.success());
    // Lines written before the reopen land in the rotated file; after it, in the new one.
    let mut reopened = false;
    for _ in 0..100 {
        let r = c.get(format!("http://{addr}/two")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        if std::fs::read_to_string(&path).is_ok_and(|t| t.contains("\"/two\"")) {
            reopened = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reopened, "no line in a reopened access.log; log: {}", proxy.log());
    assert!(std::fs::read_to_string(&rotated).unwrap().contains("\"/one\""));
    proxy.stop().await;
    m.blue.shutdown().await;
    m.green.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_the_client_gave_up_on_is_logged_as_499() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let f = Fixture::builder("obs_499").service(&log_toml(&path, "format = \"json\"")).start().await;
    f.mocks.blue.set(MockPatch { fault: Some(Fault::Hang), ..Default::default() });
    let r = client()
        .get(format!("http://{}/slow", f.addr))
        .header("x-request-id", "gave-up-1")
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(r.is_err(), "the client timed out");
    let line = line_of(&path, "gave-up-1").await;
    assert_eq!(line["http.response.status_code"], 499, "{line}");
    assert_eq!(line["error.type"], "client closed");
    assert_eq!(line["attempts"][0]["outcome"], "cancelled", "{line}");
    f.stop().await;
}
