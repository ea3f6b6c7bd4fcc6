//! The Opsgenie channel: Opsgenie's Alert API v2, one request per note, below
//! `https://api.opsgenie.com` (`region = "eu"`: `https://api.eu.opsgenie.com`; the channel's
//! `url` overrides both), each with `Authorization: GenieKey <api_key>`.
//!
//! A firing note (and a reminder) creates an alert, `POST /v2/alerts`, whose `alias` is the
//! alert's key: its fingerprint (rule and labels), or `lookout:sha256:` and its hash when it is
//! longer than Opsgenie's 512 characters. Opsgenie deduplicates by alias, so a reminder or a
//! retried create adds to the open alert's count instead of opening another. An acknowledged
//! note acknowledges it (`POST /v2/alerts/{alias}/acknowledge?identifierType=alias`, `user`
//! who acknowledged), a resolved note closes it (`.../close?identifierType=alias`).
//!
//! A create's fields: `message` (what is wrong in words, at most 130 characters, `…` marking a
//! cut), `alias`, `description` (the whole summary, the labels, when it fired, the link; at
//! most 15,000 characters), `responders` (the channel's, `team:ops` as `{"type": "team",
//! "name": "ops"}`), `tags` (`lookout`, the rule, the severity; each at most 50 characters),
//! `details` (the labels, the fingerprint, when it fired, the link: strings, 8,000 characters
//! in all), `entity` (the check, heartbeat or agent), `source` (`Lookout`) and `priority` (the
//! `severity` label: [`priority`]).
//!
//! Opsgenie answers 202 with a `requestId` (it processes requests later: an acknowledge of an
//! alias it has not created yet is accepted, and fails there). 429 and 5xx are retried through
//! the outbox. Opsgenie's 429 has no `Retry-After`; its rate-limiting page documents
//! `X-RateLimit-State: THROTTLED`, `X-RateLimit-Reason` (which limit: the account's, the
//! integration's...) and `X-RateLimit-Period-In-Sec`, the window whose limit was passed (60:
//! requests a minute, 1: a second). The windows roll, so once that period has passed the
//! requests that filled it no longer count: the outbox waits that long ([`throttled_for`]),
//! where its own backoff (2 s, doubling) would knock on a full minute's window four times
//! more. A 429 without those headers gets the backoff. 4xx (an invalid key, 401; an invalid
//! body, 422) are given up. A grouped message is one request per note, sent in order; a
//! failure retries the message and the requests that had gone through are sent again,
//! deduplicated by alias. Error text never holds the key.

use std::collections::BTreeMap;
use std::time::Duration;

use lookout_config::ChannelConfig;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::{Map, Value, json};

use super::endpoint::{Endpoint, HttpChannel, Payload, Post, required, segment};
use super::format::{alert_key, facts, human_duration, severity, truncate, web_link};
use super::message::{AlertNote, Message, NoteKind, SendError};

/// Opsgenie's API in the US region (the default).
pub const US_URL: &str = "https://api.opsgenie.com";
/// Opsgenie's API in the EU region.
pub const EU_URL: &str = "https://api.eu.opsgenie.com";
/// The most characters of an alert's `message`.
pub const MAX_MESSAGE_CHARS: usize = 130;
/// The most characters of an `alias`.
pub const MAX_ALIAS_CHARS: usize = 512;
/// The most characters of a `description`.
pub const MAX_DESCRIPTION_CHARS: usize = 15_000;
/// The most characters of one tag.
const MAX_TAG_CHARS: usize = 50;
/// The most characters of `details`, keys and values together.
const MAX_DETAILS_CHARS: usize = 8_000;
/// The most characters of `entity` (and of the fingerprint in `details`).
const MAX_ENTITY_CHARS: usize = 512;
/// The most characters of `user` (who acknowledged).
const MAX_USER_CHARS: usize = 100;

/// Builds the channel from an `opsgenie` entry (`api_key`, `region`, `url`, `responders`,
/// `timeout`).
pub fn channel(cfg: &ChannelConfig, http: reqwest::Client) -> Result<HttpChannel, String> {
    let key = required("api_key", cfg.api_key.as_deref())?;
    let base = match cfg.region.as_deref() {
        None | Some("us") => US_URL,
        Some("eu") => EU_URL,
        Some(_) => return Err("region: expected \"us\" or \"eu\"".into()),
    };
    let responders = cfg
        .responders
        .iter()
        .map(|r| responder(r))
        .collect::<Result<Vec<_>, _>>()?;
    let mut auth = HeaderValue::from_str(&format!("GenieKey {key}"))
        .map_err(|_| "api_key: not a valid header value".to_string())?;
    auth.set_sensitive(true);
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, auth);
    let endpoint = Endpoint::new(cfg, http, "url", cfg.url.as_deref(), Some(base))?
        .secret(&key)
        .headers(headers);
    Ok(HttpChannel::new(cfg, endpoint, Opsgenie { responders }))
}

