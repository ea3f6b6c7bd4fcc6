//! Where alerts go: `[[channels]]` (email, Slack, webhook, PagerDuty, Opsgenie; the push and
//! chat channels' checks are in notify/push.rs), `[[routes]]` that pick channels by
//! an alert's labels, `[[maintenance]]` windows that hold notifications back, and
//! `[alerting]` settings.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::document::{Document, KeyPath};
use crate::escalation::EscalationConfig;

mod push;

/// A channel's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelType {
    /// Email over SMTP (lettre).
    Email,
    /// A Slack incoming webhook (Block Kit message).
    Slack,
    /// A JSON POST to any URL, signed with HMAC-SHA256 when `secret` is set.
    Webhook,
    /// PagerDuty's Events API v2: trigger and resolve by `dedup_key`.
    Pagerduty,
    /// Telegram's Bot API `sendMessage` to a chat, in HTML parse mode.
    Telegram,
    /// A message published to a topic of an ntfy server (ntfy.sh or self-hosted).
    Ntfy,
    /// Pushover's Messages API; critical alerts as emergencies, cancelled once resolved.
    Pushover,
    /// Opsgenie's Alert API v2: create, acknowledge and close by `alias`.
    Opsgenie,
    /// A Matrix room, through the client-server API with a bot account's access token.
    Matrix,
    /// A Discord channel's webhook: a message with an embed per alert.
    Discord,
    /// A Microsoft Teams channel, through a Workflows webhook posting an Adaptive Card.
    Teams,
    /// A Mattermost incoming webhook (Slack-compatible attachments).
    Mattermost,
    /// A Rocket.Chat incoming webhook (Slack-compatible attachments).
    Rocketchat,
    /// A Google Chat space's incoming webhook: a card message.
    GoogleChat,
}

impl ChannelType {
    /// True when the channel's `url` is its credential (a chat service's incoming webhook,
    /// whose path or query holds the token: Discord's, Teams' `sig`): shown as its origin only.
    pub fn url_is_secret(self) -> bool {
        matches!(
            self,
            ChannelType::Discord
                | ChannelType::Teams
                | ChannelType::Mattermost
                | ChannelType::Rocketchat
                | ChannelType::GoogleChat
        )
    }

    /// The configured name.
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelType::Email => "email",
            ChannelType::Slack => "slack",
            ChannelType::Webhook => "webhook",
            ChannelType::Pagerduty => "pagerduty",
            ChannelType::Telegram => "telegram",
            ChannelType::Ntfy => "ntfy",
            ChannelType::Pushover => "pushover",
            ChannelType::Opsgenie => "opsgenie",
            ChannelType::Matrix => "matrix",
            ChannelType::Discord => "discord",
            ChannelType::Teams => "teams",
            ChannelType::Mattermost => "mattermost",
            ChannelType::Rocketchat => "rocketchat",
            ChannelType::GoogleChat => "google_chat",
        }
    }
}

