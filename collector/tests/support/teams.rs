//! A strict fake of a Microsoft Teams Workflows webhook (Power Automate's "Post to a channel
//! when a webhook request is received") posting an Adaptive Card. Microsoft's service cannot be
//! reached from here, so this checks a request as the published references describe it.
//!
//! References: "Create incoming webhooks with Workflows for Microsoft Teams",
//! https://support.microsoft.com/en-us/office/create-incoming-webhooks-with-workflows-for-microsoft-teams-8ae491c7-0394-4861-ba59-055e33f75498
//! (the URL with its `sig` signature, the body `{"type": "message", "attachments": [{
//! "contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": null, "content":
//! CARD}]}`, 202 Accepted); "Cards reference",
//! https://learn.microsoft.com/en-us/microsoftteams/platform/task-modules-and-cards/cards/cards-reference
//! (Adaptive Cards in Teams, the message size limit of about 28 KB, Markdown in `TextBlock` and
//! facts, `msteams.width`); and the Adaptive Cards schema explorer, https://adaptivecards.io/explorer/
//! (`AdaptiveCard`, `TextBlock`, `FactSet`, `Fact`, `ActionSet`, `Container`, `Action.OpenUrl`,
//! their properties, types and enumerations).
//!
//! Checked: POST to [`PATH`] with the Workflows query (`api-version`, `sp`, `sv`, and `sig` =
//! [`SIG`]; another signature is 401, none 401, another path 404); `Content-Type:
//! application/json`; a body of at most [`MAX_BYTES`] (Teams' message limit, at its lowest
//! reading; over it, 413); the envelope's `type` `message` and a non-empty `attachments` array
//! of Adaptive Card attachments (`contentType`, `contentUrl` null or a string, `content` an
//! object); the card: `type` `AdaptiveCard`, `version` a string 1.0 to 1.5 (what Teams renders),
//! `$schema` and `fallbackText` strings, `msteams` with `width` `Full`, `body` an array of
//! elements, `actions` an array; elements of the types above only, each with only the
//! explorer's properties and their enumerations (`color`, `weight`, `size`, `spacing`,
//! `horizontalAlignment`, `fontType`, `style`) and types (`wrap`, `isSubtle`, `separator`
//! booleans); a `TextBlock`'s `text` a non-empty string; a `FactSet`'s `facts` a non-empty
//! array of `{title, value}` strings; an `ActionSet`'s and the card's actions
//! `Action.OpenUrl` only (a card posted by a flow has no bot to submit to) with a `title` and an
//! absolute http(s) `url`. Stricter than Teams in one way, on purpose: Teams ignores properties
//! it does not know, the fake refuses them, so a misspelt one fails a test instead of being
//! silently dropped. And the real service answers 202 to any JSON and fails a card it cannot post
//! later, in the flow's run history; the fake answers that failure at once (400, 413), so a test
//! sees it.
//!
//! Answers: 202 with an empty body; errors as Logic Apps' `{"error": {"code", "message"}}`.
//! 429 (with `Retry-After`, [`throttled`]) and 5xx are scripted with [`Peer::then_answer`].

use serde_json::{Map, Value, json};

use super::http_peer::{Answer, Peer, Request};

/// The webhook's path (a workflow's manual trigger).
pub const PATH: &str = "/workflows/0b5e3c1d2a4f4e6b8c9d7e1f2a3b4c5d/triggers/manual/paths/invoke";
/// The signature the fake accepts: the URL's secret.
pub const SIG: &str = "Xq7SECRETsig_4nB2vKpL9mQw3rTz8YcH1uJd6fGe0aS";
/// The most bytes of a request body.
pub const MAX_BYTES: usize = 28_000;

/// The webhook's query, with its signature.
pub fn query() -> String {
    format!("api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={SIG}")
}

/// Starts the fake; valid cards get 202.
pub async fn start() -> Peer {
    Peer::start(judge).await
}

