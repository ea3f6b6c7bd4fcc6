//! The Google Chat channel: a card message POSTed to a space's incoming webhook
//! (`https://chat.googleapis.com/v1/spaces/SPACE/messages?key=...&token=...`, the whole URL
//! the credential).
//!
//! The body is a `Message`: `text` (the title, what a notification and a client without cards
//! show; Chat's text syntax has no escape, so a `<` is followed by a zero-width space to keep
//! a `<users/all>` in an alert from mentioning everyone and a `<url|text>` from making a link)
//! and one card in `cardsV2` (`cardId` `lookout`): its `header` the title and `Lookout`, then a
//! section per alert whose header is its state in its colour and its subject (`FIRING · api`,
//! firing red, reminder orange, acknowledged purple, resolved green), and whose widgets are a
//! `textParagraph` with its summary, a `decoratedText` per fact ([`facts`]: labels, the error
//! chain in full, when it fired, who acknowledged it, when it resolved and how long it lasted)
//! and a `buttonList` of `openLink` buttons: "Open in Lookout" (the status page) and, on a
//! firing or reminder alert with an acknowledgement link, "Acknowledge" (the signed
//! `/ack/{token}` link, which asks for confirmation).
//!
//! Text in the card is Chat's small HTML dialect (`<b>`, `<i>`, `<font color>`, `<a href>`,
//! `<br>`): alert text is escaped (`&amp;`, `&lt;`, `&gt;`, `&quot;`) after it is cut, so no
//! cut falls inside an entity. Google Chat takes at most 100 widgets in a card and 32,000
//! bytes in a message: alerts past either are left out whole and counted in a last section
//! (`…and 12 more alerts (12 firing)`); each text has its own limit, so one alert always fits.
//! Each notification is a new message: threads are not used.
//!
//! Google Chat answers 200 with the message it created; 429 (a space's quota, without a
//! `Retry-After`: the outbox's backoff applies) and 5xx are retried through the outbox, other
//! 4xx (a wrong key or token, a deleted space) given up with Google's reason. Error text never
//! holds the URL, its path, its query, the key or the token.

use lookout_config::ChannelConfig;
use serde_json::{Value, json};

use super::endpoint::{Endpoint, HttpChannel, OneJson};
use super::format::{color, facts_cut, most_that_fit, truncate, web_link};
use super::message::{AlertNote, Message};
use super::text::{escape, more};

/// The most bytes of a whole request body (Google Chat's message limit).
pub const MAX_MESSAGE_BYTES: usize = 32_000;
/// The most widgets of a card (Google Chat ignores those past it).
pub const MAX_WIDGETS: usize = 100;
/// The most characters of `text`.
pub const MAX_TEXT_CHARS: usize = 4096;

/// The most characters of the title.
const MAX_TITLE_CHARS: usize = 250;
/// The most characters of a summary.
const MAX_SUMMARY_CHARS: usize = 1000;
/// The most characters of an alert's subject in its section's header.
const MAX_SUBJECT_CHARS: usize = 100;
/// A link longer than this is left out rather than cut (a cut link goes nowhere).
const MAX_LINK_CHARS: usize = 1000;

/// Builds the channel from a `google_chat` entry (`url`, `timeout`).
pub fn channel(cfg: &ChannelConfig, http: reqwest::Client) -> Result<HttpChannel, String> {
    let endpoint =
        Endpoint::new(cfg, http, "url", cfg.url.as_deref(), None)?.query_secrets(&["key", "token"]);
    Ok(HttpChannel::new(
        cfg,
        endpoint,
        OneJson {
            peer: "Google Chat",
            body: payload,
        },
    ))
}

/// The JSON body for `msg` (see the module's doc): as many of its alerts as fit in
/// [`MAX_WIDGETS`] and [`MAX_MESSAGE_BYTES`], at least one.
pub fn payload(msg: &Message) -> Value {
    let shown = most_that_fit(msg.alerts.len(), |shown| {
        let body = message(msg, shown);
        serde_json::to_vec(&body).is_ok_and(|b| b.len() <= MAX_MESSAGE_BYTES)
            && widgets(&body) <= MAX_WIDGETS
    });
    message(msg, shown)
}

