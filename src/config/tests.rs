use super::*;
use std::path::Path;

const BASE: &str = r#"
[control]
interval = "1s"
window = "5s"
[[services]]
name = "a"
listen = "127.0.0.1:8000"
blue = { endpoints = ["127.0.0.1:9000"] }
green = { endpoints = ["127.0.0.1:9100"], release = "r1" }
"#;

#[test]
fn defaults_are_the_migration_spec() {
    let c = parse(BASE, Path::new("t.toml")).unwrap();
    assert_eq!(&*c.constitutional_hash, DEFAULT_CONSTITUTIONAL_HASH);
    assert_eq!(c.control.min_samples, 100);
    assert_eq!(c.services[0].triggers, Triggers::default());
    assert_eq!(c.services[0].plan.steps.iter().map(|w| w.bp()).collect::<Vec<_>>(), vec![100, 1000, 5000, 10_000]);
    assert!(c.admin.listen.ip().is_loopback());
}

#[test]
fn every_problem_is_reported_with_its_line_and_key() {
    let bad = BASE
        .replace("interval = \"1s\"", "interval = \"soon\"")
        .replace("listen = \"127.0.0.1:8000\"", "listen = \"127.0.0.1:8000\"\ngreen_weight = 100.5\nmode = \"fast\"");
    let e = parse(&bad, Path::new("t.toml")).unwrap_err();
    let keys: Vec<(&str, Option<usize>)> = e.problems.iter().map(|p| (p.key.as_str(), p.line)).collect();
    assert!(keys.contains(&("control.interval", Some(3))), "{keys:?}");
    assert!(keys.contains(&("services[a].green_weight", Some(8))), "{keys:?}");
    assert!(keys.contains(&("services[a].mode", Some(9))), "{keys:?}");
    assert_eq!(keys.len(), 3, "a bad interval does not also blame the window: {keys:?}");
    assert!(e.to_string().contains("t.toml:3: control.interval"));
}

#[test]
fn unknown_keys_are_errors_not_silent_defaults() {
    let e = parse(&BASE.replace("[control]", "[control]\nintervall = \"1s\""), Path::new("t.toml")).unwrap_err();
    assert_eq!(e.problems[0].line, Some(3));
    assert!(e.problems[0].message.contains("intervall"), "{}", e.problems[0].message);
}

#[test]
fn service_triggers_override_the_global_ones_key_by_key() {
    let text = BASE.to_string() + "triggers.error_rate = { above = 0.001, consecutive = 3 }\n";
    let c = parse(&text, Path::new("t.toml")).unwrap();
    let t = &c.services[0].triggers;
    assert_eq!(t.error_rate, Some(Trigger { threshold: 0.001, consecutive: 3 }));
    assert_eq!(t.p95_latency, Triggers::default().p95_latency);
}

#[test]
fn plans_must_increase_and_end_at_one_hundred() {
    let e = parse(&(BASE.to_string() + "steps = [10, 5, 100]\n"), Path::new("t.toml")).unwrap_err();
    assert!(e.problems.iter().any(|p| p.key == "services[a].steps"), "{e}");
    let e = parse(&(BASE.to_string() + "steps = [10, 50]\n"), Path::new("t.toml")).unwrap_err();
    assert!(e.problems.iter().any(|p| p.key == "services[a].steps"), "{e}");
}

#[test]
fn duplicate_names_and_ports_are_rejected() {
    let dup = BASE.to_string() + &BASE[BASE.find("[[services]]").unwrap()..];
    let e = parse(&dup, Path::new("t.toml")).unwrap_err();
    assert!(e.problems.iter().any(|p| p.key == "services[1].name"), "{e}");
    assert!(e.problems.iter().any(|p| p.key == "services[1].listen"), "{e}");
}

#[test]
fn without_fleet_there_is_no_fleet() {
    assert_eq!(parse(BASE, Path::new("t.toml")).unwrap().fleet, None);
}

#[test]
fn fleet_section_is_validated_with_key_paths() {
    let ok = format!(
        "{BASE}\n[fleet]\nstore = \"etcd\"\nendpoints = [\"http://127.0.0.1:2379\"]\nprefix = \"/sy/a/\"\nreplica = \"pod-a\"\nlease_ttl = \"3s\"\n"
    );
    let f = parse(&ok, Path::new("t.toml")).unwrap().fleet.unwrap();
    assert_eq!((f.prefix.as_str(), f.replica.as_str(), f.lease_ttl.as_secs()), ("/sy/a", "pod-a", 3));
    assert_eq!(f.alert_hold, std::time::Duration::from_secs(30), "the default hold of a cut-off rollback's alert");
    let bad = format!(
        "{BASE}\n[fleet]\nstore = \"zk\"\nendpoints = [\"nope\"]\nlease_ttl = \"1500ms\"\nalert_hold = \"soon\"\n"
    );
    let e = parse(&bad, Path::new("t.toml")).unwrap_err();
    let keys: Vec<&str> = e.problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["fleet.store", "fleet.endpoints[0]", "fleet.lease_ttl", "fleet.alert_hold"], "{e}");
}

