//! A strict fake of Opsgenie's Alert API v2: Opsgenie cannot be reached from here, so this
//! checks each request as the published reference describes it and answers as Opsgenie does.
//!
//! Reference: "Alert API", https://docs.opsgenie.com/docs/alert-api (Create Alert: the fields,
//! which is mandatory, and their limits; Acknowledge Alert and Close Alert: `identifierType`,
//! `user`, `source`, `note`; answers `202` with `result`, `took`, `requestId`), and "API
//! Rate Limiting", https://docs.opsgenie.com/docs/api-rate-limiting (a token bucket per
//! request domain, counted over rolling windows of a minute and of a second; a request over
//! the limit is answered 429 with `X-RateLimit-State: THROTTLED`, `X-RateLimit-Reason` naming
//! the limit, and `X-RateLimit-Period-In-Sec`, the window it passed: 60 or 1; no
//! `Retry-After`).
//!
//! Checked: `Authorization: GenieKey <key>` with this fake's [`API_KEY`] (else 401);
//! `Content-Type: application/json`; `POST /v2/alerts` (create), `POST
//! /v2/alerts/{identifier}/acknowledge` and `/close` with `identifierType` `id`, `tiny` or
//! `alias` (else 422), anything else 404. A create is a JSON object with only the reference's
//! fields: `message` a non-empty string of at most 130 characters; `alias` at most 512;
//! `description` at most 15,000; `responders` and `visibleTo` at most 50 objects, each with
//! `type` one of `team`, `user`, `escalation`, `schedule` and an `id` or a `name` (`username`
//! for a user); `actions` at most 10 strings of at most 50 characters; `tags` at most 20 of at
//! most 50; `details` an object of strings, at most 8,000 characters keys and values together;
//! `entity` at most 512; `source` and `user` at most 100; `note` at most 25,000; `priority` one
//! of `P1`..`P5`. An acknowledge or close body: only `user` (100), `source` (100), `note`
//! (25,000). The identifier in the path (decoded) at most 512 characters.
//!
//! Answers as Opsgenie: `202 {"result": "Request will be processed", "took": ..., "requestId":
//! ...}`; `422 {"message": "Request body is not valid", "errors": {...}, ...}`; `401 {"message":
//! "Could not authenticate", ...}`. 429 and 5xx are scripted with [`Peer::then_answer`]
//! ([`throttled`] is Opsgenie's 429, [`throttled_without_headers`] one a proxy might make).

use serde_json::{Map, Value, json};

use super::http_peer::{Answer, Peer, Request};

/// The key the fake accepts (an API integration's key is a UUID).
pub const API_KEY: &str = "eb243592-faa2-4ba2-a551-1afdf565c889";

/// Starts the fake; valid requests get 202.
pub async fn start() -> Peer {
    Peer::start(answer).await
}

/// What Opsgenie answers `req`.
pub fn answer(req: &Request) -> Answer {
    let took = |status: u16, mut body: Value| {
        body["took"] = json!(0.011);
        body["requestId"] = json!("43a29c5c-3dbf-4fa4-9c26-f4f71023e120");
        Answer::new(status, &body.to_string())
    };
    if req.header("authorization") != Some(&format!("GenieKey {API_KEY}")) {
        return took(401, json!({"message": "Could not authenticate"}));
    }
    match validate(req) {
        Ok(_) => took(202, json!({"result": "Request will be processed"})),
        Err(Verdict::NotFound) => took(404, json!({"message": "Not found"})),
        Err(Verdict::Invalid(errors)) => {
            let errors: Map<String, Value> = errors
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
            took(
                422,
                json!({"message": "Request body is not valid", "errors": errors}),
            )
        }
    }
}

/// Opsgenie's 429, as its rate-limiting page describes it, for the window of `period`
/// seconds (60: the requests a minute, 1: a second).
pub fn throttled(period: u64) -> Answer {
    throttled_without_headers()
        .header("x-ratelimit-state", "THROTTLED")
        .header("x-ratelimit-reason", "INTEGRATION")
        .header("x-ratelimit-period-in-sec", &period.to_string())
}

/// A 429 with Opsgenie's body but none of its rate-limit headers.
pub fn throttled_without_headers() -> Answer {
    Answer::new(
        429,
        r#"{"message":"You are making too many requests! To avoid errors, we recommend you limit requests.","took":0.0,"requestId":"x"}"#,
    )
}

/// What a request did, when valid.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Create, with its alias (or `None`).
    Create(Option<String>),
    /// Acknowledge the alert with this identifier.
    Acknowledge(String),
    /// Close the alert with this identifier.
    Close(String),
}

/// Why a request is refused.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// No such endpoint.
    NotFound,
    /// 422, with (field, problem).
    Invalid(Vec<(String, String)>),
}

