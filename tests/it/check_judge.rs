//! `switchyard check` is `run`'s judge: each case it must judge, run through the real binary.
//! A refusal must name the key and line; an acceptance must say OK.

use std::path::Path;
use std::process::Command;

const BASE: &str = r#"[admin]
listen = "127.0.0.1:19900"
[control]
interval = "1s"
window = "5s"
[[services]]
name = "a"
listen = "127.0.0.1:18000"
mode = "progressive"
blue = { endpoints = ["127.0.0.1:19000"] }
green = { endpoints = ["127.0.0.1:19100"], release = "r1" }
"#;

const SECOND: &str = r#"
[[services]]
name = "b"
listen = "127.0.0.1:18001"
blue = { endpoints = ["127.0.0.1:19001"] }
green = { endpoints = ["127.0.0.1:19101"] }
"#;

/// Runs `check` on `text`; returns (accepted, stdout, stderr). The admin token variable is
/// removed so the judge sees only what the file says.
fn check(text: &str) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sy.toml");
    std::fs::write(&path, text).unwrap();
    check_path(&path)
}

fn check_path(path: &Path) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["check", "--config"])
        .arg(path)
        .env_remove("SWITCHYARD_ADMIN_TOKEN")
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// Asserts a refusal carrying `sy.toml:LINE: KEY: ...message...` for each `(line, key, words)`.
fn refused(text: &str, expected: &[(usize, &str, &str)]) -> String {
    let (ok, out, err) = check(text);
    assert!(!ok, "accepted:\n{out}");
    for (line, key, words) in expected {
        let want = format!("sy.toml:{line}: {key}: ");
        let hit = err.lines().find(|l| l.contains(&want));
        let hit = hit.unwrap_or_else(|| panic!("no {want:?} in:\n{err}"));
        assert!(hit.contains(words), "{hit:?} lacks {words:?}");
    }
    err
}

#[test]
fn base_is_accepted_and_shows_triggers_and_probes_in_effect() {
    let (ok, out, err) = check(&format!("{BASE}{SECOND}"));
    assert!(ok, "{err}");
    assert!(out.contains("sy.toml: OK"), "{out}");
    let a = out.split("\na:\n").nth(1).expect("a section for service a");
    assert!(a.contains("triggers: p95 > 2s ×2, errors > 1% ×3, availability < 99.9% ×1"), "{a}");
    assert!(a.contains("hash mismatch ×1"), "{a}");
    assert!(a.contains("health:   GET /health every 5s, timeout 1s"), "{a}");
}

#[test]
fn zero_services_are_refused() {
    refused("[control]\ninterval = \"1s\"\n", &[(1, "services", "at least one service")]);
}

#[test]
fn a_port_used_twice_is_refused_even_across_wildcard_and_loopback() {
    let text = format!("{BASE}{}", SECOND.replace("127.0.0.1:18001", "0.0.0.0:18000"));
    refused(&text, &[(15, "services[b].listen", "collides with services[a].listen")]);
    let text = format!("{BASE}{}", SECOND.replace("127.0.0.1:18001", "127.0.0.1:19900"));
    refused(&text, &[(15, "services[b].listen", "collides with admin.listen")]);
}

#[test]
fn a_public_admin_without_a_token_is_refused() {
    let text = BASE.replace("listen = \"127.0.0.1:19900\"", "listen = \"0.0.0.0:19900\"");
    refused(&text, &[(2, "admin.listen", "SWITCHYARD_ADMIN_TOKEN")]);
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let with_token = text.replace("[control]", &format!("token_file = {:?}\n[control]", token.display()));
    let (ok, _, err) = check(&with_token);
    assert!(ok, "a token file makes a public admin acceptable: {err}");
}

#[test]
fn unreadable_tls_and_ca_files_are_refused_all_at_once() {
    let text = BASE
        .replace(
            "mode = \"progressive\"",
            "mode = \"progressive\"\ntls = { cert = \"/nonexistent/c.pem\", key = \"/nonexistent/k.pem\" }",
        )
        .replace("release = \"r1\" }", "release = \"r1\", tls = { ca = \"/nonexistent/ca.pem\" } }");
    refused(&text, &[(10, "services[a].tls", "/nonexistent/c.pem"), (12, "services[a].green.tls.ca", "ca.pem")]);
}