/// `[[channels]]`: one place notifications go. Its `Debug` shows no secret: a Slack, Discord or
/// Teams webhook URL is one in full, the others have their passwords and secret parameters
/// hidden, and the HMAC key and the headers' values are left out.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    /// Unique name, used by routes.
    pub name: String,
    /// `email`, `slack`, `webhook`, `pagerduty`, `opsgenie`, `telegram`, `ntfy`, `pushover`,
    /// `matrix`, `discord`, `teams`, `mattermost`, `rocketchat` or `google_chat`.
    #[serde(rename = "type")]
    pub kind: ChannelType,
    /// email: lettre's SMTP URL (`smtp://user:pass@host:587?tls=required`, `smtps://` for
    /// implicit TLS, plain `smtp://host:25` for a local relay). webhook: the URL to POST to.
    /// pagerduty: the Events API v2 endpoint, default `https://events.pagerduty.com/v2/enqueue`.
    /// telegram: the Bot API server, default `https://api.telegram.org` (a local Bot API
    /// server, a proxy). ntfy: the topic's URL, `https://ntfy.sh/<topic>` or a server of
    /// one's own. pushover: the API server, default `https://api.pushover.net`.
    /// opsgenie: the API's base URL, default the `region`'s (`https://api.opsgenie.com`).
    /// discord, mattermost, rocketchat: the incoming webhook's URL, a secret (its token is in
    /// the path).
    /// teams: the Workflows webhook's URL, a secret in full (its `sig` signs it).
    /// google_chat: the space's incoming webhook URL, a secret in full (its `key` and `token`).
    #[serde(default)]
    pub url: Option<String>,
    /// email: the sender, `Name <address>` or an address.
    #[serde(default)]
    pub from: Option<String>,
    /// email: the recipients.
    #[serde(default)]
    pub to: Vec<String>,
    /// slack: the incoming webhook URL.
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// webhook: the HMAC-SHA256 key; the signature goes in `X-Lookout-Signature`.
    #[serde(default)]
    pub secret: Option<String>,
    /// pagerduty: the integration's routing key (Events API v2); write `"${VAR}"`.
    #[serde(default)]
    pub routing_key: Option<String>,
    /// opsgenie: the key of an API integration (`Authorization: GenieKey ...`); write `"${VAR}"`.
    #[serde(default)]
    pub api_key: Option<String>,
    /// opsgenie: `us` (`https://api.opsgenie.com`, the default) or `eu`
    /// (`https://api.eu.opsgenie.com`); `url` overrides both.
    #[serde(default)]
    pub region: Option<String>,
    /// opsgenie: who is notified, each `team:NAME`, `user:EMAIL`, `escalation:NAME` or
    /// `schedule:NAME`. Default `[]`: the integration's own team.
    #[serde(default)]
    pub responders: Vec<String>,
    /// webhook: extra request headers (an `Authorization` for the receiver, say).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// telegram: the bot's token from BotFather (`123456789:AA...`); write `"${VAR}"`.
    #[serde(default)]
    pub bot_token: Option<String>,
    /// telegram: the chat to send to: its numeric id (`-1001234567890`, a number or a string)
    /// or a public channel's `@username`.
    #[serde(default, deserialize_with = "push::string_or_integer")]
    pub chat_id: Option<String>,
    /// ntfy: an access token (`tk_...`) for a protected topic, sent as `Authorization:
    /// Bearer`; write `"${VAR}"`. Default none (a public topic). pushover: the application's
    /// API token (30 letters and digits), required.
    #[serde(default)]
    pub token: Option<String>,
    /// pushover: the user or group key to deliver to (30 letters and digits); write
    /// `"${VAR}"`.
    #[serde(default)]
    pub user: Option<String>,
    /// pushover: how often Pushover repeats an emergency (a critical alert) until someone
    /// acknowledges it in the app. Default `"60s"`, at least `"30s"`.
    #[serde(default, with = "crate::duration::option")]
    pub retry: Option<Duration>,
    /// pushover: how long an emergency is repeated at most. Default `"1h"`, at most `"3h"`.
    #[serde(default, with = "crate::duration::option")]
    pub expire: Option<Duration>,
    /// matrix: the homeserver's client-server API base URL (`https://matrix.example.org`).
    #[serde(default)]
    pub homeserver: Option<String>,
    /// matrix: the room's id (`!abcdef:example.org`); an alias (`#ops:example.org`) is refused,
    /// as whoever controls it can point it elsewhere.
    #[serde(default)]
    pub room: Option<String>,
    /// matrix: the bot account's access token; write `"${VAR}"`.
    #[serde(default)]
    pub access_token: Option<String>,
    /// How long one send may take. Default `"10s"`.
    #[serde(default = "default_send_timeout", with = "crate::duration")]
    pub timeout: Duration,
    /// Storm control: at most this many messages a minute; what comes beyond is held and sent
    /// as one digest when the minute is over. Default 20; 0 turns it off.
    #[serde(default = "default_max_per_minute")]
    pub max_per_minute: u32,
}

impl fmt::Debug for ChannelConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |v: &Option<String>| v.as_ref().map(|_| "***");
        f.debug_struct("ChannelConfig")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field(
                "url",
                &self.url.as_deref().map(if self.kind.url_is_secret() {
                    crate::redact::origin
                } else {
                    crate::redact::url
                }),
            )
            .field("from", &self.from)
            .field("to", &self.to)
            .field("webhook_url", &hidden(&self.webhook_url))
            .field("secret", &hidden(&self.secret))
            .field("routing_key", &hidden(&self.routing_key))
            .field("bot_token", &hidden(&self.bot_token))
            .field("chat_id", &self.chat_id)
            .field("token", &hidden(&self.token))
            .field("user", &hidden(&self.user))
            .field("retry", &self.retry)
            .field("expire", &self.expire)
            .field("api_key", &hidden(&self.api_key))
            .field("region", &self.region)
            .field("responders", &self.responders)
            .field(
                "homeserver",
                &self.homeserver.as_deref().map(crate::redact::url),
            )
            .field("room", &self.room)
            .field("access_token", &hidden(&self.access_token))
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("timeout", &self.timeout)
            .field("max_per_minute", &self.max_per_minute)
            .finish()
    }
}

