//! Nothing in flight is lost, with the shipped defaults unless a test says otherwise:
//! green killed or frozen under load, a slow green hedged, statuses passed through as sent, and
//! ambiguous framing refused before anything reaches an upstream. Real mocks on 127.0.0.1:0, the
//! real app in-process, real clients.

use crate::support::Fixture as Fx;
use crate::support::*;
use mock_upstream::{Fault, MockPatch};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// The default p95 trigger (2 s, 2 consecutive) judged every 200 ms over a 1 s window.
const CONTROL: &str = "interval = \"200ms\"\nwindow = \"1s\"\nmin_samples = 20";

/// A service at `weight` % green with nothing but its pools and `extra` lines configured.
async fn start(name: &str, weight: f64, extra: &str) -> Fx {
    let mocks = Mocks::start(name).await;
    let body = format!(
        "[[services]]\nname = \"{name}\"\nlisten = \"127.0.0.1:0\"\ngreen_weight = {weight}\n{extra}\n{}",
        mocks.pools("r1")
    );
    Fx::launch(mocks, name, CONTROL, &body).await
}

/// `clients` clients each sending a GET every `every` for `run`; returns (status, latency) per
/// request. A transport error counts as status 0.
async fn paced_load(addr: SocketAddr, clients: usize, every: Duration, run: Duration) -> Vec<(u16, Duration)> {
    let c = client();
    let end = Instant::now() + run;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let c = c.clone();
        set.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut out = Vec::new();
            while Instant::now() < end {
                tick.tick().await;
                let t = Instant::now();
                let status = match c.get(format!("http://{addr}/")).send().await {
                    Ok(r) => r.status().as_u16(),
                    Err(_) => 0,
                };
                out.push((status, t.elapsed()));
            }
            out
        });
    }
    let mut all = Vec::new();
    while let Some(r) = set.join_next().await {
        all.extend(r.unwrap());
    }
    all
}

fn failures(r: &[(u16, Duration)]) -> Vec<u16> {
    r.iter().map(|x| x.0).filter(|&s| s != 200).collect()
}

fn max_latency(r: &[(u16, Duration)]) -> Duration {
    r.iter().map(|x| x.1).max().unwrap_or_default()
}

