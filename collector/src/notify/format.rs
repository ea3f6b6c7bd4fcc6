//! How a note is written for people, the same in every channel: the colour of its state, times
//! and durations in words, labels as `key=value`, which links may be shown, text cut to a
//! vendor's limit; and error text with the channel's secrets taken out. The channels import
//! these; nothing here knows a channel.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::message::{AlertNote, NoteKind};

pub(crate) use lookout_runtime::truncate;

/// The colour of a note's state, as `#rrggbb` (Slack attachments, the email's HTML part).
pub(crate) fn color(kind: NoteKind) -> &'static str {
    match kind {
        NoteKind::Firing => "#d73a49",
        NoteKind::Reminder => "#e36209",
        NoteKind::Resolved => "#28a745",
        NoteKind::Acknowledged => "#6f42c1",
    }
}

/// `4m 12s`, `2h 5m`, `3d 1h`, `12s`, `300ms`: the two largest units, for people.
pub(crate) fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 && d.subsec_millis() > 0 {
        return format!("{}ms", d.subsec_millis());
    }
    let units = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    let mut parts = Vec::new();
    let mut rest = secs;
    for (size, unit) in units {
        let n = rest / size;
        rest %= size;
        if n > 0 || (!parts.is_empty() && parts.len() < 2) {
            parts.push(format!("{n}{unit}"));
        }
        if parts.len() == 2 {
            break;
        }
    }
    // A trailing zero unit ("4m 0s") says nothing.
    if parts.len() == 2 && parts[1].starts_with('0') {
        parts.pop();
    }
    if parts.is_empty() {
        "0s".to_string()
    } else {
        parts.join(" ")
    }
}

/// `2026-11-26 10:00:00 UTC`.
pub(crate) fn human_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// `check=api, location=eu` (label order: by key).
pub(crate) fn label_list(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The link, when it is an http(s) URL: anything else is not put in a message as a link.
pub(crate) fn web_link(link: Option<&str>) -> Option<&str> {
    link.filter(|l| l.starts_with("https://") || l.starts_with("http://"))
}

/// What a message shows under a note's summary, as (name, value): its labels, the error in
/// full (`detail`), when it fired, who acknowledged it, when it resolved and how long it
/// lasted, those it has. The email's table, Opsgenie's description, the chat services' fields.
pub(crate) fn facts(note: &AlertNote) -> Vec<(&'static str, String)> {
    let mut rows = Vec::new();
    if !note.labels.is_empty() {
        rows.push(("Labels", label_list(&note.labels)));
    }
    if let Some(detail) = &note.detail {
        rows.push(("Error", detail.clone()));
    }
    rows.push(("Fired", human_time(note.fired_at)));
    if let Some(by) = &note.acked_by {
        rows.push(("Acknowledged by", by.clone()));
    }
    if let Some(resolved) = note.resolved_at {
        rows.push(("Resolved", human_time(resolved)));
    }
    if let Some(lasted) = note.lasted() {
        rows.push(("Lasted", human_duration(lasted)));
    }
    rows
}

/// `s` with every character that `escape` rewrites rewritten, cut at a whole rewrite to at
/// most `max` characters, `…` marking the cut: user text in a vendor's markup, within its
/// limit, whose escapes a cut never splits.
pub(crate) fn escaped_cut(
    s: &str,
    max: usize,
    escape: impl Fn(char) -> Option<&'static str>,
) -> String {
    let piece = |c: char| escape(c).map_or(1, |e| e.chars().count());
    let total: usize = s.chars().map(piece).sum();
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let n = piece(c);
        if total > max && used + n + 1 > max {
            if max > 0 {
                out.push('…');
            }
            break;
        }
        match escape(c) {
            Some(e) => out.push_str(e),
            None => out.push(c),
        }
        used += n;
    }
    out
}

/// The escape of `c` in Markdown (CommonMark, Discord's and Mattermost's dialects): a
/// backslash before each character that would start emphasis, code, a quote, a heading, a
/// list, a table, a spoiler, a link or a mention, so user text shows as it was written.
pub(crate) fn markdown_escape(c: char) -> Option<&'static str> {
    Some(match c {
        '\\' => "\\\\",
        '*' => "\\*",
        '_' => "\\_",
        '~' => "\\~",
        '`' => "\\`",
        '|' => "\\|",
        '>' => "\\>",
        '<' => "\\<",
        '#' => "\\#",
        '-' => "\\-",
        '[' => "\\[",
        ']' => "\\]",
        '(' => "\\(",
        ')' => "\\)",
        '@' => "\\@",
        _ => return None,
    })
}

/// A URL as the target of a Markdown link `[text](url)`: the characters that would end the
/// target or break it (spaces, parentheses, angle brackets) percent-encoded.
pub(crate) fn markdown_link_target(url: &str) -> String {
    url.replace(' ', "%20")
        .replace('(', "%28")
        .replace(')', "%29")
        .replace('<', "%3C")
        .replace('>', "%3E")
}

/// [`facts`] with each value cut (`…` marking a cut) to what a card shows: the error chain at
/// 1,500 characters, the labels at 600, the others at 200. With a summary cut at 1,000 and a
/// title at 250, one alert then fits the chat services' message limits (Teams' 28 KB, Google
/// Chat's 32,000 bytes) even with every character escaped.
pub(crate) fn facts_cut(note: &AlertNote) -> Vec<(&'static str, String)> {
    facts(note)
        .into_iter()
        .map(|(name, value)| {
            let max = match name {
                "Error" => 1500,
                "Labels" => 600,
                _ => 200,
            };
            (name, truncate(&value, max))
        })
        .collect()
}

