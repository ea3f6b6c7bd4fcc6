//! A strict fake of Discord's "Execute Webhook" (`POST /api/webhooks/{id}/{token}`): Discord
//! cannot be reached from here, so this checks a request as the published reference describes
//! it and answers as Discord does.
//!
//! References: "Execute Webhook", https://discord.com/developers/docs/resources/webhook#execute-webhook
//! (the JSON params `content`, `username`, `avatar_url`, `tts`, `embeds`, `allowed_mentions`,
//! `components`, `files[n]`, `payload_json`, `attachments`, `flags`, `thread_name`,
//! `applied_tags`, `poll`; the query `wait`, `thread_id`, `with_components`; one of `content`,
//! `embeds`, `components`, `files` or `poll` required); "Embed Object" and "Embed Limits",
//! https://discord.com/developers/docs/resources/message#embed-object-embed-limits (the keys
//! of an embed and of its footer, author, fields, image and thumbnail; title 256 characters,
//! description 4,096, 25 fields, a field's name 256 and value 1,024, footer text 2,048, author
//! name 256, and 6,000 characters summed over the titles, descriptions, field names and
//! values, footer texts and author names of all the embeds of a message; 10 embeds a message;
//! `color` an integer, `timestamp` ISO 8601); "Allowed Mentions Object" (`parse` of `roles`,
//! `users`, `everyone`); and "Rate Limits", https://discord.com/developers/docs/topics/rate-limits
//! (a 429 with a `Retry-After` header and a JSON body `{"message", "retry_after" (seconds, a
//! float), "global"}`).
//!
//! Checked: the path names this fake's webhook ([`ID`], [`TOKEN`]: 401 `Invalid Webhook Token`
//! for another token, 404 `Unknown Webhook` for another id); `Content-Type: application/json`;
//! a JSON object with only the reference's keys and each of the right type; `content` at most
//! 2,000 characters; at most 10 embeds, each with only an embed's keys, `color` an integer
//! `0..=0xFFFFFF`, `timestamp` ISO 8601, `url` an http(s) URL, `footer.text` and
//! `author.name` required in their objects, every field with a non-empty `name` and `value` and
//! a boolean `inline`, and every limit above; `allowed_mentions.parse` only the three kinds.
//!
//! Answers as Discord: with `?wait=true`, 200 and the message it stored; without, 204; an
//! invalid body 400 `{"code": 50035, "message": "Invalid Form Body", "errors": {...}}`. 429
//! ([`too_many_requests`]: header and body) and 5xx are scripted with [`Peer::then_answer`].

use serde_json::{Map, Value, json};

use super::http_peer::{Answer, Peer};

/// The webhook's id.
pub const ID: &str = "1192837465019283746";
/// The webhook's token: the secret in its URL.
pub const TOKEN: &str = "dWsK3cR3T-T0k3n_xYzAbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefghij";

/// The limits of an embed (characters).
pub const MAX_CONTENT: usize = 2000;
pub const MAX_EMBEDS: usize = 10;
pub const MAX_TITLE: usize = 256;
pub const MAX_DESCRIPTION: usize = 4096;
pub const MAX_FIELDS: usize = 25;
pub const MAX_FIELD_NAME: usize = 256;
pub const MAX_FIELD_VALUE: usize = 1024;
pub const MAX_FOOTER: usize = 2048;
pub const MAX_AUTHOR: usize = 256;
pub const MAX_TOTAL: usize = 6000;

/// The webhook's path.
pub fn path() -> String {
    format!("/api/webhooks/{ID}/{TOKEN}")
}

/// Starts the fake; valid messages get 200 (with `wait=true`) or 204.
pub async fn start() -> Peer {
    Peer::start(|req| {
        let Some(rest) = req.path.strip_prefix("/api/webhooks/") else {
            return error(404, 0, "404: Not Found");
        };
        match rest.split_once('/') {
            Some((id, _)) if id != ID => return error(404, 10015, "Unknown Webhook"),
            Some((_, token)) if token != TOKEN => {
                return error(401, 50027, "Invalid Webhook Token");
            }
            None => return error(405, 0, "405: Method Not Allowed"),
            Some(_) => {}
        }
        if req.header("content-type") != Some("application/json") {
            return error(400, 50006, "Cannot send an empty message");
        }
        match validate(&req.body) {
            Ok(v) if req.query.split('&').any(|p| p == "wait=true") => Answer::new(
                200,
                &json!({"id": "1192837465019283999", "type": 0, "channel_id": "1092837465019283746",
                        "webhook_id": ID, "content": v["content"], "embeds": v["embeds"],
                        "timestamp": "2026-11-26T10:00:01.000000+00:00"})
                .to_string(),
            ),
            Ok(_) => Answer::new(204, ""),
            Err(errors) => Answer::new(
                400,
                &json!({"code": 50035, "message": "Invalid Form Body",
                        "errors": errors.iter().map(|(at, why)| (at.clone(), json!({"_errors": [{"code": "INVALID", "message": why}]}))).collect::<Map<_, _>>()})
                .to_string(),
            ),
        }
    })
    .await
}

