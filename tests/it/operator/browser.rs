//! Headless Chromium driven over the DevTools protocol, to click what an operator clicks. The
//! protocol runs over `--remote-debugging-pipe` (NUL-separated JSON on the browser's fds 3 and
//! 4, which a shell maps to the child's stdin and stdout), so the kit needs no WebSocket client.

use serde_json::{json, Value};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// One browser with one page, killed on drop.
pub struct Browser {
    _child: tokio::process::Child,
    input: tokio::process::ChildStdin,
    replies: mpsc::UnboundedReceiver<Value>,
    next: u64,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts Chromium on `url` and attaches to its page.
    pub async fn open(chrome: &Path, url: &str) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let mut child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg("exec \"$0\" \"$@\" 3<&0 4>&1 </dev/null >/dev/null 2>/dev/null")
            .arg(chrome)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-pipe",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start chromium");
        let input = child.stdin.take().unwrap();
        let mut output = child.stdout.take().unwrap();
        let (tx, replies) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let (mut buf, mut chunk) = (Vec::new(), vec![0u8; 64 * 1024]);
            while let Ok(n) = output.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                while let Some(end) = buf.iter().position(|&b| b == 0) {
                    let msg: Vec<u8> = buf.drain(..=end).collect();
                    if let Ok(v) = serde_json::from_slice::<Value>(&msg[..msg.len() - 1]) {
                        if v.get("id").is_some() && tx.send(v).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        let mut b = Browser { _child: child, input, replies, next: 0, session: String::new(), _profile: profile };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let target = loop {
            let targets = b.call("Target.getTargets", json!({}), false).await;
            let page = targets["targetInfos"].as_array().into_iter().flatten().find(|t| t["type"] == "page");
            if let Some(t) = page {
                break t["targetId"].as_str().unwrap().to_string();
            }
            assert!(tokio::time::Instant::now() < deadline, "no page target: {targets}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let attached = b.call("Target.attachToTarget", json!({"targetId": target, "flatten": true}), false).await;
        b.session = attached["sessionId"].as_str().expect("a session").to_string();
        b
    }

    /// Sends one command (to the page's session when `page`) and returns its result.
    async fn call(&mut self, method: &str, params: Value, page: bool) -> Value {
        self.next += 1;
        let id = self.next;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if page {
            msg["sessionId"] = json!(self.session);
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        self.input.write_all(&bytes).await.expect("write to chromium");
        loop {
            let v = tokio::time::timeout(Duration::from_secs(30), self.replies.recv())
                .await
                .unwrap_or_else(|_| panic!("chromium did not answer {method}"))
                .expect("chromium exited");
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    /// Evaluates `expr` in the page (awaiting a promise) and returns its value.
    pub async fn eval(&mut self, expr: &str) -> Value {
        let r = self
            .call("Runtime.evaluate", json!({"expression": expr, "awaitPromise": true, "returnByValue": true}), true)
            .await;
        assert!(r.get("exceptionDetails").is_none(), "{expr}: {r}");
        r["result"]["value"].clone()
    }

    /// Evaluates `expr` every 50 ms until it is truthy (not null, false, 0 or ""; an exception,
    /// e.g. while the page is still loading, counts as false), and returns it; fails after 20 s
    /// naming `what` and the page's text.
    pub async fn wait(&mut self, what: &str, expr: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let guarded = format!("(() => {{ try {{ return ({expr}); }} catch (e) {{ return null; }} }})()");
        loop {
            let v = self.eval(&guarded).await;
            let truthy = !(v.is_null() || v == false || v == 0 || v == "");
            if truthy {
                return v;
            }
            if tokio::time::Instant::now() > deadline {
                let text = self.eval("document.body ? document.body.innerText : ''").await;
                panic!("{what}: `{expr}` never held; the page says:\n{}", text.as_str().unwrap_or(""));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
