//! The Microsoft Teams channel: an Adaptive Card POSTed to a Workflows webhook (Power
//! Automate's "Post to a channel when a webhook request is received"; the Office 365
//! connectors' webhooks it replaces are retired).
//!
//! The body is what the Workflows template expects, a message with one attachment:
//! `{"type": "message", "attachments": [{"contentType":
//! "application/vnd.microsoft.card.adaptive", "contentUrl": null, "content": CARD}]}`. The
//! card is version 1.4 (what every Teams client renders), full width (`msteams.width`), its
//! `fallbackText` the message's title, and its body:
//!
//! - a `TextBlock` with the title (`[FIRING] api is down: connection refused`, `[FIRING] 2
//!   alerts, [RESOLVED] 1 alert`), bold, in the colour of the most urgent state present
//!   (firing `Attention`, reminder `Warning`, acknowledged `Accent`, resolved `Good`);
//! - for one alert: its summary again only when the title had to be cut, then a `FactSet` of
//!   [`facts`] (labels, the error chain in full, when it fired, who acknowledged it, when it
//!   resolved and how long it lasted), and the card's `actions`: `Action.OpenUrl` "Open in
//!   Lookout" (the status page) and, on a firing or reminder alert with an acknowledgement link,
//!   "Acknowledge" (the signed `/ack/{token}` link, which asks for confirmation);
//! - for several: per alert a coloured `TextBlock` `FIRING · api` under a separator, its
//!   summary, its `FactSet` and an `ActionSet` with its two links; alerts that would take the
//!   body past [`MAX_PAYLOAD_BYTES`] are left out whole and counted on a last line (`…and 12
//!   more alerts (12 firing)`), never cut inside an element.
//!
//! Text in `TextBlock`s and facts is Markdown to Teams: every character its Markdown or its
//! `{{DATE()}}` functions could read is escaped with a backslash ([`markdown`]: the shared
//! Markdown escape of [`super::format`], `{` and `}`, and a list marker at a line's start),
//! after the text is cut, so no cut leaves half an escape. Each text has its own limit, so one
//! alert always fits.
//!
//! Workflows answers 202 Accepted and posts the card later (a card it cannot post fails in
//! the flow's run history, not in the answer: hence the care over the card's shape and size);
//! 429 (with `Retry-After`) and 5xx are retried through the outbox, other 4xx (a wrong
//! signature, a deleted flow) given up. The webhook URL is the credential in full (its `sig`
//! signs it): error text never holds it, its path, its query or the signature.

use lookout_config::ChannelConfig;
use serde_json::{Value, json};

use super::endpoint::{Endpoint, HttpChannel, OneJson};
use super::format::{facts_cut, markdown_escape, most_that_fit, truncate, web_link};
use super::message::{AlertNote, Message, NoteKind};
use super::text::more;

/// The most bytes of a whole request body (Teams takes messages of about 28 KB).
pub const MAX_PAYLOAD_BYTES: usize = 28_000;
/// The Adaptive Card version sent.
pub const CARD_VERSION: &str = "1.4";
/// The Adaptive Card schema's URL.
pub const CARD_SCHEMA: &str = "http://adaptivecards.io/schemas/adaptive-card.json";
/// The content type of an Adaptive Card attachment.
pub const CARD_CONTENT_TYPE: &str = "application/vnd.microsoft.card.adaptive";

/// The most characters of the title.
const MAX_TITLE_CHARS: usize = 250;
/// The most characters of a summary.
const MAX_SUMMARY_CHARS: usize = 1000;
/// The most characters of an alert's subject in its heading.
const MAX_SUBJECT_CHARS: usize = 100;
/// A link longer than this is left out rather than cut (a cut link goes nowhere).
const MAX_LINK_CHARS: usize = 1000;

/// Builds the channel from a `teams` entry (`url`, `timeout`).
pub fn channel(cfg: &ChannelConfig, http: reqwest::Client) -> Result<HttpChannel, String> {
    let endpoint =
        Endpoint::new(cfg, http, "url", cfg.url.as_deref(), None)?.query_secrets(&["sig"]);
    Ok(HttpChannel::new(
        cfg,
        endpoint,
        OneJson {
            peer: "Teams",
            body: payload,
        },
    ))
}

/// The JSON body for `msg` (see the module's doc): as many of its alerts as fit in
/// [`MAX_PAYLOAD_BYTES`], at least one.
pub fn payload(msg: &Message) -> Value {
    let shown = most_that_fit(msg.alerts.len(), |shown| {
        serde_json::to_vec(&envelope(msg, shown)).is_ok_and(|b| b.len() <= MAX_PAYLOAD_BYTES)
    });
    envelope(msg, shown)
}

/// The message with its first `shown` alerts, as Workflows takes it.
fn envelope(msg: &Message, shown: usize) -> Value {
    json!({
        "type": "message",
        "attachments": [{
            "contentType": CARD_CONTENT_TYPE,
            "contentUrl": null,
            "content": card(msg, shown),
        }],
    })
}

