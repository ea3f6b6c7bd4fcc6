//! Secrets out of what is printed: a URL with its password and its secret-looking query
//! parameters (`password=`, `token=`, `key=`, ...) replaced by `***`, for logs, errors and the
//! `Debug` of configuration types that hold URLs (storage, channels, the agent's collectors).

/// Query parameters whose values are secrets.
const SECRET_PARAMS: [&str; 9] = [
    "password",
    "pass",
    "pwd",
    "token",
    "key",
    "secret",
    "sslpassword",
    "apikey",
    "api_key",
];

/// `url` with `user:password@` made `***@` and secret query values made `***`; a string that
/// is not a URL is shown as it is, up to its first `@` (what follows cannot be told apart).
pub fn url(url: &str) -> String {
    let userinfo_redacted = match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
    };
    let Some((base, query)) = userinfo_redacted.split_once('?') else {
        return userinfo_redacted;
    };
    let (query, fragment) = match query.split_once('#') {
        Some((q, f)) => (q, Some(f)),
        None => (query, None),
    };
    let params: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if SECRET_PARAMS.contains(&k.to_ascii_lowercase().as_str()) => {
                format!("{k}=***")
            }
            _ => pair.to_string(),
        })
        .collect();
    let mut out = format!("{base}?{}", params.join("&"));
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

/// `url` cut to its origin, with `/***` for whatever followed (`https://hc-ping.com/***`): for
/// URLs whose path is the secret (a Healthchecks ping URL, a Slack webhook). A string that is
/// not a URL with a host is shown as `***`.
pub fn origin(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) if u.host_str().is_some() => {
            let rest = u.path() != "/" || u.query().is_some() || u.fragment().is_some();
            format!(
                "{}{}",
                u.origin().ascii_serialization(),
                if rest { "/***" } else { "" }
            )
        }
        _ => "***".to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn origin_hides_the_path_and_the_rest() {
        for (given, want) in [
            (
                "https://hc-ping.com/5bf66975-d4c7",
                "https://hc-ping.com/***",
            ),
            ("http://user:pw@127.0.0.1:9/a?b=c", "http://127.0.0.1:9/***"),
            ("https://ntfy.example", "https://ntfy.example"),
            ("not a url/with-a-secret", "***"),
        ] {
            assert_eq!(super::origin(given), want);
        }
    }

    #[test]
    fn passwords_and_secret_parameters_are_hidden() {
        for (given, want) in [
            (
                "postgres://lookout:hunter2@db:5432/lookout?sslmode=require",
                "postgres://***@db:5432/lookout?sslmode=require",
            ),
            (
                "postgres://db/lookout?user=lookout&password=hunter2&sslmode=require",
                "postgres://db/lookout?user=lookout&password=***&sslmode=require",
            ),
            (
                "http://agent:s3cret@10.0.0.1:7700",
                "http://***@10.0.0.1:7700",
            ),
            (
                "https://hooks.example/x?Token=abc#frag",
                "https://hooks.example/x?Token=***#frag",
            ),
            (
                "sqlite://./lookout-data/lookout.db",
                "sqlite://./lookout-data/lookout.db",
            ),
        ] {
            assert_eq!(super::url(given), want);
        }
    }
}
