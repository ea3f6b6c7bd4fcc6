//! A strict fake of Telegram's Bot API `sendMessage` (`POST /bot<token>/sendMessage`):
//! Telegram cannot be reached from here, so this checks a request as the published reference
//! describes it and answers as Telegram does.
//!
//! Reference: "Telegram Bot API", https://core.telegram.org/bots/api: "Making requests" (the
//! URL `https://api.telegram.org/bot<token>/METHOD_NAME`, JSON bodies, the answer object
//! `{"ok":...,"description":...,"error_code":...,"parameters":...}`), "sendMessage" (`chat_id`
//! an integer or a `@channelusername` string, `text` "1-4096 characters after entities
//! parsing", `parse_mode`, `link_preview_options`), "Formatting options", "HTML style" (the
//! only tags: `b strong i em u ins s strike del span class="tg-spoiler" tg-spoiler a href
//! tg-emoji code pre blockquote`; every `<`, `>` and `&` not part of a tag or an entity must
//! be escaped; only the named entities `&lt; &gt; &amp; &quot;` and numeric ones), and
//! "ResponseParameters" (`retry_after`, the seconds to wait after a 429 flood control),
//! "InlineKeyboardMarkup" (`inline_keyboard`, an array of button rows, each an array of
//! "InlineKeyboardButton": `text` required, and exactly one of `url` ("HTTP or tg:// URL"),
//! `callback_data` (1-64 bytes), `web_app`, `login_url`, `switch_inline_query`,
//! `switch_inline_query_current_chat`, `switch_inline_query_chosen_chat`, `copy_text`,
//! `callback_game`, `pay`).
//!
//! Checked: the path holds this fake's [`TOKEN`] (else 401 `Unauthorized`, or 404 for another
//! method); `Content-Type: application/json`; a JSON object with only `sendMessage`'s
//! parameters; `chat_id` an integer or a string starting with `@`; `text` a string; `parse_mode`
//! one of Telegram's three; `link_preview_options` an object of known fields of the right
//! types, `disable_web_page_preview` a boolean. With `parse_mode: "HTML"` the text is parsed
//! as Telegram does ([`parse_html`]): unknown tags, unknown attributes, a bare `<`, `>` or
//! `&`, an unknown or unterminated entity, an end tag that closes another, a tag left open, an
//! `a` without `href` or inside another `a`, each refused with Telegram's `can't parse
//! entities`; the text left after parsing must be 1 to 4,096 UTF-16 units, and not all
//! blank. `reply_markup`, when there, must be an inline keyboard ([`check_keyboard`]: the
//! other markups, a reply keyboard's, are not for alerts and refused here): rows of buttons
//! with only the reference's fields, a non-empty `text`, exactly one kind, a `url` that is
//! `http://`, `https://` or `tg://`, `callback_data` of 1 to 64 bytes.
//!
//! Answers as Telegram: `200 {"ok":true,"result":{message}}`; `400 {"ok":false,"error_code":
//! 400,"description":"Bad Request: ..."}`; 429 from [`too_many_requests`] (the wait in
//! `parameters.retry_after`, and no `Retry-After` header), and 5xx, scripted with
//! [`Peer::then_answer`].

use serde_json::{Map, Value, json};

use super::http_peer::{Answer, Peer};

/// The bot token the fake accepts (a bot id, `:`, and a 35-character key, as BotFather's).
pub const TOKEN: &str = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0";
/// The path `sendMessage` is at for [`TOKEN`].
pub const PATH: &str = "/bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0/sendMessage";
/// The most UTF-16 units of a message's text after parsing.
pub const MAX_TEXT: usize = 4096;

