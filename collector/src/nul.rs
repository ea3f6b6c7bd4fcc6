//! NUL characters refused where they arrive. PostgreSQL cannot store or compare a NUL in text
//! and SQLite's full-text query ends a string at one, so a NUL in an API URL (a check's name, a
//! log search) or in a silence was a storage error, 503, and on one backend only. Refused at
//! the edge with 400 and a sentence, both backends answer alike and the store never sees one.
//! Text kept as it came (a ping's body) has its NULs replaced instead ([`replace`]).

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::AppError;

/// True when percent-encoded `text` (a path or a query) holds `%00`.
fn encodes_nul(text: &str) -> bool {
    text.as_bytes().windows(3).any(|w| w == b"%00")
}

/// Middleware: a URL to the API or the admin pages (the routes that query the store with what
/// the URL says) whose path or query holds `%00` is answered 400.
pub async fn refuse_in_url(req: Request, next: Next) -> Response {
    let uri = req.uri();
    let reads_store = uri.path().starts_with("/api/") || uri.path().starts_with("/admin");
    if reads_store && (encodes_nul(uri.path()) || uri.query().is_some_and(encodes_nul)) {
        return AppError::BadRequest(
            "the URL holds a NUL character (%00), which no name or search here can contain".into(),
        )
        .into_response();
    }
    next.run(req).await
}

/// `Err` (400, naming `field`) when `text` holds a NUL character.
pub fn refuse(field: &str, text: &str) -> Result<(), AppError> {
    if text.contains('\0') {
        return Err(AppError::BadRequest(format!(
            "{field}: holds a NUL character, which cannot be stored"
        )));
    }
    Ok(())
}

/// `text` with each NUL replaced by U+FFFD, for text that is kept as it came.
pub fn replace(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}").into()
    } else {
        text.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_encoded_nul_counts() {
        assert!(encodes_nul("q=a%00b"));
        assert!(encodes_nul("/api/v1/checks/%00/results"));
        // An encoded percent sign followed by zeros is not a NUL.
        assert!(!encodes_nul("q=50%2500"));
        assert!(!encodes_nul("q=%20%30%30"));
        assert!(refuse("comment", "a\0b").is_err());
        assert!(refuse("comment", "fine").is_ok());
        assert_eq!(replace("a\0b"), "a\u{FFFD}b");
    }
}
