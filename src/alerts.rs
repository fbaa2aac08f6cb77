//! Alert delivery (spec §4.3): webhook channels per severity, JSON body with a human `text` line
//! (Slack-style incoming webhooks accept it) plus structured fields for any JSON receiver. Sent by
//! a background task with per-attempt timeouts and bounded retries; callers only `try_send`.
//! Escalation pages (`Alerter::page`) go through the same task to the level's own webhooks.

pub mod client;

use crate::config::AlertConfig;
use crate::stats::names;
use arc_swap::ArcSwap;
use bytes::Bytes;
use client::WebhookClient;
use http_body_util::Full;
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
    /// The same for every replica that reports the same event (a fleet's rollback: service,
    /// release and reset count), so a receiver that deduplicates (PagerDuty's `dedup_key`,
    /// Opsgenie's alias, an Alertmanager label) shows one alert even if two replicas sent it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dedup_key: Option<String>,
}

pub use client::read_ca;

/// Where an alert goes: its severity's channel, or an escalation level's webhooks.
enum Targets {
    Severity,
    Urls(Vec<String>),
}

/// The config and the client built from it, swapped together on reload so a new `alerts.ca`
/// and the URLs that need it arrive at once.
struct Delivery {
    cfg: AlertConfig,
    client: WebhookClient,
}

impl Delivery {
    fn new(cfg: AlertConfig) -> Delivery {
        let client = client::build(cfg.ca.as_deref());
        Delivery { cfg, client }
    }
}

/// Handle used by the control loop.
#[derive(Clone)]
pub struct Alerter {
    tx: mpsc::Sender<(Alert, Targets)>,
    delivery: Arc<ArcSwap<Delivery>>,
}

impl Alerter {
    /// Starts the delivery task.
    pub fn spawn(cfg: AlertConfig) -> Alerter {
        let (tx, rx) = mpsc::channel(256);
        let delivery = Arc::new(ArcSwap::from_pointee(Delivery::new(cfg)));
        tokio::spawn(deliver_all(rx, delivery.clone()));
        Alerter { tx, delivery }
    }

    /// Replaces the channels (on reload). The client, whose trust store takes milliseconds to
    /// load from disk, is rebuilt only when `alerts.ca` changed: reloads run on the control loop.
    pub fn set_config(&self, cfg: AlertConfig) {
        let current = self.delivery.load();
        let next = if current.cfg.ca == cfg.ca {
            Delivery { cfg, client: current.client.clone() }
        } else {
            Delivery::new(cfg)
        };
        self.delivery.store(Arc::new(next));
    }

    /// Queues an alert for its severity's channel; never waits.
    pub fn send(&self, alert: Alert) {
        self.queue(alert, Targets::Severity);
    }

    /// Queues an escalation page for exactly `urls`; never waits.
    pub fn page(&self, alert: Alert, urls: Vec<String>) {
        self.queue(alert, Targets::Urls(urls));
    }

    fn queue(&self, alert: Alert, targets: Targets) {
        tracing::warn!(severity = alert.severity.as_str(), alert = %alert.alert, service = alert.service.as_deref().unwrap_or("-"), "{}", alert.text);
        if self.tx.try_send((alert, targets)).is_err() {
            metrics::counter!(names::ALERTS_TOTAL, "severity" => "any", "result" => "dropped").increment(1);
        }
    }
}

async fn deliver_all(mut rx: mpsc::Receiver<(Alert, Targets)>, delivery: Arc<ArcSwap<Delivery>>) {
    while let Some((alert, targets)) = rx.recv().await {
        let d = delivery.load_full();
        let urls = match targets {
            Targets::Urls(urls) => urls,
            Targets::Severity => match alert.severity {
                Severity::Critical => d.cfg.critical.clone(),
                Severity::High => d.cfg.high.clone(),
                Severity::Medium => d.cfg.medium.clone(),
            },
        };
        let body = Bytes::from(serde_json::to_vec(&alert).expect("alert serialises"));
        for url in urls {
            let (d, body, sev) = (d.clone(), body.clone(), alert.severity);
            tokio::spawn(async move {
                let ok = deliver(&d.client, &url, body, d.cfg.timeout, d.cfg.retries).await;
                let result = if ok { "sent" } else { "failed" };
                metrics::counter!(names::ALERTS_TOTAL, "severity" => sev.as_str(), "result" => result).increment(1);
                if !ok {
                    tracing::error!(%url, severity = sev.as_str(), "alert delivery failed after retries");
                }
            });
        }
    }
}

async fn deliver(client: &WebhookClient, url: &str, body: Bytes, timeout: Duration, tries: u32) -> bool {
    for attempt in 0..tries.max(1) {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200 << attempt.min(5))).await;
        }
        let req = http::Request::post(url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body.clone()))
            .expect("valid request");
        match tokio::time::timeout(timeout, client.request(req)).await {
            Ok(Ok(r)) if r.status().is_success() => return true,
            Ok(Ok(r)) => tracing::warn!(url, status = %r.status(), attempt, "webhook refused the alert"),
            Ok(Err(e)) => tracing::warn!(url, error = %e, attempt, "webhook unreachable"),
            Err(_) => tracing::warn!(url, attempt, "webhook timed out"),
        }
    }
    false
}