fn default_max_per_minute() -> u32 {
    20
}

fn default_send_timeout() -> Duration {
    Duration::from_secs(10)
}

impl ChannelConfig {
    /// What is wrong with this channel, as (key, problem).
    fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.name.trim().is_empty() {
            out.push(("name", "must not be empty".to_string()));
        }
        let allowed: &[&str] = match self.kind {
            ChannelType::Email => &["url", "from", "to"],
            ChannelType::Slack => &["webhook_url"],
            ChannelType::Webhook => &["url", "secret", "headers"],
            ChannelType::Pagerduty => &["url", "routing_key"],
            ChannelType::Telegram => &["url", "bot_token", "chat_id"],
            ChannelType::Ntfy => &["url", "token"],
            ChannelType::Pushover => &["url", "token", "user", "retry", "expire"],
            ChannelType::Opsgenie => &["url", "api_key", "region", "responders"],
            ChannelType::Matrix => &["homeserver", "room", "access_token"],
            ChannelType::Discord | ChannelType::Mattermost | ChannelType::Rocketchat => &["url"],
            ChannelType::Teams => &["url"],
            ChannelType::GoogleChat => &["url"],
        };
        let set = [
            ("url", self.url.is_some()),
            ("from", self.from.is_some()),
            ("to", !self.to.is_empty()),
            ("webhook_url", self.webhook_url.is_some()),
            ("secret", self.secret.is_some()),
            ("headers", !self.headers.is_empty()),
            ("routing_key", self.routing_key.is_some()),
            ("bot_token", self.bot_token.is_some()),
            ("chat_id", self.chat_id.is_some()),
            ("token", self.token.is_some()),
            ("user", self.user.is_some()),
            ("retry", self.retry.is_some()),
            ("expire", self.expire.is_some()),
            ("api_key", self.api_key.is_some()),
            ("region", self.region.is_some()),
            ("responders", !self.responders.is_empty()),
            ("homeserver", self.homeserver.is_some()),
            ("room", self.room.is_some()),
            ("access_token", self.access_token.is_some()),
        ];
        for (key, present) in set {
            if present && !allowed.contains(&key) {
                out.push((
                    key,
                    format!("not a setting of {} channels", self.kind.as_str()),
                ));
            }
        }
        match self.kind {
            ChannelType::Email => {
                match self.url.as_deref() {
                    None => out.push(("url", "required: smtp://host:port or smtps://...".into())),
                    Some(u) if !(u.starts_with("smtp://") || u.starts_with("smtps://")) => {
                        out.push(("url", "expected smtp://... or smtps://...".into()))
                    }
                    Some(u) if url::Url::parse(u).is_err() => {
                        out.push(("url", "not a valid URL".into()))
                    }
                    _ => {}
                }
                match self.from.as_deref() {
                    None => out.push(("from", "required: the sender's address".into())),
                    Some(f) if !f.contains('@') => {
                        out.push(("from", format!("{f:?} is not an email address")))
                    }
                    _ => {}
                }
                if self.to.is_empty() {
                    out.push(("to", "required: at least one recipient".into()));
                }
                for t in &self.to {
                    if !t.contains('@') {
                        out.push(("to", format!("{t:?} is not an email address")));
                    }
                }
            }
            ChannelType::Slack => match self.webhook_url.as_deref() {
                None => out.push(("webhook_url", "required".into())),
                Some(u) => {
                    if let Some(p) = http_url_problem(u) {
                        out.push(("webhook_url", p));
                    }
                }
            },
            ChannelType::Webhook => match self.url.as_deref() {
                None => out.push(("url", "required".into())),
                Some(u) => {
                    if let Some(p) = http_url_problem(u) {
                        out.push(("url", p));
                    }
                }
            },
            ChannelType::Pagerduty => {
                if let Some(p) = self.url.as_deref().and_then(http_url_problem) {
                    out.push(("url", p));
                }
                match self.routing_key.as_deref() {
                    None => out.push(("routing_key", "required: write \"${VAR}\"".into())),
                    Some("") => out.push(("routing_key", "is empty (an unset ${VAR}?)".into())),
                    Some(k) if k.len() > 64 || !k.chars().all(|c| c.is_ascii_alphanumeric()) => out
                        .push((
                            "routing_key",
                            "expected an integration key: letters and digits, 32 of them".into(),
                        )),
                    _ => {}
                }
            }
            ChannelType::Telegram => push::telegram(self, &mut out),
            ChannelType::Ntfy => push::ntfy(self, &mut out),
            ChannelType::Pushover => push::pushover(self, &mut out),
            ChannelType::Opsgenie => self.opsgenie_problems(&mut out),
            ChannelType::Matrix => push::matrix(self, &mut out),
            ChannelType::Discord | ChannelType::Mattermost | ChannelType::Rocketchat => {
                push::chat_webhook(self, &mut out)
            }
            ChannelType::Teams => push::teams(self, &mut out),
            ChannelType::GoogleChat => push::google_chat(self, &mut out),
        }
        if self.secret.as_deref() == Some("") {
            out.push(("secret", "is empty (an unset ${VAR}?)".into()));
        }
        if self.timeout.is_zero() {
            out.push(("timeout", "must be more than 0".into()));
        }
        out
    }
}

