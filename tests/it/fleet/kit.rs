//! Real `switchyard run` processes in a fleet, with knobs for the fault tests: several
//! services, a given state dir (kept or emptied on restart), a release and a plan per process,
//! an etcd endpoint (possibly through a freezable link) and extra environment (libfaketime).
//! Also `Link`, a TCP relay on loopback that can be frozen: a one-replica partition.

#![allow(dead_code)]

use crate::support::{client, Mocks, TOKEN};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How one process is configured.
#[derive(Clone)]
pub struct Spec {
    pub name: String,
    pub prefix: String,
    pub etcd: String,
    pub services: Vec<String>,
    pub release: String,
    pub steps: String,
    pub hold: String,
    pub env: Vec<(String, String)>,
    pub lease_ttl: String,
    /// `[control] interval` (windows are published to the store once per interval per service).
    pub interval: String,
    /// Appended to the config as is (e.g. an `[alerts]` table).
    pub extra: String,
}

impl Spec {
    pub fn new(name: &str, prefix: &str, etcd: &str, services: usize, tag: &str) -> Spec {
        Spec {
            name: name.into(),
            prefix: prefix.into(),
            etcd: etcd.into(),
            services: (0..services).map(|i| format!("{tag}{i}")).collect(),
            release: "g-1".into(),
            steps: "[10, 50, 100]".into(),
            hold: "1s".into(),
            env: Vec::new(),
            lease_ttl: "2s".into(),
            interval: "250ms".into(),
            extra: String::new(),
        }
    }
}

pub struct Proc {
    pub spec: Spec,
    child: Option<Child>,
    pub admin: SocketAddr,
    /// Each service's listener (kept across restarts).
    pub listeners: Vec<SocketAddr>,
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.cont();
        self.kill();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(25).collect::<Vec<_>>().into_iter().rev().collect();
            eprintln!("--- log of {} (last 25 lines)\n{}", self.spec.name, tail.join("\n"));
        }
    }
}

/// An admin address and `n` service addresses, all different: bound at once before being let
/// go (ports taken one at a time can repeat, and the config then refuses the collision).
fn ports(n: usize) -> (SocketAddr, Vec<SocketAddr>) {
    let held: Vec<std::net::TcpListener> =
        (0..=n).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    let mut addrs = held.iter().map(|l| l.local_addr().unwrap());
    (addrs.next().unwrap(), addrs.collect())
}

impl Proc {
    /// Starts a process with a fresh (empty) state dir.
    pub fn start(spec: Spec, m: &Mocks) -> Proc {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let (admin, listeners) = ports(spec.services.len());
        let mut p = Proc { spec, child: None, admin, listeners, dir, _tmp: Some(tmp) };
        p.launch(m);
        p.rebind_if_taken(m);
        p
    }

    /// Ports come from binding port 0 and letting go, so another process may take one before
    /// this one binds it: then start again on fresh ports (a harness race, not a fleet fault).
    fn rebind_if_taken(&mut self, m: &Mocks) {
        for _ in 0..3 {
            let until = Instant::now() + Duration::from_secs(10);
            loop {
                // Ready, not merely listening: the admin port is bound before the services', so
                // an answering admin port does not yet say that every service port was free.
                if self.log().contains("switchyard ready") {
                    return;
                }
                let exited = self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_some());
                if exited && self.log().contains("Address already in use") {
                    break;
                }
                if exited || Instant::now() > until {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            self.child = None;
            let _ = std::fs::remove_file(self.dir.join("log"));
            (self.admin, self.listeners) = ports(self.listeners.len());
            self.launch(m);
        }
    }

    fn launch(&mut self, m: &Mocks) {
        let s = &self.spec;
        let mut services = String::new();
        for (name, addr) in s.services.iter().zip(&self.listeners) {
            let pools = m.pools(&s.release);
            services += &format!(
                "[[services]]\nname = \"{name}\"\nlisten = \"{addr}\"\nmode = \"progressive\"\n{pools}\
                 triggers = {{ error_rate = {{ above = 0.5 }} }}\n"
            );
        }
        let cfg = format!(
            "state_dir = \"{state}\"\n[admin]\nlisten = \"{admin}\"\ntoken_file = \"{token}\"\n\
             [control]\ninterval = \"{interval}\"\nwindow = \"{interval}\"\nmin_samples = 0\n\
             [rollout]\nsteps = {steps}\nhold = \"{hold}\"\nhealthy_measurements = 1\nsequential = false\n{services}\
             [fleet]\nendpoints = [\"{url}\"]\nprefix = \"{prefix}\"\nreplica = \"{name}\"\nlease_ttl = \"{ttl}\"\n{extra}",
            state = self.dir.join("state").display(),
            token = self.dir.join("token").display(),
            admin = self.admin,
            steps = s.steps,
            interval = s.interval,
            hold = s.hold,
            url = s.etcd,
            prefix = s.prefix,
            name = s.name,
            ttl = s.lease_ttl,
            extra = s.extra,
        );
        std::fs::create_dir_all(&self.dir).unwrap();
        std::fs::write(self.dir.join("token"), TOKEN).unwrap();
        let path = self.dir.join("switchyard.toml");
        std::fs::write(&path, cfg).unwrap();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("log")).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchyard"));
        cmd.args(["run", "--config"]).arg(&path).env("RUST_LOG", "info").stdout(Stdio::null()).stderr(log);
        for (k, v) in &s.env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().unwrap());
    }

    /// SIGKILL (a crash: no lease revoke).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Crash, then start again with an emptied state dir (a rolling update's new pod).
    pub fn restart_empty(&mut self, m: &Mocks) {
        self.kill();
        let _ = std::fs::remove_dir_all(self.dir.join("state"));
        self.launch(m);
    }

    fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill").args([sig, &c.id().to_string()]).status();
        }
    }

    /// Freezes the process (a GC pause, CPU throttling, a VM migration).
    pub fn stop(&self) {
        self.signal("-STOP");
    }

    pub fn cont(&self) {
        self.signal("-CONT");
    }

    /// SIGTERM and wait for the exit.
    pub fn terminate(&mut self) {
        self.signal("-TERM");
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    pub async fn status(&self) -> Option<Value> {
        let url = format!("http://{}/status", self.admin);
        let r = client().get(url).timeout(Duration::from_millis(800)).send().await.ok()?;
        r.json().await.ok()
    }

    pub async fn post(&self, path: &str, body: &str) -> (u16, String) {
        let url = format!("http://{}{path}", self.admin);
        match client().post(url).bearer_auth(TOKEN).body(body.to_string()).timeout(Duration::from_secs(3)).send().await
        {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(e) => (0, e.to_string()),
        }
    }

    pub async fn incidents(&self) -> Option<Vec<String>> {
        let url = format!("http://{}/incidents", self.admin);
        let v: Value = client().get(url).timeout(Duration::from_millis(800)).send().await.ok()?.json().await.ok()?;
        Some(v.as_array()?.iter().map(|i| i["id"].as_str().unwrap_or_default().to_string()).collect())
    }
}