/// The fake's answer to a request.
pub fn judge(req: &Request) -> Answer {
    if req.path != PATH {
        return error(404, "WorkflowNotFound", "The workflow could not be found.");
    }
    let sig = req.query.split('&').find_map(|p| p.strip_prefix("sig="));
    let complete = ["api-version=", "sp=", "sv="]
        .iter()
        .all(|k| req.query.split('&').any(|p| p.starts_with(k)));
    match sig {
        None => {
            return error(
                401,
                "DirectApiAuthorizationRequired",
                "The request must be authenticated only by Shared Access scheme.",
            );
        }
        Some(s) if s != SIG || !complete => {
            return error(
                401,
                "DirectApiInvalidAuthorizationSignature",
                "The provided authorization token is not valid.",
            );
        }
        Some(_) => {}
    }
    if req.method != "POST" {
        return error(405, "MethodNotAllowed", "POST only.");
    }
    if req.header("content-type") != Some("application/json") {
        return error(
            415,
            "UnsupportedMediaType",
            "The content type must be application/json.",
        );
    }
    if req.body.len() > MAX_BYTES {
        return error(
            413,
            "MessageSizeTooBig",
            "The message is larger than 28 KB.",
        );
    }
    match validate(&req.body) {
        Ok(()) => Answer::new(202, ""),
        Err(e) => error(400, "InvalidTemplate", &e),
    }
}

/// A Logic Apps error answer.
pub fn error(status: u16, code: &str, message: &str) -> Answer {
    Answer::new(
        status,
        &json!({"error": {"code": code, "message": message}}).to_string(),
    )
}

/// A throttled trigger: 429 asking to wait `secs`.
pub fn throttled(secs: u32) -> Answer {
    error(
        429,
        "WorkflowTriggerIsThrottled",
        "The workflow trigger is being throttled.",
    )
    .header("retry-after", &secs.to_string())
}

