//! The Slack channel: a Block Kit message POSTed to an incoming webhook.
//!
//! The payload: `text` (the title, what notifications and old clients show) and one attachment
//! per kind of note present (firing, reminder, acknowledged, resolved, in that order), so each gets its colour
//! bar. An attachment's blocks are a `header` (its kind's title, plain text, at most 150
//! characters) and a `section` per note (mrkdwn, at most 3,000 characters: with its
//! "Acknowledge" link on a firing or reminder note, who acknowledged it on an acknowledged one). Slack takes at most
//! 50 blocks in a message: past that, each kind shows its first notes, shares taken in turn, and
//! a final `context` block counts the rest.
//!
//! Slack answers 200 `ok`; 429 (with `Retry-After`) and 5xx are worth retrying; other 4xx are
//! not, and their body says why (`invalid_blocks`, `no_service`). Error text never holds the
//! webhook URL, which is the credential.

use lookout_config::ChannelConfig;
use serde_json::{Value, json};

use super::endpoint::{Endpoint, HttpChannel, OneJson};
use super::format::{
    color, escaped_cut, human_duration, human_time, label_list, truncate, web_link,
};
use super::message::{AlertNote, Message, NoteKind};

/// The most blocks Slack takes in one message.
pub const MAX_BLOCKS: usize = 50;
/// The most characters of a header block's text.
pub const MAX_HEADER_CHARS: usize = 150;
/// The most characters of a section block's text.
pub const MAX_SECTION_CHARS: usize = 3000;

/// Builds the channel from a `slack` entry (`webhook_url`, `timeout`).
pub fn channel(cfg: &ChannelConfig, http: reqwest::Client) -> Result<HttpChannel, String> {
    let endpoint = Endpoint::new(cfg, http, "webhook_url", cfg.webhook_url.as_deref(), None)?;
    Ok(HttpChannel::new(
        cfg,
        endpoint,
        OneJson {
            peer: "Slack",
            body: payload,
        },
    ))
}

/// The JSON body for `msg` (see the module's doc).
pub fn payload(msg: &Message) -> Value {
    let kinds: Vec<(NoteKind, Vec<&AlertNote>)> = NoteKind::ALL
        .into_iter()
        .map(|k| (k, msg.alerts.iter().filter(|a| a.kind == k).collect()))
        .filter(|(_, notes): &(NoteKind, Vec<&AlertNote>)| !notes.is_empty())
        .collect();
    let counts: Vec<usize> = kinds.iter().map(|(_, n)| n.len()).collect();
    let headers = kinds.len();
    let fits = msg.alerts.len() + headers <= MAX_BLOCKS;
    // One block goes to the headers each, and one to the count of the rest when not all fit.
    let budget = MAX_BLOCKS - headers - usize::from(!fits);
    let shown = shares(&counts, budget);
    let mut attachments = Vec::new();
    for ((kind, notes), &n) in kinds.iter().zip(&shown) {
        let title = Message {
            group_key: msg.group_key.clone(),
            alerts: notes.iter().map(|&a| a.clone()).collect(),
            digest: false,
            ..Default::default()
        }
        .title();
        let mut blocks = vec![json!({
            "type": "header",
            "text": {"type": "plain_text", "text": truncate(&title, MAX_HEADER_CHARS)},
        })];
        blocks.extend(notes[..n].iter().map(|note| section(note)));
        attachments.push(json!({"color": color(*kind), "blocks": blocks}));
    }
    if !fits {
        let rest: Vec<String> = kinds
            .iter()
            .zip(counts.iter().zip(&shown))
            .filter(|(_, (c, s))| c > s)
            .map(|((k, _), (c, s))| format!("{} {}", c - s, k.upper().to_lowercase()))
            .collect();
        let omitted: usize = counts.iter().sum::<usize>() - shown.iter().sum::<usize>();
        let s = if omitted == 1 { "" } else { "s" };
        let text = format!("…and {omitted} more alert{s} ({})", rest.join(", "));
        if let Some(Value::Array(blocks)) = attachments
            .last_mut()
            .and_then(|a: &mut Value| a.get_mut("blocks"))
        {
            blocks.push(json!({
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": text}],
            }));
        }
    }
    json!({
        "text": mrkdwn(&msg.title(), MAX_SECTION_CHARS),
        "attachments": attachments,
    })
}

