//! A throw-away etcd member for tests: loopback ports, a temp data dir, killed on drop.
//! SIGSTOP/SIGCONT simulate an unreachable store without losing its data. Optionally served
//! over TLS with client certificates required (`--client-cert-auth`), with a short progress
//! notification interval, and with username/password auth enabled.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct EtcdServer {
    child: Child,
    dir: tempfile::TempDir,
    pub url: String,
    /// TLS material when started with [`Options::tls`].
    pub pki: Option<Pki>,
    /// `root`'s password once [`EtcdServer::enable_auth`] ran.
    root_password: Option<String>,
    /// The command line, to start the member again at the same endpoint.
    args: Vec<std::ffi::OsString>,
}

/// How to start the member.
#[derive(Default)]
pub struct Options {
    /// Serve https with a fresh CA and require client certificates.
    pub tls: bool,
    /// `--experimental-watch-progress-notify-interval` (etcd's default is 10 minutes).
    pub progress_notify: Option<&'static str>,
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files.
pub struct Pki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Pki {
    /// Generates everything into `dir`. etcd's gateway calls its own gRPC server with the server
    /// certificate as a client certificate, so that one carries both usages.
    pub fn generate(dir: &Path) -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose as Eku, IsCa, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(rcgen::DnType::CommonName, "switchyard test etcd CA");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let leaf = |name: Option<&str>, usages: Vec<Eku>| {
            let key = KeyPair::generate().unwrap();
            let mut p = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
            p.distinguished_name = rcgen::DistinguishedName::new();
            if let Some(cn) = name {
                p.distinguished_name.push(rcgen::DnType::CommonName, cn);
            }
            p.extended_key_usages = usages;
            (p.signed_by(&key, &ca_cert, &ca_key).unwrap().pem(), key.serialize_pem())
        };
        let write = |name: &str, pem: &str| {
            let path = dir.join(name);
            std::fs::write(&path, pem).unwrap();
            path
        };
        let (server, server_key) = leaf(Some("etcd"), vec![Eku::ServerAuth, Eku::ClientAuth]);
        // No CommonName: with auth enabled, etcd's gateway refuses a client certificate that has
        // one ("CommonName of client sending a request against gateway will be ignored").
        let (client, client_key) = leaf(None, vec![Eku::ClientAuth]);
        Pki {
            ca: write("ca.pem", &ca_cert.pem()),
            server_cert: write("server.pem", &server),
            server_key: write("server.key", &server_key),
            client_cert: write("client.pem", &client),
            client_key: write("client.key", &client_key),
        }
    }
}

impl EtcdServer {
    /// Starts plain-http etcd and waits until `/health` says so (about a second).
    pub fn start() -> EtcdServer {
        EtcdServer::start_with(Options::default())
    }

