//! Thread per core (`--threads 2`): every data-plane promise made on one thread holds when two
//! worker runtimes accept on the same port, and what must be global stays global.

use crate::data_plane::support::*;
use crate::support::{burst, metric, scrape};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_the_port_and_keep_the_split_exact_overall() {
    let f = Fixture::builder("cores_split").service("green_weight = 10").threads(2).start().await;
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