/// How many of each count fit in `budget`, shares taken in turn (so a long list of one kind
/// does not crowd out the others).
fn shares(counts: &[usize], budget: usize) -> Vec<usize> {
    let mut shown = vec![0; counts.len()];
    let mut left = budget;
    while left > 0 {
        let mut progressed = false;
        for (s, c) in shown.iter_mut().zip(counts) {
            if left > 0 && *s < *c {
                *s += 1;
                left -= 1;
                progressed = true;
            }
        }
        if !progressed {
            break;
        }
    }
    shown
}

/// One note as a section: state and subject, summary, labels, times, link. Each part has its
/// own limit so the whole stays under [`MAX_SECTION_CHARS`].
fn section(note: &AlertNote) -> Value {
    let mut lines = vec![
        format!(
            "*{}* · *{}*",
            note.kind.upper(),
            mrkdwn(note.subject(), 150)
        ),
        mrkdwn(&note.summary, 1000),
    ];
    if let Some(detail) = &note.detail {
        lines.push(format!("*Error:* {}", mrkdwn(detail, 500)));
    }
    if !note.labels.is_empty() {
        lines.push(format!(
            "*Labels:* {}",
            mrkdwn(&label_list(&note.labels), 600)
        ));
    }
    let mut times = format!("*Fired:* {}", human_time(note.fired_at));
    if let Some(lasted) = note.lasted() {
        times.push_str(&format!("  *Lasted:* {}", human_duration(lasted)));
    }
    lines.push(times);
    if let Some(by) = &note.acked_by {
        lines.push(format!("*Acknowledged by:* {}", mrkdwn(by, 100)));
    }
    // A link longer than this is left out rather than cut (a cut link goes nowhere).
    if let Some(link) = web_link(note.link.as_deref()).filter(|l| l.chars().count() <= 500) {
        lines.push(format!("<{}|Open in Lookout>", link_target(link)));
    }
    let mut text = lines.join("\n");
    // The link to acknowledge, where it fits whole: the rest of the section keeps its limits.
    if let Some(link) = web_link(note.ack_link.as_deref()) {
        let line = format!("\n<{}|Acknowledge>", link_target(link));
        if text.chars().count() + line.chars().count() <= MAX_SECTION_CHARS {
            text.push_str(&line);
        }
    }
    debug_assert!(text.chars().count() <= MAX_SECTION_CHARS);
    json!({"type": "section", "text": {"type": "mrkdwn", "text": text}})
}

/// `s` with `&`, `<` and `>` escaped as Slack asks, cut (at a whole escape) to at most `max`
/// characters, `…` marking the cut.
fn mrkdwn(s: &str, max: usize) -> String {
    escaped_cut(s, max, |c| match c {
        '&' => Some("&amp;"),
        '<' => Some("&lt;"),
        '>' => Some("&gt;"),
        _ => None,
    })
}

/// A URL as the target of `<url|text>`: `&` escaped as everywhere, and the characters that would
/// end the link percent-encoded.
fn link_target(url: &str) -> String {
    url.replace('&', "&amp;")
        .replace('<', "%3C")
        .replace('>', "%3E")
        .replace('|', "%7C")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mrkdwn_escapes_and_cuts_at_a_whole_escape() {
        assert_eq!(mrkdwn("a < b & c > d", 100), "a &lt; b &amp; c &gt; d");
        assert_eq!(mrkdwn("ab&&&&", 8), "ab&amp;…");
        assert_eq!(mrkdwn("ab&&&&", 6), "ab…");
        assert_eq!(mrkdwn("abcdef", 4), "abc…");
        assert_eq!(mrkdwn("abcd", 4), "abcd");
    }

    #[test]
    fn shares_go_round() {
        assert_eq!(shares(&[80], 48), vec![48]);
        assert_eq!(shares(&[70, 3, 10], 46), vec![33, 3, 10]);
        assert_eq!(shares(&[2, 3], 46), vec![2, 3]);
        assert_eq!(shares(&[30, 30], 46), vec![23, 23]);
    }

    #[test]
    fn links_stay_links() {
        assert_eq!(
            link_target("https://x/a?b=1&c=<2>|"),
            "https://x/a?b=1&amp;c=%3C2%3E%7C"
        );
    }
}