/// `team:ops` as Opsgenie's responder object.
fn responder(r: &str) -> Result<Value, String> {
    let bad = || {
        format!(
            "responders: {r:?}: expected team:NAME, user:EMAIL, escalation:NAME or schedule:NAME"
        )
    };
    let (kind, name) = r.split_once(':').ok_or_else(bad)?;
    let name = name.trim();
    if name.is_empty() {
        return Err(bad());
    }
    match kind {
        "user" => Ok(json!({"type": "user", "username": name})),
        "team" | "escalation" | "schedule" => Ok(json!({"type": kind, "name": name})),
        _ => Err(bad()),
    }
}

/// Opsgenie's payload builder: one request per note.
struct Opsgenie {
    responders: Vec<Value>,
}

impl Payload for Opsgenie {
    fn peer(&self) -> &'static str {
        "Opsgenie"
    }

    fn posts(&self, msg: &Message) -> Result<Vec<Post>, SendError> {
        msg.alerts
            .iter()
            .map(|note| request(note, &self.responders))
            .collect()
    }

    fn keeps_alerts_open(&self) -> bool {
        true
    }

    fn retry_after_in_headers(&self, headers: &HeaderMap) -> Option<Duration> {
        throttled_for(headers)
    }
}

/// How long a 429's rate-limit headers say to wait: `X-RateLimit-Period-In-Sec` (whole
/// seconds, at least 1) when `X-RateLimit-State` is `THROTTLED`; `None` otherwise.
pub fn throttled_for(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| headers.get(name)?.to_str().ok().map(str::trim);
    if !header("x-ratelimit-state")?.eq_ignore_ascii_case("THROTTLED") {
        return None;
    }
    let secs: u64 = header("x-ratelimit-period-in-sec")?.parse().ok()?;
    (secs > 0).then(|| Duration::from_secs(secs))
}

/// The request for one note (see the module's doc).
fn request(note: &AlertNote, responders: &[Value]) -> Result<Post, SendError> {
    let alias = alias(&note.fingerprint);
    let action = |name: &str, body: Value| -> Result<Post, SendError> {
        Ok(Post::json(&body)?.at(format!(
            "/v2/alerts/{}/{name}?identifierType=alias",
            segment(&alias)
        )))
    };
    match note.kind {
        NoteKind::Firing | NoteKind::Reminder => {
            Ok(Post::json(&create(note, &alias, responders))?.at("/v2/alerts"))
        }
        NoteKind::Acknowledged => {
            let by = note.acked_by.as_deref().unwrap_or("someone");
            let mut body = json!({
                "source": "Lookout",
                "note": format!("Acknowledged in Lookout by {by}"),
            });
            if let Some(by) = note.acked_by.as_deref().filter(|b| !b.trim().is_empty()) {
                body["user"] = truncate(by, MAX_USER_CHARS).into();
            }
            action("acknowledge", body)
        }
        NoteKind::Resolved => {
            let said = match note.lasted() {
                Some(d) => format!("Resolved in Lookout after {}", human_duration(d)),
                None => "Resolved in Lookout".to_string(),
            };
            action("close", json!({"source": "Lookout", "note": said}))
        }
    }
}

/// The create request's body for a firing note (or a reminder).
pub fn create(note: &AlertNote, alias: &str, responders: &[Value]) -> Value {
    let message = if note.summary.trim().is_empty() {
        format!("{} is failing", note.subject())
    } else {
        note.summary.clone()
    };
    let mut description = vec![note.summary.clone(), String::new()];
    description.extend(facts(note).into_iter().map(|(k, v)| format!("{k}: {v}")));
    let link = web_link(note.link.as_deref());
    if let Some(link) = link {
        description.push(format!("Open in Lookout: {link}"));
    }
    let sev = severity(note.labels.get("severity").map(String::as_str));
    let mut tags = vec!["lookout".to_string(), note.rule.clone(), sev.to_string()];
    if note.kind == NoteKind::Reminder {
        tags.push("reminder".into());
    }
    let tags: Vec<String> = tags
        .iter()
        .filter(|t| !t.trim().is_empty())
        .map(|t| truncate(t, MAX_TAG_CHARS))
        .collect();
    let entity = if note.subject().is_empty() {
        "lookout"
    } else {
        note.subject()
    };
    let mut body = json!({
        "message": truncate(message.trim(), MAX_MESSAGE_CHARS),
        "alias": alias,
        "description": truncate(&description.join("\n"), MAX_DESCRIPTION_CHARS),
        "tags": tags,
        "details": details(note, link),
        "entity": truncate(entity, MAX_ENTITY_CHARS),
        "source": "Lookout",
        "priority": priority(sev),
    });
    if !responders.is_empty() {
        body["responders"] = responders.to_vec().into();
    }
    body
}

