//! A throw-away etcd member for tests: loopback ports, a temp data dir, killed on drop.
//! SIGSTOP/SIGCONT simulate an unreachable store without losing its data.

#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct EtcdServer {
    child: Child,
    _dir: tempfile::TempDir,
    pub url: String,
    peer_url: String,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl EtcdServer {
    /// Starts etcd and waits until `/health` says so (about a second).
    pub fn start() -> EtcdServer {
        // On tmpfs where there is one: fsync is then free, and a loaded test box's disk does not
        // turn into store timeouts.
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }.unwrap();
        let (client, peer) = (free_port(), free_port());
        let url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = launch(dir.path(), &url, &peer_url);
        let server = EtcdServer { child, _dir: dir, url, peer_url };
        server.wait_healthy(Duration::from_secs(20));
        server
    }

    fn wait_healthy(&self, limit: Duration) {
        let until = Instant::now() + limit;
        let addr = self.url.trim_start_matches("http://").to_string();
        while Instant::now() < until {
            if let Ok(mut s) = std::net::TcpStream::connect(&addr) {
                use std::io::{Read, Write};
                s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
                let _ = write!(s, "GET /health HTTP/1.0\r\nHost: x\r\n\r\n");
                let mut out = String::new();
                let _ = s.read_to_string(&mut out);
                if out.contains("\"health\":\"true\"") {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("etcd at {} not healthy within {limit:?}", self.url);
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill").args([sig, &self.pid().to_string()]).status().unwrap().success();
        assert!(ok, "kill {sig}");
    }

    /// Freezes the member: connections are accepted and never answered.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }
}

fn launch(dir: &std::path::Path, url: &str, peer_url: &str) -> Child {
    Command::new("etcd")
        .args(["--name", "t", "--data-dir"])
        .arg(dir)
        .args(["--listen-client-urls", url, "--advertise-client-urls", url])
        .args(["--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url])
        .args(["--initial-cluster", &format!("t={peer_url}"), "--log-level", "error"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("etcd binary (Debian etcd-server) on PATH")
}

// Faults for the fleet-safety tests: a restart (same data), a wipe (an empty member at the same
// endpoint, as a restore from nothing), and a compaction of the whole history.
impl EtcdServer {
    /// Kills the member and starts it again at the same endpoint; `wipe` empties its data first.
    pub fn restart(&mut self, wipe: bool) {
        let _ = Command::new("kill").args(["-CONT", &self.pid().to_string()]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        if wipe {
            let _ = std::fs::remove_dir_all(self._dir.path());
            std::fs::create_dir_all(self._dir.path()).unwrap();
        }
        self.child = launch(self._dir.path(), &self.url, &self.peer_url);
        self.wait_healthy(Duration::from_secs(20));
    }

    /// Compacts the history up to the current revision (`etcdctl compact`).
    pub fn compact(&self) {
        let rev = Command::new("etcdctl")
            .args(["--endpoints", &self.url, "get", "x", "-w", "json"])
            .output()
            .ok()
            .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
            .and_then(|v| v["header"]["revision"].as_i64())
            .expect("etcdctl get");
        let ok = Command::new("etcdctl")
            .args(["--endpoints", &self.url, "compact", &rev.to_string()])
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(ok, "etcdctl compact {rev}");
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-CONT", &self.pid().to_string()]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