/// The number of widgets in the body's card.
fn widgets(body: &Value) -> usize {
    body["cardsV2"][0]["card"]["sections"]
        .as_array()
        .map_or(0, |s| {
            s.iter()
                .map(|s| s["widgets"].as_array().map_or(0, Vec::len))
                .sum()
        })
}

/// The message with its first `shown` alerts.
fn message(msg: &Message, shown: usize) -> Value {
    let title = truncate(&msg.title(), MAX_TITLE_CHARS);
    let mut sections: Vec<Value> = msg.alerts[..shown].iter().map(section).collect();
    if shown < msg.alerts.len() {
        sections.push(json!({
            "widgets": [{"textParagraph": {"text": escape(&more(&msg.alerts[shown..]))}}],
        }));
    }
    json!({
        "text": truncate(&title.replace('<', "<\u{200B}"), MAX_TEXT_CHARS),
        "cardsV2": [{
            "cardId": "lookout",
            "card": {
                "header": {"title": title, "subtitle": "Lookout"},
                "sections": sections,
            },
        }],
    })
}

/// One alert's section: its state and subject, summary, facts and links.
fn section(note: &AlertNote) -> Value {
    let summary = if note.summary.trim().is_empty() {
        format!("{} is failing", note.subject())
    } else {
        note.summary.clone()
    };
    let mut widgets = vec![json!({
        "textParagraph": {"text": escape(&truncate(&summary, MAX_SUMMARY_CHARS))},
    })];
    for (label, value) in facts_cut(note) {
        widgets.push(json!({
            "decoratedText": {"topLabel": label, "text": escape(&value), "wrapText": true},
        }));
    }
    let buttons = links(note);
    if !buttons.is_empty() {
        widgets.push(json!({"buttonList": {"buttons": buttons}}));
    }
    json!({
        "header": format!(
            "<font color=\"{}\"><b>{}</b></font> · {}",
            color(note.kind),
            note.kind.upper(),
            escape(&truncate(note.subject(), MAX_SUBJECT_CHARS))
        ),
        "widgets": widgets,
    })
}

/// The note's links as `openLink` buttons: the status page, and the link that acknowledges it.
fn links(note: &AlertNote) -> Vec<Value> {
    let fits = |l: &&str| l.chars().count() <= MAX_LINK_CHARS;
    let button =
        |text: &str, url: &str| json!({"text": text, "onClick": {"openLink": {"url": url}}});
    let mut out = Vec::new();
    if let Some(link) = web_link(note.link.as_deref()).filter(fits) {
        out.push(button("Open in Lookout", link));
    }
    if let Some(link) = web_link(note.ack_link.as_deref()).filter(fits) {
        out.push(button("Acknowledge", link));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worst alert (every text at its limit, each character escaped by both HTML and
    /// JSON) fits alone.
    #[test]
    fn one_alert_always_fits() {
        let note = crate::notify::format::worst_note('&');
        for alerts in [vec![note.clone()], vec![note.clone(), note]] {
            let msg = Message {
                group_key: "g".into(),
                alerts,
                digest: false,
                ..Default::default()
            };
            let body = payload(&msg);
            let bytes = serde_json::to_vec(&body).unwrap().len();
            assert!(bytes <= MAX_MESSAGE_BYTES, "{bytes}");
            assert!(widgets(&body) <= MAX_WIDGETS);
        }
    }

    #[test]
    fn the_fallback_text_mentions_no_one() {
        let msg = Message {
            group_key: "g".into(),
            alerts: vec![AlertNote {
                summary: "<users/all> <https://evil.example|click>".into(),
                ..AlertNote::default()
            }],
            digest: false,
            ..Default::default()
        };
        let text = payload(&msg)["text"].as_str().unwrap().to_string();
        assert!(
            !text.contains("<users/") && !text.contains("<https:"),
            "{text}"
        );
        assert_eq!(
            text.replace('\u{200B}', ""),
            "[FIRING] <users/all> <https://evil.example|click>"
        );
    }
}