/// The fake's verdict on a body (size aside): `Ok`, or what is wrong.
pub fn validate(body: &[u8]) -> Result<(), String> {
    if body.len() > MAX_BYTES {
        return Err(format!("{} bytes, over {MAX_BYTES}", body.len()));
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    let obj = v.as_object().ok_or("the body is not an object")?;
    only(obj, &["type", "attachments", "summary", "text"], "message")?;
    if obj.get("type") != Some(&json!("message")) {
        return Err("type must be \"message\"".into());
    }
    let attachments = obj
        .get("attachments")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .ok_or("attachments must be a non-empty array")?;
    for a in attachments {
        let a = a.as_object().ok_or("an attachment is not an object")?;
        only(a, &["contentType", "contentUrl", "content"], "attachment")?;
        if a.get("contentType") != Some(&json!("application/vnd.microsoft.card.adaptive")) {
            return Err("contentType must be application/vnd.microsoft.card.adaptive".into());
        }
        if a.get("contentUrl")
            .is_some_and(|u| !u.is_null() && !u.is_string())
        {
            return Err("contentUrl must be null or a string".into());
        }
        card(a.get("content").ok_or("content is required")?)?;
    }
    Ok(())
}

/// An Adaptive Card.
fn card(v: &Value) -> Result<(), String> {
    let c = v.as_object().ok_or("content must be an object")?;
    only(
        c,
        &[
            "$schema",
            "type",
            "version",
            "body",
            "actions",
            "fallbackText",
            "msteams",
            "speak",
            "lang",
            "minHeight",
            "verticalContentAlignment",
        ],
        "AdaptiveCard",
    )?;
    if c.get("type") != Some(&json!("AdaptiveCard")) {
        return Err("content.type must be AdaptiveCard".into());
    }
    let version = c
        .get("version")
        .and_then(Value::as_str)
        .ok_or("version is required, a string")?;
    let minor = match version {
        "1.0" => 0,
        "1.1" => 1,
        "1.2" => 2,
        "1.3" => 3,
        "1.4" => 4,
        "1.5" => 5,
        v => return Err(format!("version {v:?}: Teams renders 1.0 to 1.5")),
    };
    for key in ["$schema", "fallbackText", "speak", "lang"] {
        if c.get(key).is_some_and(|s| !s.is_string()) {
            return Err(format!("{key} must be a string"));
        }
    }
    if let Some(m) = c.get("msteams") {
        let m = m.as_object().ok_or("msteams must be an object")?;
        only(m, &["width", "entities"], "msteams")?;
        if m.get("width").is_some_and(|w| w != "Full") {
            return Err("msteams.width must be \"Full\"".into());
        }
    }
    if let Some(body) = c.get("body") {
        for e in body.as_array().ok_or("body must be an array")? {
            element(e, minor)?;
        }
    }
    if let Some(actions) = c.get("actions") {
        for a in actions.as_array().ok_or("actions must be an array")? {
            action(a)?;
        }
    }
    Ok(())
}

/// The properties every element may have.
const COMMON: [&str; 8] = [
    "type",
    "id",
    "isVisible",
    "separator",
    "spacing",
    "height",
    "requires",
    "fallback",
];

/// One element of a card's body.
fn element(v: &Value, minor: u32) -> Result<(), String> {
    let e = v.as_object().ok_or("an element is not an object")?;
    let kind = e
        .get("type")
        .and_then(Value::as_str)
        .ok_or("an element has no type")?;
    let own: &[&str] = match kind {
        "TextBlock" => &[
            "text",
            "color",
            "fontType",
            "horizontalAlignment",
            "isSubtle",
            "maxLines",
            "size",
            "weight",
            "wrap",
            "style",
        ],
        "FactSet" => &["facts"],
        "ActionSet" if minor >= 2 => &["actions"],
        "Container" => &["items", "style", "bleed", "minHeight", "selectAction"],
        other => {
            return Err(format!(
                "element type {other:?} is not one Teams renders here"
            ));
        }
    };
    let allowed: Vec<&str> = COMMON.iter().chain(own).copied().collect();
    only(e, &allowed, kind)?;
    enumerated(
        e,
        "spacing",
        &[
            "None",
            "Small",
            "Default",
            "Medium",
            "Large",
            "ExtraLarge",
            "Padding",
        ],
    )?;
    for key in ["separator", "isVisible", "isSubtle", "wrap"] {
        if e.get(key).is_some_and(|b| !b.is_boolean()) {
            return Err(format!("{kind}.{key} must be a boolean"));
        }
    }
    match kind {
        "TextBlock" => {
            let text = e.get("text").and_then(Value::as_str);
            if text.is_none_or(str::is_empty) {
                return Err("TextBlock.text is required, a non-empty string".into());
            }
            enumerated(
                e,
                "color",
                &[
                    "Default",
                    "Dark",
                    "Light",
                    "Accent",
                    "Good",
                    "Warning",
                    "Attention",
                ],
            )?;
            enumerated(e, "weight", &["Default", "Lighter", "Bolder"])?;
            enumerated(
                e,
                "size",
                &["Default", "Small", "Medium", "Large", "ExtraLarge"],
            )?;
            enumerated(e, "horizontalAlignment", &["Left", "Center", "Right"])?;
            enumerated(e, "fontType", &["Default", "Monospace"])?;
            if minor < 5 && e.contains_key("style") {
                return Err("TextBlock.style needs version 1.5".into());
            }
            enumerated(e, "style", &["default", "heading"])?;
            if e.get("maxLines").is_some_and(|m| !m.is_u64()) {
                return Err("TextBlock.maxLines must be a number".into());
            }
        }
        "FactSet" => {
            let facts = e
                .get("facts")
                .and_then(Value::as_array)
                .filter(|f| !f.is_empty())
                .ok_or("FactSet.facts is required, a non-empty array")?;
            for f in facts {
                let f = f.as_object().ok_or("a fact is not an object")?;
                only(f, &["title", "value"], "Fact")?;
                if !f.get("title").is_some_and(Value::is_string)
                    || !f.get("value").is_some_and(Value::is_string)
                {
                    return Err("Fact.title and Fact.value are required strings".into());
                }
            }
        }
        "ActionSet" => {
            let actions = e
                .get("actions")
                .and_then(Value::as_array)
                .filter(|a| !a.is_empty())
                .ok_or("ActionSet.actions is required, a non-empty array")?;
            for a in actions {
                action(a)?;
            }
        }
        _ => {
            for item in e
                .get("items")
                .and_then(Value::as_array)
                .ok_or("Container.items is required, an array")?
            {
                element(item, minor)?;
            }
        }
    }
    Ok(())
}

/// An action: `Action.OpenUrl` to an absolute http(s) URL.
fn action(v: &Value) -> Result<(), String> {
    let a = v.as_object().ok_or("an action is not an object")?;
    if a.get("type") != Some(&json!("Action.OpenUrl")) {
        return Err(format!(
            "action type {}: a card posted by a flow takes Action.OpenUrl only",
            a.get("type").unwrap_or(&Value::Null)
        ));
    }
    only(
        a,
        &[
            "type",
            "url",
            "title",
            "iconUrl",
            "id",
            "style",
            "tooltip",
            "isEnabled",
        ],
        "Action.OpenUrl",
    )?;
    if a.get("title")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err("Action.OpenUrl.title must be a non-empty string".into());
    }
    enumerated(a, "style", &["default", "positive", "destructive"])?;
    let url = a
        .get("url")
        .and_then(Value::as_str)
        .ok_or("Action.OpenUrl.url is required, a string")?;
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Ok(()),
        _ => Err(format!(
            "Action.OpenUrl.url {url:?} is not an absolute http(s) URL"
        )),
    }
}