fn p99(r: &[(u16, Duration)]) -> Duration {
    let mut v: Vec<Duration> = r.iter().map(|x| x.1).collect();
    v.sort();
    v[(v.len() * 99 / 100).min(v.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn green_killed_under_load_loses_nothing_by_default() {
    let name = "inf_kill";
    let Fx { mocks, _env, app, addr } = start(name, 20.0, "").await;
    let load = tokio::spawn(paced_load(addr, 32, Duration::from_millis(100), Duration::from_secs(3)));
    tokio::time::sleep(Duration::from_millis(800)).await;
    mocks.green.shutdown().await;
    let results = load.await.unwrap();
    println!("killed green: {} requests, max latency {:?}", results.len(), max_latency(&results));
    assert!(results.len() > 500, "the load ran: {}", results.len());
    assert_eq!(failures(&results), Vec::<u16>::new(), "users saw failures");
    app.shutdown().await;
    mocks.blue.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn green_frozen_under_load_loses_nothing_and_waits_only_until_the_rollback() {
    let name = "inf_freeze";
    let fx = start(name, 20.0, "").await;
    let load = tokio::spawn(paced_load(fx.addr, 32, Duration::from_millis(100), Duration::from_secs(6)));
    tokio::time::sleep(Duration::from_millis(800)).await;
    fx.mocks.green.set(MockPatch { fault: Some(Fault::Hang), ..Default::default() });
    let results = load.await.unwrap();
    let max = max_latency(&results);
    println!("frozen green: {} requests, max latency {max:?}, p99 {:?}", results.len(), p99(&results));
    assert_eq!(service(&fx.app, name)["state"], "rolled_back");
    assert_eq!(failures(&results), Vec::<u16>::new(), "users saw failures");
    // 30 s (`response_timeout`) without the rescue; the rollback needs two 200 ms ticks over 2 s.
    assert!(max < Duration::from_secs(5), "slowest request took {max:?}");
    let text =
        client().get(format!("http://{}/metrics", fx.app.admin_addr)).send().await.unwrap().text().await.unwrap();
    assert!(
        text.lines().any(|l| l.contains("kind=\"abandoned\"") && l.contains(name) && !l.ends_with(" 0")),
        "abandoned green attempts still count against green"
    );
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hedged_service_keeps_p99_near_blue_under_a_slow_green() {
    let name = "inf_hedge";
    let fx = start(name, 50.0, "hedge = { after = \"50ms\" }").await;
    fx.mocks.green.set(MockPatch { latency_ms: Some(600), ..Default::default() });
    let results = paced_load(fx.addr, 8, Duration::from_millis(50), Duration::from_secs(2)).await;
    let p = p99(&results);
    let mut v: Vec<_> = results.iter().map(|r| r.1.as_millis()).collect();
    v.sort();
    println!(
        "hedged: {} requests, p99 {p:?}, max {:?}, deciles {:?}",
        results.len(),
        max_latency(&results),
        v.iter().step_by(v.len() / 10).collect::<Vec<_>>()
    );
    assert_eq!(failures(&results), Vec::<u16>::new());
    assert!(p < Duration::from_millis(400), "p99 {p:?} follows the 600 ms green instead of the hedge");
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p99_hedging_waits_for_a_blue_measurement_then_hedges() {
    let name = "inf_hedge99";
    let fx = start(name, 50.0, "hedge = { after = \"p99\" }").await;
    // Blue's p99 is published per window; until then nothing is hedged.
    let _ = paced_load(fx.addr, 4, Duration::from_millis(20), Duration::from_millis(600)).await;
    fx.mocks.green.set(MockPatch { latency_ms: Some(600), ..Default::default() });
    let results = paced_load(fx.addr, 8, Duration::from_millis(50), Duration::from_secs(2)).await;
    let p = p99(&results);
    println!("p99-hedged: p99 {p:?}");
    assert_eq!(failures(&results), Vec::<u16>::new());
    assert!(p < Duration::from_millis(400), "p99 {p:?}");
    fx.stop().await;
}

/// An upstream that answers every request with `503` and a body of its own.
async fn busy_upstream() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16384];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    let body = "green is busy, try later";
                    let r = format!(
                        "HTTP/1.1 503 Service Unavailable\r\nContent-Length: {}\r\nX-Constitutional-Hash: cdd01ef066bc6cf2\r\n\r\n{body}",
                        body.len()
                    );
                    if s.write_all(r.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_that_is_not_retried_passes_through_with_its_body() {
    let name = "inf_503";
    let mocks = Mocks::start(name).await;
    let green = busy_upstream().await;
    let body = format!(
        "[[services]]\nname = \"{name}\"\nlisten = \"127.0.0.1:0\"\ngreen_weight = 100\nretry = {{ enabled = false }}\n\
         blue = {{ endpoints = [\"{}\"] }}\ngreen = {{ endpoints = [\"{green}\"] }}\n",
        mocks.blue.addr()
    );
    let fx = Fx::launch(mocks, name, CONTROL, &body).await;
    let c = client();
    // Retries off: the GET gets green's 503 as green sent it.
    let r = c.get(format!("http://{}/", fx.addr)).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.text().await.unwrap(), "green is busy, try later");
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_refused_by_green_is_not_replayed_and_keeps_the_body() {
    let name = "inf_503post";
    let mocks = Mocks::start(name).await;
    let green = busy_upstream().await;
    let body = format!(
        "[[services]]\nname = \"{name}\"\nlisten = \"127.0.0.1:0\"\ngreen_weight = 100\n\
         blue = {{ endpoints = [\"{}\"] }}\ngreen = {{ endpoints = [\"{green}\"] }}\n",
        mocks.blue.addr()
    );
    let fx = Fx::launch(mocks, name, CONTROL, &body).await;
    let c = client();
    let r = c.post(format!("http://{}/", fx.addr)).body("order #1").send().await.unwrap();
    assert_eq!(r.status(), 503, "a POST that reached green is never sent twice");
    assert_eq!(r.text().await.unwrap(), "green is busy, try later");
    // With retries on by default, a GET's 503 is retried on blue.
    let (status, who) = get(&c, fx.addr, "/").await;
    assert_eq!((status, who.as_str()), (200, "inf_503post-blue"));
    assert_eq!(fx.mocks.blue.requests(), 1, "only the GET reached blue");
    fx.stop().await;
}

/// Sends `raw` on a fresh connection and returns the status code of the answer.
async fn raw_status(addr: SocketAddr, raw: &str) -> u16 {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(raw.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf);
    text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_framing_is_refused_and_no_upstream_sees_it() {
    let name = "inf_frame";
    let fx = start(name, 50.0, "").await;
    let cases = [
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", &[400][..]),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", &[400]),
        ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", &[400]),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", &[400, 501]),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            &[400, 501],
        ),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", &[400, 501]),
    ];
    for (raw, want) in cases {
        let got = raw_status(fx.addr, raw).await;
        assert!(want.contains(&got), "{raw:?}: got {got}, want one of {want:?}");
    }
    assert_eq!(fx.mocks.blue.requests() + fx.mocks.green.requests(), 0, "an upstream saw a refused request");
    // The same connection shape with unambiguous framing still goes through.
    let ok =
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    assert_eq!(raw_status(fx.addr, ok).await, 200);
    fx.stop().await;
}

/// `Content-Length` with `Transfer-Encoding` is refused even on a kept-alive connection after a
/// request with a body (hyper drops the length before the proxy sees the headers; the listener
/// finds it in the raw head), and nothing hidden behind it is parsed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_length_with_transfer_encoding_is_refused_and_smuggles_nothing() {
    let name = "inf_clte";
    let fx = start(name, 0.0, "").await;
    let raw = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc\
               POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n\
               GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";
    let mut s = TcpStream::connect(fx.addr).await.unwrap();
    s.write_all(raw.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await.expect("connection closed").unwrap();
    let text = String::from_utf8_lossy(&buf);
    let statuses: Vec<&str> = text.match_indices("HTTP/1.1 ").map(|(i, _)| &text[i + 9..i + 12]).collect();
    assert_eq!(statuses, ["200", "400"], "{text}");
    assert_eq!(fx.mocks.blue.requests(), 1, "only the first, unambiguous request reached an upstream");
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_rollback_rescues_waiting_gets_and_never_resends_a_post() {
    let name = "inf_rescue";
    let fx = start(name, 100.0, "").await;
    fx.mocks.green.set(MockPatch { fault: Some(Fault::Hang), ..Default::default() });
    let c = client();
    let url = format!("http://{}/", fx.addr);
    let gets: Vec<_> = (0..8).map(|_| tokio::spawn(c.get(&url).send())).collect();
    let post = tokio::spawn(c.post(&url).body("pay once").timeout(Duration::from_millis(1500)).send());
    // Wait until every request is on green (observable: the mock counted them).
    assert!(eventually(Duration::from_secs(5), || fx.mocks.green.requests() >= 9).await);
    let t = Instant::now();
    let (code, _) = admin_post(&fx.app, &format!("/services/{name}/rollback"), "").await;
    assert_eq!(code, 200);
    for g in gets {
        let r = g.await.unwrap().unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-switchyard-mock"], format!("{name}-blue").as_str());
    }
    let rescued = t.elapsed();
    println!("8 waiting GETs answered by blue {rescued:?} after the rollback call");
    assert!(rescued < Duration::from_secs(2), "{rescued:?}");
    // The POST may have reached green: it keeps waiting for green, never goes to blue.
    assert!(post.await.unwrap().is_err(), "the POST was answered");
    assert_eq!(fx.mocks.blue.requests(), 8, "only the GETs were re-sent");
    fx.stop().await;
}