/// Starts the fake; valid messages get 200 and a sent message.
pub async fn start() -> Peer {
    Peer::start(|req| {
        let Some(rest) = req.path.strip_prefix("/bot") else {
            return error(404, "Not Found");
        };
        let Some((token, method)) = rest.split_once('/') else {
            return error(404, "Not Found");
        };
        if token != TOKEN {
            return error(401, "Unauthorized");
        }
        if method != "sendMessage" {
            return error(404, "Not Found: method not found");
        }
        if req.header("content-type") != Some("application/json") {
            return error(400, "Bad Request: message text is empty");
        }
        match validate(&req.body) {
            Ok(text) => Answer::new(
                200,
                &json!({"ok": true, "result": {
                    "message_id": 1, "date": 1_764_151_200,
                    "chat": {"id": -1_001_234_567_890_i64, "type": "supergroup"},
                    "text": text,
                }})
                .to_string(),
            ),
            Err(description) => error(400, &format!("Bad Request: {description}")),
        }
    })
    .await
}

/// Telegram's error answer.
pub fn error(code: u16, description: &str) -> Answer {
    Answer::new(
        code,
        &json!({"ok": false, "error_code": code, "description": description}).to_string(),
    )
}

/// Telegram's flood control: 429, the wait in the body only.
pub fn too_many_requests(secs: u64) -> Answer {
    Answer::new(
        429,
        &json!({"ok": false, "error_code": 429,
                "description": format!("Too Many Requests: retry after {secs}"),
                "parameters": {"retry_after": secs}})
        .to_string(),
    )
}

/// Telegram's verdict on a `sendMessage` body: the text as parsed, or why it is refused.
pub fn validate(body: &[u8]) -> Result<String, String> {
    let v: Value = serde_json::from_slice(body).map_err(|_| "can't parse JSON".to_string())?;
    let obj = v.as_object().ok_or("not a JSON object")?;
    const KNOWN: [&str; 16] = [
        "business_connection_id",
        "chat_id",
        "message_thread_id",
        "direct_messages_topic_id",
        "text",
        "parse_mode",
        "entities",
        "link_preview_options",
        "disable_web_page_preview",
        "disable_notification",
        "protect_content",
        "allow_paid_broadcast",
        "message_effect_id",
        "reply_parameters",
        "reply_markup",
        "suggested_post_parameters",
    ];
    if let Some(k) = obj.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(format!("unknown parameter {k}"));
    }
    match obj.get("chat_id") {
        Some(Value::Number(n)) if n.is_i64() => {}
        Some(Value::String(s)) if s.starts_with('@') && s.len() > 1 => {}
        Some(Value::String(s)) if s.parse::<i64>().is_ok() => {}
        Some(_) => return Err("chat not found".into()),
        None => return Err("chat_id is empty".into()),
    }
    let text = match obj.get("text") {
        Some(Value::String(t)) => t,
        _ => return Err("message text is empty".into()),
    };
    let parsed = match obj.get("parse_mode") {
        None => text.clone(),
        Some(Value::String(m)) if m == "HTML" => {
            parse_html(text).map_err(|e| format!("can't parse entities: {e}"))?
        }
        Some(Value::String(m)) if m == "MarkdownV2" || m == "Markdown" => {
            return Err("this fake checks HTML only".into());
        }
        Some(_) => return Err("unsupported parse_mode".into()),
    };
    if parsed.trim().is_empty() {
        return Err("message text is empty".into());
    }
    if parsed.encode_utf16().count() > MAX_TEXT {
        return Err("message is too long".into());
    }
    if let Some(o) = obj.get("link_preview_options") {
        link_preview_ok(o)?;
    }
    if let Some(markup) = obj.get("reply_markup") {
        check_keyboard(markup)?;
    }
    for key in [
        "disable_web_page_preview",
        "disable_notification",
        "protect_content",
    ] {
        if obj.get(key).is_some_and(|v| !v.is_boolean()) {
            return Err(format!("{key} must be a boolean"));
        }
    }
    Ok(parsed)
}

/// An `InlineKeyboardMarkup` as the reference describes it.
pub fn check_keyboard(markup: &Value) -> Result<(), String> {
    let obj = markup
        .as_object()
        .ok_or("can't parse reply keyboard markup JSON object")?;
    if obj.keys().any(|k| k != "inline_keyboard") {
        return Err("this fake takes an inline keyboard only".into());
    }
    let rows = obj
        .get("inline_keyboard")
        .and_then(Value::as_array)
        .ok_or("field \"inline_keyboard\" must be an Array")?;
    for row in rows {
        let row = row
            .as_array()
            .ok_or("field \"inline_keyboard\" must be an Array of Arrays")?;
        for button in row {
            check_button(button)?;
        }
    }
    Ok(())
}

