//! Browser login for the admin pages: `POST /login` with the admin token sets a cookie that
//! stands for it. The cookie holds an HMAC of a fixed text keyed by the token, not the token
//! itself, so it changes when the token does and reveals nothing about it. It is `HttpOnly`
//! (no script reads it) and `SameSite=Strict` (no other site's page can send it with a form),
//! which with the `Origin` check on form posts keeps other sites from acting through it.

use axum::http::{HeaderMap, header};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The cookie's name.
pub const COOKIE: &str = "lookout_session";
/// How long a login lasts: 12 hours.
pub const MAX_AGE_SECS: u64 = 12 * 3600;

/// The cookie value that stands for `token`.
pub fn value_for(token: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(token.as_bytes()).expect("HMAC accepts any key length");
    mac.update(b"lookout admin session v1");
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The session cookie's value in a request, if any.
pub fn from_request(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// True when the request carries a session cookie for `token`.
pub fn valid(headers: &HeaderMap, token: &str) -> bool {
    from_request(headers)
        .is_some_and(|v| bool::from(v.as_bytes().ct_eq(value_for(token).as_bytes())))
}

/// The `Set-Cookie` value that logs in with `token`.
pub fn set_cookie(token: &str) -> String {
    format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={MAX_AGE_SECS}",
        value_for(token)
    )
}

/// The `Set-Cookie` value that logs out.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// False when a form post comes from another site's page: its `Origin` names a host other
/// than the one it was sent to. Browsers send `Origin` with every POST.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin.split_once("://").map(|(_, rest)| rest);
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_cookie_stands_for_its_token_only() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("a=b; {COOKIE}={}; c=d", value_for("secret-token")))
                .unwrap(),
        );
        assert!(valid(&h, "secret-token"));
        assert!(!valid(&h, "other-token"));
        assert!(!value_for("secret-token").contains("secret"));
        assert!(!valid(&HeaderMap::new(), "secret-token"));
    }

    #[test]
    fn posts_from_another_site_are_told_apart() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:7700"));
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:7700"),
        );
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!same_origin(&h));
    }
}
