//! A strict fake of a Google Chat space's incoming webhook (`POST
//! /v1/spaces/SPACE/messages?key=...&token=...`). Google's service cannot be reached from
//! here, so this checks a request as the published references describe it.
//!
//! References: "Method: spaces.messages.create" and the `Message` resource,
//! https://developers.google.com/workspace/chat/api/reference/rest/v1/spaces.messages
//! (`text`, `cardsV2`, `thread`, `fallbackText`; the query's `threadKey`, `messageReplyOption`,
//! `messageId`; `text` at most 4,096 characters, a message at most 32,000 bytes); "Cards v2",
//! https://developers.google.com/workspace/chat/api/reference/rest/v1/cards (`CardWithId`,
//! `Card`, `CardHeader`, `Section`, the widgets `textParagraph`, `decoratedText`, `buttonList`,
//! `divider`, `Button`, `OnClick.openLink`; at most 100 widgets in a card; the HTML a
//! card's text takes: `<b>`, `<i>`, `<u>`, `<s>`, `<font color>`, `<a href>`, `<br>`); and
//! "Send messages to Google Chat with incoming webhooks",
//! https://developers.google.com/workspace/chat/quickstart/webhooks (the URL with its `key` and
//! `token`, `Content-Type: application/json; charset=UTF-8`, each POST a new message unless
//! it names a thread).
//!
//! Checked: the path [`PATH`] and the query's `key` = [`KEY`] and `token` = [`TOKEN`] (a wrong
//! key is 400 `API key not valid`, a wrong token 401, another space 404), nothing else in the
//! query but the three documented parameters; a JSON body of at most [`MAX_BYTES`] (over it,
//! 400); a `Message` with only the documented fields and `text` or `cardsV2`; `text` at most
//! 4,096 characters; each card with a `cardId` string and a `card` whose `header` has a
//! `title` string, whose `sections` are a non-empty array of sections with only `header`,
//! `widgets`, `collapsible`, `uncollapsibleWidgetsCount`; widgets of the kinds above, each
//! exactly one kind, with their fields only and their required ones (`textParagraph.text`,
//! `decoratedText.text`, a non-empty `buttonList.buttons`, each button's `text` and an
//! `onClick.openLink.url` that is an absolute http(s) URL); at most [`MAX_WIDGETS`] widgets (Chat
//! ignores the rest; the fake refuses, so a test sees it); and every text that takes HTML
//! (`textParagraph.text`, `decoratedText.text`, `topLabel`, `bottomLabel`, a section's
//! `header`) is that dialect: only its tags, and every `&` an entity, so that alert text
//! reaches the reader as written ([`shown`] gives what the reader sees).
//!
//! Answers as Google: 200 with the created message (`name`
//! `spaces/SPACE/messages/...`); errors as `{"error": {"code", "message", "status"}}`. 429
//! (`RESOURCE_EXHAUSTED`, [`exhausted`]) and 5xx are scripted with [`Peer::then_answer`].

use serde_json::{Map, Value, json};

use super::http_peer::{Answer, Peer, Request};

/// The space's id.
pub const SPACE: &str = "AAAAx7Yb2cQ";
/// The webhook's path.
pub const PATH: &str = "/v1/spaces/AAAAx7Yb2cQ/messages";
/// The webhook's API key.
pub const KEY: &str = "AIzaSyDdI0hCZtE6vySjMm-WEfRq3CPzqKqqsHI";
/// The webhook's token: the secret.
pub const TOKEN: &str = "GCHATSECRETtok3n_Xq7vKpL9mQw3rTz8YcH1uJd6fGe0=";
/// The most bytes of a message.
pub const MAX_BYTES: usize = 32_000;
/// The most widgets of a card.
pub const MAX_WIDGETS: usize = 100;

/// The webhook's query (the token percent-encoded, as Google gives it).
pub fn query() -> String {
    format!("key={KEY}&token={}", TOKEN.replace('=', "%3D"))
}

/// Starts the fake; valid messages get 200.
pub async fn start() -> Peer {
    Peer::start(judge).await
}

