//! `router()` read from its source: the `(path, method)` of every `.route(...)` call in
//! `fn router`, found by a small tokenizer that skips comments, string contents, char literals
//! and lifetimes, so that only real calls count. A path named by a constant (the agent
//! endpoints', from `lookout_protocol::http`) is read from the source that defines it.

use std::collections::BTreeMap;

/// What axum's method routers are named, lower case as in an OpenAPI path item.
pub const METHODS: [&str; 9] = [
    "get", "post", "put", "delete", "patch", "head", "options", "trace", "connect",
];

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Punct(char),
}

/// Rust source as identifiers, string literals and punctuation; comments, whitespace, char
/// literals and lifetimes are dropped.
fn tokens(src: &str) -> Vec<Token> {
    let c: Vec<char> = src.chars().collect();
    let at = |i: usize| c.get(i).copied();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        match (c[i], at(i + 1)) {
            (w, _) if w.is_whitespace() => i += 1,
            ('/', Some('/')) => {
                while i < c.len() && c[i] != '\n' {
                    i += 1;
                }
            }
            ('/', Some('*')) => {
                let mut depth = 0;
                loop {
                    match (at(i), at(i + 1)) {
                        (Some('/'), Some('*')) => (depth, i) = (depth + 1, i + 2),
                        (Some('*'), Some('/')) => (depth, i) = (depth - 1, i + 2),
                        (None, _) => break,
                        _ => i += 1,
                    }
                    if depth == 0 {
                        break;
                    }
                }
            }
            ('"', _) => {
                let mut s = String::new();
                i += 1;
                while let Some(ch) = at(i) {
                    match ch {
                        '\\' => {
                            s.extend(at(i + 1));
                            i += 2;
                        }
                        '"' => break,
                        _ => {
                            s.push(ch);
                            i += 1;
                        }
                    }
                }
                out.push(Token::Str(s));
                i += 1;
            }
            ('r', Some('"' | '#')) => {
                let hashes = c[i + 1..].iter().take_while(|&&h| h == '#').count();
                let open = i + 1 + hashes;
                if at(open) != Some('"') {
                    // A raw identifier (`r#type`): read as the identifier.
                    i = open;
                    continue;
                }
                let end: String = std::iter::once('"')
                    .chain(std::iter::repeat_n('#', hashes))
                    .collect();
                let rest: String = c[open + 1..].iter().collect();
                let len = rest.find(&end).unwrap_or(rest.len());
                out.push(Token::Str(rest[..len].to_string()));
                i = open + 1 + rest[..len].chars().count() + end.chars().count();
            }
            ('\'', Some('\\')) => {
                i += 3;
                while at(i).is_some_and(|ch| ch != '\'') {
                    i += 1;
                }
                i += 1;
            }
            ('\'', _) if at(i + 2) == Some('\'') => i += 3,
            ('\'', _) => i += 1,
            (w, _) if w.is_alphanumeric() || w == '_' => {
                let start = i;
                while at(i).is_some_and(|ch| ch.is_alphanumeric() || ch == '_') {
                    i += 1;
                }
                out.push(Token::Ident(c[start..i].iter().collect()));
            }
            (p, _) => {
                out.push(Token::Punct(p));
                i += 1;
            }
        }
    }
    out
}