/// The labels, the fingerprint, when it fired and the link, as strings, within Opsgenie's
/// 8,000 characters: labels that do not fit are left out (the description has them all).
fn details(note: &AlertNote, link: Option<&str>) -> Map<String, Value> {
    let mut fixed: BTreeMap<String, String> = BTreeMap::new();
    fixed.insert(
        "fingerprint".into(),
        truncate(&note.fingerprint, MAX_ENTITY_CHARS),
    );
    fixed.insert("fired_at".into(), note.fired_at.to_rfc3339());
    if let Some(link) = link.filter(|l| l.chars().count() <= 2000) {
        fixed.insert("link".into(), link.to_string());
    }
    let size = |k: &str, v: &str| k.chars().count() + v.chars().count();
    let mut used: usize = fixed.iter().map(|(k, v)| size(k, v)).sum();
    let mut out = Map::new();
    for (k, v) in &note.labels {
        let (k, v) = (truncate(k, 100), truncate(v, 500));
        if fixed.contains_key(&k) || used + size(&k, &v) > MAX_DETAILS_CHARS {
            continue;
        }
        used += size(&k, &v);
        out.insert(k, v.into());
    }
    out.extend(fixed.into_iter().map(|(k, v)| (k, v.into())));
    out
}

/// Opsgenie's priority for a severity level ([`severity`]): `critical` P1, `error` P2,
/// `warning` P3, `info` P5.
pub fn priority(level: &str) -> &'static str {
    match level {
        "critical" => "P1",
        "warning" => "P3",
        "info" => "P5",
        _ => "P2",
    }
}

/// The alert's `alias`: its fingerprint, or `lookout:sha256:<hex>` of it when it is longer than
/// Opsgenie takes (or empty).
pub fn alias(fingerprint: &str) -> String {
    alert_key(fingerprint, MAX_ALIAS_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttled_answer_waits_out_the_period_it_names() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_static(v));
            }
            h
        };
        let throttled = |period| {
            headers(&[
                ("x-ratelimit-state", "THROTTLED"),
                ("x-ratelimit-reason", "INTEGRATION"),
                ("x-ratelimit-period-in-sec", period),
            ])
        };
        assert_eq!(
            throttled_for(&throttled("60")),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            throttled_for(&throttled(" 1 ")),
            Some(Duration::from_secs(1))
        );
        for period in ["0", "-1", "1.5", "sixty", "99999999999999999999999"] {
            assert_eq!(throttled_for(&throttled(period)), None, "{period}");
        }
        // Not throttled, or no period: the outbox's backoff.
        assert_eq!(
            throttled_for(&headers(&[
                ("x-ratelimit-state", "OK"),
                ("x-ratelimit-period-in-sec", "60")
            ])),
            None
        );
        assert_eq!(
            throttled_for(&headers(&[("x-ratelimit-state", "THROTTLED")])),
            None
        );
        assert_eq!(throttled_for(&HeaderMap::new()), None);
    }

    #[test]
    fn responders_take_opsgenies_shape() {
        assert_eq!(
            responder("team:ops").unwrap(),
            json!({"type": "team", "name": "ops"})
        );
        assert_eq!(
            responder("user:a@example.com").unwrap(),
            json!({"type": "user", "username": "a@example.com"})
        );
        assert!(responder("ops").is_err() && responder("group:x").is_err());
        assert!(responder("team: ").is_err());
    }

    #[test]
    fn aliases_fit_and_priorities_map() {
        assert_eq!(alias("uptime/api"), "uptime/api");
        let long = "x".repeat(600);
        assert!(alias(&long).starts_with("lookout:sha256:") && alias(&long).len() <= 512);
        assert_eq!(alias(&"y".repeat(512)), "y".repeat(512));
        assert_eq!(priority(severity(Some("critical"))), "P1");
        assert_eq!(priority(severity(None)), "P2");
        assert_eq!(priority(severity(Some("warn"))), "P3");
        assert_eq!(priority(severity(Some("low"))), "P5");
    }
}
