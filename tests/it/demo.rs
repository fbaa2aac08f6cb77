//! `switchyard demo`, the real binary: piped, it prints plain lines (no control codes) with a
//! legend first and a summary last; on a terminal (a pty from `script`), it redraws the table in
//! place.

use crate::support::BIN;
use std::time::Duration;

#[tokio::test]
async fn demo_piped_prints_plain_lines_a_legend_and_a_summary() {
    let out = tokio::process::Command::new(BIN)
        .args(["demo", "--duration", "4"])
        .env_remove("SWITCHYARD_ADMIN_TOKEN")
        .env("TERM", "xterm")
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), out).await.expect("the demo ends").unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains('\u{1b}'), "control codes in piped output:\n{text:?}");
    assert_eq!(text.matches("Legend:").count(), 1, "the legend once:\n{text}");
    assert!(text.matches("t=").count() >= 3, "a table per second:\n{text}");
    assert!(text.contains("legacy (blue)") && text.contains("acge-1.0.0 (green)"), "releases by role:\n{text}");
    let summary = text.split("What happened").nth(1).unwrap_or_else(|| panic!("no summary:\n{text}"));
    assert!(summary.contains("auth") && summary.contains("What to try next:"), "{summary}");
    assert!(summary.contains("switchyard rules --config FILE"), "{summary}");
}

#[tokio::test]
async fn demo_on_a_terminal_refreshes_in_place() {
    let Some(script) = std::env::var_os("PATH")
        .and_then(|p| std::env::split_paths(&p).map(|d| d.join("script")).find(|p| p.is_file()))
    else {
        eprintln!("SKIPPED: `script` (util-linux) not found");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("tty.log");
    let out = tokio::process::Command::new(script)
        .args(["-q", "-e", "-c", &format!("{BIN} demo --duration 3")])
        .arg(&log)
        .env("TERM", "xterm")
        .env_remove("SWITCHYARD_ADMIN_TOKEN")
        .stdin(std::process::Stdio::null())
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), out).await.expect("the demo ends").unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&std::fs::read(&log).unwrap()).into_owned();
    let frames = text.matches("\u{1b}[H\u{1b}[J").count();
    assert!(frames >= 2, "each second redraws from the top ({frames} frames):\n{text:?}");
    // Every frame carries the legend; the summary follows the last frame once.
    assert_eq!(text.matches("Legend:").count(), frames, "{text:?}");
    assert_eq!(text.matches("What happened").count(), 1, "{text:?}");
}
