//! A strict fake of Pushover's Message API (`POST /1/messages.json`) and its cancel of an
//! emergency's retries by tag (`POST /1/receipts/cancel_by_tag/{tag}.json`): Pushover cannot
//! be reached from here, so this checks a request as the published reference describes it and
//! answers as Pushover does.
//!
//! Reference: "Pushover: API", https://pushover.net/api ("Pushing Messages": `token` and
//! `user`, 30 characters `[A-Za-z0-9]`, required; `message` required, at most 1,024
//! characters; `title` at most 250; `url` at most 512, `url_title` at most 100; `priority` -2
//! to 2; `html` and `monospace` 1, not both; `timestamp` a Unix time; JSON bodies accepted;
//! "Response": `{"status":1,"request":...}`, 4xx with `status: 0` and `errors`, 429 when the
//! application's limit is reached, 5xx to be retried) and "Receipts and Callbacks",
//! https://pushover.net/api/receipts (an emergency, priority 2, needs `retry` of at least 30
//! seconds and `expire` of at most 10,800; it returns a `receipt`; `tags` on the message let
//! `POST /1/receipts/cancel_by_tag/(tag).json` with the application's `token` cancel its
//! retries).
//!
//! Checked: `Content-Type: application/json`; a JSON object with only the reference's keys;
//! `token` this fake's [`TOKEN`] and `user` its [`USER`] (else 400 `invalid`); the limits and
//! types above; `retry`, `expire` and `tags` only with priority 2, where `retry` and `expire`
//! are required; a cancel's tag letters and digits, and its body the `token` alone (that
//! the tag is the emergency's is for the tests to check).
//!
//! Answers as Pushover: 200 `{"status":1,"request":"..."}` (with `receipt` for an
//! emergency); 400 `{"status":0,"errors":[...],"request":"..."}`; 404 elsewhere. 429 and 5xx
//! are scripted with [`Peer::then_answer`].

use serde_json::{Map, Value, json};

use super::http_peer::{Answer, Peer};

/// The application token the fake accepts.
pub const TOKEN: &str = "azGDORePK8gMaC0QOYAMyEEuzJnyUi";
/// The user key the fake delivers to.
pub const USER: &str = "uQiRzpo4DXghDmr9QzzfQu27cmVRsG";

/// Starts the fake.
pub async fn start() -> Peer {
    Peer::start(|req| {
        if req.header("content-type") != Some("application/json") {
            return invalid(&["this fake takes JSON".into()]);
        }
        let verdict = if req.path == "/1/messages.json" {
            validate(&req.body).map(|emergency| {
                let mut ok = json!({"status": 1, "request": "5042853c-402d-4a18-abcb-168734a801de"});
                if emergency {
                    ok["receipt"] = "rLqVuqTRh62UzxtmqiaLzQmVcPgiCy".into();
                }
                ok
            })
        } else if let Some(tag) = req
            .path
            .strip_prefix("/1/receipts/cancel_by_tag/")
            .and_then(|t| t.strip_suffix(".json"))
        {
            validate_cancel(tag, &req.body).map(|()| {
                json!({"status": 1, "canceled": 1, "request": "e460545a-8e8b-4bd9-9fa3-59e96ec2c8f0"})
            })
        } else {
            return Answer::new(404, "not found");
        };
        match verdict {
            Ok(v) => Answer::new(200, &v.to_string()),
            Err(errors) => invalid(&errors),
        }
    })
    .await
}

fn invalid(errors: &[String]) -> Answer {
    Answer::new(
        400,
        &json!({"status": 0, "errors": errors, "request": "b1b6c5a4-9d4e-4d0b-8a56-0c5e7f1b2a33"})
            .to_string(),
    )
}