/// Discord's error answer.
pub fn error(status: u16, code: u32, message: &str) -> Answer {
    Answer::new(
        status,
        &json!({"message": message, "code": code}).to_string(),
    )
}

/// A 429 as Discord sends it: `Retry-After` in whole seconds and the exact wait in the body.
pub fn too_many_requests(retry_after: f64) -> Answer {
    Answer::new(
        429,
        &json!({"message": "You are being rate limited.", "retry_after": retry_after,
                "global": false})
        .to_string(),
    )
    .header("retry-after", &(retry_after.ceil() as u64).to_string())
    .header("x-ratelimit-scope", "user")
}

/// Discord's verdict on a body: the body, or (where, why) for each problem.
pub fn validate(body: &[u8]) -> Result<Value, Vec<(String, String)>> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| vec![("_".to_string(), "invalid JSON".to_string())])?;
    let obj = v
        .as_object()
        .ok_or(vec![("_".to_string(), "not an object".to_string())])?;
    let mut e = Errors::default();
    e.only(
        obj,
        &[
            "content",
            "username",
            "avatar_url",
            "tts",
            "embeds",
            "allowed_mentions",
            "components",
            "payload_json",
            "attachments",
            "flags",
            "thread_name",
            "applied_tags",
            "poll",
        ],
        "",
    );
    e.text(obj, "content", "content", MAX_CONTENT, false);
    e.text(obj, "username", "username", 80, false);
    if obj
        .get("username")
        .and_then(Value::as_str)
        .is_some_and(str::is_empty)
    {
        e.push("username", "must be 1 to 80 characters");
    }
    e.text(obj, "avatar_url", "avatar_url", 2048, false);
    if obj.get("tts").is_some_and(|t| !t.is_boolean()) {
        e.push("tts", "must be a boolean");
    }
    let content = obj.get("content").and_then(Value::as_str).unwrap_or("");
    let embeds = obj.get("embeds");
    let has_embeds = embeds
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if content.is_empty() && !has_embeds && !obj.contains_key("components") {
        e.push("_", "Cannot send an empty message");
    }
    if let Some(embeds) = embeds {
        match embeds.as_array() {
            Some(list) => {
                if list.len() > MAX_EMBEDS {
                    e.push("embeds", "must be 10 or fewer in length");
                }
                let mut total = 0;
                for (i, em) in list.iter().enumerate() {
                    total += e.embed(em, &format!("embeds.{i}"));
                }
                if total > MAX_TOTAL {
                    e.push("embeds", "Embed size exceeds maximum size of 6000");
                }
            }
            None => e.push("embeds", "must be an array"),
        }
    }
    if let Some(am) = obj.get("allowed_mentions") {
        match am.as_object() {
            Some(am) => {
                e.only(
                    am,
                    &["parse", "roles", "users", "replied_user"],
                    "allowed_mentions.",
                );
                if let Some(parse) = am.get("parse") {
                    let ok = parse.as_array().is_some_and(|p| {
                        p.iter()
                            .all(|k| matches!(k.as_str(), Some("roles" | "users" | "everyone")))
                    });
                    if !ok {
                        e.push("allowed_mentions.parse", "must be roles, users or everyone");
                    }
                }
            }
            None => e.push("allowed_mentions", "must be an object"),
        }
    }
    if e.0.is_empty() { Ok(v) } else { Err(e.0) }
}

#[derive(Default)]
struct Errors(Vec<(String, String)>);

impl Errors {
    fn push(&mut self, at: &str, why: &str) {
        self.0.push((at.to_string(), why.to_string()));
    }

    fn only(&mut self, obj: &Map<String, Value>, keys: &[&str], at: &str) {
        for k in obj.keys().filter(|k| !keys.contains(&k.as_str())) {
            self.push(&format!("{at}{k}"), "unknown field");
        }
    }

    /// `obj[key]`, when present, must be a string of at most `max` characters (and not
    /// empty when `required`); its length.
    fn text(
        &mut self,
        obj: &Map<String, Value>,
        key: &str,
        at: &str,
        max: usize,
        required: bool,
    ) -> usize {
        match obj.get(key) {
            None if required => {
                self.push(at, "This field is required");
                0
            }
            None => 0,
            Some(Value::String(s)) => {
                let n = s.chars().count();
                if n > max {
                    self.push(at, &format!("Must be {max} or fewer in length."));
                }
                if required && s.trim().is_empty() {
                    self.push(at, "This field is required");
                }
                n
            }
            Some(_) => {
                self.push(at, "must be a string");
                0
            }
        }
    }