/// `obj` has no key but `allowed`.
fn only(obj: &Map<String, Value>, allowed: &[&str], what: &str) -> Result<(), String> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(format!("{what}: unknown property {k:?}")),
        None => Ok(()),
    }
}

/// `obj[key]`, when present, is one of `values`.
fn enumerated(obj: &Map<String, Value>, key: &str, values: &[&str]) -> Result<(), String> {
    match obj.get(key) {
        None => Ok(()),
        Some(v) if v.as_str().is_some_and(|s| values.contains(&s)) => Ok(()),
        Some(v) => Err(format!("{key} {v}: expected one of {values:?}")),
    }
}

/// What Teams shows of a `TextBlock`'s text or a fact: CommonMark's backslash escapes taken
/// out (a backslash before ASCII punctuation is that character), for tests that compare the
/// shown text with what was meant. Text holding Markdown that would format (`**`, `_x_`,
/// `[a](b)`, a `{{DATE(` function) is `None`: Teams would not show it as written.
pub fn shown(text: &str) -> Option<String> {
    let mut out = String::new();
    let mut plain = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n) if n.is_ascii_punctuation() => {
                    out.push(n);
                    plain.push(' ');
                }
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                    plain.push(' ');
                    plain.push(n);
                }
                None => out.push('\\'),
            },
            c => {
                out.push(c);
                plain.push(c);
            }
        }
    }
    // What is left unescaped must not be Markdown that formats.
    let formats = ["**", "__", "](", "{{DATE(", "{{TIME(", "`", "<", "~~"]
        .iter()
        .any(|m| plain.contains(m))
        || plain.split_whitespace().any(|w| {
            (w.starts_with('_') && w.ends_with('_') && w.len() > 2)
                || (w.starts_with('*') && w.ends_with('*') && w.len() > 2)
        })
        || plain
            .lines()
            .any(|l| l.trim_start().starts_with("- ") || l.trim_start().starts_with("# "));
    (!formats).then_some(out)
}