#[test]
fn rollout_order_duplicates_and_missing_progressive_services_are_refused() {
    let text = format!("[rollout]\norder = [\"b\", \"b\", \"ghost\"]\n{BASE}{SECOND}");
    refused(
        &text,
        &[
            (2, "rollout.order[1]", "listed twice"),
            (2, "rollout.order[2]", "\"ghost\" is not a configured service"),
            (2, "rollout.order", "progressive service \"a\" is missing"),
        ],
    );
}

#[test]
fn a_progressive_service_without_a_release_is_refused() {
    refused(&BASE.replace(", release = \"r1\"", ""), &[(11, "services[a].green.release", "release label")]);
}

#[test]
fn a_window_that_is_not_whole_intervals_is_refused() {
    refused(&BASE.replace("window = \"5s\"", "window = \"4500ms\""), &[(5, "control.window", "whole number")]);
}

#[test]
fn an_untagged_enum_error_says_what_to_write() {
    let err = refused(
        &BASE.replace("mode = \"progressive\"", "mode = \"progressive\"\nsticky = { head = \"x-user\" }"),
        &[(10, "services[a].sticky", "{ header = \"NAME\" }")],
    );
    assert!(!err.contains("did not match any variant"), "{err}");
}

#[test]
fn localhost_listen_is_accepted() {
    let (ok, out, err) = check(&BASE.replace("127.0.0.1:18000", "localhost:18000"));
    assert!(ok, "{err}");
    assert!(out.lines().any(|l| l.starts_with("a ") && l.contains("127.0.0.1:18000")), "{out}");
}

#[test]
fn every_problem_is_reported_in_one_pass() {
    let text = format!("[rollout]\norder = [\"a\", \"a\"]\n{}", BASE.replace("window = \"5s\"", "window = \"2500ms\""))
        .replace(", release = \"r1\"", "");
    let err = refused(
        &text,
        &[
            (2, "rollout.order[1]", "listed twice"),
            (7, "control.window", "whole number"),
            (13, "services[a].green.release", "release"),
        ],
    );
    assert!(err.contains("has 3 problem(s)"), "{err}");
}

/// The four problems a new user met one at a time (an unknown key first) come in one report,
/// each service named by its name.
#[test]
fn an_unknown_key_does_not_hide_the_other_problems() {
    let text = format!("{BASE}{SECOND}")
        .replace("window = \"5s\"", "window = \"2500ms\"")
        .replace("mode = \"progressive\"", "mode = \"progressive\"\nhold = \"a while\"\ncolour = \"blue\"")
        .replace("127.0.0.1:18001", "127.0.0.1:18000");
    let err = refused(
        &text,
        &[
            (5, "control.window", "whole number"),
            (10, "services[a].hold", ""),
            (11, "services[a].colour", "unknown field"),
            (17, "services[b].listen", "already used"),
        ],
    );
    assert!(!err.contains("services[0]") && !err.contains("services[1]"), "services by name: {err}");
}

/// The `switchyard.toml: |` block of the shipped ConfigMap, unindented.
fn configmap_toml() -> String {
    let cm = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docker/k8s/configmap.yaml")).unwrap();
    let body = cm.split("switchyard.toml: |\n").nth(1).expect("switchyard.toml block");
    body.lines()
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| l.get(4..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_shipped_configmap_and_compose_configs_pass_with_the_spec_triggers() {
    let compose = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docker/switchyard.toml")).unwrap();
    for (what, text) in [("configmap", configmap_toml()), ("compose", compose)] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sy.toml");
        std::fs::write(&path, &text).unwrap();
        // Their admin listens on 0.0.0.0 (in a pod, a container): the token comes from a Secret.
        let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(["check", "--config"])
            .arg(&path)
            .env("SWITCHYARD_ADMIN_TOKEN", "from-the-secret")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
        let section = |name: &str| stdout.split(&format!("\n{name}:\n")).nth(1).unwrap_or("").to_string();
        assert!(section("auth").contains("status [401] > 0.1% ×3"), "{what}: {stdout}");
        assert!(section("ac").starts_with("  triggers: p95 > 2s ×2, errors > 0.1% ×3"), "{what}: {stdout}");
        let (ok, _, err) = check_path(&path);
        assert!(!ok && err.contains("admin.listen"), "{what} without the token is refused: {err}");
    }
}
