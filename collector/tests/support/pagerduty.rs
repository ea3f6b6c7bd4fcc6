//! A strict fake of PagerDuty's Events API v2 (`POST /v2/enqueue`): PagerDuty cannot be reached
//! from here, so this checks an event as the published reference describes it and answers as
//! PagerDuty does.
//!
//! Reference: "Send an Alert Event", https://developer.pagerduty.com/docs/events-api-v2/trigger-events/
//! (source: github.com/PagerDuty/developer-docs, docs/events-API-v2/02-Trigger-Events.md), and
//! "Events API v2 Overview", https://developer.pagerduty.com/docs/events-api-v2/overview/
//! (docs/events-API-v2/01-Overview.md: response codes, retries, the 512 KB size limit, PD-CEF).
//!
//! Checked: `Content-Type: application/json`; a body of at most 512 KB that is a JSON object
//! with only the reference's keys (`routing_key`, `event_action`, `dedup_key`, `payload`,
//! `images`, `links`, `client`, `client_url`); `routing_key` a string of 32 characters, this
//! fake's [`ROUTING_KEY`]; `event_action` one of `trigger`, `acknowledge`, `resolve`;
//! `dedup_key` a non-empty string of at most 255 characters, required for `acknowledge` and
//! `resolve` (without one they cannot refer to an alert). For `trigger`: `payload` an object
//! with only PD-CEF's keys, `summary` a non-empty string of at most 1,024 characters, `source` a
//! non-empty string, `severity` one of `critical`, `error`, `warning`, `info`, `timestamp` an
//! ISO 8601 time, `component`, `group` and `class` strings, `custom_details` an object. `links`
//! an array of objects with `href` (required, an http(s) URL) and `text` (optional, a string);
//! `images` objects with `src` (required, https), `href` and `alt`; `client` and `client_url`
//! strings.
//!
//! Answers as PagerDuty: `202 {"status":"success","message":"Event processed","dedup_key":...}`;
//! `400 {"status":"invalid event","message":"Event object is invalid","errors":[...]}`; 404
//! elsewhere. 429 and 5xx are scripted with [`Peer::then_answer`].

use serde_json::{Map, Value, json};

use super::http_peer::{Answer, Peer};

/// The path of PagerDuty's alert events endpoint.
pub const PATH: &str = "/v2/enqueue";
/// The integration key the fake accepts (32 characters, as PagerDuty's).
pub const ROUTING_KEY: &str = "R0SECRETKEYabcdef0123456789abcde";
/// PagerDuty's limit on an event's size.
pub const MAX_BODY: usize = 512 * 1024;

/// Starts the fake; valid events get 202.
pub async fn start() -> Peer {
    Peer::start(|req| {
        if req.path != PATH {
            return Answer::new(404, "not found");
        }
        if req.header("content-type") != Some("application/json") {
            return invalid(&["content type must be application/json".into()]);
        }
        match validate(&req.body) {
            Ok(dedup_key) => Answer::new(
                202,
                &json!({"status": "success", "message": "Event processed", "dedup_key": dedup_key})
                    .to_string(),
            ),
            Err(errors) => invalid(&errors),
        }
    })
    .await
}

fn invalid(errors: &[String]) -> Answer {
    Answer::new(
        400,
        &json!({"status": "invalid event", "message": "Event object is invalid", "errors": errors})
            .to_string(),
    )
}

