//! A strict fake of a Matrix homeserver's `PUT /_matrix/client/v3/rooms/{roomId}/send/
//! m.room.message/{txnId}`: no homeserver can be installed here (Synapse is not in bookworm's
//! archive, Conduit is too heavy to build for a test), so this checks a request as the
//! published specification describes it and answers as a homeserver does.
//!
//! Reference: "Client-Server API", https://spec.matrix.org/latest/client-server-api/ ("PUT
//! /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}": the transaction id makes the
//! request idempotent, the answer is `{"event_id":...}`; "Client Authentication": `Authorization:
//! Bearer`, `M_MISSING_TOKEN` and `M_UNKNOWN_TOKEN` with 401; "Rate limiting": 429
//! `M_LIMIT_EXCEEDED` with `retry_after_ms`; "Size limits": an event of at most 65,536 bytes;
//! "m.room.message" and "m.text": `body` required, `format: org.matrix.custom.html` with
//! `formatted_body`; "HTML" under "m.room.message msgtypes": the tags clients should allow).
//!
//! Checked: the method is PUT; the path's room is this fake's [`ROOM`] (else 403
//! `M_FORBIDDEN`), its event type `m.room.message`, its transaction id non-empty; the bearer
//! token is [`TOKEN`] (none: 401 `M_MISSING_TOKEN`; another: 401 `M_UNKNOWN_TOKEN`); the body
//! a JSON object of at most 65,536 bytes with `msgtype` one of the spec's and `body` a string;
//! with `format`, it is `org.matrix.custom.html` and `formatted_body` a string of balanced
//! HTML using only the spec's tags, every `&` an entity and no bare `<` ([`check_html`]). A
//! transaction id seen before in the same room gets the first event's id back and makes no
//! second event, as the spec asks and as Synapse does (it keeps them for about half an hour,
//! longer than any test): a sender that reuses an id for a new message loses that message,
//! and the [`Events`] it made show it.
//!
//! Answers: 200 `{"event_id":"$..."}`; errors `{"errcode":...,"error":...}`. 429 and 5xx are
//! scripted with [`Peer::then_answer`] ([`limit_exceeded`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::http_peer::{Answer, Peer};

/// The room the fake's bot is in.
pub const ROOM: &str = "!OGEhHVWSdvArJzumhm:example.org";
/// The bot's access token.
pub const TOKEN: &str = "syt_bG9va291dA_qwErTyUiOpAsDfGhJkLz_0a1b2c";
/// The path the room's messages are PUT to, without the transaction id.
pub const PREFIX: &str =
    "/_matrix/client/v3/rooms/%21OGEhHVWSdvArJzumhm%3Aexample.org/send/m.room.message/";

/// The events the fake made, by room and transaction id.
pub type Events = Arc<Mutex<HashMap<(String, String), String>>>;