/// Pushover's verdict on a message: whether it is an emergency, or what is wrong.
pub fn validate(body: &[u8]) -> Result<bool, Vec<String>> {
    let v: Value = serde_json::from_slice(body).map_err(|_| vec!["invalid JSON".to_string()])?;
    let obj = v.as_object().ok_or(vec!["not an object".to_string()])?;
    let mut errors = Vec::new();
    const KNOWN: [&str; 17] = [
        "token",
        "user",
        "message",
        "attachment_base64",
        "attachment_type",
        "device",
        "html",
        "monospace",
        "priority",
        "sound",
        "timestamp",
        "title",
        "ttl",
        "url",
        "url_title",
        "retry",
        "expire",
    ];
    for k in obj.keys() {
        if !KNOWN.contains(&k.as_str()) && k != "tags" && k != "callback" {
            errors.push(format!("{k}: unknown parameter"));
        }
    }
    if obj.get("token").and_then(Value::as_str) != Some(TOKEN) {
        errors.push("application token is invalid".into());
    }
    if obj.get("user").and_then(Value::as_str) != Some(USER) {
        errors.push("user identifier is invalid".into());
    }
    match obj.get("message").and_then(Value::as_str) {
        Some(m) if !m.trim().is_empty() && m.chars().count() <= 1024 => {}
        Some(m) if m.trim().is_empty() => errors.push("message cannot be blank".into()),
        Some(_) => errors.push("message is too long, must be 1024 characters or less".into()),
        None => errors.push("message cannot be blank".into()),
    }
    limit(obj, "title", 250, &mut errors);
    limit(obj, "url", 512, &mut errors);
    limit(obj, "url_title", 100, &mut errors);
    limit(obj, "sound", 50, &mut errors);
    limit(obj, "device", 200, &mut errors);
    if obj
        .get("url")
        .and_then(Value::as_str)
        .is_some_and(|u| !(u.starts_with("https://") || u.starts_with("http://")))
    {
        errors.push("url is not a URL".into());
    }
    let priority = match obj.get("priority") {
        None => 0,
        Some(p) => match p.as_i64() {
            Some(p) if (-2..=2).contains(&p) => p,
            _ => {
                errors.push("priority is invalid".into());
                0
            }
        },
    };
    let int = |k: &str| obj.get(k).map(|v| v.as_i64());
    if priority == 2 {
        match int("retry") {
            Some(Some(r)) if r >= 30 => {}
            Some(_) => errors.push("retry is invalid, must be at least 30 seconds".into()),
            None => errors.push("retry must be supplied with priority=2".into()),
        }
        match int("expire") {
            Some(Some(e)) if (1..=10_800).contains(&e) => {}
            Some(_) => errors.push("expire is invalid, must be at most 10800 seconds".into()),
            None => errors.push("expire must be supplied with priority=2".into()),
        }
        if obj
            .get("tags")
            .is_some_and(|t| !t.as_str().is_some_and(|t| !t.is_empty() && t.len() <= 1000))
        {
            errors.push("tags is invalid".into());
        }
    } else {
        for k in ["retry", "expire", "tags", "callback"] {
            if obj.contains_key(k) {
                errors.push(format!("{k} is only for priority=2"));
            }
        }
    }
    let flag = |k: &str| obj.get(k).and_then(Value::as_i64) == Some(1);
    if flag("html") && flag("monospace") {
        errors.push("html and monospace cannot both be set".into());
    }
    for k in ["html", "monospace"] {
        if obj
            .get(k)
            .is_some_and(|v| !matches!(v.as_i64(), Some(0 | 1)))
        {
            errors.push(format!("{k} must be 0 or 1"));
        }
    }
    if obj.get("timestamp").is_some_and(|t| !t.is_i64()) {
        errors.push("timestamp is invalid".into());
    }
    if errors.is_empty() {
        Ok(priority == 2)
    } else {
        Err(errors)
    }
}

/// Pushover's verdict on a cancel by `tag`.
pub fn validate_cancel(tag: &str, body: &[u8]) -> Result<(), Vec<String>> {
    let v: Value = serde_json::from_slice(body).map_err(|_| vec!["invalid JSON".to_string()])?;
    let obj = v.as_object().ok_or(vec!["not an object".to_string()])?;
    let mut errors = Vec::new();
    if obj.keys().any(|k| k != "token") {
        errors.push("only token is taken".into());
    }
    if obj.get("token").and_then(Value::as_str) != Some(TOKEN) {
        errors.push("application token is invalid".into());
    }
    if tag.is_empty() || !tag.bytes().all(|b| b.is_ascii_alphanumeric()) {
        errors.push("tag is invalid".into());
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn limit(obj: &Map<String, Value>, key: &str, max: usize, errors: &mut Vec<String>) {
    match obj.get(key) {
        None => {}
        Some(Value::String(s)) if s.chars().count() <= max => {}
        Some(Value::String(_)) => errors.push(format!(
            "{key} is too long, must be {max} characters or less"
        )),
        Some(_) => errors.push(format!("{key} must be a string")),
    }
}