    pub fn start_with(opts: Options) -> EtcdServer {
        // On tmpfs where there is one: fsync is then free, and a loaded test box's disk does not
        // turn into store timeouts.
        let shm = Path::new("/dev/shm");
        let dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }.unwrap();
        let (client, peer) = (free_port(), free_port());
        let scheme = if opts.tls { "https" } else { "http" };
        let url = format!("{scheme}://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let pki = opts.tls.then(|| Pki::generate(dir.path()));
        let mut cmd = Command::new("etcd");
        cmd.args(["--name", "t", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &url, "--advertise-client-urls", &url])
            .args(["--listen-peer-urls", &peer_url, "--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("t={peer_url}"), "--log-level", "error"]);
        if let Some(p) = &pki {
            cmd.arg("--cert-file").arg(&p.server_cert).arg("--key-file").arg(&p.server_key);
            cmd.arg("--trusted-ca-file").arg(&p.ca).arg("--client-cert-auth");
        }
        if let Some(every) = opts.progress_notify {
            cmd.args(["--experimental-watch-progress-notify-interval", every]);
        }
        let child =
            cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("etcd binary (Debian etcd-server) on PATH");
        let args = cmd.get_args().map(|a| a.to_os_string()).collect();
        let server = EtcdServer { child, dir, url, pki, root_password: None, args };
        server.wait_healthy(Duration::from_secs(20));
        server
    }

    fn wait_healthy(&self, limit: Duration) {
        assert!(self.healthy_within(limit), "etcd at {} not healthy within {limit:?}", self.url);
    }

    fn healthy_within(&self, limit: Duration) -> bool {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if self.pki.is_some() {
                if self.etcdctl(&["endpoint", "health"]).status.success() {
                    return true;
                }
            } else if let Ok(mut s) = std::net::TcpStream::connect(self.url.trim_start_matches("http://")) {
                use std::io::{Read, Write};
                s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
                let _ = write!(s, "GET /health HTTP/1.0\r\nHost: x\r\n\r\n");
                let mut out = String::new();
                let _ = s.read_to_string(&mut out);
                if out.contains("\"health\":\"true\"") {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Runs etcdctl (API v3) against this member, with its certificates and root's password.
    pub fn etcdctl(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("etcdctl");
        cmd.env("ETCDCTL_API", "3").args(["--endpoints", &self.url, "--command-timeout", "5s"]);
        if let Some(p) = &self.pki {
            cmd.arg("--cacert").arg(&p.ca).arg("--cert").arg(&p.client_cert).arg("--key").arg(&p.client_key);
        }
        if let Some(pw) = &self.root_password {
            cmd.args(["--user", &format!("root:{pw}")]);
        }
        cmd.args(args).output().expect("etcdctl (Debian etcd-client) on PATH")
    }

    /// etcdctl that must succeed.
    pub fn ctl(&self, args: &[&str]) -> String {
        let out = self.etcdctl(args);
        assert!(out.status.success(), "etcdctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Creates `root` with `password` and turns authentication on.
    pub fn enable_auth(&mut self, password: &str) {
        self.ctl(&["user", "add", &format!("root:{password}")]);
        self.ctl(&["auth", "enable"]);
        self.root_password = Some(password.to_string());
    }

    /// Turns auth off and on again: etcd forgets every simple token it handed out, as it does on
    /// a restart or after `--auth-token-ttl` of disuse.
    pub fn invalidate_tokens(&mut self) {
        self.ctl(&["auth", "disable"]);
        let pw = self.root_password.take();
        self.ctl(&["auth", "enable"]);
        self.root_password = pw;
    }

    /// Compacts history up to `rev`.
    pub fn compact(&self, rev: i64) {
        self.ctl(&["compact", &rev.to_string()]);
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

// Faults for the fleet-safety tests: a restart (same data), a wipe (an empty member at the same
// endpoint, as a restore from nothing), and a compaction of the whole history.
impl EtcdServer {
    /// Kills the member and starts it again at the same endpoint; `wipe` empties its data first.
    pub fn restart(&mut self, wipe: bool) {
        let _ = Command::new("kill").args(["-CONT", &self.pid().to_string()]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        if wipe {
            let _ = std::fs::remove_dir_all(self.dir.path().join("data"));
        }
        self.child = Command::new("etcd")
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd binary (Debian etcd-server) on PATH");
        self.wait_healthy(Duration::from_secs(20));
    }

    /// Compacts the history up to the current revision.
    pub fn compact_now(&self) {
        let rev = Command::new("etcdctl")
            .args(["--endpoints", &self.url, "get", "x", "-w", "json"])
            .output()
            .ok()
            .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
            .and_then(|v| v["header"]["revision"].as_i64())
            .expect("etcdctl get");
        self.compact_upto(rev);
    }

    /// Compacts the history up to `rev`; a revision already compacted is not a fault.
    pub fn compact_upto(&self, rev: i64) {
        let out =
            Command::new("etcdctl").args(["--endpoints", &self.url, "compact", &rev.to_string()]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() || err.contains("compacted"), "etcdctl compact {rev}: {err}");
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-CONT", &self.pid().to_string()]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A cluster of `n` plain-http members on loopback, each its own process and data dir, as a
/// production fleet runs etcd (three members: one can be lost without losing quorum).
pub fn cluster(n: usize) -> Vec<EtcdServer> {
    // Ports come from binding port 0 and letting go, so another process may take one first:
    // then the cluster never forms, and it is started again on fresh ports.
    for _ in 0..3 {
        let members = start_cluster(n);
        if members.iter().all(|m| m.healthy_within(Duration::from_secs(20))) {
            return members;
        }
    }
    panic!("an etcd cluster of {n} did not form in three tries");
}

fn start_cluster(n: usize) -> Vec<EtcdServer> {
    let shm = Path::new("/dev/shm");
    let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
    let initial: Vec<String> =
        ports.iter().enumerate().map(|(i, (_, p))| format!("m{i}=http://127.0.0.1:{p}")).collect();
    let initial = initial.join(",");
    let members: Vec<EtcdServer> = ports
        .iter()
        .enumerate()
        .map(|(i, (client, peer))| {
            let dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }.unwrap();
            let url = format!("http://127.0.0.1:{client}");
            let peer_url = format!("http://127.0.0.1:{peer}");
            let mut cmd = Command::new("etcd");
            cmd.args(["--name", &format!("m{i}"), "--data-dir"])
                .arg(dir.path().join("data"))
                .args(["--listen-client-urls", &url, "--advertise-client-urls", &url])
                .args(["--listen-peer-urls", &peer_url, "--initial-advertise-peer-urls", &peer_url])
                .args(["--initial-cluster", &initial, "--initial-cluster-state", "new", "--log-level", "error"]);
            let child = cmd
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("etcd binary (Debian etcd-server) on PATH");
            let args = cmd.get_args().map(|a| a.to_os_string()).collect();
            EtcdServer { child, dir, url, pki: None, root_password: None, args }
        })
        .collect();
    // A member reports healthy once the cluster has a leader: every member is started first.
    members
}