impl ChannelConfig {
    fn opsgenie_problems(&self, out: &mut Vec<(&'static str, String)>) {
        if let Some(p) = self.url.as_deref().and_then(http_url_problem) {
            out.push(("url", p));
        }
        match self.api_key.as_deref() {
            None => out.push(("api_key", "required: write \"${VAR}\"".into())),
            Some("") => out.push(("api_key", "is empty (an unset ${VAR}?)".into())),
            Some(k)
                if k.len() > 64 || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') =>
            {
                out.push((
                    "api_key",
                    "expected an API integration's key: letters, digits and dashes".into(),
                ))
            }
            _ => {}
        }
        if let Some(r) = self
            .region
            .as_deref()
            .filter(|r| !matches!(*r, "us" | "eu"))
        {
            out.push(("region", format!("{r:?}: expected \"us\" or \"eu\"")));
        }
        for r in &self.responders {
            let ok = r.split_once(':').is_some_and(|(kind, name)| {
                matches!(kind, "team" | "user" | "escalation" | "schedule")
                    && !name.trim().is_empty()
            });
            if !ok {
                out.push((
                    "responders",
                    format!(
                        "{r:?}: expected team:NAME, user:EMAIL, escalation:NAME or schedule:NAME"
                    ),
                ));
            }
        }
    }
}

/// Why `u` is not an http(s) URL; the URL itself is not repeated, as it may hold a secret.
pub(crate) fn http_url_problem(u: &str) -> Option<String> {
    match url::Url::parse(u) {
        Ok(p) if p.scheme() == "http" || p.scheme() == "https" => None,
        Ok(_) => Some("expected an http:// or https:// URL".into()),
        Err(e) => Some(format!("not a valid URL: {e}")),
    }
}

/// `[[routes]]`: which alerts go to which channels, and how they are grouped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Label values an alert must all have (`{ severity = "critical", check = "api" }`); empty
    /// matches every alert.
    #[serde(rename = "match", default)]
    pub matchers: BTreeMap<String, String>,
    /// Channel names. Required unless `escalation` is given (one of the two).
    #[serde(default)]
    pub channels: Vec<String>,
    /// The `[[escalations]]` policy whose steps notify this route's alerts, instead of
    /// `channels`. Default: none.
    #[serde(default)]
    pub escalation: Option<String>,
    /// After a match, go on to the next routes too. Default `false`: the first match wins.
    #[serde(rename = "continue", default)]
    pub continue_matching: bool,
    /// Alerts with the same values of these labels share a message. Default `[]`: all of the
    /// route's alerts that arrive within `group_wait` go in one message.
    #[serde(default)]
    pub group_by: Vec<String>,
    /// How long to wait for more alerts of a group before sending. Default `"2s"`.
    #[serde(default = "default_group_wait", with = "crate::duration")]
    pub group_wait: Duration,
    /// Resend a firing, unacknowledged alert this often. Default off.
    #[serde(default, with = "crate::duration::option")]
    pub repeat_interval: Option<Duration>,
}

