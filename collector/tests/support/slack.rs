//! A strict fake of Slack's incoming webhook: Slack's own endpoint cannot be reached from here,
//! so this checks a payload as Slack does and answers as Slack does (`200 ok`, `400
//! invalid_payload`, `400 invalid_blocks`).
//!
//! Checked: a JSON object with `Content-Type: application/json`; top-level keys among `text`,
//! `attachments`, `blocks`; `text` a non-empty string; each attachment an object of `color`
//! (`#rrggbb`) and `blocks`; each block of a known type (`header`, `section`, `context`,
//! `divider`) with only that type's keys; header text `plain_text`, non-empty, at most 150
//! characters; section text `mrkdwn` or `plain_text`, non-empty, at most 3,000; context elements
//! 1 to 10 texts of at most 3,000; at most 50 blocks in all. Stricter than Slack in one way:
//! mrkdwn with an unescaped `&`, `<` or `>` outside a `<...>` control sequence is refused
//! (Slack shows a garbled message instead, which a test would not notice).

use serde_json::{Map, Value};

use super::http_peer::{Answer, Peer};

/// The path the fake's webhook URL has; its last segment plays the part of Slack's secret.
pub const HOOK_PATH: &str = "/services/T0000/B0000/XXXXSECRETXXXX";

/// Starts the fake; valid payloads get `200 ok`.
pub async fn start() -> Peer {
    Peer::start(|req| {
        if req.path != HOOK_PATH {
            return Answer::new(404, "no_service");
        }
        if req.header("content-type") != Some("application/json") {
            return Answer::new(400, "invalid_payload");
        }
        match validate(&req.body) {
            Ok(()) => Answer::new(200, "ok"),
            Err(code) => Answer::new(400, code),
        }
    })
    .await
}

/// Slack's verdict on a body: `Err("invalid_payload")` or `Err("invalid_blocks")`.
pub fn validate(body: &[u8]) -> Result<(), &'static str> {
    let v: Value = serde_json::from_slice(body).map_err(|_| "invalid_payload")?;
    let obj = v.as_object().ok_or("invalid_payload")?;
    if obj
        .keys()
        .any(|k| !["text", "attachments", "blocks"].contains(&k.as_str()))
    {
        return Err("invalid_payload");
    }
    match obj.get("text") {
        Some(Value::String(t)) if !t.trim().is_empty() => mrkdwn_ok(t, "invalid_payload")?,
        _ => return Err("invalid_payload"),
    }
    let mut total = 0;
    if let Some(blocks) = obj.get("blocks") {
        total += blocks_ok(blocks)?;
    }
    if let Some(atts) = obj.get("attachments") {
        for a in atts.as_array().ok_or("invalid_payload")? {
            let a = a.as_object().ok_or("invalid_payload")?;
            if a.keys().any(|k| k != "color" && k != "blocks") {
                return Err("invalid_payload");
            }
            match a.get("color").and_then(Value::as_str) {
                Some(c) if is_hex_color(c) => {}
                _ => return Err("invalid_payload"),
            }
            total += blocks_ok(a.get("blocks").ok_or("invalid_payload")?)?;
        }
    }
    if total > 50 {
        return Err("invalid_blocks");
    }
    Ok(())
}

fn is_hex_color(c: &str) -> bool {
    c.len() == 7 && c.starts_with('#') && c[1..].chars().all(|d| d.is_ascii_hexdigit())
}

/// Checks a list of blocks; returns how many.
fn blocks_ok(blocks: &Value) -> Result<usize, &'static str> {
    let blocks = blocks.as_array().ok_or("invalid_blocks")?;
    for b in blocks {
        let b = b.as_object().ok_or("invalid_blocks")?;
        let only = |keys: &[&str]| {
            if b.keys()
                .all(|k| k == "type" || k == "block_id" || keys.contains(&k.as_str()))
            {
                Ok(())
            } else {
                Err("invalid_blocks")
            }
        };
        match b.get("type").and_then(Value::as_str) {
            Some("header") => {
                only(&["text"])?;
                text_ok(b, &["plain_text"], 150)?;
            }
            Some("section") => {
                only(&["text"])?;
                text_ok(b, &["mrkdwn", "plain_text"], 3000)?;
            }
            Some("context") => {
                only(&["elements"])?;
                let els = b
                    .get("elements")
                    .and_then(Value::as_array)
                    .ok_or("invalid_blocks")?;
                if els.is_empty() || els.len() > 10 {
                    return Err("invalid_blocks");
                }
                for e in els {
                    let e = e.as_object().ok_or("invalid_blocks")?;
                    text_object_ok(e, &["mrkdwn", "plain_text"], 3000)?;
                }
            }
            Some("divider") => only(&[])?,
            _ => return Err("invalid_blocks"),
        }
    }
    Ok(blocks.len())
}

fn text_ok(block: &Map<String, Value>, types: &[&str], max: usize) -> Result<(), &'static str> {
    let t = block
        .get("text")
        .and_then(Value::as_object)
        .ok_or("invalid_blocks")?;
    text_object_ok(t, types, max)
}

/// A text object: `{"type": "mrkdwn" | "plain_text", "text": "...", "emoji"?, "verbatim"?}`.
fn text_object_ok(t: &Map<String, Value>, types: &[&str], max: usize) -> Result<(), &'static str> {
    if t.keys()
        .any(|k| !["type", "text", "emoji", "verbatim"].contains(&k.as_str()))
    {
        return Err("invalid_blocks");
    }
    let kind = t
        .get("type")
        .and_then(Value::as_str)
        .ok_or("invalid_blocks")?;
    if !types.contains(&kind) {
        return Err("invalid_blocks");
    }
    let text = t
        .get("text")
        .and_then(Value::as_str)
        .ok_or("invalid_blocks")?;
    if text.is_empty() || text.chars().count() > max {
        return Err("invalid_blocks");
    }
    if kind == "mrkdwn" {
        mrkdwn_ok(text, "invalid_blocks")?;
    }
    Ok(())
}

/// `&`, `<` and `>` only as `&amp;` `&lt;` `&gt;` or in `<http...|text>`, `<mailto:...>`,
/// `<!here>`, `<@U123>`, `<#C123>`.
fn mrkdwn_ok(text: &str, code: &'static str) -> Result<(), &'static str> {
    let mut inside = false;
    for (i, c) in text.char_indices() {
        let rest = &text[i..];
        match c {
            '&' if !["&amp;", "&lt;", "&gt;"]
                .iter()
                .any(|e| rest.starts_with(e)) =>
            {
                return Err(code);
            }
            '<' if inside => return Err(code),
            '<' => {
                let opens = ["<http://", "<https://", "<mailto:", "<!", "<@", "<#"];
                if !opens.iter().any(|o| rest.starts_with(o)) || !rest.contains('>') {
                    return Err(code);
                }
                inside = true;
            }
            '>' if inside => inside = false,
            '>' => return Err(code),
            _ => {}
        }
    }
    if inside { Err(code) } else { Ok(()) }
}
