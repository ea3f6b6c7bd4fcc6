//! Strict fakes of Mattermost's and Rocket.Chat's incoming webhooks, which take Slack's payload
//! in part: neither server can run here (Mattermost needs its own database and a 400 MB
//! download; Rocket.Chat needs MongoDB and Node), so each checks a request as its published
//! reference describes it and answers as it does. One fake, parametrised by [`Vendor`]: the
//! two differ in which fields they know, their limit and their answers.
//!
//! References:
//! - Mattermost: "Incoming webhooks", https://developers.mattermost.com/integrate/webhooks/incoming/
//!   (the parameters `text`, `channel`, `username`, `icon_url`, `icon_emoji`, `attachments`,
//!   `type`, `props`, `priority`; `text` or `attachments` required; the message limit, 16,383
//!   characters by default; the answer `ok`) and "Message attachments",
//!   https://developers.mattermost.com/integrate/reference/message-attachments/ (`fallback`,
//!   `color` a hex colour, `pretext`, `text`, `author_name`, `author_link`, `author_icon`,
//!   `title`, `title_link`, `fields` of `title`, `value`, `short`, `image_url`, `thumb_url`,
//!   `footer`, `footer_icon`, `actions`). It has no Block Kit: `blocks` is refused.
//! - Rocket.Chat: "Integrations", https://docs.rocket.chat/docs/integrations (an incoming
//!   webhook without a script takes `text`, `alias`, `emoji`, `avatar`, `channel`,
//!   `attachments`) and the attachments of `chat.postMessage`,
//!   https://developer.rocket.chat/apidocs/post-message (`color`, `text`, `ts`, `thumb_url`,
//!   `message_link`, `collapsed`, `author_name`, `author_link`, `author_icon`, `title`,
//!   `title_link`, `title_link_download`, `image_url`, `audio_url`, `video_url`, `fields` of
//!   `short`, `title`, `value`); `Message_MaxAllowedSize`, 5,000 characters by default. No
//!   `blocks`.
//!
//! Checked: the path is the fake's hook ([`Vendor::path`]; another is refused as the server
//! does); `Content-Type: application/json`; a JSON object with only the vendor's keys, each of
//! its type; `text` or `attachments` present; `text` within the vendor's limit, and (the fake
//! also holds what Lookout promises, so a test cannot pass with a message the vendor would
//! cut) the characters of `text` and every attachment's strings together within it too; each
//! attachment with only the vendor's keys, `color` a `#rrggbb` colour, links http(s) URLs,
//! `fields` objects with string `title` and `value` and boolean `short`.
//!
//! Answers: Mattermost 200 `ok`, 400 `{"id": ..., "message": ..., "status_code": 400}`;
//! Rocket.Chat 200 `{"success":true}`, 400 `{"success":false,"error":...}`. 429 and 5xx are
//! scripted with [`Peer::then_answer`].

use serde_json::{Map, Value, json};

use super::http_peer::{Answer, Peer};

/// The fake's hook's secret (Mattermost's hook id; Rocket.Chat's token).
pub const HOOK_SECRET: &str = "xq7nh3gd5fbm8c4ywk1zpr6e9a";

/// Which server the fake is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    Mattermost,
    RocketChat,
}

impl Vendor {
    /// The hook's path.
    pub fn path(self) -> String {
        match self {
            Vendor::Mattermost => format!("/hooks/{HOOK_SECRET}"),
            Vendor::RocketChat => format!("/hooks/6a1b2c3d4e5f60718293a4b5/{HOOK_SECRET}"),
        }
    }

    /// The message limit (characters).
    pub fn max_chars(self) -> usize {
        match self {
            Vendor::Mattermost => 16_383,
            Vendor::RocketChat => 5_000,
        }
    }

    fn keys(self) -> &'static [&'static str] {
        match self {
            Vendor::Mattermost => &[
                "text",
                "channel",
                "username",
                "icon_url",
                "icon_emoji",
                "attachments",
                "type",
                "props",
                "priority",
            ],
            Vendor::RocketChat => &["text", "alias", "emoji", "avatar", "channel", "attachments"],
        }
    }

    fn attachment_keys(self) -> &'static [&'static str] {
        match self {
            Vendor::Mattermost => &[
                "fallback",
                "color",
                "pretext",
                "text",
                "author_name",
                "author_link",
                "author_icon",
                "title",
                "title_link",
                "fields",
                "image_url",
                "thumb_url",
                "footer",
                "footer_icon",
                "actions",
            ],
            Vendor::RocketChat => &[
                "color",
                "text",
                "ts",
                "thumb_url",
                "message_link",
                "collapsed",
                "author_name",
                "author_link",
                "author_icon",
                "title",
                "title_link",
                "title_link_download",
                "image_url",
                "audio_url",
                "video_url",
                "fields",
            ],
        }
    }

    /// The server's refusal.
    pub fn refusal(self, status: u16, why: &str) -> Answer {
        match self {
            Vendor::Mattermost => Answer::new(
                status,
                &json!({"id": "web.incoming_webhook.error", "message": why,
                        "detailed_error": "", "request_id": "8k3d9", "status_code": status})
                .to_string(),
            ),
            Vendor::RocketChat => {
                Answer::new(status, &json!({"success": false, "error": why}).to_string())
            }
        }
    }

    fn ok(self) -> Answer {
        match self {
            Vendor::Mattermost => Answer::new(200, "ok").header("content-type", "text/plain"),
            Vendor::RocketChat => Answer::new(200, r#"{"success":true}"#),
        }
    }
}

