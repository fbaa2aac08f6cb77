//! The configs the repository ships are valid and describe the spec's seven services; `switchyard
//! check` (the real binary) accepts the sample and reports every problem of a broken file.

use super::support::*;
use std::path::Path;
use std::process::Command;

const SPEC: [(&str, u16); 7] =
    [("auth", 8000), ("ac", 8001), ("integrity", 8002), ("fv", 8003), ("gs", 8004), ("pgc", 8005), ("ec", 8006)];

fn assert_spec_services(source: &str, path: &Path) {
    let cfg = switchyard::config::parse(source, path).unwrap_or_else(|e| panic!("{} is invalid:\n{e}", path.display()));
    assert_eq!(&*cfg.constitutional_hash, "cdd01ef066bc6cf2", "{}: constitutional_hash", path.display());
    let got: Vec<(&str, u16)> = cfg.services.iter().map(|s| (&*s.name, s.listen.port())).collect();
    assert_eq!(got, SPEC, "{}: services in spec order with their ports", path.display());
    let order: Vec<&str> = cfg.rollout.order.iter().map(|s| &**s).collect();
    assert_eq!(order, SPEC.map(|(n, _)| n), "{}: rollout order", path.display());
}

/// The block scalar under `key: |` in a YAML file, de-indented (enough for a ConfigMap).
fn yaml_block(yaml: &str, key: &str) -> Option<String> {
    let mut lines = yaml.lines().skip_while(|l| l.trim() != format!("{key}: |"));
    let head = lines.next()?;
    let key_indent = head.len() - head.trim_start().len();
    let body: Vec<&str> =
        lines.take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > key_indent).collect();
    let indent = body.iter().filter(|l| !l.trim().is_empty()).map(|l| l.len() - l.trim_start().len()).min()?;
    Some(body.iter().map(|l| l.get(indent..).unwrap_or("")).collect::<Vec<_>>().join("\n"))
}

#[test]
fn shipped_configs_are_valid_and_follow_the_spec() {
    for file in ["config/switchyard.toml", "docker/switchyard.toml"] {
        let path = repo(file);
        assert_spec_services(&std::fs::read_to_string(&path).unwrap(), &path);
    }
    let cm = repo("docker/k8s/configmap.yaml");
    let toml = yaml_block(&std::fs::read_to_string(&cm).unwrap(), "switchyard.toml")
        .expect("configmap.yaml has a `switchyard.toml: |` block");
    assert_spec_services(&toml, &cm);
}

fn check(config: &Path) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["check", "--config"])
        .arg(config)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn check_accepts_the_sample_config() {
    let (ok, out, err) = check(Path::new("config/switchyard.toml"));
    assert!(ok, "switchyard check failed:\n{out}{err}");
    assert!(out.contains("config/switchyard.toml: OK"), "{out}");
    for (name, port) in SPEC {
        let line = out.lines().find(|l| l.split_whitespace().next() == Some(name));
        let line = line.unwrap_or_else(|| panic!("no line for {name}:\n{out}"));
        assert!(line.contains(&format!(":{port}")), "{name} on port {port}: {line}");
    }
}

#[test]
fn check_reports_every_problem_with_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.toml");
    let text = std::fs::read_to_string(repo("config/switchyard.toml")).unwrap();
    // Two independent problems: a weight out of range and an unparseable interval.
    let text = text.replacen("green_weight = 0 ", "green_weight = 250 ", 1).replacen(
        "interval = \"30s\"",
        "interval = \"soon\"",
        1,
    );
    std::fs::write(&path, &text).unwrap();
    let (ok, out, err) = check(&path);
    assert!(!ok, "a broken file must fail:\n{out}{err}");
    let located: Vec<&str> = err.lines().filter(|l| l.starts_with(&format!("{}:", path.display()))).collect();
    assert!(!located.is_empty(), "problems as `file:line: key: message`:\n{err}");
    for l in &located {
        let rest = &l[path.display().to_string().len() + 1..];
        let (line, rest) = rest.split_once(": ").unwrap_or_else(|| panic!("no line number: {l}"));
        assert!(line.parse::<usize>().is_ok_and(|n| n > 0), "line number in {l}");
        let (key, msg) = rest.split_once(": ").unwrap_or_else(|| panic!("no key: {l}"));
        assert!(!key.is_empty() && !msg.is_empty(), "key and message in {l}");
    }
    for key in [": control.interval: ", ": services[auth].green_weight: "] {
        assert!(located.iter().any(|l| l.contains(key)), "both problems reported together, {key:?} among:\n{err}");
    }
}
