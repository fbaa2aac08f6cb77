//! The status page at `GET /`: self-contained, and what it shows after its scripts ran (headless
//! Chromium) equals `/status`.

use super::support::*;
use crate::support::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_is_self_contained_html() {
    let s = TwoServices::start("page0", 40).await;
    let r = client().get(format!("http://{}/", s.app.admin_addr)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let ctype = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ctype.starts_with("text/html"), "content-type {ctype}");
    let html = r.text().await.unwrap();
    let lower = html.to_ascii_lowercase();
    for (i, _) in lower.match_indices("<script").chain(lower.match_indices("<link")).chain(lower.match_indices("<img"))
    {
        let tag = &lower[i..i + lower[i..].find('>').unwrap()];
        for a in ["src", "href"] {
            if let Some(v) = attr(tag, a) {
                assert!(!v.contains("//"), "external asset in {tag:?}");
            }
        }
    }
    assert!(!lower.contains("@import"), "no CSS imports");
    assert!(!lower.contains("url(http") && !lower.contains("url(//"), "no CSS url() to other hosts");
    assert!(html.contains("\"status\"") && html.contains("fetch("), "the page polls the relative `status` URL");
    // Its buttons act with the operator's token: no other site may frame it.
    assert_eq!(r_headers_frame(&s.app).await, "DENY");
    s.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_in_chromium_matches_status() {
    let Some(chrome) = require_tool("chromium", "chromium", "SWITCHYARD_SKIP_BROWSER") else { return };
    let s = TwoServices::start("page1", 200).await;
    let [a, b] = s.names.clone();
    // b rolled back by an operator: a different state, weight and an incident on the page.
    let (code, _) = admin_post(&s.app, &format!("/services/{b}/rollback"), "").await;
    assert_eq!(code, 200);
    assert!(eventually(Duration::from_secs(5), || service(&s.app, &b)["state"] == "rolled_back").await);

    let profile = tempfile::tempdir().unwrap();
    let url = format!("http://{}/", s.app.admin_addr);
    let cmd = chromium(&chrome, profile.path(), &url, &["--dump-dom"]);
    let (ok, dom, err) = run_with_deadline(cmd, Duration::from_secs(90)).await;
    assert!(ok, "chromium --dump-dom failed: {err}");
    let status = admin_get(&s.app, "/status").await;

    assert!(dom.contains("id=\"conn-text\">live"), "the page says it is live (fetched /status): {dom}");
    for name in [&a, &b] {
        let want = status["services"].as_array().unwrap().iter().find(|x| x["name"] == *name).unwrap();
        let block = service_block(&dom, name).unwrap_or_else(|| panic!("no card for {name} in the DOM:\n{dom}"));
        let got = |f: &str| field_value(block, f).unwrap_or_else(|| panic!("{name}: no data-field={f}"));
        let weight: f64 = got("green_weight").parse().expect("numeric green_weight");
        assert_eq!(weight, want["green_weight"].as_f64().unwrap(), "{name}: green_weight");
        assert_eq!(got("state"), want["state"].as_str().unwrap(), "{name}: state");
        assert_eq!(got("live_release"), want["live_release"].as_str().unwrap_or(""), "{name}: live_release");
        assert_eq!(
            got("candidate_release"),
            want["candidate_release"].as_str().unwrap_or(""),
            "{name}: candidate_release"
        );
        assert_eq!(got("mode"), want["mode"].as_str().unwrap(), "{name}: mode");
        assert_eq!(got("listen"), want["listen"].as_str().unwrap(), "{name}: listen");
        assert_eq!(got("incident"), want["incident"].as_str().unwrap_or(""), "{name}: incident");
    }
    assert_eq!(field_value(service_block(&dom, &a).unwrap(), "green_weight").as_deref(), Some("25"));
    assert_eq!(field_value(service_block(&dom, &b).unwrap(), "state").as_deref(), Some("rolled_back"));
    assert_eq!(field_value(service_block(&dom, &a).unwrap(), "candidate_weight").as_deref(), Some("25"));
    let generation = dom.split("id=\"generation\" data-value=\"").nth(1).and_then(|r| r.split('"').next());
    assert_eq!(
        generation,
        Some(status["config"]["generation"].to_string().as_str()),
        "the config generation, as `switchyard status` says"
    );
    let incident = status["services"][1]["incident"].as_str().expect("b has an incident");
    assert!(dom.contains(&format!("data-incident=\"{incident}\"")), "incident {incident} listed on the page");
    s.app.shutdown().await;
}

async fn r_headers_frame(app: &switchyard::app::App) -> String {
    let r = client().get(format!("http://{}/", app.admin_addr)).send().await.unwrap();
    assert_eq!(r.headers()["content-security-policy"], "frame-ancestors 'none'");
    r.headers()["x-frame-options"].to_str().unwrap().to_string()
}
