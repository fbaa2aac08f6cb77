//! TLS to upstreams: a pool with `tls = { ca = "PATH" }` is reached over https and verified
//! against exactly that CA. The TLS upstream here is a second Switchyard listener terminating
//! TLS in front of a plain mock (the same code path operators use).
use crate::support::*;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

fn ca() -> (rcgen::Certificate, KeyPair) {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().unwrap();
    (p.self_signed(&key).unwrap(), key)
}

async fn setup(name: &str, trust_right_ca: bool) -> (switchyard::app::App, Mocks, Env) {
    let m = Mocks::start(name).await;
    let env = Env::new(FAST, "");
    let dir = env.dir.path();
    let (ca_cert, ca_key) = ca();
    let key = KeyPair::generate().unwrap();
    let leaf =
        CertificateParams::new(vec!["localhost".to_string()]).unwrap().signed_by(&key, &ca_cert, &ca_key).unwrap();
    std::fs::write(dir.join("leaf.pem"), leaf.pem()).unwrap();
    std::fs::write(dir.join("leaf.key"), key.serialize_pem()).unwrap();
    let trusted = if trust_right_ca { ca_cert.pem() } else { ca().0.pem() };
    std::fs::write(dir.join("ca.pem"), trusted).unwrap();
    let port = free_port();
    let d = dir.display();
    let body = format!(
        "[[services]]\nname = \"{name}-front\"\nlisten = \"127.0.0.1:{port}\"\ngreen_weight = 100\n{pools}\
         tls = {{ cert = \"{d}/leaf.pem\", key = \"{d}/leaf.key\" }}\n\
         [[services]]\nname = \"{name}\"\nlisten = \"127.0.0.1:0\"\ngreen_weight = 100\n\
         retry = {{ enabled = false }}\n\
         blue = {{ endpoints = [\"{blue}\"] }}\n\
         green = {{ endpoints = [\"localhost:{port}\"], release = \"r1\", tls = {{ ca = \"{d}/ca.pem\" }} }}\n",
        pools = m.pools("r1"),
        blue = m.blue.addr(),
    );
    env.write(FAST, &body);
    let app = env.start().await;
    (app, m, env)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_green_pool_with_a_ca_bundle_is_reached_over_verified_tls() {
    let (app, _m, _env) = setup("utls", true).await;
    let addr = app.service_addr("utls").unwrap();
    let c = client();
    for _ in 0..20 {
        let (status, who) = get(&c, addr, "/").await;
        assert_eq!((status, who.as_str()), (200, "utls-green"));
    }
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_certificate_from_another_ca_is_refused_with_502() {
    let (app, _m, _env) = setup("utlsbad", false).await;
    let addr = app.service_addr("utlsbad").unwrap();
    let (status, _) = get(&client(), addr, "/").await;
    assert_eq!(status, 502);
    app.shutdown().await;
}

#[test]
fn an_unreadable_ca_bundle_is_a_config_time_error_naming_the_key() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let m = Mocks::start("utlsca").await;
        let body = format!(
            "[[services]]\nname = \"utlsca\"\nlisten = \"127.0.0.1:0\"\nblue = {{ endpoints = [\"{}\"] }}\n\
             green = {{ endpoints = [\"localhost:1\"], tls = {{ ca = \"/nonexistent/ca.pem\" }} }}\n",
            m.blue.addr()
        );
        let env = Env::new(FAST, &body);
        let cfg = switchyard::config::load(&env.path).unwrap();
        let err = switchyard::app::App::start(cfg, switchyard::app::AppOptions::new(&env.path)).await.err().unwrap();
        let msg = err.to_string();
        assert!(msg.contains("services.utlsca.green.tls.ca") && msg.contains("/nonexistent/ca.pem"), "{msg}");
    });
}
