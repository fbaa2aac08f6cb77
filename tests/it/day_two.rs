//! Day-two edges against the real binary: a restart with a broken config serves from the last
//! good copy (and exits listing the problems when there is none); the CLI's `reload`,
//! `incidents ID`, `--token`, `--timeout` and `https://` admin URLs.

use crate::support::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A one-service config on fixed ports (a restart must find the same addresses).
fn config(state: &Path, admin: u16, listen: u16, m: &Mocks, extra: &str) -> String {
    format!(
        "state_dir = {:?}\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n[control]\ninterval = \"200ms\"\nwindow = \"400ms\"\n\
         {extra}\n[[services]]\nname = \"lg\"\nlisten = \"127.0.0.1:{listen}\"\n{}",
        state.display(),
        m.pools("r1")
    )
}

fn gauge(scrape: &str, name: &str) -> Option<f64> {
    scrape.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_a_broken_file_serves_from_the_last_good_copy() {
    switchyard::tls::install_provider(); // for the test's own reqwest client
    let m = Mocks::start("lg").await;
    let dir = tempfile::tempdir().unwrap();
    let (path, state) = (dir.path().join("sy.toml"), dir.path().join("state"));
    let (admin, port) = (free_port(), free_port());
    let good = config(&state, admin, port, &m, "");
    std::fs::write(&path, &good).unwrap();
    let service: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();

    let p = Proxy::start(&path).await.unwrap_or_else(|e| panic!("good config refused:\n{}", e.stderr));
    assert_eq!(get(&client(), service, "/").await, (200, "lg-blue".to_string()));
    let copy = state.join("last-good.toml");
    // Written before "ready" is logged: a restart from then on has its fallback.
    assert_eq!(
        std::fs::read_to_string(&copy).ok().as_deref(),
        Some(good.as_str()),
        "the accepted file is kept verbatim"
    );
    let scrape = p.get("/metrics").await;
    assert_eq!(gauge(&scrape, "switchyard_config_last_reload_failed"), Some(0.0));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let started = gauge(&scrape, "process_start_time_seconds").expect("process_start_time_seconds");
    assert!((now - started).abs() < 60.0, "started {started}, now {now}");
    assert!(gauge(&scrape, "process_resident_memory_bytes").unwrap() > 1e6, "{scrape}");
    assert!(gauge(&scrape, "process_open_fds").unwrap() >= 5.0, "listeners, admin, epoll: {scrape}");
    assert!(gauge(&scrape, "process_cpu_seconds_total").is_some());
    p.stop().await;

    // The bad edit a reload would have refused; then the pod restarts.
    let broken = good.replace("interval = \"200ms\"", "interval = \"soon\"");
    std::fs::write(&path, &broken).unwrap();
    let p = Proxy::start(&path).await.unwrap_or_else(|e| panic!("did not start from the copy:\n{}", e.stderr));
    assert_eq!(get(&client(), service, "/").await, (200, "lg-blue".to_string()), "serving from the copy");
    let err = p.status().await["config"]["last_reload_error"].as_str().unwrap_or_default().to_string();
    assert!(err.contains("sy.toml:5: control.interval"), "the file's problem is shown: {err}");
    assert!(err.contains("last-good.toml"), "and where the running config came from: {err}");
    assert_eq!(gauge(&p.get("/metrics").await, "switchyard_config_last_reload_failed"), Some(1.0));
    assert_eq!(std::fs::read_to_string(&copy).unwrap(), good, "a refused file never replaces the copy");

    // Fixing the file clears the alarm (the watcher reloads it).
    std::fs::write(&path, &good).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while p.status().await["config"]["last_reload_error"] != serde_json::Value::Null {
        assert!(tokio::time::Instant::now() < deadline, "the fixed file was not reloaded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(gauge(&p.get("/metrics").await, "switchyard_config_last_reload_failed"), Some(0.0));
    p.stop().await;

    // Without a copy there is nothing safe to run: exit, listing the problems.
    std::fs::remove_file(&copy).unwrap();
    std::fs::write(&path, &broken).unwrap();
    let Err(exit) = Proxy::start(&path).await else { panic!("started without a good config") };
    assert!(!exit.success);
    assert!(exit.stderr.contains("sy.toml:5: control.interval"), "{}", exit.stderr);
    assert!(exit.stderr.contains("no last good copy"), "{}", exit.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_reload_incidents_and_token() {
    switchyard::tls::install_provider(); // for the test's own reqwest client
    let m = Mocks::start("lgc").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sy.toml");
    let good = config(&dir.path().join("state"), free_port(), free_port(), &m, "");
    std::fs::write(&path, &good).unwrap();
    let p = Proxy::start(&path).await.unwrap_or_else(|e| panic!("{}", e.stderr));

    let (ok, _, err) = p.cli(&["reload"], false).await;
    assert!(!ok && err.contains("--token"), "a mutating call without a token says how to give one: {err}");
    let (ok, out, err) = p.cli(&["reload", "--token", TOKEN], false).await;
    assert!(ok, "{err}");
    assert!(out.contains("config reloaded: generation 2"), "{out}");

    std::fs::write(&path, good.replace("window = \"400ms\"", "window = \"500ms\"")).unwrap();
    let (ok, _, err) = p.cli(&["reload", "--token", TOKEN], false).await;
    assert!(!ok && err.contains("sy.toml:6: control.window: must be a whole number"), "{err}");
    let scrape = p.get("/metrics").await;
    assert_eq!(gauge(&scrape, "switchyard_config_last_reload_failed"), Some(1.0), "a refused reload raises the gauge");
    std::fs::write(&path, &good).unwrap();

    let (ok, out, err) = p.cli(&["rollback", "lg", "--token", TOKEN], false).await;
    assert!(ok, "{out}{err}");
    let (ok, list, err) = p.cli(&["incidents", "--json"], false).await;
    assert!(ok, "{err}");
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    let id = list[0]["id"].as_str().expect("an incident after the rollback").to_string();
    let (ok, out, err) = p.cli(&["incidents", &id], false).await;
    assert!(ok, "{err}");
    assert!(out.starts_with(&format!("incident {id}  service lg  release r1")), "{out}");
    assert!(out.contains("decision to swap:"), "{out}");
    let (ok, _, err) = p.cli(&["incidents", "inc-0-nope"], false).await;
    assert!(!ok && err.contains("404"), "{err}");

    let (ok, out, err) = p.cli(&["reset", "lg", "--token", TOKEN], false).await;
    assert!(ok, "{err}");
    assert!(
        out.contains("lg: rollback cleared: latch, admin weight and pause dropped") && out.contains("· state "),
        "{out}"
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_gives_up_on_a_silent_admin_after_its_timeout() {
    // Accepts connections (the kernel backlog does) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let t = std::time::Instant::now();
    let (ok, _, err) = cli(&["status", "--admin", &url, "--timeout", "300ms"]).await;
    assert!(!ok && err.contains("within 300ms"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(5), "took {:?}", t.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_speaks_https_to_an_admin_behind_tls() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".into()]).unwrap().signed_by(&leaf_key, &ca, &ca_key).unwrap();
    let (ca_pem, cert, key) =
        (write("ca.pem", &ca.pem()), write("cert.pem", &leaf.pem()), write("key.pem", &leaf_key.serialize_pem()));

    // A TLS-terminating Switchyard service whose pools are the admin API: an admin behind TLS.
    let (admin, front) = (free_port(), free_port());
    let text = format!(
        "state_dir = {:?}\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n[[services]]\nname = \"adm\"\n\
         listen = \"127.0.0.1:{front}\"\ntls = {{ cert = {cert:?}, key = {key:?} }}\n\
         health = {{ path = \"/healthz\" }}\nblue = {{ endpoints = [\"127.0.0.1:{admin}\"] }}\n\
         green = {{ endpoints = [\"127.0.0.1:{admin}\"] }}\n",
        dir.path().join("state")
    );
    let p = Proxy::start(&write("sy.toml", &text)).await.unwrap_or_else(|e| panic!("{}", e.stderr));
    let url = format!("https://localhost:{front}");
    let (ok, out, err) = cli(&["status", "--admin", &url, "--ca", ca_pem.to_str().unwrap(), "--json"]).await;
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["services"][0]["name"], "adm", "{v}");
    let (ok, _, err) = cli(&["status", "--admin", &url, "--ca", cert.to_str().unwrap()]).await;
    assert!(!ok && err.contains("cannot reach the admin API"), "an untrusted certificate is refused: {err}");
    p.stop().await;
}
