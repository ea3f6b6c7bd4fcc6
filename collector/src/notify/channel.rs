//! A configured channel, built from its `[[channels]]` entry: the one place that knows the
//! three kinds. The senders' shared helpers are not here but in [`super::format`] (the human
//! forms of times, durations and labels) and [`super::http`] (answers, retries and secrets of
//! the HTTP channels), so that a channel's module imports its helpers and this one imports the
//! channels, and nothing goes round in a circle.

use lookout_config::{ChannelConfig, ChannelType};

use super::email::EmailChannel;
use super::message::{Message, SendError};
use super::slack::SlackChannel;
use super::webhook::WebhookChannel;

/// A channel ready to send: one per `[[channels]]` entry.
#[derive(Debug)]
pub enum Channel {
    /// Email over SMTP.
    Email(EmailChannel),
    /// A Slack incoming webhook.
    Slack(SlackChannel),
    /// A JSON POST to any URL.
    Webhook(WebhookChannel),
}

impl Channel {
    /// Builds the channel `cfg` describes; the HTTP channels share `http` (its connection pool).
    /// The error names the setting at fault and never repeats a URL or a secret.
    pub fn build(cfg: &ChannelConfig, http: reqwest::Client) -> Result<Channel, String> {
        Ok(match cfg.kind {
            ChannelType::Email => Channel::Email(EmailChannel::new(cfg)?),
            ChannelType::Slack => Channel::Slack(SlackChannel::new(cfg, http)?),
            ChannelType::Webhook => Channel::Webhook(WebhookChannel::new(cfg, http)?),
        })
    }

    /// Sends one message; a message without notes sends nothing.
    pub async fn send(&self, msg: &Message) -> Result<(), SendError> {
        if msg.alerts.is_empty() {
            return Ok(());
        }
        match self {
            Channel::Email(c) => c.send(msg).await,
            Channel::Slack(c) => c.send(msg).await,
            Channel::Webhook(c) => c.send(msg).await,
        }
    }

    /// The channel's configured name.
    pub fn name(&self) -> &str {
        match self {
            Channel::Email(c) => c.name(),
            Channel::Slack(c) => c.name(),
            Channel::Webhook(c) => c.name(),
        }
    }
}
