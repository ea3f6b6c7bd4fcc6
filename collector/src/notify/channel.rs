//! A configured channel, built from its `[[channels]]` entry: the one place that knows the
//! kinds. Email speaks SMTP; every other kind is an [`HttpChannel`], a payload builder (the
//! kind's module) and an endpoint ([`super::endpoint`]). The senders' shared helpers are not
//! here but in [`super::format`] (the human forms of times, durations and labels),
//! [`super::endpoint`] and [`super::http`] (requests, answers, retries and secrets of the HTTP
//! channels), so that a channel's module imports its helpers and this one imports the channels,
//! and nothing goes round in a circle.

use lookout_config::{ChannelConfig, ChannelType};

use super::email::EmailChannel;
use super::endpoint::HttpChannel;
use super::message::{Message, SendError};
use super::{
    discord, google_chat, matrix, ntfy, opsgenie, pagerduty, pushover, slack, slack_compat, teams,
    telegram, webhook,
};

/// A channel ready to send: one per `[[channels]]` entry.
#[derive(Debug)]
pub enum Channel {
    /// Email over SMTP.
    Email(EmailChannel),
    /// A channel over HTTP (Slack, webhook, PagerDuty, Opsgenie, Telegram...).
    Http(HttpChannel),
}

impl Channel {
    /// Builds the channel `cfg` describes; the HTTP channels share `http` (its connection pool).
    /// The error names the setting at fault and never repeats a URL or a secret.
    pub fn build(cfg: &ChannelConfig, http: reqwest::Client) -> Result<Channel, String> {
        Ok(match cfg.kind {
            ChannelType::Email => Channel::Email(EmailChannel::new(cfg)?),
            ChannelType::Slack => Channel::Http(slack::channel(cfg, http)?),
            ChannelType::Webhook => Channel::Http(webhook::channel(cfg, http)?),
            ChannelType::Pagerduty => Channel::Http(pagerduty::channel(cfg, http)?),
            ChannelType::Telegram => Channel::Http(telegram::channel(cfg, http)?),
            ChannelType::Ntfy => Channel::Http(ntfy::channel(cfg, http)?),
            ChannelType::Pushover => Channel::Http(pushover::channel(cfg, http)?),
            ChannelType::Opsgenie => Channel::Http(opsgenie::channel(cfg, http)?),
            ChannelType::Matrix => Channel::Http(matrix::channel(cfg, http)?),
            ChannelType::Discord => Channel::Http(discord::channel(cfg, http)?),
            ChannelType::Teams => Channel::Http(teams::channel(cfg, http)?),
            ChannelType::Mattermost => Channel::Http(slack_compat::mattermost(cfg, http)?),
            ChannelType::Rocketchat => Channel::Http(slack_compat::rocketchat(cfg, http)?),
            ChannelType::GoogleChat => Channel::Http(google_chat::channel(cfg, http)?),
        })
    }

    /// Sends one message; a message without notes sends nothing.
    pub async fn send(&self, msg: &Message) -> Result<(), SendError> {
        if msg.alerts.is_empty() {
            return Ok(());
        }
        match self {
            Channel::Email(c) => c.send(msg).await,
            Channel::Http(c) => c.send(msg).await,
        }
    }

    /// The channel's configured name.
    pub fn name(&self) -> &str {
        match self {
            Channel::Email(c) => c.name(),
            Channel::Http(c) => c.name(),
        }
    }

    /// True when the peer keeps a triggered alert open until it is resolved (PagerDuty,
    /// Opsgenie):
    /// `notify-test` then resolves its test alert.
    pub fn keeps_alerts_open(&self) -> bool {
        match self {
            Channel::Email(_) => false,
            Channel::Http(c) => c.keeps_alerts_open(),
        }
    }
}
