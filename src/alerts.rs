//! Alert delivery (spec §4.3): webhook channels per severity, JSON body with a human `text` line
//! (Slack-style incoming webhooks accept it) plus structured fields for any JSON receiver. Sent by
//! a background task with per-attempt timeouts and bounded retries; callers only `try_send`.

use crate::config::AlertConfig;
use crate::stats::names;
use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Alert severity, as in the spec's notification channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Pager.
    Critical,
    /// Team channel.
    High,
    /// Monitoring channel.
    Medium,
}

impl Severity {
    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
        }
    }
}

/// One alert.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Alert {
    /// Severity.
    pub severity: Severity,
    /// Short machine-friendly name, e.g. `rollback`, `compliance_low`.
    pub alert: String,
    /// Human line.
    pub text: String,
    /// Service concerned.
    pub service: Option<String>,
    /// Anything else (incident, values, thresholds).
    pub fields: serde_json::Value,
}

/// Handle used by the control loop.
#[derive(Clone)]
pub struct Alerter {
    tx: mpsc::Sender<Alert>,
    cfg: Arc<ArcSwap<AlertConfig>>,
}

impl Alerter {
    /// Starts the delivery task.
    pub fn spawn(cfg: AlertConfig) -> Alerter {
        let (tx, rx) = mpsc::channel(256);
        let cfg = Arc::new(ArcSwap::from_pointee(cfg));
        tokio::spawn(deliver_all(rx, cfg.clone()));
        Alerter { tx, cfg }
    }

    /// Replaces the channels (on reload).
    pub fn set_config(&self, cfg: AlertConfig) {
        self.cfg.store(Arc::new(cfg));
    }

    /// Queues an alert; never waits.
    pub fn send(&self, alert: Alert) {
        tracing::warn!(severity = alert.severity.as_str(), alert = %alert.alert, service = ?alert.service, "{}", alert.text);
        if self.tx.try_send(alert).is_err() {
            metrics::counter!(names::ALERTS_TOTAL, "severity" => "any", "result" => "dropped").increment(1);
        }
    }
}

async fn deliver_all(mut rx: mpsc::Receiver<Alert>, cfg: Arc<ArcSwap<AlertConfig>>) {
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    while let Some(alert) = rx.recv().await {
        let cfg = cfg.load_full();
        let urls = match alert.severity {
            Severity::Critical => &cfg.critical,
            Severity::High => &cfg.high,
            Severity::Medium => &cfg.medium,
        };
        let body = Bytes::from(serde_json::to_vec(&alert).expect("alert serialises"));
        for url in urls.clone() {
            let (client, body, sev, cfg) = (client.clone(), body.clone(), alert.severity, cfg.clone());
            tokio::spawn(async move {
                let ok = deliver(&client, &url, body, cfg.timeout, cfg.retries).await;
                let result = if ok { "sent" } else { "failed" };
                metrics::counter!(names::ALERTS_TOTAL, "severity" => sev.as_str(), "result" => result).increment(1);
                if !ok {
                    tracing::error!(%url, severity = sev.as_str(), "alert delivery failed after retries");
                }
            });
        }
    }
}

async fn deliver(
    client: &Client<HttpConnector, Full<Bytes>>,
    url: &str,
    body: Bytes,
    timeout: Duration,
    tries: u32,
) -> bool {
    for attempt in 0..tries.max(1) {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200 << attempt.min(5))).await;
        }
        let req = http::Request::post(url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body.clone()))
            .expect("valid request");
        if let Ok(Ok(r)) = tokio::time::timeout(timeout, client.request(req)).await {
            if r.status().is_success() {
                return true;
            }
        }
    }
    false
}
