//! The operator CLI against the real binary: `switchyard run` with a token on loopback port 0,
//! then `status`, `weight`, `rollback`, `incidents`, `reset`, as tables and as `--json`.

use crate::support::*;

/// What the CLI tests need beyond the kit's `Proxy`.
trait Cli {
    async fn json(&self, args: &[&str]) -> serde_json::Value;
    async fn service(&self, name: &str) -> serde_json::Value;
}

impl Cli for Proxy {
    /// `--json` output of a command that must succeed.
    async fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.ok(&[args, &["--json"]].concat()).await;
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("--json output of {args:?} is not JSON ({e}):\n{out}"))
    }

    async fn service(&self, name: &str) -> serde_json::Value {
        let v = self.status().await;
        v["services"].as_array().unwrap().iter().find(|s| s["name"] == name).cloned().unwrap()
    }
}

/// Starts two manual services (`clia` at 10 %, `clib` at 50 %) behind the real binary.
async fn setup() -> (Proxy, Env, Vec<Mocks>) {
    switchyard::tls::install_provider(); // for the test's own reqwest client
    let mut body = String::new();
    let mut mocks = Vec::new();
    for (name, w) in [("clia", 10), ("clib", 50)] {
        let m = Mocks::start(name).await;
        body += &service_toml(name, "127.0.0.1:0", &format!("green_weight = {w}"), &m.pools("r7"));
        mocks.push(m);
    }
    let env = Env::new("interval = \"200ms\"\nwindow = \"400ms\"\nmin_samples = 20", &body);
    let proxy = Proxy::start(&env.path).await.unwrap_or_else(|e| panic!("{}", e.stderr));
    (proxy, env, mocks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_incidents_as_tables_and_json() {
    let (p, _env, _mocks) = setup().await;
    let table = p.ok(&["status"]).await;
    let header = table.lines().find(|l| l.starts_with("service")).unwrap_or_else(|| panic!("no header:\n{table}"));
    for col in ["state", "cand%", "green%", "c.p95ms", "l.p95ms", "incident"] {
        assert!(header.contains(col), "column {col} in {header}");
    }
    for (name, w) in [("clia", "10"), ("clib", "50")] {
        let row =
            table.lines().find(|l| l.split_whitespace().next() == Some(name)).unwrap_or_else(|| panic!("{table}"));
        let state = p.service(name).await["state"].as_str().unwrap().to_string();
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells[1], state, "{row}");
        assert_eq!(cells[2].parse::<f64>().unwrap(), w.parse::<f64>().unwrap(), "the candidate's share: {row}");
        assert_eq!(cells[3].parse::<f64>().unwrap(), w.parse::<f64>().unwrap(), "green's (the candidate): {row}");
    }
    let v = p.json(&["status"]).await;
    let names: Vec<&str> = v["services"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["clia", "clib"]);
    assert_eq!(v["services"][0]["green_weight"], 10.0);

    let empty = p.ok(&["incidents"]).await;
    assert_eq!(empty.lines().count(), 1, "only the header without incidents:\n{empty}");
    assert_eq!(p.json(&["incidents"]).await, serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weight_rollback_reset_change_the_proxy() {
    let (p, _env, _mocks) = setup().await;

    let out = p.ok(&["weight", "clia", "25"]).await;
    assert!(out.contains("clia: candidate green (r7) at 25 %"), "{out}");
    assert!(out.contains("clia: live blue 75 % · candidate green (r7) 25 % · state canary (green 25%)"), "{out}");
    assert_eq!(p.service("clia").await["green_weight"], 25.0);
    let v = p.json(&["weight", "clib", "40"]).await;
    assert_eq!((v["name"].as_str(), v["green_weight"].as_f64()), (Some("clib"), Some(40.0)), "{v}");
    assert_eq!(p.service("clib").await["green_weight"], 40.0);

    let out = p.ok(&["rollback", "clia"]).await;
    assert!(out.contains("clia: rolled back: all traffic to live blue"), "{out}");
    assert!(out.contains("· state rolled_back (green 0%)"), "{out}");
    let v = p.json(&["rollback", "clib"]).await;
    assert_eq!(v["state"], "rolled_back", "{v}");
    for name in ["clia", "clib"] {
        let s = p.service(name).await;
        assert_eq!((s["state"].as_str(), s["green_weight"].as_f64()), (Some("rolled_back"), Some(0.0)), "{s}");
    }

    let table = p.ok(&["incidents"]).await;
    let incidents = p.json(&["incidents"]).await;
    let list = incidents.as_array().unwrap();
    assert_eq!(list.len(), 2, "{incidents}");
    for inc in list {
        let id = inc["id"].as_str().unwrap();
        let row = table.lines().find(|l| l.starts_with(id)).unwrap_or_else(|| panic!("no row for {id}:\n{table}"));
        assert!(row.contains(inc["service"].as_str().unwrap()), "{row}");
    }

    let out = p.ok(&["reset", "clia"]).await;
    assert!(out.starts_with("clia: rollback cleared") && !out.contains("rolled_back"), "{out}");
    let v = p.json(&["reset", "clib"]).await;
    assert_ne!(v["state"], "rolled_back", "{v}");
    for name in ["clia", "clib"] {
        assert_ne!(p.service(name).await["state"], "rolled_back");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutating_without_a_token_fails_clearly() {
    let (p, _env, _mocks) = setup().await;
    for args in [&["weight", "clia", "30"][..], &["rollback", "clia"], &["reset", "clia", "--json"]] {
        let (ok, out, err) = p.cli(args, false).await;
        assert!(!ok, "{args:?} without a token must fail:\n{out}");
        assert!(err.contains("SWITCHYARD_ADMIN_TOKEN"), "{args:?}: the error names the variable to set:\n{err}");
    }
    assert_eq!(p.service("clia").await["green_weight"], 10.0, "nothing changed");
    let (ok, _, err) = p.cli(&["status"], false).await;
    assert!(ok, "reads need no token: {err}");
}