/// The fake's answer to a request.
pub fn judge(req: &Request) -> Answer {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(req.query.as_bytes())
        .into_owned()
        .collect();
    let param = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if param("key") != Some(KEY) {
        return error(
            400,
            "INVALID_ARGUMENT",
            "API key not valid. Please pass a valid API key.",
        );
    }
    if req.path != PATH {
        return error(404, "NOT_FOUND", "Requested entity was not found.");
    }
    if param("token") != Some(TOKEN) {
        return error(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials.",
        );
    }
    let known = [
        "key",
        "token",
        "threadKey",
        "messageReplyOption",
        "messageId",
    ];
    if let Some((k, _)) = pairs.iter().find(|(k, _)| !known.contains(&k.as_str())) {
        return error(
            400,
            "INVALID_ARGUMENT",
            &format!(
                "Invalid JSON payload received. Unknown name \"{k}\": Cannot bind query parameter."
            ),
        );
    }
    if req.method != "POST" {
        return error(405, "METHOD_NOT_ALLOWED", "POST only.");
    }
    if !req
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/json"))
    {
        return error(
            400,
            "INVALID_ARGUMENT",
            "Content-Type must be application/json.",
        );
    }
    match validate(&req.body) {
        Ok(v) => Answer::new(
            200,
            &json!({"name": format!("spaces/{SPACE}/messages/k3Jx9.k3Jx9"),
                    "sender": {"name": "users/114022495153014004089", "type": "BOT"},
                    "createTime": "2026-11-26T10:00:00.123Z", "text": v["text"],
                    "cardsV2": v["cardsV2"], "space": {"name": format!("spaces/{SPACE}")}})
            .to_string(),
        ),
        Err(e) => error(400, "INVALID_ARGUMENT", &e),
    }
}

/// Google's error answer.
pub fn error(code: u16, status: &str, message: &str) -> Answer {
    Answer::new(
        code,
        &json!({"error": {"code": code, "message": message, "status": status}}).to_string(),
    )
}

/// A space's quota used up: 429, without a `Retry-After`, as Google answers it.
pub fn exhausted() -> Answer {
    error(
        429,
        "RESOURCE_EXHAUSTED",
        "Resource has been exhausted (e.g. check quota).",
    )
}

/// Google's verdict on a body: the message, or what is wrong.
pub fn validate(body: &[u8]) -> Result<Value, String> {
    if body.len() > MAX_BYTES {
        return Err(format!(
            "message too large: {} bytes, over {MAX_BYTES}",
            body.len()
        ));
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    let m = v.as_object().ok_or("the message is not an object")?;
    only(
        m,
        &[
            "text",
            "cardsV2",
            "thread",
            "fallbackText",
            "accessoryWidgets",
        ],
        "Message",
    )?;
    if let Some(t) = m.get("text") {
        let t = t.as_str().ok_or("text must be a string")?;
        if t.chars().count() > 4096 {
            return Err("text is longer than 4096 characters".into());
        }
    }
    if m.get("fallbackText").is_some_and(|t| !t.is_string()) {
        return Err("fallbackText must be a string".into());
    }
    let cards = match m.get("cardsV2") {
        None => &Vec::new(),
        Some(c) => c.as_array().ok_or("cardsV2 must be an array")?,
    };
    let text_empty = m
        .get("text")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty);
    if text_empty && cards.is_empty() {
        return Err("Message cannot be empty: text or cardsV2 is required".into());
    }
    for c in cards {
        let c = c.as_object().ok_or("a cardsV2 entry is not an object")?;
        only(c, &["cardId", "card"], "CardWithId")?;
        if cards.len() > 1 && !c.get("cardId").is_some_and(Value::is_string) {
            return Err("cardId is required when a message has several cards".into());
        }
        if c.get("cardId").is_some_and(|i| !i.is_string()) {
            return Err("cardId must be a string".into());
        }
        card(c.get("card").ok_or("card is required")?)?;
    }
    Ok(v)
}

/// A card.
fn card(v: &Value) -> Result<(), String> {
    let c = v.as_object().ok_or("card must be an object")?;
    only(
        c,
        &["header", "sections", "name", "fixedFooter", "cardActions"],
        "Card",
    )?;
    if let Some(h) = c.get("header") {
        let h = h.as_object().ok_or("header must be an object")?;
        only(
            h,
            &["title", "subtitle", "imageUrl", "imageType", "imageAltText"],
            "CardHeader",
        )?;
        if h.get("title")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err("CardHeader.title is required".into());
        }
        if h.get("subtitle").is_some_and(|t| !t.is_string()) {
            return Err("CardHeader.subtitle must be a string".into());
        }
    }
    let sections = c
        .get("sections")
        .and_then(Value::as_array)
        .filter(|s| !s.is_empty())
        .ok_or("Card.sections is required, a non-empty array")?;
    let mut count = 0;
    for s in sections {
        let s = s.as_object().ok_or("a section is not an object")?;
        only(
            s,
            &[
                "header",
                "widgets",
                "collapsible",
                "uncollapsibleWidgetsCount",
            ],
            "Section",
        )?;
        if let Some(h) = s.get("header") {
            html(h.as_str().ok_or("Section.header must be a string")?)?;
        }
        if s.get("collapsible").is_some_and(|b| !b.is_boolean()) {
            return Err("Section.collapsible must be a boolean".into());
        }
        let widgets = s
            .get("widgets")
            .and_then(Value::as_array)
            .filter(|w| !w.is_empty())
            .ok_or("Section.widgets is required, a non-empty array")?;
        for w in widgets {
            widget(w)?;
            count += 1;
        }
    }
    if count > MAX_WIDGETS {
        return Err(format!("{count} widgets, over {MAX_WIDGETS} in a card"));
    }
    Ok(())
}