    fn url(&mut self, obj: &Map<String, Value>, key: &str, at: &str, required: bool) {
        match obj.get(key) {
            None if !required => {}
            Some(Value::String(u)) if u.starts_with("https://") || u.starts_with("http://") => {}
            _ => self.push(at, "Not a well formed URL."),
        }
    }

    /// Checks one embed; its characters towards the 6,000.
    fn embed(&mut self, em: &Value, at: &str) -> usize {
        let Some(em) = em.as_object() else {
            self.push(at, "must be an object");
            return 0;
        };
        self.only(
            em,
            &[
                "title",
                "type",
                "description",
                "url",
                "timestamp",
                "color",
                "footer",
                "image",
                "thumbnail",
                "video",
                "provider",
                "author",
                "fields",
            ],
            &format!("{at}."),
        );
        let mut chars = self.text(em, "title", &format!("{at}.title"), MAX_TITLE, false);
        chars += self.text(
            em,
            "description",
            &format!("{at}.description"),
            MAX_DESCRIPTION,
            false,
        );
        if em.get("type").is_some_and(|t| t != "rich") {
            self.push(&format!("{at}.type"), "webhooks send rich embeds");
        }
        self.url(em, "url", &format!("{at}.url"), false);
        if let Some(t) = em.get("timestamp") {
            let ok = t
                .as_str()
                .is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok());
            if !ok {
                self.push(
                    &format!("{at}.timestamp"),
                    "Could not parse ISO8601 timestamp.",
                );
            }
        }
        if em
            .get("color")
            .is_some_and(|c| c.as_u64().is_none_or(|c| c > 0xff_ffff))
        {
            self.push(&format!("{at}.color"), "must be an integer 0 to 16777215");
        }
        if let Some(f) = em.get("footer") {
            match f.as_object() {
                Some(f) => {
                    let at = format!("{at}.footer");
                    self.only(
                        f,
                        &["text", "icon_url", "proxy_icon_url"],
                        &format!("{at}."),
                    );
                    chars += self.text(f, "text", &format!("{at}.text"), MAX_FOOTER, true);
                    self.url(f, "icon_url", &format!("{at}.icon_url"), false);
                }
                None => self.push(&format!("{at}.footer"), "must be an object"),
            }
        }
        if let Some(a) = em.get("author") {
            match a.as_object() {
                Some(a) => {
                    let at = format!("{at}.author");
                    self.only(
                        a,
                        &["name", "url", "icon_url", "proxy_icon_url"],
                        &format!("{at}."),
                    );
                    chars += self.text(a, "name", &format!("{at}.name"), MAX_AUTHOR, true);
                    self.url(a, "url", &format!("{at}.url"), false);
                    self.url(a, "icon_url", &format!("{at}.icon_url"), false);
                }
                None => self.push(&format!("{at}.author"), "must be an object"),
            }
        }
        for key in ["image", "thumbnail"] {
            if let Some(i) = em.get(key) {
                match i.as_object() {
                    Some(i) => {
                        let at = format!("{at}.{key}");
                        self.only(
                            i,
                            &["url", "proxy_url", "height", "width"],
                            &format!("{at}."),
                        );
                        self.url(i, "url", &format!("{at}.url"), true);
                    }
                    None => self.push(&format!("{at}.{key}"), "must be an object"),
                }
            }
        }
        if let Some(fields) = em.get("fields") {
            match fields.as_array() {
                Some(list) => {
                    if list.len() > MAX_FIELDS {
                        self.push(&format!("{at}.fields"), "Must be 25 or fewer in length.");
                    }
                    for (i, f) in list.iter().enumerate() {
                        let at = format!("{at}.fields.{i}");
                        let Some(f) = f.as_object() else {
                            self.push(&at, "must be an object");
                            continue;
                        };
                        self.only(f, &["name", "value", "inline"], &format!("{at}."));
                        chars += self.text(f, "name", &format!("{at}.name"), MAX_FIELD_NAME, true);
                        chars +=
                            self.text(f, "value", &format!("{at}.value"), MAX_FIELD_VALUE, true);
                        if f.get("inline").is_some_and(|i| !i.is_boolean()) {
                            self.push(&format!("{at}.inline"), "must be a boolean");
                        }
                    }
                }
                None => self.push(&format!("{at}.fields"), "must be an array"),
            }
        }
        chars
    }
}