/// How many of a message's `n` notes to show: all when they fit (or there is one), else the
/// most that `fits`, at least one. `fits(k)` says whether the message with its first `k`
/// notes, and a line counting the rest, is within the vendor's limits; it must grow with `k`.
pub(crate) fn most_that_fit(n: usize, fits: impl Fn(usize) -> bool) -> usize {
    if n <= 1 || fits(n) {
        return n;
    }
    let (mut lo, mut hi) = (1, n - 1);
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    lo
}

/// The worst alert for a card's limits, for the channels' tests: every text far past its cut,
/// made of control characters (six bytes each in JSON) and of `escaped` (which the channel
/// escapes), and both links at the longest a card keeps.
#[cfg(test)]
pub(crate) fn worst_note(escaped: char) -> AlertNote {
    let worst = "\u{1}".repeat(5000) + &escaped.to_string().repeat(5000);
    AlertNote {
        fingerprint: "f".into(),
        rule: "r".into(),
        labels: [("check".to_string(), worst.clone())].into(),
        kind: super::message::NoteKind::Firing,
        summary: worst.clone(),
        detail: Some(worst.clone()),
        acked_by: Some(worst),
        link: Some(format!("https://x/{}", "a".repeat(990))),
        ack_link: Some(format!("https://x/{}", "b".repeat(990))),
        ..AlertNote::default()
    }
}

/// An alert's `severity` label as one of four levels, for services that rank alerts
/// (PagerDuty's severities, Opsgenie's priorities): `critical` (also `fatal`, `page`), `error`
/// (also `major`, `high`), `warning` (also `warn`, `minor`, `medium`), `info` (also `low`,
/// `informational`); anything else, or no label, is `error`.
pub(crate) fn severity(label: Option<&str>) -> &'static str {
    match label.map(str::to_ascii_lowercase).as_deref() {
        Some("critical" | "fatal" | "page") => "critical",
        Some("warning" | "warn" | "minor" | "medium") => "warning",
        Some("info" | "informational" | "low") => "info",
        _ => "error",
    }
}

/// A stable key for an alert within a vendor's length limit: its fingerprint when it fits (and
/// is not empty), else `lookout:sha256:<hex>` of it (79 characters). PagerDuty's `dedup_key`,
/// Opsgenie's `alias`.
pub(crate) fn alert_key(fingerprint: &str, max: usize) -> String {
    let n = fingerprint.chars().count();
    if n > 0 && n <= max {
        return fingerprint.to_string();
    }
    let digest = Sha256::digest(fingerprint.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("lookout:sha256:{hex}")
}

/// `text` with every one of `secrets` replaced by `<redacted>`.
pub(crate) fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(s.as_str(), "<redacted>");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_say_them() {
        let s = Duration::from_secs;
        assert_eq!(human_duration(s(0)), "0s");
        assert_eq!(human_duration(Duration::from_millis(300)), "300ms");
        assert_eq!(human_duration(s(12)), "12s");
        assert_eq!(human_duration(s(252)), "4m 12s");
        assert_eq!(human_duration(s(240)), "4m");
        assert_eq!(human_duration(s(3_600 + 5)), "1h");
        assert_eq!(human_duration(s(7_500)), "2h 5m");
        assert_eq!(human_duration(s(86_400 * 3 + 3_700)), "3d 1h");
        assert_eq!(human_duration(s(86_400 + 59)), "1d");
    }

    #[test]
    fn escapes_are_never_cut_in_half() {
        let md = |s: &str, max| escaped_cut(s, max, markdown_escape);
        assert_eq!(md("a*b_c", 100), "a\\*b\\_c");
        assert_eq!(md("ab**", 5), "ab\\*…");
        assert_eq!(md("ab**", 4), "ab…");
        assert_eq!(md("abcdef", 4), "abc…");
        assert_eq!(md("abcd", 4), "abcd");
        assert_eq!(md("@everyone", 100), "\\@everyone");
        for max in 0..12 {
            assert!(md("a*b*c*d*e*f", max).chars().count() <= max, "{max}");
        }
        assert_eq!(
            markdown_link_target("https://x/a (b)<c>"),
            "https://x/a%20%28b%29%3Cc%3E"
        );
    }

    #[test]
    fn the_most_that_fit_is_found_and_at_least_one() {
        assert_eq!(most_that_fit(0, |_| false), 0);
        assert_eq!(most_that_fit(1, |_| false), 1);
        assert_eq!(most_that_fit(50, |k| k <= 50), 50);
        assert_eq!(most_that_fit(50, |k| k <= 17), 17);
        assert_eq!(most_that_fit(50, |k| k <= 49), 49);
        assert_eq!(most_that_fit(50, |_| false), 1);
    }

    #[test]
    fn severities_map_to_four_levels() {
        assert_eq!(severity(Some("critical")), "critical");
        assert_eq!(severity(Some("Warning")), "warning");
        assert_eq!(severity(Some("info")), "info");
        assert_eq!(severity(Some("major")), "error");
        assert_eq!(severity(Some("whatever")), "error");
        assert_eq!(severity(None), "error");
    }
}
