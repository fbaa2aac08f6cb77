//! The one `/metrics` reader: a scrape, an exact sample matcher, and a retrying assertion for
//! values that are published a moment after the request that caused them (a counter recorded
//! when a response body ends, a gauge released on drop).

use super::client;
use std::collections::HashMap;
use std::time::Duration;
use switchyard::app::App;

/// The admin `/metrics` page.
pub async fn scrape(app: &App) -> String {
    client().get(format!("http://{}/metrics", app.admin_addr)).send().await.unwrap().text().await.unwrap()
}

/// Sum of the samples named exactly `name` carrying every `(label, value)` pair (other labels
/// ignored, so a partial label set adds up the series it covers); `None` when none matches.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let values: Vec<f64> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (n, rest) = series.split_once('{').unwrap_or((series, "}"));
            if n != name {
                return None;
            }
            let have: HashMap<&str, &str> = rest
                .trim_end_matches('}')
                .split("\",")
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.trim(), v.trim_matches('"')))
                .collect();
            labels.iter().all(|(k, v)| have.get(k) == Some(v)).then(|| value.parse::<f64>().ok())?
        })
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// One scrape, one value.
pub async fn scrape_metric(app: &App, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metric(&scrape(app).await, name, labels)
}

/// Scrapes every 20 ms until the value (0 while the series does not exist yet) satisfies
/// `accept`, and returns it; after 10 s fails naming the metric and the last value seen.
pub async fn wait_metric(app: &App, name: &str, labels: &[(&str, &str)], accept: impl Fn(f64) -> bool) -> f64 {
    let end = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let v = scrape_metric(app, name, labels).await.unwrap_or(0.0);
        if accept(v) {
            return v;
        }
        assert!(tokio::time::Instant::now() < end, "{name}{labels:?} never reached the expected value; last {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