/// Starts the fake; the map holds an event per room and transaction id.
pub async fn start() -> (Peer, Events) {
    let events: Events = Arc::default();
    let made = events.clone();
    let peer = Peer::start(move |req| {
        if req.method != "PUT" {
            return error(405, "M_UNRECOGNIZED", "Unrecognized request");
        }
        let Some(rest) = req.path.strip_prefix("/_matrix/client/v3/rooms/") else {
            return error(404, "M_UNRECOGNIZED", "Unrecognized request");
        };
        let parts: Vec<&str> = rest.split('/').collect();
        let [room, "send", event_type, txn] = parts.as_slice() else {
            return error(404, "M_UNRECOGNIZED", "Unrecognized request");
        };
        match req.header("authorization") {
            None => return error(401, "M_MISSING_TOKEN", "Missing access token"),
            Some(a) if a != format!("Bearer {TOKEN}") => {
                return error(401, "M_UNKNOWN_TOKEN", "Unrecognised access token");
            }
            Some(_) => {}
        }
        let room = percent_decode(room);
        if room != ROOM {
            return error(403, "M_FORBIDDEN", "User is not in room");
        }
        if *event_type != "m.room.message" || txn.is_empty() {
            return error(400, "M_UNRECOGNIZED", "this fake takes m.room.message only");
        }
        if let Err(e) = validate(&req.body) {
            return error(400, "M_BAD_JSON", &e);
        }
        let mut events = made.lock().unwrap();
        let n = events.len();
        let id = events
            .entry((room, txn.to_string()))
            .or_insert_with(|| format!("$event{n}"))
            .clone();
        Answer::new(200, &json!({"event_id": id}).to_string())
    })
    .await;
    (peer, events)
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// A homeserver's error.
pub fn error(status: u16, errcode: &str, error: &str) -> Answer {
    Answer::new(
        status,
        &json!({"errcode": errcode, "error": error}).to_string(),
    )
}

/// A homeserver's rate limit: the wait in the body only.
pub fn limit_exceeded(ms: u64) -> Answer {
    Answer::new(
        429,
        &json!({"errcode": "M_LIMIT_EXCEEDED", "error": "Too many requests", "retry_after_ms": ms})
            .to_string(),
    )
}

/// The homeserver's verdict on an `m.room.message` content.
pub fn validate(body: &[u8]) -> Result<(), String> {
    if body.len() > 65_536 {
        return Err("event too large".into());
    }
    let v: Value = serde_json::from_slice(body).map_err(|_| "Content not JSON.".to_string())?;
    let obj = v.as_object().ok_or("Content not a JSON object")?;
    const MSGTYPES: [&str; 10] = [
        "m.text",
        "m.notice",
        "m.emote",
        "m.image",
        "m.file",
        "m.audio",
        "m.video",
        "m.location",
        "m.key.verification.request",
        "m.server_notice",
    ];
    if !obj
        .get("msgtype")
        .and_then(Value::as_str)
        .is_some_and(|m| MSGTYPES.contains(&m))
    {
        return Err("msgtype: missing or unknown".into());
    }
    if !obj.get("body").is_some_and(Value::is_string) {
        return Err("body: required string".into());
    }
    match (obj.get("format"), obj.get("formatted_body")) {
        (None, None) => Ok(()),
        (Some(Value::String(f)), Some(Value::String(html))) if f == "org.matrix.custom.html" => {
            check_html(html)
        }
        _ => Err("format must be org.matrix.custom.html, with a formatted_body string".into()),
    }
}

/// Balanced HTML of the spec's allowed tags, entities for every `&`, no bare `<`.
pub fn check_html(s: &str) -> Result<(), String> {
    const TAGS: [&str; 37] = [
        "font",
        "del",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "blockquote",
        "p",
        "a",
        "ul",
        "ol",
        "sup",
        "sub",
        "li",
        "b",
        "i",
        "u",
        "strong",
        "em",
        "s",
        "code",
        "hr",
        "br",
        "div",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "caption",
        "pre",
        "span",
        "img",
        "details",
    ];
    const VOID: [&str; 3] = ["br", "hr", "img"];
    let mut open: Vec<String> = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find(['<', '&', '>']) {
        let c = rest.as_bytes()[i];
        rest = &rest[i..];
        match c {
            b'&' => {
                let end = rest.find(';').filter(|&e| e <= 10).ok_or("a bare &")?;
                let name = &rest[1..end];
                let ok = matches!(name, "amp" | "lt" | "gt" | "quot" | "apos" | "nbsp")
                    || name.strip_prefix('#').is_some_and(|n| {
                        n.parse::<u32>().is_ok()
                            || n.strip_prefix('x')
                                .is_some_and(|h| u32::from_str_radix(h, 16).is_ok())
                    });
                if !ok {
                    return Err(format!("unknown entity &{name};"));
                }
                rest = &rest[end + 1..];
            }
            b'>' => return Err("a bare >".into()),
            _ => {
                let end = rest.find('>').ok_or("an unclosed tag")?;
                let inner = &rest[1..end];
                rest = &rest[end + 1..];
                if let Some(name) = inner.strip_prefix('/') {
                    if open.pop().as_deref() != Some(name) {
                        return Err(format!("</{name}> closes another tag"));
                    }
                    continue;
                }
                let name = inner
                    .split(|c: char| c.is_ascii_whitespace() || c == '/')
                    .next()
                    .unwrap_or("");
                if !TAGS.contains(&name) && name != "summary" {
                    return Err(format!("tag <{name}> is not allowed"));
                }
                if inner.contains('<') {
                    return Err("a < inside a tag".into());
                }
                if !VOID.contains(&name) {
                    open.push(name.to_string());
                }
            }
        }
    }
    match open.pop() {
        Some(t) => Err(format!("<{t}> is never closed")),
        None => Ok(()),
    }
}
