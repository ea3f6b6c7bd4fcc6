//! The checks of the push and chat channels' keys (Telegram, ntfy, Pushover, Matrix, Discord,
//! Teams, Google Chat), beside the others' in notify.rs so that file stays about routes and
//! the HTTP channels' common keys. Each says which key is wrong and what was expected, never
//! repeating a secret.

use std::time::Duration;

use serde::Deserialize;

use super::{ChannelConfig, http_url_problem};

/// A Telegram bot token: the bot's numeric id, `:`, then letters, digits, `-` and `_`.
fn bot_token_ok(t: &str) -> bool {
    let Some((id, key)) = t.split_once(':') else {
        return false;
    };
    !id.is_empty()
        && id.len() <= 20
        && id.bytes().all(|b| b.is_ascii_digit())
        && (20..=100).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A Telegram chat: a numeric id, or `@username` of a public channel (5 to 32 letters,
/// digits and `_`).
fn chat_id_ok(c: &str) -> bool {
    let digits = c.strip_prefix('-').unwrap_or(c);
    if !digits.is_empty() && digits.len() <= 20 && digits.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    c.strip_prefix('@').is_some_and(|u| {
        (5..=32).contains(&u.len()) && u.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    })
}

pub(super) fn telegram(c: &ChannelConfig, out: &mut Vec<(&'static str, String)>) {
    if let Some(p) = c.url.as_deref().and_then(http_url_problem) {
        out.push(("url", p));
    }
    match c.bot_token.as_deref() {
        None => out.push(("bot_token", "required: write \"${VAR}\"".into())),
        Some("") => out.push(("bot_token", "is empty (an unset ${VAR}?)".into())),
        Some(t) if !bot_token_ok(t) => out.push((
            "bot_token",
            "expected a bot token as BotFather gives it: digits, `:`, then letters, digits, - and _"
                .into(),
        )),
        _ => {}
    }
    match c.chat_id.as_deref() {
        None => out.push((
            "chat_id",
            "required: the chat's numeric id or a channel's @username".into(),
        )),
        Some(id) if !chat_id_ok(id) => out.push((
            "chat_id",
            format!("{id:?} is neither a numeric chat id nor a channel's @username"),
        )),
        _ => {}
    }
}

/// A key given as a number or a string (`chat_id = -100123` or `chat_id = "@ops"`), kept as
/// its text.
pub(super) fn string_or_integer<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Int(i64),
        Text(String),
    }
    Ok(Option::<Either>::deserialize(d)?.map(|v| match v {
        Either::Int(i) => i.to_string(),
        Either::Text(s) => s,
    }))
}

pub(super) fn ntfy(c: &ChannelConfig, out: &mut Vec<(&'static str, String)>) {
    match c.url.as_deref() {
        None => out.push((
            "url",
            "required: the topic's URL, https://ntfy.sh/<topic> or your server's".into(),
        )),
        Some(u) => match url::Url::parse(u) {
            Ok(p) if p.scheme() != "http" && p.scheme() != "https" => {
                out.push(("url", "expected an http:// or https:// URL".into()))
            }
            Ok(p) => {
                let topic = p
                    .path_segments()
                    .and_then(|mut s| s.next_back())
                    .unwrap_or("");
                let ok = (1..=64).contains(&topic.len())
                    && topic
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                if !ok {
                    out.push((
                        "url",
                        "expected the topic's URL, https://ntfy.sh/<topic>: a topic of 1 to 64 \
                         letters, digits, - and _ at the end of the path"
                            .into(),
                    ));
                }
            }
            Err(e) => out.push(("url", format!("not a valid URL: {e}"))),
        },
    }
    match c.token.as_deref() {
        Some("") => out.push(("token", "is empty (an unset ${VAR}?)".into())),
        Some(t) if t.chars().any(|c| c.is_whitespace() || c.is_control()) => {
            out.push(("token", "must not hold spaces or control characters".into()))
        }
        _ => {}
    }
}

/// A Pushover key (an application token, a user or group key): 30 letters and digits.
fn pushover_key_ok(k: &str) -> bool {
    k.len() == 30 && k.bytes().all(|b| b.is_ascii_alphanumeric())
}

pub(super) fn pushover(c: &ChannelConfig, out: &mut Vec<(&'static str, String)>) {
    if let Some(p) = c.url.as_deref().and_then(http_url_problem) {
        out.push(("url", p));
    }
    for (key, value, what) in [
        ("token", c.token.as_deref(), "the application's API token"),
        ("user", c.user.as_deref(), "a user or group key"),
    ] {
        match value {
            None => out.push((key, format!("required: {what}; write \"${{VAR}}\""))),
            Some("") => out.push((key, "is empty (an unset ${VAR}?)".into())),
            Some(k) if !pushover_key_ok(k) => {
                out.push((key, format!("expected {what}: 30 letters and digits")))
            }
            _ => {}
        }
    }
    let retry = c.retry.unwrap_or(Duration::from_secs(60));
    if retry < Duration::from_secs(30) {
        out.push(("retry", "must be at least 30s (Pushover's minimum)".into()));
    }
    match c.expire {
        Some(e) if e > Duration::from_secs(10_800) => {
            out.push(("expire", "must be at most 3h (Pushover's maximum)".into()))
        }
        Some(e) if e < retry => out.push(("expire", "must be at least retry".into())),
        _ => {}
    }
}

pub(super) fn matrix(c: &ChannelConfig, out: &mut Vec<(&'static str, String)>) {
    match c.homeserver.as_deref() {
        None => out.push((
            "homeserver",
            "required: the homeserver's URL, https://matrix.example.org".into(),
        )),
        Some(u) => {
            if let Some(p) = http_url_problem(u) {
                out.push(("homeserver", p));
            }
        }
    }
    match c.room.as_deref() {
        None => out.push((
            "room",
            "required: the room's id, !abcdef:example.org".into(),
        )),
        Some(r) if r.starts_with('#') => out.push((
            "room",
            format!(
                "{r:?} is an alias, which whoever controls it can point elsewhere: give the \
                 room's id (!abcdef:example.org; in Element, Room settings > Advanced)"
            ),
        )),
        Some(r)
            if !r.starts_with('!')
                || r.len() < 2
                || r.len() > 255
                || r.contains(char::is_whitespace) =>
        {
            out.push((
                "room",
                format!("{r:?} is not a room id (!abcdef:example.org)"),
            ))
        }
        _ => {}
    }
    match c.access_token.as_deref() {
        None => out.push(("access_token", "required: write \"${VAR}\"".into())),
        Some("") => out.push(("access_token", "is empty (an unset ${VAR}?)".into())),
        Some(t) if t.chars().any(|c| c.is_whitespace() || c.is_control()) => out.push((
            "access_token",
            "must not hold spaces or control characters".into(),
        )),
        _ => {}
    }
}

/// A chat service's incoming webhook (Discord, Mattermost, Rocket.Chat): `url` required, an http(s) URL. The URL is
/// the credential and is never repeated.
pub(super) fn chat_webhook(c: &ChannelConfig, out: &mut Vec<(&'static str, String)>) {
    match c.url.as_deref() {
        None => out.push((
            "url",
            "required: the incoming webhook's URL; write \"${VAR}\"".into(),
        )),
        Some("") => out.push(("url", "is empty (an unset ${VAR}?)".into())),
        Some(u) => {
            if let Some(p) = http_url_problem(u) {
                out.push(("url", p));
            }
        }
    }
}

/// A Teams webhook: a chat webhook's URL ([`chat_webhook`]), a Workflows URL
/// (`https://...logic.azure.com/workflows/...`, `https://...powerplatform.com/...`) or a
/// proxy's; an Office 365 connector's URL (`https://*.webhook.office.com/webhookb2/...`) is
/// refused, as Microsoft retired those connectors.
pub(super) fn teams(c: &ChannelConfig, out: &mut Vec<(&'static str, String)>) {
    chat_webhook(c, out);
    let connector = c
        .url
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
        .is_some_and(|p| {
            p.host_str()
                .is_some_and(|h| h == "outlook.office.com" || h.ends_with(".webhook.office.com"))
        });
    if connector {
        out.push((
            "url",
            "an Office 365 connector's webhook, which Microsoft retired: create a Workflows \
             webhook (\"Post to a channel when a webhook request is received\") and use its URL"
                .into(),
        ));
    }
}

/// A Google Chat webhook: a chat webhook's URL ([`chat_webhook`]); at Google's own host, the
/// URL as Google Chat gives it (`/v1/spaces/SPACE/messages` with its `key` and `token`), so a
/// URL copied short is told at once rather than at the first alert.
pub(super) fn google_chat(c: &ChannelConfig, out: &mut Vec<(&'static str, String)>) {
    chat_webhook(c, out);
    let Some(u) = c.url.as_deref().and_then(|u| url::Url::parse(u).ok()) else {
        return;
    };
    if u.host_str() != Some("chat.googleapis.com") {
        return;
    }
    let path_ok = u
        .path()
        .strip_prefix("/v1/spaces/")
        .and_then(|p| p.strip_suffix("/messages"))
        .is_some_and(|space| !space.is_empty() && !space.contains('/'));
    let has = |key: &str| u.query_pairs().any(|(k, v)| k == key && !v.is_empty());
    if !path_ok || !has("key") || !has("token") {
        out.push((
            "url",
            "expected the webhook's URL as Google Chat gives it, \
             https://chat.googleapis.com/v1/spaces/SPACE/messages?key=...&token=..."
                .into(),
        ));
    }
}