/// A service's object in a `/status` document.
pub fn service<'a>(s: &'a Value, name: &str) -> &'a Value {
    s["services"].as_array().and_then(|a| a.iter().find(|x| x["name"] == name)).unwrap_or(&Value::Null)
}

pub fn weight(s: &Value, name: &str) -> f64 {
    service(s, name)["green_weight"].as_f64().unwrap_or(-1.0)
}

pub async fn wait_for(limit: Duration, mut f: impl AsyncFnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Every process answers and `f` holds for every service on it.
pub async fn all(procs: &[&Proc], f: impl Fn(&Value, &str) -> bool) -> bool {
    for p in procs {
        let Some(s) = p.status().await else { return false };
        if !p.spec.services.iter().all(|n| f(&s, n)) {
            return false;
        }
    }
    true
}

/// The leader's name as `p` sees it.
/// `Spec::etcd` for several members: the config writes it inside one quoted list item.
pub fn endpoints(urls: &[&str]) -> String {
    urls.join("\", \"")
}

pub async fn leader(p: &Proc) -> Option<String> {
    p.status().await?["fleet"]["leader"].as_str().map(String::from)
}

/// A TCP relay on loopback to `target` that can be frozen: while frozen it accepts and reads
/// nothing and forwards nothing (like a cut-off network path, not a refused one).
pub struct FreezableLink {
    pub url: String,
    frozen: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl FreezableLink {
    pub async fn start(target: &str) -> FreezableLink {
        let target: SocketAddr = target.trim_start_matches("http://").parse().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (frozen, stop) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        let (f, st) = (frozen.clone(), stop.clone());
        tokio::spawn(async move {
            while !st.load(Ordering::Relaxed) {
                let Ok((inbound, _)) = listener.accept().await else { continue };
                let Ok(outbound) = tokio::net::TcpStream::connect(target).await else { continue };
                let (ri, wi) = inbound.into_split();
                let (ro, wo) = outbound.into_split();
                tokio::spawn(pipe(ri, wo, f.clone()));
                tokio::spawn(pipe(ro, wi, f.clone()));
            }
        });
        FreezableLink { url, frozen, stop }
    }

    pub fn freeze(&self, on: bool) {
        self.frozen.store(on, Ordering::Relaxed);
    }
}

impl Drop for FreezableLink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

async fn pipe(mut r: tokio::net::tcp::OwnedReadHalf, mut w: tokio::net::tcp::OwnedWriteHalf, frozen: Arc<AtomicBool>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        while frozen.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while frozen.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if w.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// A light closed-loop load on every listener of `procs` (so that windows have samples and
/// plans advance); stops when dropped. Failed requests (a killed replica) are ignored.
pub struct Trickle(Arc<AtomicBool>);

impl Trickle {
    pub fn start(procs: &[&Proc]) -> Trickle {
        let stop = Arc::new(AtomicBool::new(false));
        let addrs: Vec<SocketAddr> = procs.iter().flat_map(|p| p.listeners.iter().copied()).collect();
        for chunk in addrs.chunks(4) {
            let (chunk, stop) = (chunk.to_vec(), stop.clone());
            tokio::spawn(async move {
                let c = client();
                while !stop.load(Ordering::Relaxed) {
                    for a in &chunk {
                        let _ = c.get(format!("http://{a}/")).timeout(Duration::from_millis(300)).send().await;
                    }
                    tokio::time::sleep(Duration::from_millis(15)).await;
                }
            });
        }
        Trickle(stop)
    }
}

impl Drop for Trickle {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}
