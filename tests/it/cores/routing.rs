//! Choosing a color on two workers: the exact split overall, sticky keys that keep their color
//! whichever worker serves them, and weight changes (config reload, admin call) that reach both.

use super::support::*;
use crate::data_plane::support::*;
use crate::support::{admin_post, burst, metric, scrape, service, Env, Mocks};
use std::time::Duration;
use switchyard::route::pick::{color_for, key_bucket};
use switchyard::route::Weight;
use switchyard::Color;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_the_port_and_keep_the_split_exact_overall() {
    let f = Fixture::builder("cores_split").service("green_weight = 10").threads(THREADS).start().await;
    // Many short connections: the kernel's SO_REUSEPORT hash spreads them over both workers.
    let results = burst(f.addr, 4_000, 16).await;
    assert!(results.iter().all(|(s, _)| *s == 200), "every request succeeds");
    let green = results.iter().filter(|(_, who)| is_green(who)).count();
    // The split's sequence is one atomic shared by both workers: exact over the whole run,
    // whichever worker served each request (per worker it is only close to 10 %).
    assert_eq!(green, 400, "the unkeyed split is exact over 4 000 consecutive requests on two workers");
    let text = scrape(&f.app).await;
    for w in ["1", "2"] {
        let n = metric(&text, "switchyard_worker_connections_total", &[("service", "cores_split"), ("worker", w)])
            .unwrap_or(0.0);
        assert!(n >= 1.0, "worker {w} accepted no connection:\n{text}");
    }
    f.stop().await;
}

/// Asks each user on fresh connections until both workers have answered it; every answer must
/// be the color `color_for` gives its key at `percent`.
async fn check_sticky(f: &Fixture, users: &[String], percent: f64) -> usize {
    let w = Weight::from_percent(percent).unwrap();
    let mut green = 0;
    for u in users {
        let want = color_for(key_bucket(u.as_bytes()), w) == Color::Green;
        let mut at = Attribution::new(&f.app, "cores_sticky").await;
        let seen = at.on_both(1, async || fresh_get(f.addr, &[("x-user", u)]).await).await;
        for (worker, answers) in seen.iter().enumerate() {
            for (status, who) in answers {
                assert_eq!(*status, 200, "{u} on worker {}", worker + 1);
                assert_eq!(is_green(who), want, "{u} at {percent} % went to {who} on worker {}", worker + 1);
            }
        }
        green += usize::from(want);
    }
    green
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_keys_keep_their_color_on_both_workers_and_a_raise_only_moves_blue_to_green() {
    let name = "cores_sticky";
    let f = Fixture::builder(name)
        .service("green_weight = 10\nsticky = { header = \"x-user\" }")
        .threads(THREADS)
        .start()
        .await;
    let users: Vec<String> = (0..40).map(|i| format!("user-{i}")).collect();
    let g10 = check_sticky(&f, &users, 10.0).await;
    f.set_weight(name, 50.0).await;
    // Each key's color is checked against the pure function, which is monotone in the weight.
    let g50 = check_sticky(&f, &users, 50.0).await;
    assert!(g10 < g50, "{g10} green at 10 %, {g50} at 50 %");
    f.stop().await;
}

/// Every answer, on both workers, from the mock named `want`.
async fn all_from(f: &Fixture, name: &str, want: &str) {
    let mut at = Attribution::new(&f.app, name).await;
    let seen = at.on_both(5, async || fresh_get(f.addr, &[]).await).await;
    for (worker, answers) in seen.iter().enumerate() {
        for a in answers {
            assert_eq!(a, &(200, want.to_string()), "worker {}", worker + 1);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_reload_and_an_admin_weight_change_reach_both_workers() {
    let name = "cores_reload";
    let m = Mocks::start(name).await;
    let pools = m.pools("r1");
    let file = |w: u32| crate::support::service_toml(name, "127.0.0.1:0", &format!("green_weight = {w}"), &pools);
    let mut env = Env::new(QUIET, &file(0));
    env.threads = THREADS;
    let app = env.start().await;
    let addr = app.service_addr(name).unwrap();
    let f = Fixture { mocks: m, _env: env, app, addr };
    all_from(&f, name, &format!("{name}-blue")).await;

    f._env.write(QUIET, &file(100));
    let (status, body) = admin_post(&f.app, "/reload", "").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        eventually_async(Duration::from_secs(5), || async { service(&f.app, name)["green_weight"] == 100.0 }).await
    );
    assert_eq!(f.app.service_addr(name), Some(addr), "the reload kept the listener");
    all_from(&f, name, &format!("{name}-green")).await;

    f.set_weight(name, 0.0).await;
    all_from(&f, name, &format!("{name}-blue")).await;
    f.stop().await;
}
