//! A message as text for people, the same in every channel that shows a message as text
//! (Telegram, Matrix, ntfy, Pushover): what is wrong first, then the error chain, the labels, when it fired
//! (how long it lasted, who acknowledged it) and the status page's link. It is built once as
//! [`Span`]s and rendered as plain text ([`plain`]) or as escaped HTML ([`html`]), and fitted
//! to a vendor's limit before rendering ([`message`]), so a cut falls between spans or inside a
//! text, never inside a tag or an entity: the HTML stays balanced whatever the cut. Notes that
//! do not fit are left out whole and counted (`…and 3 more alerts (2 firing, 1 resolved)`).

use super::format::{human_duration, human_time, label_list, truncate, web_link};
use super::message::{AlertNote, Message, NoteKind};

/// The most characters of a title (what a notification's first line shows).
const MAX_TITLE_CHARS: usize = 250;
/// The most characters of a summary in a note's block.
const MAX_SUMMARY_CHARS: usize = 1000;
/// The most characters of a note's error chain (its `detail`).
const MAX_DETAIL_CHARS: usize = 500;
/// The most characters of a note's labels.
const MAX_LABEL_CHARS: usize = 300;
/// A link longer than this is left out rather than cut (a cut link goes nowhere).
const MAX_LINK_CHARS: usize = 500;

/// A piece of a message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Span {
    /// Text shown in bold.
    Bold(String),
    /// Plain text.
    Text(String),
    /// A link: its target (an http(s) URL) and its text.
    Link(String, String),
    /// The end of a line.
    Line,
}

/// How long a message may be, as its vendor counts it (characters, UTF-16 units, bytes).
pub(crate) type Measure<'a> = &'a dyn Fn(&[Span]) -> usize;