/// Opsgenie's verdict on a request (its path, query and body).
pub fn validate(req: &Request) -> Result<Action, Verdict> {
    let parts: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    let mut errors = Vec::new();
    let mut err = |k: &str, v: &str| errors.push((k.to_string(), v.to_string()));
    let action = match parts.as_slice() {
        ["v2", "alerts"] => None,
        ["v2", "alerts", id, verb @ ("acknowledge" | "close")] => {
            let id = percent_decode(id);
            if id.is_empty() || id.chars().count() > 512 {
                err("identifier", "must be 1 to 512 characters");
            }
            let kind = req
                .query
                .split('&')
                .find_map(|p| p.strip_prefix("identifierType="))
                .unwrap_or("id");
            if !matches!(kind, "id" | "tiny" | "alias") {
                err("identifierType", "must be one of [id, tiny, alias]");
            }
            Some((*verb == "close", id))
        }
        _ => return Err(Verdict::NotFound),
    };
    if req.header("content-type") != Some("application/json") {
        err("body", "content type must be application/json");
    }
    let body: Value = match serde_json::from_slice(&req.body) {
        Ok(Value::Object(o)) => Value::Object(o),
        _ => {
            err("body", "must be a JSON object");
            return Err(Verdict::Invalid(errors));
        }
    };
    let obj = body.as_object().cloned().unwrap_or_default();
    let result = match action {
        None => {
            create_ok(&obj, &mut err);
            Action::Create(obj.get("alias").and_then(Value::as_str).map(String::from))
        }
        Some((close, id)) => {
            only(&obj, &["user", "source", "note"], &mut err);
            string_at_most(&obj, "user", 100, &mut err);
            string_at_most(&obj, "source", 100, &mut err);
            string_at_most(&obj, "note", 25_000, &mut err);
            if close {
                Action::Close(id)
            } else {
                Action::Acknowledge(id)
            }
        }
    };
    if errors.is_empty() {
        Ok(result)
    } else {
        Err(Verdict::Invalid(errors))
    }
}

fn create_ok(obj: &Map<String, Value>, err: &mut impl FnMut(&str, &str)) {
    only(
        obj,
        &[
            "message",
            "alias",
            "description",
            "responders",
            "visibleTo",
            "actions",
            "tags",
            "details",
            "entity",
            "source",
            "priority",
            "user",
            "note",
        ],
        err,
    );
    match obj.get("message").and_then(Value::as_str) {
        Some(m) if !m.trim().is_empty() && m.chars().count() <= 130 => {}
        Some(m) if m.trim().is_empty() => err("message", "Message can not be empty."),
        Some(_) => err("message", "Message can not be longer than 130 characters."),
        None => err("message", "Message can not be empty."),
    }
    string_at_most(obj, "alias", 512, err);
    string_at_most(obj, "description", 15_000, err);
    string_at_most(obj, "entity", 512, err);
    string_at_most(obj, "source", 100, err);
    string_at_most(obj, "user", 100, err);
    string_at_most(obj, "note", 25_000, err);
    for key in ["responders", "visibleTo"] {
        let Some(v) = obj.get(key) else { continue };
        let Some(list) = v.as_array().filter(|l| l.len() <= 50) else {
            err(key, "must be a list of at most 50 objects");
            continue;
        };
        for r in list {
            let ok = r.as_object().is_some_and(|r| {
                let name_key = match r.get("type").and_then(Value::as_str) {
                    Some("user") => "username",
                    Some("team" | "escalation" | "schedule") => "name",
                    _ => return false,
                };
                let named = |k: &str| {
                    r.get(k)
                        .and_then(Value::as_str)
                        .is_some_and(|s| !s.trim().is_empty())
                };
                r.keys()
                    .all(|k| ["type", "id", name_key].contains(&k.as_str()))
                    && (named("id") || named(name_key))
            });
            if !ok {
                err(
                    key,
                    "each must have a type (team, user, escalation, schedule) and an id or a name",
                );
            }
        }
    }
    for (key, most) in [("actions", 10), ("tags", 20)] {
        let Some(v) = obj.get(key) else { continue };
        let ok = v.as_array().is_some_and(|l| {
            l.len() <= most
                && l.iter().all(|t| {
                    t.as_str()
                        .is_some_and(|t| !t.is_empty() && t.chars().count() <= 50)
                })
        });
        if !ok {
            err(key, "at most the limit of strings of 1 to 50 characters");
        }
    }
    if let Some(d) = obj.get("details") {
        match d.as_object() {
            Some(d) if d.values().all(Value::is_string) => {
                let size: usize = d
                    .iter()
                    .map(|(k, v)| k.chars().count() + v.as_str().unwrap_or("").chars().count())
                    .sum();
                if size > 8_000 {
                    err("details", "can not be longer than 8000 characters");
                }
            }
            _ => err("details", "must be a map of strings"),
        }
    }
    if let Some(p) = obj.get("priority")
        && !matches!(p.as_str(), Some("P1" | "P2" | "P3" | "P4" | "P5"))
    {
        err("priority", "must be one of [P1, P2, P3, P4, P5]");
    }
}

fn only(obj: &Map<String, Value>, keys: &[&str], err: &mut impl FnMut(&str, &str)) {
    for k in obj.keys().filter(|k| !keys.contains(&k.as_str())) {
        err(k, "unknown field");
    }
}

fn string_at_most(
    obj: &Map<String, Value>,
    key: &str,
    most: usize,
    err: &mut impl FnMut(&str, &str),
) {
    match obj.get(key) {
        None => {}
        Some(Value::String(s)) if s.chars().count() <= most => {}
        Some(Value::String(_)) => err(key, &format!("can not be longer than {most} characters")),
        Some(_) => err(key, "must be a string"),
    }
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}