/// PagerDuty's verdict on a body: the event's `dedup_key`, or what is wrong.
pub fn validate(body: &[u8]) -> Result<String, Vec<String>> {
    let mut errors = Vec::new();
    if body.len() > MAX_BODY {
        return Err(vec!["event is larger than 512 KB".into()]);
    }
    let v: Value = serde_json::from_slice(body).map_err(|_| vec!["invalid JSON".to_string()])?;
    let obj = v.as_object().ok_or(vec!["not an object".to_string()])?;
    only(
        obj,
        &[
            "routing_key",
            "event_action",
            "dedup_key",
            "payload",
            "images",
            "links",
            "client",
            "client_url",
        ],
        "",
        &mut errors,
    );
    match obj.get("routing_key").and_then(Value::as_str) {
        Some(k) if k.chars().count() == 32 && k == ROUTING_KEY => {}
        Some(_) => errors.push("routing_key: invalid routing key".into()),
        None => errors.push("routing_key: required string".into()),
    }
    let action = obj.get("event_action").and_then(Value::as_str);
    if !matches!(action, Some("trigger" | "acknowledge" | "resolve")) {
        errors.push("event_action: must be trigger, acknowledge or resolve".into());
    }
    let dedup_key = match obj.get("dedup_key") {
        None => None,
        Some(Value::String(k)) if !k.is_empty() && k.chars().count() <= 255 => Some(k.clone()),
        Some(_) => {
            errors.push("dedup_key: a string of 1 to 255 characters".into());
            None
        }
    };
    if matches!(action, Some("acknowledge" | "resolve")) && dedup_key.is_none() {
        errors.push("dedup_key: required for acknowledge and resolve".into());
    }
    if action == Some("trigger") {
        match obj.get("payload").and_then(Value::as_object) {
            Some(p) => payload_ok(p, &mut errors),
            None => errors.push("payload: required object".into()),
        }
    }
    if let Some(links) = obj.get("links") {
        for l in links.as_array().into_iter().flatten() {
            match l.as_object() {
                Some(l) => {
                    only(l, &["href", "text"], "links[].", &mut errors);
                    if !l
                        .get("href")
                        .and_then(Value::as_str)
                        .is_some_and(is_web_url)
                    {
                        errors.push("links[].href: required URL".into());
                    }
                    string_or_absent(l, "text", "links[].", &mut errors);
                }
                None => errors.push("links[]: must be objects".into()),
            }
        }
        if !links.is_array() {
            errors.push("links: must be an array".into());
        }
    }
    if let Some(images) = obj.get("images") {
        for i in images.as_array().into_iter().flatten() {
            match i.as_object() {
                Some(i) => {
                    only(i, &["src", "href", "alt"], "images[].", &mut errors);
                    let src = i.get("src").and_then(Value::as_str);
                    if !src.is_some_and(|s| s.starts_with("https://")) {
                        errors.push("images[].src: required https URL".into());
                    }
                    string_or_absent(i, "href", "images[].", &mut errors);
                    string_or_absent(i, "alt", "images[].", &mut errors);
                }
                None => errors.push("images[]: must be objects".into()),
            }
        }
        if !images.is_array() {
            errors.push("images: must be an array".into());
        }
    }
    string_or_absent(obj, "client", "", &mut errors);
    string_or_absent(obj, "client_url", "", &mut errors);
    if errors.is_empty() {
        Ok(dedup_key.unwrap_or_else(|| "generated-by-the-fake".into()))
    } else {
        Err(errors)
    }
}

fn payload_ok(p: &Map<String, Value>, errors: &mut Vec<String>) {
    only(
        p,
        &[
            "summary",
            "source",
            "severity",
            "timestamp",
            "component",
            "group",
            "class",
            "custom_details",
        ],
        "payload.",
        errors,
    );
    match p.get("summary").and_then(Value::as_str) {
        Some(s) if !s.trim().is_empty() && s.chars().count() <= 1024 => {}
        _ => errors.push("payload.summary: a string of 1 to 1024 characters".into()),
    }
    match p.get("source").and_then(Value::as_str) {
        Some(s) if !s.trim().is_empty() => {}
        _ => errors.push("payload.source: required string".into()),
    }
    let severity = p.get("severity").and_then(Value::as_str);
    if !matches!(severity, Some("critical" | "error" | "warning" | "info")) {
        errors.push("payload.severity: must be critical, error, warning or info".into());
    }
    if let Some(t) = p.get("timestamp") {
        let ok = t.as_str().is_some_and(|t| {
            chrono::DateTime::parse_from_rfc3339(t).is_ok()
                || chrono::DateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f%z").is_ok()
        });
        if !ok {
            errors.push("payload.timestamp: an ISO 8601 time".into());
        }
    }
    for key in ["component", "group", "class"] {
        string_or_absent(p, key, "payload.", errors);
    }
    if p.get("custom_details").is_some_and(|d| !d.is_object()) {
        errors.push("payload.custom_details: must be an object".into());
    }
}

fn only(obj: &Map<String, Value>, keys: &[&str], at: &str, errors: &mut Vec<String>) {
    for k in obj.keys().filter(|k| !keys.contains(&k.as_str())) {
        errors.push(format!("{at}{k}: unknown field"));
    }
}

fn string_or_absent(obj: &Map<String, Value>, key: &str, at: &str, errors: &mut Vec<String>) {
    if obj.get(key).is_some_and(|v| !v.is_string()) {
        errors.push(format!("{at}{key}: must be a string"));
    }
}

fn is_web_url(s: &str) -> bool {
    s.starts_with("https://") || s.starts_with("http://")
}