/// `msg` as spans that `measure` finds at most `max` long. With `header`, the message's title
/// comes first in bold (for vendors without a title field); without it, the title is the
/// caller's to send (ntfy's and Pushover's `title`) and a single note starts with its summary.
/// Notes that do not fit are left out and counted on a last line; when not even the first
/// fits, every text is cut to the length that fits.
pub(crate) fn message(msg: &Message, header: bool, max: usize, measure: Measure<'_>) -> Vec<Span> {
    let mut head = Vec::new();
    let title = msg.title();
    if header {
        head.push(Span::Bold(truncate(&title, MAX_TITLE_CHARS)));
    }
    let single = msg.alerts.len() == 1 && !msg.digest;
    // A single note's summary is in the title, unless the title was cut.
    let summary_in_title = single && header && title.chars().count() <= MAX_TITLE_CHARS;
    let blocks: Vec<Vec<Span>> = msg
        .alerts
        .iter()
        .enumerate()
        .map(|(i, note)| {
            let mut block = Vec::new();
            let after_something = i > 0 || !head.is_empty();
            if after_something {
                block.push(Span::Line);
            }
            if !single {
                if after_something {
                    block.push(Span::Line);
                }
                block.push(Span::Bold(format!(
                    "{} · {}",
                    note.kind.upper(),
                    truncate(note.subject(), 100)
                )));
                block.push(Span::Line);
            }
            block.extend(note_spans(note, !summary_in_title));
            block
        })
        .collect();
    let with = |shown: usize, cut: Option<usize>| -> Vec<Span> {
        let mut doc = head.clone();
        for b in &blocks[..shown] {
            doc.extend(b.iter().cloned());
        }
        if shown < msg.alerts.len() {
            if !doc.is_empty() {
                doc.push(Span::Line);
            }
            doc.push(Span::Text(more(&msg.alerts[shown..])));
        }
        match cut {
            Some(n) => doc.into_iter().map(|s| cut_span(s, n)).collect(),
            None => doc,
        }
    };
    let mut shown = 0;
    while shown < blocks.len() && measure(&with(shown + 1, None)) <= max {
        shown += 1;
    }
    if shown > 0 || blocks.is_empty() {
        return with(shown, None);
    }
    // Not even the first note fits: the longest cut of every text that does.
    let longest = with(1, None).iter().map(span_chars).max().unwrap_or(1);
    let (mut lo, mut hi) = (1, longest);
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if measure(&with(1, Some(mid))) <= max {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    with(1, Some(lo))
}

/// One note's lines: its summary (unless `summary` is false: the title says it), its labels,
/// when it fired and how long it lasted or who acknowledged it, and its link.
fn note_spans(note: &AlertNote, summary: bool) -> Vec<Span> {
    let mut out = Vec::new();
    let line = |out: &mut Vec<Span>, span: Span| {
        if !out.is_empty() {
            out.push(Span::Line);
        }
        out.push(span);
    };
    if summary {
        let text = if note.summary.trim().is_empty() {
            format!("{} is failing", note.subject())
        } else {
            note.summary.clone()
        };
        line(&mut out, Span::Text(truncate(&text, MAX_SUMMARY_CHARS)));
    }
    if let Some(detail) = note.detail.as_deref().filter(|d| !d.trim().is_empty()) {
        line(
            &mut out,
            Span::Text(format!("Error: {}", truncate(detail, MAX_DETAIL_CHARS))),
        );
    }
    if !note.labels.is_empty() {
        line(
            &mut out,
            Span::Text(truncate(&label_list(&note.labels), MAX_LABEL_CHARS)),
        );
    }
    line(&mut out, Span::Text(times(note)));
    if let Some(link) =
        web_link(note.link.as_deref()).filter(|l| l.chars().count() <= MAX_LINK_CHARS)
    {
        line(
            &mut out,
            Span::Link(link.to_string(), "Open in Lookout".into()),
        );
    }
    if let Some(ack) =
        web_link(note.ack_link.as_deref()).filter(|l| l.chars().count() <= MAX_LINK_CHARS)
    {
        line(&mut out, Span::Link(ack.to_string(), "Acknowledge".into()));
    }
    out
}

/// `Fired 2026-11-26 10:00:00 UTC, lasted 4m 12s`, `…, acknowledged by alice`.
fn times(note: &AlertNote) -> String {
    let mut s = format!("Fired {}", human_time(note.fired_at));
    if let Some(lasted) = note.lasted() {
        s.push_str(&format!(", lasted {}", human_duration(lasted)));
    }
    if note.kind == NoteKind::Acknowledged {
        match &note.acked_by {
            Some(by) => s.push_str(&format!(", acknowledged by {}", truncate(by, 100))),
            None => s.push_str(", acknowledged"),
        }
    }
    s
}

/// `…and 3 more alerts (2 firing, 1 resolved)`: the line that counts the notes a message
/// left out (here, and in Teams' card).
pub(crate) fn more(rest: &[AlertNote]) -> String {
    let n = rest.len();
    let counts: Vec<String> = NoteKind::ALL
        .into_iter()
        .filter_map(|k| {
            let c = rest.iter().filter(|a| a.kind == k).count();
            (c > 0).then(|| format!("{c} {}", k.as_str()))
        })
        .collect();
    let s = if n == 1 { "" } else { "s" };
    format!("…and {n} more alert{s} ({})", counts.join(", "))
}

fn span_chars(s: &Span) -> usize {
    match s {
        Span::Bold(t) | Span::Text(t) => t.chars().count(),
        Span::Link(href, t) => href.chars().count().max(t.chars().count()),
        Span::Line => 0,
    }
}

/// The span with its text cut to `n` characters; a link too long is left as its text only.
fn cut_span(s: Span, n: usize) -> Span {
    match s {
        Span::Bold(t) => Span::Bold(truncate(&t, n)),
        Span::Text(t) => Span::Text(truncate(&t, n)),
        Span::Link(href, t) if href.chars().count() > n => Span::Text(truncate(&t, n)),
        Span::Link(href, t) => Span::Link(href, truncate(&t, n)),
        Span::Line => Span::Line,
    }
}

/// The spans as plain text; a link as `text: target`, unless it is `shown_apart` (the
/// vendor shows that link on its own: ntfy's `click`, Pushover's `url`), then left out.
pub(crate) fn plain(spans: &[Span], shown_apart: Option<&str>) -> String {
    let mut out = String::new();
    for s in spans {
        match s {
            Span::Bold(t) | Span::Text(t) => out.push_str(t),
            Span::Link(href, t) if Some(href.as_str()) != shown_apart => {
                out.push_str(t);
                out.push_str(": ");
                out.push_str(href);
            }
            Span::Link(..) => {
                // The line the link would have been on goes too.
                if out.ends_with('\n') {
                    out.pop();
                }
            }
            Span::Line => out.push('\n'),
        }
    }
    out
}

/// The spans as HTML: text escaped (`&amp;`, `&lt;`, `&gt;`, `&quot;`: the four entities
/// every HTML dialect here takes, Telegram's included), bold as `<b>`, links as
/// `<a href="...">`, and each line ended by `line_break` (`"\n"` for Telegram, `"<br>"` for
/// Matrix).
pub(crate) fn html(spans: &[Span], line_break: &str) -> String {
    let mut out = String::new();
    for s in spans {
        match s {
            Span::Bold(t) => {
                out.push_str("<b>");
                out.push_str(&escape(t));
                out.push_str("</b>");
            }
            Span::Text(t) => out.push_str(&escape(t)),
            Span::Link(href, t) => {
                out.push_str("<a href=\"");
                out.push_str(&escape(href));
                out.push_str("\">");
                out.push_str(&escape(t));
                out.push_str("</a>");
            }
            Span::Line => out.push_str(line_break),
        }
    }
    out
}

/// The text a reader sees of the spans (a link's text, not its target): what Telegram counts.
pub(crate) fn shown(spans: &[Span]) -> String {
    let mut out = String::new();
    for s in spans {
        match s {
            Span::Bold(t) | Span::Text(t) | Span::Link(_, t) => out.push_str(t),
            Span::Line => out.push('\n'),
        }
    }
    out
}

/// `s` with `&`, `<`, `>` and `"` as entities.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn note(kind: NoteKind, check: &str, summary: &str) -> AlertNote {
        let fired = chrono::Utc
            .with_ymd_and_hms(2026, 11, 26, 10, 0, 0)
            .unwrap();
        AlertNote {
            fingerprint: format!("uptime/{check}"),
            rule: "uptime".into(),
            labels: [("check".to_string(), check.to_string())].into(),
            kind,
            summary: summary.into(),
            fired_at: fired,
            resolved_at: (kind == NoteKind::Resolved)
                .then(|| fired + chrono::Duration::seconds(252)),
            link: Some(format!("https://status.example.com/checks/{check}")),
            acked_by: (kind == NoteKind::Acknowledged).then(|| "alice".to_string()),
            ..AlertNote::default()
        }
    }

    fn msg(alerts: Vec<AlertNote>) -> Message {
        Message {
            group_key: "g".into(),
            alerts,
            digest: false,
            ..Default::default()
        }
    }

    fn chars(spans: &[Span]) -> usize {
        shown(spans).chars().count()
    }

    #[test]
    fn the_error_chain_follows_the_summary_in_the_details() {
        let mut n = note(NoteKind::Firing, "api", "api is down: connection refused");
        n.detail = Some("connecting to 10.0.0.5:443: Connection refused (os error 111)".into());
        let text = plain(&message(&msg(vec![n]), true, 4096, &chars), None);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0], "[FIRING] api is down: connection refused",
            "{text}"
        );
        assert_eq!(
            lines[1], "Error: connecting to 10.0.0.5:443: Connection refused (os error 111)",
            "{text}"
        );
    }

    #[test]
    fn one_note_says_what_is_wrong_first() {
        let m = msg(vec![note(NoteKind::Resolved, "api", "api <down> & out")]);
        let spans = message(&m, true, 4096, &chars);
        assert_eq!(
            html(&spans, "\n"),
            "<b>[RESOLVED] api &lt;down&gt; &amp; out</b>\ncheck=api\n\
             Fired 2026-11-26 10:00:00 UTC, lasted 4m 12s\n\
             <a href=\"https://status.example.com/checks/api\">Open in Lookout</a>"
        );
        let spans = message(&m, false, 4096, &chars);
        assert_eq!(
            plain(&spans, Some("https://status.example.com/checks/api")),
            "api <down> & out\ncheck=api\nFired 2026-11-26 10:00:00 UTC, lasted 4m 12s"
        );
    }

    #[test]
    fn several_notes_each_get_a_block_and_what_does_not_fit_is_counted() {
        let notes: Vec<AlertNote> = (0..40)
            .map(|i| note(NoteKind::Firing, &format!("c{i}"), "down"))
            .chain([note(NoteKind::Acknowledged, "db", "db down")])
            .collect();
        let spans = message(&msg(notes), true, 1000, &chars);
        let text = plain(&spans, None);
        assert!(chars(&spans) <= 1000, "{text}");
        assert!(
            text.starts_with("[FIRING] 40 alerts, [ACKNOWLEDGED] 1 alert\n\nFIRING · c0\ndown\n"),
            "{text}"
        );
        assert!(
            text.ends_with("more alerts (31 firing, 1 acknowledged)")
                || text.contains("more alerts ("),
            "{text}"
        );
        let ack = message(
            &msg(vec![
                note(NoteKind::Firing, "a", "x"),
                note(NoteKind::Acknowledged, "db", "db down"),
            ]),
            true,
            4096,
            &chars,
        );
        assert!(plain(&ack, None).contains("acknowledged by alice"));
    }

    #[test]
    fn a_note_too_long_for_the_limit_is_cut_inside_its_texts() {
        let long = "<&>".repeat(2000);
        let m = msg(vec![note(NoteKind::Firing, "api", &long)]);
        for max in [50, 300, 4096] {
            let spans = message(&m, true, max, &chars);
            assert!(chars(&spans) <= max, "{max}: {}", chars(&spans));
            let h = html(&spans, "\n");
            assert!(h.starts_with("<b>") && h.contains("</b>"), "{h}");
            assert!(!h.contains("&amp…") && !h.contains("&l…"), "{h}");
        }
    }
}