/// The Adaptive Card of the first `shown` alerts of `msg`.
fn card(msg: &Message, shown: usize) -> Value {
    let title = msg.title();
    let urgent = NoteKind::ALL
        .into_iter()
        .find(|k| msg.alerts.iter().any(|a| a.kind == *k))
        .unwrap_or_default();
    let mut body = vec![json!({
        "type": "TextBlock",
        "text": markdown(&truncate(&title, MAX_TITLE_CHARS)),
        "weight": "Bolder",
        "size": "Medium",
        "color": color(urgent),
        "wrap": true,
    })];
    let mut card = json!({
        "$schema": CARD_SCHEMA,
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "fallbackText": truncate(&title, MAX_TITLE_CHARS),
        "msteams": {"width": "Full"},
    });
    match msg.alerts.as_slice() {
        [one] if !msg.digest => {
            if title.chars().count() > MAX_TITLE_CHARS {
                body.push(summary(one));
            }
            body.push(fact_set(one));
            let actions = links(one);
            if !actions.is_empty() {
                card["actions"] = actions.into();
            }
        }
        alerts => {
            for note in &alerts[..shown] {
                body.push(json!({
                    "type": "TextBlock",
                    "text": markdown(&format!(
                        "{} · {}",
                        note.kind.upper(),
                        truncate(note.subject(), MAX_SUBJECT_CHARS)
                    )),
                    "weight": "Bolder",
                    "color": color(note.kind),
                    "separator": true,
                    "spacing": "Medium",
                    "wrap": true,
                }));
                body.push(summary(note));
                body.push(fact_set(note));
                let actions = links(note);
                if !actions.is_empty() {
                    body.push(json!({"type": "ActionSet", "actions": actions}));
                }
            }
            if shown < alerts.len() {
                body.push(json!({
                    "type": "TextBlock",
                    "text": markdown(&more(&alerts[shown..])),
                    "isSubtle": true,
                    "separator": true,
                    "wrap": true,
                }));
            }
        }
    }
    card["body"] = body.into();
    card
}

/// A note's summary as a `TextBlock`.
fn summary(note: &AlertNote) -> Value {
    let text = if note.summary.trim().is_empty() {
        format!("{} is failing", note.subject())
    } else {
        note.summary.clone()
    };
    json!({
        "type": "TextBlock",
        "text": markdown(&truncate(&text, MAX_SUMMARY_CHARS)),
        "wrap": true,
    })
}

/// A note's facts (labels, error chain, times, who acknowledged it) as a `FactSet`.
fn fact_set(note: &AlertNote) -> Value {
    let facts: Vec<Value> = facts_cut(note)
        .into_iter()
        .map(|(title, value)| json!({"title": title, "value": markdown(&value)}))
        .collect();
    json!({"type": "FactSet", "facts": facts})
}

/// The note's links as `Action.OpenUrl`s: the status page, and the link that acknowledges it.
fn links(note: &AlertNote) -> Vec<Value> {
    let fits = |l: &&str| l.chars().count() <= MAX_LINK_CHARS;
    let mut out = Vec::new();
    if let Some(link) = web_link(note.link.as_deref()).filter(fits) {
        out.push(json!({"type": "Action.OpenUrl", "title": "Open in Lookout", "url": link}));
    }
    if let Some(link) = web_link(note.ack_link.as_deref()).filter(fits) {
        out.push(json!({
            "type": "Action.OpenUrl",
            "title": "Acknowledge",
            "url": link,
            "style": "positive",
        }));
    }
    out
}

/// The Adaptive Card colour of a state.
fn color(kind: NoteKind) -> &'static str {
    match kind {
        NoteKind::Firing => "Attention",
        NoteKind::Reminder => "Warning",
        NoteKind::Acknowledged => "Accent",
        NoteKind::Resolved => "Good",
    }
}

/// `s` as Adaptive Card Markdown that shows `s` (Teams reads CommonMark): what the shared
/// [`markdown_escape`] escapes, and besides a backslash before `{` and `}` (so no
/// `{{DATE()}}` or `{{TIME()}}` function is formed) and before a list marker that the shared
/// escape leaves (`+`, `1.`) at the start of a line.
pub fn markdown(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for line in s.split_inclusive('\n') {
        let start = line.trim_start_matches([' ', '\t']);
        out.push_str(&line[..line.len() - start.len()]);
        let digits = start.bytes().take_while(u8::is_ascii_digit).count();
        let marker = if start.starts_with('+') {
            Some(0)
        } else {
            (digits > 0 && start[digits..].starts_with('.')).then_some(digits)
        };
        for (i, c) in start.char_indices() {
            match markdown_escape(c) {
                Some(escaped) => out.push_str(escaped),
                None if matches!(c, '{' | '}') || marker == Some(i) => {
                    out.push('\\');
                    out.push(c);
                }
                None => out.push(c),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_is_escaped_so_text_shows_as_written() {
        assert_eq!(
            markdown("a *b* _c_ [d](e) <f> `g` ~h~ #i \\j @all"),
            "a \\*b\\* \\_c\\_ \\[d\\]\\(e\\) \\<f\\> \\`g\\` \\~h\\~ \\#i \\\\j \\@all"
        );
        assert_eq!(
            markdown("{{DATE(2026-01-01T00:00:00Z)}}"),
            "\\{\\{DATE\\(2026\\-01\\-01T00:00:00Z\\)\\}\\}"
        );
        assert_eq!(
            markdown("- a\n  + b\n12. c\n3) d"),
            "\\- a\n  \\+ b\n12\\. c\n3\\) d"
        );
        assert_eq!(
            markdown("a + b 1. c 10.0.0.5:443"),
            "a + b 1. c 10.0.0.5:443"
        );
        assert_eq!(markdown("é ü"), "é ü");
    }

    /// The worst alert (every text at its limit, each character escaped by both Markdown and
    /// JSON) fits alone.
    #[test]
    fn one_alert_always_fits() {
        let note = crate::notify::format::worst_note('*');
        for alerts in [vec![note.clone()], vec![note.clone(), note]] {
            let msg = Message {
                group_key: "g".into(),
                alerts,
                digest: false,
                ..Default::default()
            };
            let body = serde_json::to_vec(&payload(&msg)).unwrap();
            assert!(body.len() <= MAX_PAYLOAD_BYTES, "{}", body.len());
        }
    }
}