/// One widget: exactly one of the kinds the fake knows.
fn widget(v: &Value) -> Result<(), String> {
    let w = v.as_object().ok_or("a widget is not an object")?;
    let kinds: Vec<&String> = w.keys().filter(|k| *k != "horizontalAlignment").collect();
    let [kind] = kinds.as_slice() else {
        return Err(format!("a widget must be exactly one kind, not {kinds:?}"));
    };
    let body = w[kind.as_str()]
        .as_object()
        .ok_or_else(|| format!("{kind} must be an object"))?;
    match kind.as_str() {
        "textParagraph" => {
            only(body, &["text", "maxLines"], "textParagraph")?;
            html(required_str(body, "text", "textParagraph")?)?;
        }
        "decoratedText" => {
            only(
                body,
                &[
                    "text",
                    "topLabel",
                    "bottomLabel",
                    "wrapText",
                    "startIcon",
                    "button",
                ],
                "decoratedText",
            )?;
            html(required_str(body, "text", "decoratedText")?)?;
            for label in ["topLabel", "bottomLabel"] {
                if let Some(l) = body.get(label) {
                    html(
                        l.as_str()
                            .ok_or_else(|| format!("{label} must be a string"))?,
                    )?;
                }
            }
            if body.get("wrapText").is_some_and(|b| !b.is_boolean()) {
                return Err("decoratedText.wrapText must be a boolean".into());
            }
        }
        "buttonList" => {
            only(body, &["buttons"], "buttonList")?;
            let buttons = body
                .get("buttons")
                .and_then(Value::as_array)
                .filter(|b| !b.is_empty())
                .ok_or("buttonList.buttons is required, a non-empty array")?;
            for b in buttons {
                button(b)?;
            }
        }
        "divider" if body.is_empty() => {}
        other => return Err(format!("widget kind {other:?} is not one the fake knows")),
    }
    Ok(())
}

/// A button that opens a link.
fn button(v: &Value) -> Result<(), String> {
    let b = v.as_object().ok_or("a button is not an object")?;
    only(
        b,
        &[
            "text", "onClick", "disabled", "altText", "color", "icon", "type",
        ],
        "Button",
    )?;
    required_str(b, "text", "Button")?;
    let on_click = b
        .get("onClick")
        .and_then(Value::as_object)
        .ok_or("Button.onClick is required, an object")?;
    only(on_click, &["openLink"], "OnClick")?;
    let link = on_click
        .get("openLink")
        .and_then(Value::as_object)
        .ok_or("OnClick.openLink is required")?;
    only(link, &["url", "openAs", "onClose"], "OpenLink")?;
    let url = required_str(link, "url", "OpenLink")?;
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Ok(()),
        _ => Err(format!(
            "OpenLink.url {url:?} is not an absolute http(s) URL"
        )),
    }
}

/// `obj[key]`, a non-empty string.
fn required_str<'a>(obj: &'a Map<String, Value>, key: &str, what: &str) -> Result<&'a str, String> {
    obj.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("{what}.{key} is required, a non-empty string"))
}

/// `obj` has no key but `allowed`.
fn only(obj: &Map<String, Value>, allowed: &[&str], what: &str) -> Result<(), String> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(format!("{what}: unknown field {k:?}")),
        None => Ok(()),
    }
}

/// The HTML a card's text takes: its tags only, every `&` an entity.
fn html(text: &str) -> Result<(), String> {
    shown(text).map(|_| ())
}

/// What a reader sees of a card's text: the tags taken out, the entities replaced. An error
/// for a tag Chat does not take (or a `<` that is no tag) and an `&` that is no entity.
pub fn shown(text: &str) -> Result<String, String> {
    const TAGS: [&str; 7] = ["b", "i", "u", "s", "font", "a", "br"];
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(['<', '&']) {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if rest.starts_with('<') {
            let end = rest
                .find('>')
                .ok_or_else(|| format!("a < that is no tag in {text:?}"))?;
            let tag = &rest[1..end];
            let name = tag
                .trim_start_matches('/')
                .split([' ', '/'])
                .next()
                .unwrap_or("");
            if !TAGS.contains(&name) {
                return Err(format!("tag <{tag}> is not one Chat takes, in {text:?}"));
            }
            if name == "br" {
                out.push('\n');
            }
            rest = &rest[end + 1..];
        } else {
            let end = rest
                .find(';')
                .filter(|e| *e <= 8)
                .ok_or_else(|| format!("an & that is no entity in {text:?}"))?;
            out.push(match &rest[1..end] {
                "amp" => '&',
                "lt" => '<',
                "gt" => '>',
                "quot" => '"',
                "#39" | "apos" => '\'',
                e => return Err(format!("entity &{e}; unknown, in {text:?}")),
            });
            rest = &rest[end + 1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}
