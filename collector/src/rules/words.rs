//! A probe's error in plain words, for the first line of a notification: what a person woken
//! at 3 a.m. reads on a lock screen. The agents report errors as chains
//! (`connecting to 127.0.0.1:37745: Connection refused (os error 111)`, `HTTP: client error
//! (Connect): tcp connect error: ...`) that say where in the stack a probe failed; that chain
//! stays whole in the note's details, and the title says what it means: `connection refused`.
//! Errors already in words (`status 503, expected 2xx`, `condition failed: ...`) are kept,
//! without OS error numbers, and cut to a line.

/// The most characters of an error in a title; the whole chain is in the details.
const MAX_CHARS: usize = 120;

/// What `error` means, in a few words (see the module's doc).
pub fn plain(error: &str) -> String {
    let lower = error.to_ascii_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| lower.contains(n));
    // The most specific first: a TLS failure's chain may also say "handshake" or "timed out".
    let known: &[(&[&str], &str)] = &[
        (
            &[
                "certificate expired",
                "expired certificate",
                "certificate has expired",
            ],
            "TLS certificate expired",
        ),
        (
            &[
                "notvalidforname",
                "not valid for name",
                "certificate is not valid for",
            ],
            "TLS certificate is for another name",
        ),
        (
            &[
                "unknownissuer",
                "unknown issuer",
                "self-signed",
                "self signed",
            ],
            "TLS certificate not trusted",
        ),
        (
            &[
                "failed to lookup address",
                "name or service not known",
                "no such host",
                "nxdomain",
                "temporary failure in name resolution",
            ],
            "DNS lookup failed",
        ),
        (&["connection refused"], "connection refused"),
        (&["connection reset"], "connection reset"),
        (
            &[
                "no route to host",
                "host is unreachable",
                "host unreachable",
            ],
            "host unreachable",
        ),
        (
            &["network is unreachable", "network unreachable"],
            "network unreachable",
        ),
        (
            &[
                "timed out",
                "timeout",
                "deadline has elapsed",
                "no answer within",
            ],
            "timed out",
        ),
        (
            &["tls handshake", "handshake failure"],
            "TLS handshake failed",
        ),
        (
            &["connection closed before", "unexpected eof", "broken pipe"],
            "connection closed early",
        ),
    ];
    for (needles, words) in known {
        if has(needles) {
            return (*words).to_string();
        }
    }
    let cleaned = without_os_errors(error);
    let one_line = cleaned.split_whitespace().collect::<Vec<_>>().join(" ");
    let words = if one_line.is_empty() {
        "failing".to_string()
    } else {
        one_line
    };
    lookout_runtime::truncate(&words, MAX_CHARS)
}

/// `text` without ` (os error 111)` and the like: a number that means nothing to a person.
fn without_os_errors(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("(os error ") {
        let tail = &rest[i + "(os error ".len()..];
        let digits = tail.chars().take_while(char::is_ascii_digit).count();
        if digits > 0 && tail[digits..].starts_with(')') {
            out.push_str(rest[..i].trim_end());
            rest = &tail[digits + 1..];
        } else {
            out.push_str(&rest[..i + 1]);
            rest = &rest[i + 1..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_from_the_agents_probes_read_as_words() {
        // The errors as the agent's probes write them (agent/src/probes).
        let cases = [
            (
                "connecting to 127.0.0.1:37745: Connection refused (os error 111)",
                "connection refused",
            ),
            (
                "HTTP: client error (Connect): tcp connect error: Connection refused (os error 111)",
                "connection refused",
            ),
            (
                "resolving api.example.invalid: failed to lookup address information: Name or service not known",
                "DNS lookup failed",
            ),
            (
                "TLS handshake: invalid peer certificate: Expired",
                "TLS handshake failed",
            ),
            (
                "certificate: invalid peer certificate: certificate expired",
                "TLS certificate expired",
            ),
            (
                "TLS handshake: invalid peer certificate: NotValidForName",
                "TLS certificate is for another name",
            ),
            (
                "HTTP: invalid peer certificate: UnknownIssuer",
                "TLS certificate not trusted",
            ),
            (
                "connecting to 10.0.0.9:443: No route to host (os error 113)",
                "host unreachable",
            ),
            ("no answer within 5s", "timed out"),
            ("HTTP: operation timed out", "timed out"),
            (
                "reading from 10.0.0.1:6379: Connection reset by peer (os error 104)",
                "connection reset",
            ),
        ];
        for (error, words) in cases {
            assert_eq!(plain(error), words, "{error}");
        }
    }

    #[test]
    fn errors_in_words_stay_without_their_numbers() {
        assert_eq!(
            plain("status 503, expected 2xx"),
            "status 503, expected 2xx"
        );
        assert_eq!(
            plain("condition failed: body contains \"ok\""),
            "condition failed: body contains \"ok\""
        );
        assert_eq!(
            plain("ping 10.0.0.1: Permission denied (os error 13)"),
            "ping 10.0.0.1: Permission denied"
        );
        assert_eq!(plain("odd (os error x) (os error 7)"), "odd (os error x)");
        assert_eq!(plain("  "), "failing");
        let long = "x".repeat(500);
        assert_eq!(plain(&long).chars().count(), MAX_CHARS);
        assert!(!plain("a\nb (os error 2)\tc").contains(['\n', '\t']));
    }
}