fn check_button(button: &Value) -> Result<(), String> {
    const KINDS: [&str; 10] = [
        "url",
        "callback_data",
        "web_app",
        "login_url",
        "switch_inline_query",
        "switch_inline_query_current_chat",
        "switch_inline_query_chosen_chat",
        "copy_text",
        "callback_game",
        "pay",
    ];
    let b = button
        .as_object()
        .ok_or("can't parse inline keyboard button: not an object")?;
    if let Some(k) = b
        .keys()
        .find(|k| *k != "text" && !KINDS.contains(&k.as_str()))
    {
        return Err(format!(
            "can't parse inline keyboard button: unknown field {k}"
        ));
    }
    match b.get("text") {
        Some(Value::String(t)) if !t.trim().is_empty() => {}
        Some(Value::String(_)) => return Err("BUTTON_TEXT_EMPTY".into()),
        _ => return Err(
            "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
                .into(),
        ),
    }
    let kinds: Vec<&String> = b.keys().filter(|k| *k != "text").collect();
    let [kind] = kinds.as_slice() else {
        return Err(format!(
            "can't parse inline keyboard button: exactly one of {KINDS:?} is needed, not {kinds:?}"
        ));
    };
    match (kind.as_str(), &b[kind.as_str()]) {
        ("url", Value::String(u))
            if ["http://", "https://", "tg://"]
                .iter()
                .any(|p| u.starts_with(p) && u.len() > p.len()) =>
        {
            Ok(())
        }
        ("url", _) => Err("BUTTON_URL_INVALID".into()),
        ("callback_data", Value::String(d)) if (1..=64).contains(&d.len()) => Ok(()),
        ("callback_data", _) => Err("BUTTON_DATA_INVALID".into()),
        _ => Ok(()),
    }
}

fn link_preview_ok(o: &Value) -> Result<(), String> {
    let o: &Map<String, Value> = o
        .as_object()
        .ok_or("link_preview_options must be an object")?;
    for (k, v) in o {
        let ok = match k.as_str() {
            "is_disabled" | "prefer_small_media" | "prefer_large_media" | "show_above_text" => {
                v.is_boolean()
            }
            "url" => v.is_string(),
            _ => false,
        };
        if !ok {
            return Err(format!(
                "link_preview_options.{k}: unknown or of the wrong type"
            ));
        }
    }
    Ok(())
}

/// The tags of Telegram's HTML style, and the attributes each may have.
fn attributes_of(tag: &str) -> Option<&'static [&'static str]> {
    Some(match tag {
        "b" | "strong" | "i" | "em" | "u" | "ins" | "s" | "strike" | "del" | "tg-spoiler" => &[],
        "span" => &["class"],
        "a" => &["href"],
        "tg-emoji" => &["emoji-id"],
        "code" => &["class"],
        "pre" => &[],
        "blockquote" => &["expandable"],
        _ => return None,
    })
}

