//! Helpers for the operator tests: required external tools, a two-service app with traffic,
//! scraping, and attribute lookup in a dumped DOM.

use crate::support::*;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use switchyard::app::App;

/// The path of `tool`, or `None` when it is missing and `skip_env=1` allows skipping. Panics with
/// the install command otherwise: CI installs the tool, so a missing one is a broken setup.
pub fn require_tool(tool: &str, package: &str, skip_env: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(tool))
        .find(|p| p.is_file());
    if found.is_some() {
        return found;
    }
    if std::env::var(skip_env).as_deref() == Ok("1") {
        eprintln!("SKIPPED: `{tool}` not found and {skip_env}=1");
        return None;
    }
    panic!(
        "`{tool}` is not installed: install it with `apt-get install -y {package}` \
         (.ci/run does this), or set {skip_env}=1 to skip this test"
    );
}

/// Runs `cmd` with a hard deadline, returning (exit success, stdout, stderr).
pub async fn run_with_deadline(mut cmd: tokio::process::Command, limit: Duration) -> (bool, String, String) {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let out = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{cmd:?} did not finish within {limit:?}"))
        .expect("wait for child");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Headless Chromium with a throwaway profile and no background traffic; `extra` selects the output.
pub fn chromium(bin: &PathBuf, profile: &std::path::Path, url: &str, extra: &[&str]) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(bin);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--virtual-time-budget=4000",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(extra)
    .arg(url);
    c
}

/// An app with two manual services and their mocks, warmed up with traffic.
pub struct TwoServices {
    pub app: App,
    pub names: [String; 2],
    /// Kept alive for the app's lifetime: the upstreams and the config/state directory.
    _mocks: Vec<Mocks>,
    _env: Env,
}

impl TwoServices {
    /// Starts `{prefix}a` (green 25 %, release `r-a1`) and `{prefix}b` (green 60 %, `r-b2`) with a
    /// 100 ms control interval and a critical alert webhook, sends `requests` to each, and waits
    /// for two measurements.
    pub async fn start(prefix: &str, requests: usize) -> TwoServices {
        let names = [format!("{prefix}a"), format!("{prefix}b")];
        let mut body = String::new();
        let mut mocks = Vec::new();
        for (name, (weight, release)) in names.iter().zip([(25, "r-a1"), (60, "r-b2")]) {
            let m = Mocks::start(name).await;
            body += &service_toml(name, "127.0.0.1:0", &format!("green_weight = {weight}"), &m.pools(release));
            mocks.push(m);
        }
        // A critical webhook (any mock answers 200), so rollbacks are delivered and counted.
        body = format!("[alerts]\ncritical = [\"http://{}/hook\"]\n{body}", mocks[0].blue.addr());
        let env = Env::new(FAST, &body);
        let app = env.start().await;
        for name in &names {
            let addr = app.service_addr(name).unwrap();
            let out = burst(addr, requests, 4).await;
            assert!(out.iter().all(|(s, _)| *s == 200), "{name}: every warm-up request answers 200");
        }
        let measured = |app: &App| {
            names.iter().all(|n| service(app, n)["history"]["blue"].as_array().is_some_and(|h| h.len() >= 2))
        };
        assert!(eventually(Duration::from_secs(5), || measured(&app)).await, "two measurements per service");
        TwoServices { app, names, _mocks: mocks, _env: env }
    }
}

/// The DOM text from the element with `data-service="name"` to the next service card (or the end
/// of the services grid): the part of the page that describes that service.
pub fn service_block<'a>(dom: &'a str, name: &str) -> Option<&'a str> {
    let start = dom.find(&format!("data-service=\"{name}\""))?;
    let rest = &dom[start + 1..];
    let end = [rest.find("data-service=\""), rest.find("</section>")].into_iter().flatten().min().unwrap_or(rest.len());
    Some(&dom[start..start + 1 + end])
}

/// `data-value` of the element carrying `data-field="field"` inside `block` (entities decoded).
pub fn field_value(block: &str, field: &str) -> Option<String> {
    let at = block.find(&format!("data-field=\"{field}\""))?;
    let open = block[..at].rfind('<')?;
    let close = at + block[at..].find('>')?;
    attr(&block[open..close], "data-value")
}

/// The value of `name="..."` in one tag's text.
pub fn attr(tag: &str, name: &str) -> Option<String> {
    let key = format!(" {name}=\"");
    let from = tag.find(&key)? + key.len();
    let len = tag[from..].find('"')?;
    Some(decode_entities(&tag[from..from + len]))
}

fn decode_entities(s: &str) -> String {
    s.replace("&quot;", "\"").replace("&lt;", "<").replace("&gt;", ">").replace("&#39;", "'").replace("&amp;", "&")
}

/// The `switchyard_*` metric families in a Prometheus text scrape (from `# TYPE` lines and samples,
/// with histogram suffixes folded into their family).
pub fn families(scrape: &str) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    for line in scrape.lines() {
        let name = match line.strip_prefix("# TYPE ") {
            Some(rest) => rest.split_whitespace().next().unwrap_or(""),
            None if line.starts_with('#') => continue,
            None => line.split(['{', ' ']).next().unwrap_or(""),
        };
        if !name.starts_with("switchyard_") {
            continue;
        }
        let base = ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
        let family = if scrape.contains(&format!("# TYPE {base} histogram")) { base } else { name };
        out.insert(family.to_string());
    }
    out
}

/// The repository root (for shipped files).
pub fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}
