//! A strict fake of an ntfy server's JSON publishing (`POST /` with the topic in the body).
//! ntfy's server (Go, not packaged for Debian bookworm; the Go there is too old to build it)
//! cannot run here, so this checks a request as the published reference describes it and
//! answers as ntfy does.
//!
//! Reference: "Publishing", https://docs.ntfy.sh/publish/ (source: github.com/binwiederhier/ntfy,
//! docs/publish.md): "Publish as JSON" (POST or PUT to the root URL; `topic` required, a
//! string; `message`, `title` strings; `tags` a string array; `priority` an integer 1 to 5;
//! `actions` an array; `click`, `attach`, `icon` URLs; `markdown` a boolean; `filename`,
//! `delay`, `email`, `call` strings), "Message priority", "Tags & emojis", "Click action",
//! "Access tokens" (`Authorization: Bearer tk_...`), "Limitations" (a message larger than
//! 4,096 bytes is not delivered as a message); and "Rate limiting" and the error codes of
//! server/errors.go (`{"code":42901,"http":429,"error":"limit reached: too many requests"}`,
//! 40101 unauthorized, 40301 forbidden, 40024 invalid topic, 41301 too large).
//!
//! Checked: the path is the server's root (`/`); the body is at most 4,096 bytes of message
//! in a JSON object with only the reference's keys; `topic` 1 to 64 letters, digits, `-` and
//! `_`, the fake's [`TOPIC`]; `message` at most 4,096 bytes; `title` a string; `tags` strings;
//! `priority` an integer 1 to 5; `click` an http(s) URL; `markdown` a boolean. The topic is
//! protected: with [`TOKEN`] in `Authorization: Bearer` it is written to; another token is
//! 401; none is 403.
//!
//! Answers as ntfy: 200 and the stored message as JSON; errors as
//! `{"code":...,"http":...,"error":"..."}`. 429 (which ntfy sends without a `Retry-After`)
//! and 5xx are scripted with [`Peer::then_answer`] ([`too_many_requests`]).

use serde_json::{Value, json};

use super::http_peer::{Answer, Peer};

/// The topic the fake serves.
pub const TOPIC: &str = "lookout-ops-7f3a";
/// The access token that may write to it.
pub const TOKEN: &str = "tk_AgQdq7mVBoFD37zQVN29RhuMzNIz2";
/// ntfy's default message size limit.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// Starts the fake; valid messages with the token get 200.
pub async fn start() -> Peer {
    Peer::start(|req| {
        if req.path != "/" {
            return error(404, 40401, "page not found");
        }
        match req.header("authorization") {
            None => return error(403, 40301, "forbidden"),
            Some(a) if a != format!("Bearer {TOKEN}") => {
                return error(401, 40101, "unauthorized");
            }
            Some(_) => {}
        }
        match validate(&req.body) {
            Ok(v) => Answer::new(
                200,
                &json!({"id": "sPs71M8A2T", "time": 1_764_151_200, "expires": 1_764_194_400,
                        "event": "message", "topic": v["topic"], "title": v["title"],
                        "message": v["message"], "priority": v["priority"], "tags": v["tags"]})
                .to_string(),
            ),
            Err((code, e)) => error(code / 100, code, &e),
        }
    })
    .await
}

/// ntfy's error answer.
pub fn error(http: u16, code: u16, error: &str) -> Answer {
    Answer::new(
        http,
        &json!({"code": code, "http": http, "error": error,
                "link": "https://ntfy.sh/docs/publish/"})
        .to_string(),
    )
}

/// ntfy's visitor rate limit.
pub fn too_many_requests() -> Answer {
    error(
        429,
        42901,
        "limit reached: too many requests, please be nice",
    )
}

/// ntfy's verdict on a JSON publish body: the body, or (code, why).
pub fn validate(body: &[u8]) -> Result<Value, (u16, String)> {
    let bad = |e: &str| Err((40000, format!("invalid request: {e}")));
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return bad("invalid JSON");
    };
    let Some(obj) = v.as_object() else {
        return bad("not a JSON object");
    };
    const KNOWN: [&str; 14] = [
        "topic", "message", "title", "tags", "priority", "actions", "click", "attach", "markdown",
        "icon", "filename", "delay", "email", "call",
    ];
    if let Some(k) = obj.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return bad(&format!("unknown field {k}"));
    }
    match obj.get("topic").and_then(Value::as_str) {
        Some(t) if t == TOPIC => {}
        Some(t)
            if (1..=64).contains(&t.len())
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            return Err((40401, "topic not found on this fake".into()));
        }
        _ => return Err((40024, "invalid topic".into())),
    }
    for key in ["message", "title", "filename", "delay", "email", "call"] {
        if obj.get(key).is_some_and(|v| !v.is_string()) {
            return bad(&format!("{key} must be a string"));
        }
    }
    if obj
        .get("message")
        .and_then(Value::as_str)
        .is_some_and(|m| m.len() > MAX_MESSAGE_BYTES)
    {
        return Err((41301, "message too large".into()));
    }
    if let Some(tags) = obj.get("tags") {
        let ok = tags
            .as_array()
            .is_some_and(|t| t.iter().all(|t| t.as_str().is_some_and(|s| !s.is_empty())));
        if !ok {
            return bad("tags must be an array of strings");
        }
    }
    if obj
        .get("priority")
        .is_some_and(|p| !p.as_u64().is_some_and(|p| (1..=5).contains(&p)))
    {
        return Err((40007, "invalid priority".into()));
    }
    for key in ["click", "attach", "icon"] {
        if let Some(u) = obj.get(key) {
            let ok = u
                .as_str()
                .is_some_and(|u| u.starts_with("https://") || u.starts_with("http://"));
            if !ok {
                return bad(&format!("{key} must be an http(s) URL"));
            }
        }
    }
    if obj.get("markdown").is_some_and(|m| !m.is_boolean()) {
        return bad("markdown must be a boolean");
    }
    if obj.get("actions").is_some_and(|a| !a.is_array()) {
        return bad("actions must be an array");
    }
    Ok(v)
}