/// The index of the bracket that closes the one at `open`.
fn closing(t: &[Token], open: usize) -> usize {
    let mut depth = 0;
    for (i, tok) in t.iter().enumerate().skip(open) {
        match tok {
            Token::Punct('(' | '[' | '{') => depth += 1,
            Token::Punct(')' | ']' | '}') => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced brackets after token {open}")
}

/// The `&str` constants that `src` defines (`const NAME: &str = "value";`), by name.
pub fn str_constants(src: &str) -> BTreeMap<String, String> {
    let t = tokens(src);
    let mut out = BTreeMap::new();
    for w in t.windows(7) {
        if let [
            Token::Ident(keyword),
            Token::Ident(name),
            Token::Punct(':'),
            Token::Punct('&'),
            Token::Ident(ty),
            Token::Punct('='),
            Token::Str(value),
        ] = w
            && keyword == "const"
            && ty == "str"
        {
            out.insert(name.clone(), value.clone());
        }
    }
    out
}

/// The `(path, method)`s of one `.route(...)`'s arguments: the path (a literal, or a constant
/// of `constants` by its possibly qualified name), then the method router chain
/// (`get(h).post(h)`, `axum::routing::delete(h)`, layers).
fn route_methods(args: &[Token], constants: &BTreeMap<String, String>) -> Vec<(String, String)> {
    let comma = args
        .iter()
        .position(|tok| *tok == Token::Punct(','))
        .unwrap_or(args.len());
    let (path, rest) = match &args[..comma] {
        [Token::Str(path)] => (path.clone(), 1),
        named => {
            let Some(Token::Ident(name)) = named.last() else {
                panic!(
                    "a .route( whose first argument is neither a string nor a constant: {args:?}"
                )
            };
            let path = constants.get(name).unwrap_or_else(|| {
                panic!("a .route( with the path {name}, a constant this test was not given")
            });
            (path.clone(), comma)
        }
    };
    let args = &args[rest..];
    let mut out = Vec::new();
    let mut depth = 0;
    for (i, tok) in args.iter().enumerate() {
        match tok {
            Token::Punct('(' | '[' | '{') => depth += 1,
            Token::Punct(')' | ']' | '}') => depth -= 1,
            Token::Ident(name) if depth == 0 && args.get(i + 1) == Some(&Token::Punct('(')) => {
                if METHODS.contains(&name.as_str()) {
                    out.push((path.clone(), name.clone()));
                } else {
                    assert!(
                        matches!(name.as_str(), "layer" | "route_layer"),
                        "route {path}: this test cannot tell what `{name}(...)` routes"
                    );
                }
            }
            _ => {}
        }
    }
    assert!(!out.is_empty(), "route {path}: no method found");
    out
}

/// Every `(path, method)` that `fn router` in `src` routes, reading paths named by a constant
/// from `constants`.
pub fn routes_in(src: &str, constants: &BTreeMap<String, String>) -> Vec<(String, String)> {
    let t = tokens(src);
    let start = t
        .windows(2)
        .position(|w| w == [Token::Ident("fn".into()), Token::Ident("router".into())])
        .expect("no fn router");
    let open = start
        + t[start..]
            .iter()
            .position(|tok| *tok == Token::Punct('{'))
            .expect("fn router has a body");
    let body = &t[open + 1..closing(&t, open)];
    let mut out = Vec::new();
    let mut i = 0;
    while i + 2 < body.len() {
        if let [Token::Punct('.'), Token::Ident(name), Token::Punct('(')] = &body[i..i + 3] {
            assert!(
                !matches!(
                    name.as_str(),
                    "nest" | "nest_service" | "merge" | "route_service"
                ),
                "router() calls .{name}(...): this test reads .route(...) calls only; teach it this form"
            );
            if name == "route" {
                let end = closing(body, i + 2);
                out.extend(route_methods(&body[i + 3..end], constants));
                i = end;
            }
        }
        i += 1;
    }
    out
}

#[test]
fn the_route_scanner_reads_every_form_and_skips_comments_and_strings() {
    let src = r##"
        fn other() -> Router { Router::new().route("/elsewhere", get(h)) }
        pub fn router(state: S) -> Router {
            // .route("/commented", get(h))
            /* .route("/blocked", post(h)) /* nested */ */
            let _ = ("http://x.invalid/.route(", r#".route("/raw", get(h))"#, '(');
            Router::new()
                .route("/a", get(h))
                .route(
                    "/b/{id}",
                    get(x::y::<'static>)
                        .post(|| async { ") .put(" })
                        .layer(DefaultBodyLimit::max(1)),
                )
                .route("/c", axum::routing::delete(h))
                .route(http::INGEST_PATH, post(h))
                .route(ASSIGNMENTS_PATH, get(h).layer(x))
                .with_state(state)
        }
    "##;
    let constants = str_constants(
        r#"
        /// Where.
        pub const INGEST_PATH: &str = "/v1/ingest";
        pub const ASSIGNMENTS_PATH: &str = "/v1/assignments";
        const NOT_A_STR: u32 = 1;
    "#,
    );
    assert_eq!(constants.len(), 2, "{constants:?}");
    let found = routes_in(src, &constants);
    let want = [
        ("/a", "get"),
        ("/b/{id}", "get"),
        ("/b/{id}", "post"),
        ("/c", "delete"),
        ("/v1/ingest", "post"),
        ("/v1/assignments", "get"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(p, m)| (p.to_string(), m.to_string()))
        .collect();
    assert_eq!(found, want);
}