/// Starts the fake of `vendor`; valid messages get its 200.
pub async fn start(vendor: Vendor) -> Peer {
    Peer::start(move |req| {
        if req.path != vendor.path() {
            return match vendor {
                Vendor::Mattermost => vendor.refusal(400, "Invalid webhook"),
                Vendor::RocketChat => {
                    vendor.refusal(404, "Invalid integration id or token provided.")
                }
            };
        }
        if req.header("content-type") != Some("application/json") {
            return vendor.refusal(400, "Unable to parse incoming data");
        }
        match validate(vendor, &req.body) {
            Ok(_) => vendor.ok(),
            Err(e) => vendor.refusal(400, &e.join("; ")),
        }
    })
    .await
}

/// The vendor's verdict on a body: the body, or what is wrong.
pub fn validate(vendor: Vendor, body: &[u8]) -> Result<Value, Vec<String>> {
    let v: Value = serde_json::from_slice(body).map_err(|_| vec!["invalid JSON".to_string()])?;
    let obj = v.as_object().ok_or(vec!["not an object".to_string()])?;
    let mut e = Vec::new();
    if obj.contains_key("blocks") {
        e.push("blocks: not supported (no Block Kit)".to_string());
    }
    only(obj, vendor.keys(), "", &mut e);
    for k in vendor
        .keys()
        .iter()
        .filter(|k| !matches!(**k, "attachments" | "props"))
    {
        if obj.get(*k).is_some_and(|v| !v.is_string()) {
            e.push(format!("{k}: must be a string"));
        }
    }
    let text = obj.get("text").and_then(Value::as_str).unwrap_or("");
    let max = vendor.max_chars();
    if text.chars().count() > max {
        e.push(format!("text: longer than {max} characters"));
    }
    let mut total = text.chars().count();
    match obj.get("attachments") {
        None if text.is_empty() => e.push("text or attachments: required".into()),
        None => {}
        Some(Value::Array(list)) => {
            for (i, a) in list.iter().enumerate() {
                total += attachment(vendor, a, &format!("attachments[{i}]"), &mut e);
            }
        }
        Some(_) => e.push("attachments: must be an array".into()),
    }
    if total > max {
        e.push(format!(
            "the message writes {total} characters, more than {max}"
        ));
    }
    if e.is_empty() { Ok(v) } else { Err(e) }
}

/// Checks one attachment; the characters it writes.
fn attachment(vendor: Vendor, a: &Value, at: &str, e: &mut Vec<String>) -> usize {
    let Some(a) = a.as_object() else {
        e.push(format!("{at}: must be an object"));
        return 0;
    };
    only(a, vendor.attachment_keys(), &format!("{at}."), e);
    let mut chars = 0;
    for (k, v) in a {
        match (k.as_str(), v) {
            ("fields" | "actions", _) | ("collapsed", Value::Bool(_)) => {}
            ("ts", Value::String(_) | Value::Number(_)) => {}
            (_, Value::String(s)) => {
                chars += s.chars().count();
                let is_link = k.ends_with("_link") || k.ends_with("_url") || k.ends_with("_icon");
                if is_link && !(s.starts_with("https://") || s.starts_with("http://")) {
                    e.push(format!("{at}.{k}: not an http(s) URL"));
                }
            }
            _ => e.push(format!("{at}.{k}: wrong type")),
        }
    }
    if let Some(c) = a.get("color").and_then(Value::as_str) {
        let hex = c.strip_prefix('#').unwrap_or("");
        if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            e.push(format!("{at}.color: expected #rrggbb"));
        }
    }
    if let Some(fields) = a.get("fields") {
        match fields.as_array() {
            Some(list) => {
                for (i, f) in list.iter().enumerate() {
                    let at = format!("{at}.fields[{i}]");
                    let Some(f) = f.as_object() else {
                        e.push(format!("{at}: must be an object"));
                        continue;
                    };
                    only(f, &["title", "value", "short"], &format!("{at}."), e);
                    for k in ["title", "value"] {
                        match f.get(k) {
                            Some(Value::String(s)) => chars += s.chars().count(),
                            _ => e.push(format!("{at}.{k}: required string")),
                        }
                    }
                    if f.get("short").is_some_and(|s| !s.is_boolean()) {
                        e.push(format!("{at}.short: must be a boolean"));
                    }
                }
            }
            None => e.push(format!("{at}.fields: must be an array")),
        }
    }
    chars
}

fn only(obj: &Map<String, Value>, keys: &[&str], at: &str, e: &mut Vec<String>) {
    for k in obj.keys().filter(|k| !keys.contains(&k.as_str())) {
        e.push(format!("{at}{k}: unknown field"));
    }
}

/// A 429 as the server's rate limiter sends it: Mattermost's (`RateLimitSettings`) with
/// `Retry-After`; Rocket.Chat's with `X-RateLimit-Reset` (a time in milliseconds) and its wait
/// in words, but no `Retry-After`.
pub fn too_many_requests(vendor: Vendor, wait: u64) -> Answer {
    match vendor {
        Vendor::Mattermost => Answer::new(429, "limit exceeded\n")
            .header("retry-after", &wait.to_string())
            .header("x-ratelimit-remaining", "0"),
        Vendor::RocketChat => vendor
            .refusal(
                429,
                &format!(
                    "Error, too many requests. Please slow down. You must wait {wait} seconds \
                     before trying this endpoint again. [error-too-many-requests]"
                ),
            )
            .header("x-ratelimit-remaining", "0")
            .header("x-ratelimit-reset", "1795687210000"),
    }
}
