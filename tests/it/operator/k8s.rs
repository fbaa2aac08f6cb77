//! `docker/k8s/generic`: the proxy as its own Deployment in front of separate blue and green
//! Deployments of one service. Its manifests pass `check_manifests.py` (as `docker/validate.sh`
//! runs it), the config it ships passes `switchyard check`, and the checker fails a copy whose
//! NetworkPolicy lets other pods reach etcd.

use super::support::*;
use std::path::Path;
use std::time::Duration;

async fn check_manifests(python: &Path, script: &Path, dir: &Path) -> (bool, String) {
    let mut cmd = tokio::process::Command::new(python);
    cmd.arg(script).arg(dir);
    let out = tokio::time::timeout(Duration::from_secs(30), cmd.output()).await.expect("finishes").unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test]
async fn generic_kubernetes_example_is_valid_and_keeps_etcd_to_the_proxy() {
    let Some(python) = require_tool("python3", "python3-yaml", "SWITCHYARD_SKIP_PYTHON") else { return };
    let k8s = repo("docker/k8s");
    let (ok, out) = check_manifests(&python, &k8s.join("check_manifests.py"), &k8s.join("generic")).await;
    assert!(ok, "check_manifests.py docker/k8s/generic: {out}");

    // The shipped switchyard.toml is one `switchyard check` accepts.
    let text = std::fs::read_to_string(k8s.join("generic/configmap.yaml")).unwrap();
    let toml: String = text
        .split("switchyard.toml: |\n")
        .nth(1)
        .unwrap()
        .lines()
        .map(|l| l.strip_prefix("    ").unwrap_or(l.trim()))
        .collect::<Vec<_>>()
        .join("\n");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("switchyard.toml");
    std::fs::write(&cfg, toml).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["check", "--config"])
        .arg(&cfg)
        .env("SWITCHYARD_ADMIN_TOKEN", "t")
        .env("SWITCHYARD_REPLICA", "switchyard-0")
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));

    // A copy whose etcd policy admits every namespace is refused.
    let copy = dir.path().join("k8s");
    std::fs::create_dir_all(copy.join("generic")).unwrap();
    for f in ["check_manifests.py", "check_generic.py", "README.md"] {
        std::fs::copy(k8s.join(f), copy.join(f)).unwrap();
    }
    for e in std::fs::read_dir(k8s.join("generic")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), copy.join("generic").join(e.file_name())).unwrap();
    }
    let policy = copy.join("generic/networkpolicy.yaml");
    let open = std::fs::read_to_string(&policy).unwrap().replacen(
        "      from:\n        - podSelector:\n            matchLabels:\n              app.kubernetes.io/name: switchyard",
        "      from:\n        - namespaceSelector: {}\n        - podSelector:\n            matchLabels:\n              app.kubernetes.io/name: switchyard",
        1,
    );
    std::fs::write(&policy, open).unwrap();
    let (ok, out) = check_manifests(&python, &copy.join("check_manifests.py"), &copy.join("generic")).await;
    assert!(!ok && out.contains("etcd admits"), "an open etcd policy passed: {out}");
}