fn default_group_wait() -> Duration {
    Duration::from_secs(2)
}

impl RouteConfig {
    /// True when every matcher is among `labels`.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matchers.iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}

/// `[[maintenance]]`: a window during which matching alerts are recorded but not sent. Either
/// one-off (`starts`, `ends`) or recurring (`schedule`, a cron expression in UTC, and
/// `duration`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceConfig {
    /// Its name, shown on the status page.
    pub name: String,
    /// Label values an alert must all have; empty matches every alert.
    #[serde(rename = "match", default)]
    pub matchers: BTreeMap<String, String>,
    /// One-off: the start (RFC 3339).
    #[serde(default)]
    pub starts: Option<DateTime<Utc>>,
    /// One-off: the end (RFC 3339).
    #[serde(default)]
    pub ends: Option<DateTime<Utc>>,
    /// Recurring: when each window starts, as cron (`"0 2 * * SUN"`: Sundays 02:00 UTC).
    #[serde(default)]
    pub schedule: Option<String>,
    /// Recurring: how long each window lasts.
    #[serde(default, with = "crate::duration::option")]
    pub duration: Option<Duration>,
}

impl MaintenanceConfig {
    /// True when a window is open at `now`.
    pub fn active_at(&self, now: DateTime<Utc>) -> bool {
        if let (Some(s), Some(e)) = (self.starts, self.ends) {
            return s <= now && now < e;
        }
        let (Some(schedule), Some(d)) = (&self.schedule, self.duration) else {
            return false;
        };
        let Ok(cron) = croner::Cron::from_str(schedule) else {
            return false;
        };
        let Ok(d) = chrono::Duration::from_std(d) else {
            return false;
        };
        cron.find_previous_occurrence(&now, true)
            .is_ok_and(|start| start.checked_add_signed(d).is_some_and(|end| now < end))
    }

    /// The window open at `now`, else the next one to open: (start, end). `None` when it is
    /// over for good (a one-off in the past) or its schedule has no next time.
    pub fn current_or_next(&self, now: DateTime<Utc>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        if let (Some(s), Some(e)) = (self.starts, self.ends) {
            return (e > now).then_some((s, e));
        }
        let cron = croner::Cron::from_str(self.schedule.as_deref()?).ok()?;
        let d = chrono::Duration::from_std(self.duration?).ok()?;
        cron.find_previous_occurrence(&now, true)
            .ok()
            .and_then(|s| Some((s, s.checked_add_signed(d)?)))
            .filter(|(_, e)| *e > now)
            .or_else(|| {
                let s = cron.find_next_occurrence(&now, false).ok()?;
                Some((s, s.checked_add_signed(d)?))
            })
    }

    /// True when open at `now` and every matcher is among `labels`.
    pub fn covers(&self, labels: &BTreeMap<String, String>, now: DateTime<Utc>) -> bool {
        self.matchers.iter().all(|(k, v)| labels.get(k) == Some(v)) && self.active_at(now)
    }

    fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.name.trim().is_empty() {
            out.push(("name", "must not be empty".to_string()));
        }
        let one_off = self.starts.is_some() || self.ends.is_some();
        let recurring = self.schedule.is_some() || self.duration.is_some();
        match (one_off, recurring) {
            (true, true) => out.push((
                "schedule",
                "give either starts and ends, or schedule and duration, not both".into(),
            )),
            (false, false) => out.push((
                "starts",
                "required: starts and ends (one-off), or schedule and duration (recurring)".into(),
            )),
            (true, false) => match (self.starts, self.ends) {
                (Some(s), Some(e)) if e <= s => out.push(("ends", "must be after starts".into())),
                (None, _) => out.push(("starts", "required with ends".into())),
                (_, None) => out.push(("ends", "required with starts".into())),
                _ => {}
            },
            (false, true) => {
                match &self.schedule {
                    None => out.push(("schedule", "required with duration".into())),
                    Some(s) => {
                        if let Err(e) = croner::Cron::from_str(s) {
                            out.push(("schedule", format!("invalid cron expression {s:?}: {e}")));
                        }
                    }
                }
                match self.duration {
                    None => out.push(("duration", "required with schedule".into())),
                    Some(d) if d.is_zero() => out.push(("duration", "must be more than 0".into())),
                    Some(d) if d > Duration::from_secs(366 * 86_400) => {
                        out.push(("duration", "must be at most 366d".into()))
                    }
                    _ => {}
                }
            }
        }
        out
    }
}

