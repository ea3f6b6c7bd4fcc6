//! A secret from the configuration: an agent's bearer token (`[[agents]] token` and the agent's
//! own `token`), the admin token (`[server] admin_token`) and a heartbeat's ping token.
//!
//! It exists so that a secret cannot leak by accident: its `Debug` prints `Token(****)`, so a
//! configuration logged or shown in a panic with `{:?}` does not carry it, and code that needs
//! the value asks for it by name ([`Token::expose`]). It also says, in one place, how short a
//! token that authenticates a machine may be ([`MIN_TOKEN_LEN`]); the sections that need it
//! check with [`Token::check_length`] and report at the token's key, with file, line and column.
//!
//! In the file it is a plain string (`token = "${AGENT_TOKEN}"`); serialised, it is the string
//! again, so a configuration written back out keeps it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The shortest token accepted for an agent (`[[agents]] token`) or a heartbeat.
pub const MIN_TOKEN_LEN: usize = 16;

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

    /// `Err` with the problem, as a configuration error says it, when it has fewer than
    /// [`MIN_TOKEN_LEN`] characters.
    pub fn check_length(&self) -> Result<(), String> {
        if self.0.chars().count() < MIN_TOKEN_LEN {
            return Err(format!(
                "too short: expected at least {MIN_TOKEN_LEN} characters"
            ));
        }
        Ok(())
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
        let t = Token::from("0123456789abcdef");
        assert_eq!(format!("{t:?}"), "Token(****)");
        assert_eq!(t.expose(), "0123456789abcdef");
        assert_eq!(t.check_length(), Ok(()));
        // 15 characters, 30 bytes: short.
        assert_eq!(
            Token::from("ééééééééééééééé").check_length(),
            Err("too short: expected at least 16 characters".to_string())
        );
    }
}
