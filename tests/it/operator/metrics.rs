//! A live `/metrics` scrape is valid Prometheus text (`promtool check metrics`) and its metric
//! families are exactly the names dashboards and alert rules may use (`docker/metric-names.txt`).

use super::support::*;
use crate::support::*;
use std::collections::BTreeSet;
use std::time::Duration;

/// A scrape after traffic, an operator rollback, a reload and a few measurements: every family the
/// code can emit is present.
async fn full_scrape() -> String {
    let s = TwoServices::start("met", 200).await;
    let b = &s.names[1];
    let (code, body) = admin_post(&s.app, &format!("/services/{b}/rollback"), "").await;
    assert_eq!(code, 200, "{body}");
    let decided = scrape_metric(&s.app, "switchyard_control_decisions_total", &[]).await.unwrap_or(0.0);
    let (code, body) = admin_post(&s.app, "/reload", "").await;
    assert_eq!(code, 200, "{body}");
    let addr = s.app.service_addr(&s.names[0]).unwrap();
    burst(addr, 100, 2).await;
    // At least one tick after the rollback, seen as decisions counted after it.
    wait_metric(&s.app, "switchyard_control_decisions_total", &[], |v| v > decided).await;
    let text = scrape(&s.app).await;
    s.app.shutdown().await;
    text
}

fn listed_names() -> BTreeSet<String> {
    let text = std::fs::read_to_string(repo("docker/metric-names.txt")).unwrap();
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_scrape_passes_promtool_and_matches_metric_names() {
    let text = full_scrape().await;
    for needle in
        ["switchyard_rollbacks_total{", "switchyard_rollback_swap_seconds_bucket{", "switchyard_window_p95_seconds{"]
    {
        assert!(text.contains(needle), "scrape has {needle}:\n{text}");
    }
    let emitted = families(&text);
    let listed = listed_names();
    // Fleet families exist only with `[fleet]` (fleet:: scrapes them) and certificate reloads only
    // after a certificate file changed (tls::); this app runs alone, without TLS. Status shares
    // exist only for services with a status_rate trigger (operator::rules reads them).
    let conditional = |n: &str| {
        n.starts_with("switchyard_fleet_")
            || n == "switchyard_tls_certificate_reloads_total"
            || n == "switchyard_window_status_rate"
    };
    let missing: Vec<_> = listed.difference(&emitted).filter(|n| !conditional(n)).collect();
    let unlisted: Vec<_> = emitted.difference(&listed).collect();
    assert!(
        missing.is_empty() && unlisted.is_empty(),
        "docker/metric-names.txt and /metrics disagree.\n  listed but never emitted: {missing:?}\n  \
         emitted but not listed: {unlisted:?}\nscrape:\n{text}"
    );

    let Some(promtool) = require_tool("promtool", "prometheus", "SWITCHYARD_SKIP_PROMTOOL") else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("scrape.prom");
    std::fs::write(&file, &text).unwrap();
    let mut cmd = tokio::process::Command::new(promtool);
    cmd.args(["check", "metrics"]).stdin(std::fs::File::open(&file).unwrap());
    let out = tokio::time::timeout(Duration::from_secs(30), cmd.output()).await.expect("promtool finishes").unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn metric_names_file_matches_the_name_constants() {
    // Names live in `src/stats/names.rs`, except where the module order puts the writer below
    // `stats` (`tls::CERT_RELOADS_TOTAL`): every `pub const NAME: &str = "switchyard_..."` counts.
    let mut consts = BTreeSet::new();
    for file in ["src/stats/names.rs", "src/tls.rs"] {
        let src = std::fs::read_to_string(repo(file)).unwrap();
        consts.extend(src.lines().filter_map(|l| {
            l.trim().strip_prefix("pub const ")?.split_once("&str = \"")?.1.strip_suffix("\";").map(String::from)
        }));
    }
    consts.retain(|n| n.starts_with("switchyard_"));
    assert_eq!(listed_names(), consts, "docker/metric-names.txt lists exactly the metric name constants");
}
