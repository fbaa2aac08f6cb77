//! TLS and authentication against real etcd members: https with client certificates required
//! (`--client-cert-auth`), username/password auth with the token refreshed after etcd forgot
//! it, and the real binary reaching a member that requires both, credentials from the
//! environment and certificates from `[fleet]`.

use super::etcd_server::{EtcdServer, Options as ServerOptions};
use crate::support::{Mocks, Proxy};
use std::time::{Duration, Instant};
use switchyard::config::{EtcdCredentials, FleetTls};
use switchyard::fleet::etcd::{Cas, Etcd, Event, Options, StoreError};

fn client(server: &EtcdServer, tls: FleetTls, credentials: Option<EtcdCredentials>) -> Etcd {
    let opts = Options { tls, credentials, ..Options::default() };
    Etcd::build(vec![server.url.parse().unwrap()], Duration::from_secs(3), opts).unwrap()
}

fn full_tls(server: &EtcdServer) -> FleetTls {
    let pki = server.pki.as_ref().unwrap();
    FleetTls { ca: Some(pki.ca.clone()), identity: Some((pki.client_cert.clone(), pki.client_key.clone())) }
}

fn root(password: &str) -> Option<EtcdCredentials> {
    Some(EtcdCredentials { username: "root".into(), password: password.into() })
}

#[tokio::test]
async fn https_with_a_client_certificate_reaches_a_member_that_requires_one() {
    let server = EtcdServer::start_with(ServerOptions { tls: true, ..Default::default() });
    let etcd = client(&server, full_tls(&server), None);
    let rev = match etcd.cas("/tls/k", b"v", 0, 0).await.unwrap() {
        Cas::Written(r) => r,
        other => panic!("{other:?}"),
    };
    let mut watch = etcd.watch("/tls/", rev).await.unwrap();
    let b = tokio::time::timeout(Duration::from_secs(5), watch.next()).await.unwrap().unwrap();
    assert!(matches!(&b.events[..], [Event::Put(kv)] if kv.value == b"v"), "{b:?}");

    let no_cert = FleetTls { identity: None, ..full_tls(&server) };
    let e = client(&server, no_cert, None).get("/tls/k").await.unwrap_err();
    assert!(matches!(e, StoreError::Unreachable(_)), "etcd refuses a client without a certificate: {e}");
    let other_ca = FleetTls { ca: None, ..full_tls(&server) };
    let e = client(&server, other_ca, None).get("/tls/k").await.unwrap_err();
    assert!(e.to_string().contains("UnknownIssuer"), "the member's CA is not in the system store: {e}");
}

#[tokio::test]
async fn unusable_tls_files_are_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("ca.pem");
    std::fs::write(&bad, "not a certificate").unwrap();
    let tls = FleetTls { ca: Some(bad), identity: None };
    let opts = Options { tls, ..Options::default() };
    let url = "https://127.0.0.1:1".parse().unwrap();
    assert!(matches!(Etcd::build(vec![url], Duration::from_secs(1), opts), Err(StoreError::Tls(_))));
}

#[tokio::test]
async fn username_and_password_get_a_token_that_is_renewed_when_etcd_forgets_it() {
    let mut server = EtcdServer::start();
    server.enable_auth("s3cret");
    let anonymous = client(&server, FleetTls::default(), None);
    match anonymous.put("/auth/k", b"v", 0).await {
        Err(StoreError::Auth(m)) => assert!(m.contains("SWITCHYARD_ETCD_USERNAME"), "{m}"),
        other => panic!("an auth cluster refuses anonymous writes with a typed error: {other:?}"),
    }
    let wrong = client(&server, FleetTls::default(), root("nope"));
    assert!(matches!(wrong.get("/auth/k").await, Err(StoreError::Auth(_))));

    let etcd = client(&server, FleetTls::default(), root("s3cret"));
    let rev = etcd.put("/auth/k", b"1", 0).await.unwrap();
    let mut watch = etcd.watch("/auth/", rev + 1).await.unwrap();

    // etcd forgets every token; the next call authenticates again and goes through.
    server.invalidate_tokens();
    etcd.put("/auth/k", b"2", 0).await.expect("re-authenticated after the token was refused");
    let b = tokio::time::timeout(Duration::from_secs(5), watch.next()).await.unwrap().unwrap();
    assert!(matches!(&b.events[..], [Event::Put(kv)] if kv.value == b"2"), "{b:?}");
    let mut again = etcd.watch("/auth/", rev).await.expect("a new watch carries the new token");
    let b = tokio::time::timeout(Duration::from_secs(5), again.next()).await.unwrap().unwrap();
    assert_eq!(b.events.len(), 2);
    assert_eq!(server.ctl(&["get", "/auth/k", "--print-value-only"]).trim(), "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_joins_a_fleet_over_tls_with_credentials_from_the_environment() {
    let mut server = EtcdServer::start_with(ServerOptions { tls: true, ..Default::default() });
    server.enable_auth("pw-from-env");
    let pki = server.pki.as_ref().unwrap();
    let m = Mocks::start("fltls").await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "state_dir = \"{state}\"\n[admin]\nlisten = \"127.0.0.1:0\"\n\
         [[services]]\nname = \"fltls\"\nlisten = \"127.0.0.1:0\"\n{pools}\
         [fleet]\nendpoints = [\"{url}\"]\nprefix = \"/tls\"\nreplica = \"a\"\nlease_ttl = \"2s\"\n\
         ca = \"{ca}\"\ncert = \"{cert}\"\nkey = \"{key}\"\n",
        state = dir.path().join("state").display(),
        pools = m.pools("r1"),
        url = server.url,
        ca = pki.ca.display(),
        cert = pki.client_cert.display(),
        key = pki.client_key.display(),
    );
    let path = dir.path().join("switchyard.toml");
    std::fs::write(&path, cfg).unwrap();
    let env = [("SWITCHYARD_ETCD_USERNAME", "root"), ("SWITCHYARD_ETCD_PASSWORD", "pw-from-env")];
    let proxy = Proxy::start_with_env(&path, &env).await.unwrap_or_else(|e| panic!("{}", e.stderr));
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        let s = proxy.status().await;
        if s["fleet"]["synced"] == true && s["fleet"]["store"] == "ok" && s["fleet"]["leader"] == "a" {
            break;
        }
        assert!(Instant::now() < until, "not synced over TLS + auth: {s}\n{}", proxy.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(server.ctl(&["get", "/tls/leader", "--print-value-only"]).trim(), "a");
    assert!(!proxy.log().contains("pw-from-env"), "the password is never logged");
}
