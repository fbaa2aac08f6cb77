//! The real binary: `switchyard run` as a child process (killed on drop) and its CLI commands.

use super::{client, TOKEN};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

pub const BIN: &str = env!("CARGO_BIN_EXE_switchyard");

/// `switchyard run` as a child process, killed on drop.
pub struct Proxy {
    child: tokio::process::Child,
    pub admin: String,
    /// Everything the process has written to stderr so far, line by line.
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

/// How a `switchyard run` ended before becoming ready.
pub struct Exit {
    pub success: bool,
    pub stderr: String,
}

impl Proxy {
    /// Starts the binary with the admin token; Ok once its "switchyard ready" line is logged,
    /// Err (with everything it logged) if it exits first.
    pub async fn start(config: &Path) -> Result<Proxy, Exit> {
        Proxy::start_with_env(config, &[]).await
    }

    /// [`Proxy::start`] with more environment variables.
    pub async fn start_with_env(config: &Path, env: &[(&str, &str)]) -> Result<Proxy, Exit> {
        let mut child = tokio::process::Command::new(BIN)
            .args(["--log-json", "run", "--config"])
            .arg(config)
            .envs(env.iter().copied())
            .env("SWITCHYARD_ADMIN_TOKEN", TOKEN)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let kept = log.clone();
        // Keeps draining stderr so the child never blocks on a full pipe; reports the admin
        // address on "ready", or everything logged if stderr closes first (the process exited).
        tokio::spawn(async move {
            let mut tx = Some(tx);
            while let Ok(Some(line)) = lines.next_line().await {
                let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                if v["fields"]["message"] == "switchyard ready" {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(Ok(v["fields"]["admin"].as_str().unwrap_or_default().to_string()));
                    }
                }
                let mut seen = kept.lock().unwrap();
                seen.push_str(&line);
                seen.push('\n');
            }
            if let Some(tx) = tx.take() {
                let _ = tx.send(Err(kept.lock().unwrap().clone()));
            }
        });
        match tokio::time::timeout(Duration::from_secs(20), rx).await.expect("ready or exit within 20 s").unwrap() {
            Ok(addr) => Ok(Proxy { child, admin: format!("http://{addr}"), log }),
            Err(stderr) => {
                let status = child.wait().await.unwrap();
                Err(Exit { success: status.success(), stderr })
            }
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// Everything logged to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub async fn stop(mut self) {
        self.child.kill().await.unwrap();
    }

    pub async fn get(&self, path: &str) -> String {
        client().get(format!("{}{path}", self.admin)).send().await.unwrap().text().await.unwrap()
    }

    pub async fn status(&self) -> serde_json::Value {
        serde_json::from_str(&self.get("/status").await).unwrap()
    }

    /// Runs `switchyard ARGS --admin URL`, with the token in the environment or without it;
    /// returns (ok, stdout, stderr).
    pub async fn cli(&self, args: &[&str], token: bool) -> (bool, String, String) {
        let env = token.then_some(TOKEN);
        cli_env(&[args, &["--admin", &self.admin]].concat(), env).await
    }

    /// Runs a command (with the token) that must succeed and returns its stdout.
    pub async fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.cli(args, true).await;
        assert!(ok, "switchyard {args:?} failed:\n{out}{err}");
        out
    }
}

/// Runs `switchyard ARGS` with none of the admin variables set; returns (ok, stdout, stderr).
pub async fn cli(args: &[&str]) -> (bool, String, String) {
    cli_env(args, None).await
}

async fn cli_env(args: &[&str], token: Option<&str>) -> (bool, String, String) {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(args)
        .env_remove("SWITCHYARD_ADMIN")
        .env_remove("SWITCHYARD_ADMIN_TOKEN")
        .env_remove("SWITCHYARD_ADMIN_CA");
    if let Some(t) = token {
        cmd.env("SWITCHYARD_ADMIN_TOKEN", t);
    }
    let out = tokio::time::timeout(Duration::from_secs(20), cmd.output()).await.expect("cli finishes").unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}