/// Telegram's HTML style parsed as Telegram parses it: the text left once tags are removed
/// and entities decoded, or why it cannot be parsed.
pub fn parse_html(s: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut open: Vec<String> = Vec::new();
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        match c {
            '<' => {
                let end = rest
                    .find('>')
                    .ok_or("unclosed start tag: can't find end of the tag")?;
                let inner = &rest[1..end];
                rest = &rest[end + 1..];
                if let Some(name) = inner.strip_prefix('/') {
                    let name = name.trim_end();
                    match open.pop() {
                        Some(top) if top == name => {}
                        Some(top) => {
                            return Err(format!(
                                "can't find end tag corresponding to start tag \"{top}\""
                            ));
                        }
                        None => return Err(format!("unexpected end tag \"{name}\"")),
                    }
                    continue;
                }
                let (name, attrs) = match inner.find(|c: char| c.is_ascii_whitespace()) {
                    Some(i) => (&inner[..i], &inner[i..]),
                    None => (inner, ""),
                };
                if name.is_empty() {
                    return Err("empty tag name".into());
                }
                let allowed = attributes_of(name)
                    .ok_or_else(|| format!("unsupported start tag \"{name}\""))?;
                let attrs = parse_attributes(attrs)?;
                for (k, _) in &attrs {
                    if !allowed.contains(&k.as_str()) {
                        return Err(format!("unsupported attribute \"{k}\" of tag \"{name}\""));
                    }
                }
                match name {
                    "a" => {
                        if open.iter().any(|t| t == "a") {
                            return Err("a link can't contain another link".into());
                        }
                        if !attrs.iter().any(|(k, v)| k == "href" && !v.is_empty()) {
                            return Err("a link needs its href".into());
                        }
                    }
                    "span" if !attrs.iter().any(|(k, v)| k == "class" && v == "tg-spoiler") => {
                        return Err("a span must be a tg-spoiler".into());
                    }
                    _ => {}
                }
                if open.iter().any(|t| t == "code" || t == "pre")
                    && !(name == "code" && open.last().is_some_and(|t| t == "pre"))
                {
                    return Err(format!("tag \"{name}\" can't be inside code or pre"));
                }
                open.push(name.to_string());
            }
            '&' => {
                let (decoded, len) = entity(rest)?;
                out.push(decoded);
                rest = &rest[len..];
            }
            '>' => return Err("a bare \">\" must be written &gt;".into()),
            c => {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    if let Some(top) = open.pop() {
        return Err(format!(
            "can't find end tag corresponding to start tag \"{top}\""
        ));
    }
    Ok(out)
}

/// `name="value"` pairs; values decoded.
fn parse_attributes(mut s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    loop {
        s = s.trim_start();
        if s.is_empty() {
            return Ok(out);
        }
        let name_end = s
            .find(|c: char| c == '=' || c.is_ascii_whitespace())
            .unwrap_or(s.len());
        let name = s[..name_end].to_ascii_lowercase();
        s = &s[name_end..];
        let Some(after) = s.trim_start().strip_prefix('=') else {
            // A bare attribute (`expandable`).
            out.push((name, String::new()));
            continue;
        };
        let after = after.trim_start();
        let quote = after
            .chars()
            .next()
            .filter(|q| *q == '"' || *q == '\'')
            .ok_or("attribute values must be quoted")?;
        let body = &after[1..];
        let end = body.find(quote).ok_or("unclosed attribute value")?;
        let raw = &body[..end];
        if raw.contains('<') {
            return Err("a \"<\" in an attribute value".into());
        }
        let mut value = String::new();
        let mut r = raw;
        while let Some(c) = r.chars().next() {
            if c == '&' {
                let (d, len) = entity(r)?;
                value.push(d);
                r = &r[len..];
            } else {
                value.push(c);
                r = &r[c.len_utf8()..];
            }
        }
        out.push((name, value));
        s = &body[end + 1..];
    }
}

/// The entity at the start of `s` (which starts with `&`): its character and its length.
fn entity(s: &str) -> Result<(char, usize), String> {
    let end = s
        .find(';')
        .filter(|&e| e <= 10)
        .ok_or("a bare \"&\" must be written &amp;")?;
    let name = &s[1..end];
    let c = match name {
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "quot" => '"',
        n if n.starts_with("#x") || n.starts_with("#X") => u32::from_str_radix(&n[2..], 16)
            .ok()
            .and_then(char::from_u32)
            .ok_or("invalid numeric entity")?,
        n if n.starts_with('#') => n[1..]
            .parse::<u32>()
            .ok()
            .and_then(char::from_u32)
            .ok_or("invalid numeric entity")?,
        n => return Err(format!("unsupported HTML entity \"&{n};\"")),
    };
    Ok((c, end + 1))
}
