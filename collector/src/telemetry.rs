//! The collector's own figures, served at `GET /metrics` in the OpenMetrics text format.
//!
//! Metric names live here, in one place:
//! - `lookout_notifications_total{channel, outcome}`: messages by outcome: `delivered`, `retry`
//!   (a failed attempt that will be retried), `failed` (given up), `held` (held back by storm
//!   control for a digest). One message may carry several alerts.
//! - `lookout_notification_alerts_total{channel, outcome}`: the same, counting alerts.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// How a send ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Accepted by the peer.
    Delivered,
    /// Failed; it will be tried again.
    Retry,
    /// Failed and given up.
    Failed,
    /// Held back by storm control, for a digest.
    Held,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Retry => "retry",
            Outcome::Failed => "failed",
            Outcome::Held => "held",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SendLabels {
    channel: String,
    outcome: String,
}

/// The registry and the collector's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    messages: Family<SendLabels, Counter>,
    alerts: Family<SendLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("lookout");
        let messages = Family::<SendLabels, Counter>::default();
        let alerts = Family::<SendLabels, Counter>::default();
        registry.register(
            "notifications",
            "Notification messages sent, retried, given up or held, by channel",
            messages.clone(),
        );
        registry.register(
            "notification_alerts",
            "Alerts in notification messages, by channel and outcome",
            alerts.clone(),
        );
        Self {
            registry,
            messages,
            alerts,
        }
    }
}

impl Metrics {
    /// Counts one message of `alerts` alerts to `channel`.
    pub fn notification(&self, channel: &str, outcome: Outcome, alerts: usize) {
        let labels = SendLabels {
            channel: channel.to_string(),
            outcome: outcome.as_str().to_string(),
        };
        self.messages.get_or_create(&labels).inc();
        self.alerts.get_or_create(&labels).inc_by(alerts as u64);
    }

    /// The exposition text.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}