#[test]
fn a_trigger_without_its_threshold_inherits_it() {
    let text = BASE.replace(
        "release = \"r1\" }",
        "release = \"r1\" }\ntriggers = { compliance = { enabled = false }, error_rate = { consecutive = 5 } }\n\
         health = { enabled = false }",
    );
    let c = parse(&text, Path::new("t.toml")).unwrap();
    let s = &c.services[0];
    assert_eq!(s.triggers.compliance, None);
    assert_eq!(s.triggers.error_rate, Some(Trigger { threshold: 0.01, consecutive: 5 }));
    assert!(!s.health.enabled);
    assert!(s.health.require_hash, "the hash trigger is still on, so probes still ask for it");
}

/// An unknown key no longer hides the file's other problems: the bad duration, the window that
/// is not whole intervals and the port used twice come in the same report, services by name.
#[test]
fn every_problem_is_reported_at_once_with_services_by_name() {
    let text = r#"[control]
interval = "10s"
window = "25s"
[[services]]
name = "shop"
listen = "127.0.0.1:8080"
colour = "blue"
blue = { endpoints = ["127.0.0.1:9001"], weigth = 3 }
green = { endpoints = ["127.0.0.1:9002"] }
[[services]]
name = "cart"
listen = "127.0.0.1:8080"
hold = "forever"
blue = { endpoints = ["127.0.0.1:9003"] }
green = { endpoints = ["127.0.0.1:9004"] }
"#;
    let e = super::parse(text, std::path::Path::new("sy.toml")).unwrap_err();
    let got: Vec<(String, Option<usize>)> = e.problems.iter().map(|p| (p.key.clone(), p.line)).collect();
    let shown = e.to_string();
    for (key, line) in [
        ("services[shop].colour", 7),
        ("services[shop].blue", 8),
        ("control.window", 3),
        ("services[cart].listen", 12),
        ("services[cart].hold", 13),
    ] {
        assert!(got.contains(&(key.to_string(), Some(line))), "{key} at line {line} in:\n{shown}\n{got:?}");
    }
    assert!(!shown.contains("services[0]") && !shown.contains("services[1]"), "{shown}");
}

#[test]
fn fleet_tls_is_accepted_for_https_members_only_and_its_files_must_load() {
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("ca.pem");
    let key = dir.path().join("client.key");
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    std::fs::write(&pem, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
    let (p, k) = (pem.display(), key.display());
    let ok = format!(
        "{BASE}\n[fleet]\nendpoints = [\"https://127.0.0.1:2379\", \"http://10.0.0.2:2379\"]\nreplica = \"a\"\n\
         ca = \"{p}\"\ncert = \"{p}\"\nkey = \"{k}\"\nwatch_silence = \"4s\"\n"
    );
    let f = parse(&ok, Path::new("t.toml")).unwrap().fleet.unwrap();
    assert_eq!(f.tls.ca.as_deref(), Some(pem.as_path()));
    assert_eq!(f.tls.identity, Some((pem.clone(), key.clone())));
    assert_eq!(f.watch_silence, std::time::Duration::from_secs(4));

    let plain = format!(
        "{BASE}\n[fleet]\nendpoints = [\"http://127.0.0.1:2379\"]\nreplica = \"a\"\nca = \"{p}\"\ncert = \"{p}\"\n"
    );
    let e = parse(&plain, Path::new("t.toml")).unwrap_err();
    let keys: Vec<&str> = e.problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["fleet.ca", "fleet.cert", "fleet.cert"], "{e}");
    let unreadable =
        format!("{BASE}\n[fleet]\nendpoints = [\"https://127.0.0.1:2379\"]\nreplica = \"a\"\nca = \"{k}\"\n");
    let e = parse(&unreadable, Path::new("t.toml")).unwrap_err();
    assert_eq!(e.problems[0].key, "fleet.ca", "a key is no CA bundle: {e}");
    let secret =
        format!("{BASE}\n[fleet]\nendpoints = [\"https://127.0.0.1:2379\"]\nreplica = \"a\"\npassword = \"x\"\n");
    assert!(parse(&secret, Path::new("t.toml")).is_err(), "no password in the file");
}
