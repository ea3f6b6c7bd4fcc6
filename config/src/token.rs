//! A secret from the configuration: an agent's bearer token (`[[agents]] token` and the agent's
//! own `token`), the admin token (`[server] admin_token`), read tokens (`[server] read_tokens`)
//! and a heartbeat's ping token.
//!
//! It exists so that a secret cannot leak by accident: its `Debug` prints `Token(****)`, so a
//! configuration logged or shown in a panic with `{:?}` does not carry it, and code that needs
//! the value asks for it by name ([`Token::expose`]). It also says, in one place, what a token
//! that authenticates a machine must be ([`Token::check_strength`]): at least
//! [`MIN_TOKEN_LEN`] characters, not all the same, and not a placeholder from the examples
//! (`change-me-...`), which anyone who read them could present. The sections that need it check
//! and report at the token's key, with file, line and column.
//!
//! A token may also be configured by its SHA-256 ([`TokenDigest`], `token_sha256 = "<hex>"`),
//! so that the configuration file holds nothing that would let its reader connect.
//!
//! In the file it is a plain string (`token = "${AGENT_TOKEN}"`); serialised, it is the string
//! again, so a configuration written back out keeps it.

use std::fmt;

use std::sync::OnceLock;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// The shortest token accepted: 24 characters of `openssl rand -hex 12` are 96 random bits.
pub const MIN_TOKEN_LEN: usize = 24;

/// The example configurations, whose tokens are known to anyone who read them.
const EXAMPLES: [&str; 3] = [
    include_str!("../examples/collector.toml"),
    include_str!("../examples/agent.toml"),
    include_str!("../examples/quickstart.toml"),
];

/// How to make a token, as the errors say it.
const MAKE_ONE: &str = "make one with `openssl rand -hex 32`";

/// A secret string from the configuration; its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Token(String);

impl Token {
    /// A token of this value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the code that sends or compares it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Err` with the problem, as a configuration error says it, when it cannot guard anything:
    /// fewer than [`MIN_TOKEN_LEN`] characters, one character repeated, or a placeholder
    /// (`change-me...`, or any token that `config/examples/` shows).
    pub fn check_strength(&self) -> Result<(), String> {
        let lower = self.0.to_ascii_lowercase();
        if lower.contains("change-me")
            || lower.contains("changeme")
            || example_tokens().contains(&self.0)
        {
            return Err(format!("the example's placeholder: {MAKE_ONE}"));
        }
        let chars = self.0.chars().count();
        if chars < MIN_TOKEN_LEN {
            return Err(format!(
                "too short: expected at least {MIN_TOKEN_LEN} characters ({MAKE_ONE})"
            ));
        }
        let mut all = self.0.chars();
        if let Some(first) = all.next()
            && all.all(|c| c == first)
        {
            return Err(format!("one character repeated: {MAKE_ONE}"));
        }
        Ok(())
    }

    /// The token's SHA-256, as [`TokenDigest`] compares it.
    pub fn digest(&self) -> TokenDigest {
        TokenDigest(Sha256::digest(self.0.as_bytes()).into())
    }
}

/// Every token value the examples show: quoted values of keys that end in `token`, and the
/// defaults of `${VAR:-default}` in them.
fn example_tokens() -> &'static Vec<String> {
    static TOKENS: OnceLock<Vec<String>> = OnceLock::new();
    TOKENS.get_or_init(|| {
        let mut out = Vec::new();
        for line in EXAMPLES.iter().flat_map(|e| e.lines()) {
            let line = line.trim_start();
            let Some((key, rest)) = line.split_once('=') else {
                continue;
            };
            if line.starts_with('#') || !key.trim().ends_with("token") {
                continue;
            }
            let Some(value) = rest
                .trim()
                .strip_prefix('"')
                .and_then(|r| r.split('"').next())
            else {
                continue;
            };
            let value = match value.strip_prefix("${").and_then(|v| v.strip_suffix('}')) {
                Some(var) => var.split_once(":-").map_or("", |(_, d)| d),
                None => value,
            };
            if !value.is_empty() {
                out.push(value.to_string());
            }
        }
        out
    })
}

/// A token's SHA-256: what the collector keeps to recognise a token it need not know, from
/// `token_sha256 = "<64 hex digits>"` (`printf %s "$TOKEN" | sha256sum`) or from a plain token.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenDigest(pub [u8; 32]);

impl TokenDigest {
    /// The digest written as 64 hexadecimal digits; the error says what is wrong.
    pub fn from_hex(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let bad = || {
            "expected the token's SHA-256 as 64 hexadecimal digits (`printf %s \"$TOKEN\" | sha256sum`)"
                .to_string()
        };
        if text.len() != 64 || !text.is_ascii() {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Self(out))
    }

    /// The 64 hexadecimal digits.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A digest lets nobody in, but it would let an offline guess be checked: not logged.
        f.write_str("TokenDigest(****)")
    }
}

impl Serialize for TokenDigest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for TokenDigest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::from_hex(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(****)")
    }
}

impl From<&str> for Token {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

impl From<String> for Token {
    fn from(value: String) -> Self {
        Self(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_it_and_the_length_is_checked_in_characters() {
        let t = Token::from("0123456789abcdef01234567");
        assert_eq!(format!("{t:?}"), "Token(****)");
        assert_eq!(t.expose(), "0123456789abcdef01234567");
        assert_eq!(t.check_strength(), Ok(()));
        // 23 characters, 46 bytes: short.
        let short = Token::from("é".repeat(23)).check_strength().unwrap_err();
        assert!(
            short.starts_with("too short: expected at least 24 characters"),
            "{short}"
        );
    }

    #[test]
    fn repeated_characters_and_the_examples_placeholders_are_refused() {
        let same = Token::from("a".repeat(40)).check_strength().unwrap_err();
        assert!(same.starts_with("one character repeated"), "{same}");
        for placeholder in ["change-me-0123456789abcdef", "CHANGEME-0123456789abcdefgh"] {
            let e = Token::from(placeholder).check_strength().unwrap_err();
            assert!(
                e.starts_with("the example's placeholder"),
                "{placeholder}: {e}"
            );
        }
        // Every token the examples show, read here independently of example_tokens().
        let mut seen = 0;
        let quoted =
            regex::Regex::new(r#"token\s*=\s*"(?:\$\{[A-Z0-9_]+:-)?([^"}$]+)\}?""#).unwrap();
        for example in ["collector.toml", "agent.toml", "quickstart.toml"] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("examples")
                .join(example);
            let text = std::fs::read_to_string(path).unwrap();
            for cap in quoted.captures_iter(&text) {
                let value = &cap[1];
                seen += 1;
                assert!(
                    Token::from(value).check_strength().is_err(),
                    "{example}: {value} accepted"
                );
            }
        }
        assert!(seen >= 4, "the examples show {seen} tokens");
    }

    #[test]
    fn a_digest_is_read_from_hex_and_matches_the_token() {
        // printf %s 0123456789abcdef01234567 | sha256sum
        let hex = "8865fea8edb697169ac2b4f5e6339e16439381033640eeb4f55edbad9bdc2d3d";
        let d = TokenDigest::from_hex(hex).unwrap();
        assert_eq!(d.to_hex(), hex);
        assert_eq!(format!("{d:?}"), "TokenDigest(****)");
        assert!(d == Token::from("0123456789abcdef01234567").digest());
        for bad in [
            "",
            "zz",
            &hex[1..],
            &format!("{hex}0"),
            &hex.replace('8', "g"),
        ] {
            assert!(TokenDigest::from_hex(bad).is_err(), "{bad:?}");
        }
    }
}
