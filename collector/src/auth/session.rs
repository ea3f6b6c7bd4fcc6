//! Browser login for the admin pages: `POST /login` with the admin token sets a cookie that
//! stands for it until it expires or the admin logs out.
//!
//! The cookie is `<issued>.<mac>`: when it was issued (Unix seconds) and an HMAC of that time
//! keyed by the admin token and this collector's session key. It reveals nothing of the token;
//! it stops working when the token changes; the server refuses it once `[server]
//! session_lifetime` (12 h) has passed since it was issued, whatever the browser keeps; and
//! logging out draws a new session key, so the old cookie is refused even if it was copied.
//! It is `HttpOnly` (no script reads it), `SameSite=Strict` (no other site's page can send it
//! with a form) and `Secure` when the collector is reached over https, which with the `Origin`
//! check on writes keeps other sites from acting through it.
//!
//! The session key lives in this process: a restart, or another collector behind the same
//! load balancer, asks for the login again.

use axum::http::{HeaderMap, header};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The cookie's name.
pub const COOKIE: &str = "lookout_session";

/// The HMAC of `issued` under the admin `token` and the session `key`, as hex.
fn mac(token: &str, key: &[u8], issued: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(b"lookout admin session v2\0");
    mac.update(token.as_bytes());
    mac.update(b"\0");
    mac.update(issued.to_string().as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The cookie value for a login with `token` at `issued` (Unix seconds).
pub fn value_for(token: &str, key: &[u8], issued: i64) -> String {
    format!("{issued}.{}", mac(token, key, issued))
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

/// True when the request carries a session cookie for `token` under `key`, issued less than
/// `lifetime` seconds before `now` (and not after it, bar a minute of clock skew).
pub fn valid(headers: &HeaderMap, token: &str, key: &[u8], lifetime: i64, now: i64) -> bool {
    let Some((issued, given)) = from_request(headers).and_then(|v| v.split_once('.')) else {
        return false;
    };
    let Ok(issued) = issued.parse::<i64>() else {
        return false;
    };
    let fresh = issued <= now + 60 && now - issued < lifetime;
    let matches = bool::from(given.as_bytes().ct_eq(mac(token, key, issued).as_bytes()));
    fresh && matches
}

/// The `Set-Cookie` value that logs in with `value` for `lifetime` seconds.
pub fn set_cookie(value: &str, lifetime: i64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={lifetime}{secure}")
}

/// The `Set-Cookie` value that logs out.
pub fn clear_cookie(secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
}

/// True when the browser reached the collector over https: `[server] public_url` says so, or
/// the proxy in front says it with `X-Forwarded-Proto` (which can only make the cookie stricter).
pub fn over_https(headers: &HeaderMap, public_url: Option<&str>) -> bool {
    public_url.is_some_and(|u| u.starts_with("https://"))
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// True when a write comes from a page of this site: its `Origin` names the host it was sent
/// to. Browsers send `Origin` with every POST and DELETE, so a write without one did not come
/// from a page and is refused too.
pub fn from_this_site(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
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
    fn the_cookie_stands_for_its_token_key_and_time_only() {
        let key = [7u8; 32];
        let cookie = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                header::COOKIE,
                HeaderValue::from_str(&format!("a=b; {COOKIE}={v}; c=d")).unwrap(),
            );
            h
        };
        let issued = 1_000_000;
        let h = cookie(&value_for("secret-token", &key, issued));
        assert!(valid(&h, "secret-token", &key, 3600, issued + 10));
        assert!(!valid(&h, "other-token", &key, 3600, issued + 10));
        assert!(
            !valid(&h, "secret-token", &[8u8; 32], 3600, issued + 10),
            "a new key"
        );
        assert!(
            !valid(&h, "secret-token", &key, 3600, issued + 3600),
            "expired"
        );
        assert!(
            !valid(&h, "secret-token", &key, 3600, issued - 120),
            "from the future"
        );
        assert!(!value_for("secret-token", &key, issued).contains("secret"));
        assert!(!valid(
            &HeaderMap::new(),
            "secret-token",
            &key,
            3600,
            issued
        ));
        // A later time with the old MAC is not a session.
        let forged = value_for("secret-token", &key, issued).replacen("1000000", "1000500", 1);
        assert!(!valid(
            &cookie(&forged),
            "secret-token",
            &key,
            3600,
            issued + 600
        ));
        assert!(set_cookie("v", 60, true).ends_with("Max-Age=60; Secure"));
        assert!(!set_cookie("v", 60, false).contains("Secure"));
    }

    #[test]
    fn posts_from_another_site_are_told_apart() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:7700"));
        assert!(!from_this_site(&h), "no Origin: not a page of ours");
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:7700"),
        );
        assert!(from_this_site(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!from_this_site(&h));
    }
}