/// `[alerting]`: rule and delivery settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertingSettings {
    /// An agent silent this long is down: one alert for the host, and its own checks' alerts
    /// are held back meanwhile. Default: 3 × the agent's own polling interval (it asks for its
    /// assignments every `assignments_interval`, 15 s by default, whether or not it has data
    /// to ship), and at least 30 s. `[[agents]] agent_timeout` overrides it per agent.
    #[serde(default, with = "crate::duration::option")]
    pub agent_timeout: Option<Duration>,
    /// How long a notification is retried before it is given up as failed. Default `"24h"`.
    #[serde(default = "default_give_up", with = "crate::duration")]
    pub give_up_after: Duration,
    /// How long the link to acknowledge an alert that a firing or reminder note carries (with
    /// `[server] public_url`) works, from when the note is sent; it stops sooner when the
    /// alert resolves. Default `"7d"`, 1m to 30d.
    #[serde(default = "default_ack_link_lifetime", with = "crate::duration")]
    pub ack_link_lifetime: Duration,
}

impl Default for AlertingSettings {
    fn default() -> Self {
        Self {
            agent_timeout: None,
            give_up_after: default_give_up(),
            ack_link_lifetime: default_ack_link_lifetime(),
        }
    }
}

fn default_ack_link_lifetime() -> Duration {
    Duration::from_secs(7 * 86_400)
}

fn default_give_up() -> Duration {
    Duration::from_secs(86_400)
}

/// What [`read`] reads: channels, routes, maintenance windows and escalation policies.
pub(crate) type Notifying = (
    Vec<ChannelConfig>,
    Vec<RouteConfig>,
    Vec<MaintenanceConfig>,
    Vec<EscalationConfig>,
);

/// Reads and checks `[[channels]]`, `[[routes]]`, `[[maintenance]]` and `[[escalations]]`.
pub(crate) fn read(doc: &mut Document<'_>) -> Notifying {
    let channels = crate::read_named(
        doc,
        "channels",
        "channel",
        |c: &ChannelConfig| &c.name,
        ChannelConfig::problems,
    );
    let names: HashMap<String, usize> =
        channels.iter().map(|(i, c)| (c.name.clone(), *i)).collect();
    let escalations = crate::escalation::read(doc, &channels);
    let routes = doc.array_section::<RouteConfig>("routes");
    for (i, r) in &routes {
        let at = KeyPath::key("routes").index(*i);
        crate::escalation::check_route(doc, &at, r, &escalations);
        for c in &r.channels {
            if !names.contains_key(c) {
                let known: Vec<&str> = channels.iter().map(|(_, c)| c.name.as_str()).collect();
                doc.error_at(
                    &at.child("channels"),
                    format!("no channel named {c:?} (channels: {known:?})"),
                );
            }
        }
        if r.repeat_interval
            .is_some_and(|d| d < Duration::from_secs(60))
        {
            doc.error_at(&at.child("repeat_interval"), "must be at least 1m");
        }
        if r.repeat_interval
            .is_some_and(|d| d > Duration::from_secs(30 * 86_400))
        {
            doc.error_at(&at.child("repeat_interval"), "must be at most 30d");
        }
        if r.group_wait > Duration::from_secs(3600) {
            doc.error_at(&at.child("group_wait"), "must be at most 1h");
        }
    }
    let maintenance = doc.array_section::<MaintenanceConfig>("maintenance");
    for (i, m) in &maintenance {
        let at = KeyPath::key("maintenance").index(*i);
        for (key, problem) in m.problems() {
            doc.error_at(&at.child(key), problem);
        }
    }
    (
        channels.into_iter().map(|(_, c)| c).collect(),
        routes.into_iter().map(|(_, r)| r).collect(),
        maintenance.into_iter().map(|(_, m)| m).collect(),
        escalations,
    )
}
