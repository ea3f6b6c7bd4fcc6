//! Check conditions, in the form Gatus users know: `"[STATUS] == 200"`, `"[BODY].status == ok"`,
//! `"len([BODY].items) > 0"`, `"[HEADER].content-type == pat(application/json*)"`,
//! `"[CERTIFICATE_EXPIRATION] > 72h"`, `"[STATUS] == any(200, 204)"`.
//!
//! A condition is `left OPERATOR right`, the operator one of `== != < <= > >=` with a space on
//! each side. The left side is a placeholder, optionally inside `len(...)` or `has(...)`; the
//! right side is a literal, `pat(glob)` (`*` any run of characters, `?` one) or
//! `any(a, b, ...)`. Placeholders:
//!
//! | placeholder | value |
//! |---|---|
//! | `[STATUS]` | HTTP status |
//! | `[RESPONSE_TIME]` | the probe's total time, in milliseconds |
//! | `[BODY]` | the response body (http), what was read (tcp), the answers (dns), the query's first value (postgres); `[BODY].a.b[0]` is a JSON path into it |
//! | `[HEADER].name` | a response header, by case-insensitive name |
//! | `[CERTIFICATE_EXPIRATION]` | time until the earliest certificate of the chain expires; compared with a duration (`72h`, `30d`) or milliseconds |
//! | `[DOMAIN_EXPIRATION]` | time until the domain's registration expires (RDAP's `expiration` event); compared like `[CERTIFICATE_EXPIRATION]` |
//! | `[DNS_RCODE]` | the DNS response code (`NOERROR`, `NXDOMAIN`, `SERVFAIL`, ...) |
//! | `[CONNECTED]` | `true` when a connection was made |
//! | `[IP]` | the address connected to |
//!
//! Conditions are parsed when the configuration loads, so a bad one is a configuration error
//! that says where. Ordering operators compare numbers (or durations); `==` and `!=` compare
//! numbers as numbers and anything else as text. A failed condition says what it found:
//! `[STATUS] == 200 (actual: 503)`.

use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A parsed condition; displays (and serializes) as the text it was parsed from.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    text: String,
    left: Left,
    op: Op,
    right: Right,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// What a placeholder names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    /// `[STATUS]`
    Status,
    /// `[RESPONSE_TIME]`
    ResponseTime,
    /// `[BODY]`
    Body,
    /// `[HEADER]`
    Header,
    /// `[CERTIFICATE_EXPIRATION]`
    CertificateExpiration,
    /// `[DNS_RCODE]`
    DnsRcode,
    /// `[CONNECTED]`
    Connected,
    /// `[IP]`
    Ip,
    /// `[DOMAIN_EXPIRATION]`
    DomainExpiration,
}

const PLACEHOLDERS: [(&str, Placeholder); 9] = [
    ("STATUS", Placeholder::Status),
    ("RESPONSE_TIME", Placeholder::ResponseTime),
    ("BODY", Placeholder::Body),
    ("HEADER", Placeholder::Header),
    ("CERTIFICATE_EXPIRATION", Placeholder::CertificateExpiration),
    ("DNS_RCODE", Placeholder::DnsRcode),
    ("CONNECTED", Placeholder::Connected),
    ("IP", Placeholder::Ip),
    ("DOMAIN_EXPIRATION", Placeholder::DomainExpiration),
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Path {
    placeholder: Placeholder,
    steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Left {
    Value(Path),
    Len(Path),
    Has(Path),
}

#[derive(Debug, Clone, PartialEq)]
enum Right {
    Literal(String),
    Pattern(String),
    Any(Vec<String>),
}

/// What a probe observed, for conditions to test. Fields a probe does not fill stay `None`.
#[derive(Debug, Default)]
pub struct Observation {
    /// HTTP status.
    pub status: Option<u16>,
    /// Total time, in milliseconds.
    pub response_time_ms: f64,
    /// The body (or what stands for it; see the module's table).
    pub body: Option<Vec<u8>>,
    /// Response headers; names in lower case.
    pub headers: Vec<(String, String)>,
    /// Time until the earliest certificate expires (zero when one has expired).
    pub certificate_expiration: Option<Duration>,
    /// DNS response code, as its name.
    pub dns_rcode: Option<String>,
    /// True when a connection was made.
    pub connected: bool,
    /// The address connected to.
    pub ip: Option<String>,
    /// Time until the domain's registration expires (zero once it has).
    pub domain_expiration: Option<Duration>,
    json: OnceLock<Option<serde_json::Value>>,
}

/// A value a placeholder resolved to.
#[derive(Debug, Clone, PartialEq)]
enum Found {
    Missing,
    Text(String),
    Number(f64),
    Duration(Duration),
    Bool(bool),
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Found::Missing => f.write_str("nothing"),
            Found::Text(t) if t.chars().count() > 100 => {
                let cut: String = t.chars().take(100).collect();
                write!(f, "{cut:?}...")
            }
            Found::Text(t) => write!(f, "{t:?}"),
            Found::Number(n) => write!(f, "{n}"),
            Found::Duration(d) => f.write_str(&crate::duration::format(d)),
            Found::Bool(b) => write!(f, "{b}"),
        }
    }
}

impl Observation {
    fn json(&self) -> Option<&serde_json::Value> {
        self.json
            .get_or_init(|| {
                self.body
                    .as_deref()
                    .and_then(|b| serde_json::from_slice(b).ok())
            })
            .as_ref()
    }

    /// The body's JSON value at `steps`.
    fn walk(&self, steps: &[Step]) -> Option<&serde_json::Value> {
        let mut at = self.json();
        for step in steps {
            at = match (step, at) {
                (Step::Key(k), Some(serde_json::Value::Object(m))) => m.get(k),
                (Step::Index(i), Some(serde_json::Value::Array(a))) => a.get(*i),
                _ => None,
            };
        }
        at
    }

    fn resolve(&self, path: &Path) -> Found {
        match path.placeholder {
            Placeholder::Status => self
                .status
                .map_or(Found::Missing, |s| Found::Number(s.into())),
            Placeholder::ResponseTime => Found::Number(self.response_time_ms),
            Placeholder::CertificateExpiration => self
                .certificate_expiration
                .map_or(Found::Missing, Found::Duration),
            Placeholder::DomainExpiration => self
                .domain_expiration
                .map_or(Found::Missing, Found::Duration),
            Placeholder::DnsRcode => self.dns_rcode.clone().map_or(Found::Missing, Found::Text),
            Placeholder::Connected => Found::Bool(self.connected),
            Placeholder::Ip => self.ip.clone().map_or(Found::Missing, Found::Text),
            Placeholder::Header => {
                let Some(Step::Key(name)) = path.steps.first() else {
                    return Found::Missing;
                };
                self.headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map_or(Found::Missing, |(_, v)| Found::Text(v.clone()))
            }
            Placeholder::Body if path.steps.is_empty() => {
                self.body.as_ref().map_or(Found::Missing, |b| {
                    Found::Text(String::from_utf8_lossy(b).trim().to_string())
                })
            }
            Placeholder::Body => match self.walk(&path.steps) {
                None | Some(serde_json::Value::Null) => Found::Missing,
                Some(serde_json::Value::String(s)) => Found::Text(s.clone()),
                Some(serde_json::Value::Number(n)) => {
                    n.as_f64().map_or(Found::Missing, Found::Number)
                }
                Some(serde_json::Value::Bool(b)) => Found::Bool(*b),
                Some(v) => Found::Text(v.to_string()),
            },
        }
    }

    /// For `len(...)`: elements of an array, keys of an object, characters of text.
    fn length(&self, path: &Path) -> Found {
        if path.placeholder == Placeholder::Body && !path.steps.is_empty() {
            return match self.walk(&path.steps) {
                Some(serde_json::Value::Array(a)) => Found::Number(a.len() as f64),
                Some(serde_json::Value::Object(m)) => Found::Number(m.len() as f64),
                Some(serde_json::Value::String(s)) => Found::Number(s.chars().count() as f64),
                _ => Found::Missing,
            };
        }
        match self.resolve(path) {
            Found::Text(t) => Found::Number(t.chars().count() as f64),
            Found::Missing => Found::Missing,
            other => Found::Number(other.to_string().chars().count() as f64),
        }
    }
}

impl Condition {
    /// Parses one condition; the error says what is wrong and at which character (from 1).
    pub fn parse(text: &str) -> Result<Self, String> {
        let ops = [
            (" == ", Op::Eq),
            (" != ", Op::Ne),
            (" <= ", Op::Le),
            (" >= ", Op::Ge),
            (" < ", Op::Lt),
            (" > ", Op::Gt),
        ];
        let Some((at, token, op)) = ops
            .iter()
            .filter_map(|(t, op)| text.find(t).map(|at| (at, *t, *op)))
            .min_by_key(|(at, _, _)| *at)
        else {
            return Err(format!(
                "{text:?}: expected `placeholder OPERATOR value`, e.g. \"[STATUS] == 200\" (operators == != < <= > >=, with a space on each side)"
            ));
        };
        let left_text = text[..at].trim();
        let right_text = text[at + token.len()..].trim();
        let left = parse_left(left_text).map_err(|e| format!("{text:?}: {e}"))?;
        if right_text.is_empty() {
            return Err(format!(
                "{text:?}: nothing after the operator at character {}",
                at + 2
            ));
        }
        let right = parse_right(right_text).map_err(|e| format!("{text:?}: {e}"))?;
        let ordering = matches!(op, Op::Lt | Op::Le | Op::Gt | Op::Ge);
        if ordering && !matches!(right, Right::Literal(_)) {
            return Err(format!(
                "{text:?}: pat() and any() go with == or !=, not {}",
                token.trim()
            ));
        }
        if let (Left::Value(p), Right::Literal(r)) = (&left, &right)
            && matches!(
                p.placeholder,
                Placeholder::CertificateExpiration | Placeholder::DomainExpiration
            )
            && parse_duration_or_ms(r).is_none()
        {
            return Err(format!(
                "{text:?}: {r:?} is not a duration: expected e.g. 72h, 30d or milliseconds"
            ));
        }
        if ordering
            && let Right::Literal(r) = &right
            && r.parse::<f64>().is_err()
            && parse_duration_or_ms(r).is_none()
        {
            return Err(format!(
                "{text:?}: {} needs a number or a duration on the right, not {r:?}",
                token.trim()
            ));
        }
        Ok(Self {
            text: text.to_string(),
            left,
            op,
            right,
        })
    }

    /// The placeholder the condition tests.
    pub fn placeholder(&self) -> Placeholder {
        match &self.left {
            Left::Value(p) | Left::Len(p) | Left::Has(p) => p.placeholder,
        }
    }

    /// True when the condition needs the response body.
    pub fn needs_body(&self) -> bool {
        self.placeholder() == Placeholder::Body
    }

    /// Tests the condition; the error is the condition with what was found.
    pub fn evaluate(&self, seen: &Observation) -> Result<(), String> {
        let found = match &self.left {
            Left::Value(p) => seen.resolve(p),
            Left::Len(p) => seen.length(p),
            Left::Has(p) => Found::Bool(!matches!(seen.resolve(p), Found::Missing)),
        };
        let holds = match &self.right {
            Right::Literal(r) => compare(&found, self.op, r),
            Right::Pattern(p) => {
                let matched = !matches!(found, Found::Missing)
                    && wildmatch::WildMatch::new(p).matches(&plain(&found));
                matched == (self.op == Op::Eq)
            }
            Right::Any(options) => {
                let matched = options.iter().any(|o| compare(&found, Op::Eq, o));
                matched == (self.op == Op::Eq)
            }
        };
        if holds {
            Ok(())
        } else {
            Err(format!("{} (actual: {found})", self.text))
        }
    }
}

/// A found value as plain text, for patterns and text comparison.
fn plain(found: &Found) -> String {
    match found {
        Found::Text(t) => t.clone(),
        other => other.to_string(),
    }
}

fn compare(found: &Found, op: Op, right: &str) -> bool {
    use std::cmp::Ordering;
    let ordering: Option<Ordering> = match found {
        Found::Missing => return op == Op::Ne,
        Found::Number(n) => right.parse::<f64>().ok().and_then(|r| n.partial_cmp(&r)),
        Found::Duration(d) => parse_duration_or_ms(right).map(|r| d.cmp(&r)),
        Found::Bool(b) => match right {
            "true" => Some(b.cmp(&true)),
            "false" => Some(b.cmp(&false)),
            _ => None,
        },
        Found::Text(t) => match (t.parse::<f64>(), right.parse::<f64>()) {
            (Ok(a), Ok(b)) => a.partial_cmp(&b),
            _ if matches!(op, Op::Eq | Op::Ne) => Some(t.as_str().cmp(right)),
            _ => None,
        },
    };
    let Some(o) = ordering else {
        // Not comparable (text against a number, say): only "differs" holds.
        return op == Op::Ne;
    };
    match op {
        Op::Eq => o == Ordering::Equal,
        Op::Ne => o != Ordering::Equal,
        Op::Lt => o == Ordering::Less,
        Op::Le => o != Ordering::Greater,
        Op::Gt => o == Ordering::Greater,
        Op::Ge => o != Ordering::Less,
    }
}

fn parse_duration_or_ms(s: &str) -> Option<Duration> {
    if let Ok(ms) = s.parse::<u64>() {
        return Some(Duration::from_millis(ms));
    }
    crate::duration::parse(s).ok()
}

fn parse_left(s: &str) -> Result<Left, String> {
    for (name, make) in [
        ("len(", Left::Len as fn(Path) -> Left),
        ("has(", Left::Has as fn(Path) -> Left),
    ] {
        if let Some(inner) = s.strip_prefix(name) {
            let inner = inner
                .strip_suffix(')')
                .ok_or_else(|| format!("{}...) is missing its closing ')'", &name))?;
            return Ok(make(parse_path(inner.trim())?));
        }
    }
    Ok(Left::Value(parse_path(s)?))
}

fn parse_path(s: &str) -> Result<Path, String> {
    let names = || {
        PLACEHOLDERS
            .iter()
            .map(|(n, _)| format!("[{n}]"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(rest) = s.strip_prefix('[') else {
        return Err(format!(
            "the left side {s:?} is not a placeholder: expected one of {}",
            names()
        ));
    };
    let Some((name, mut rest)) = rest.split_once(']') else {
        return Err(format!("{s:?} is missing its closing ']'"));
    };
    let Some(placeholder) = PLACEHOLDERS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, p)| *p)
    else {
        return Err(format!(
            "unknown placeholder [{name}]: expected one of {}",
            names()
        ));
    };
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let key = &r[..end];
            if key.is_empty() || key.contains(char::is_whitespace) {
                return Err(format!("{s:?}: a key after '.' is empty or has a space"));
            }
            steps.push(Step::Key(key.to_string()));
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let (index, after) = r
                .split_once(']')
                .ok_or_else(|| format!("{s:?}: an index is missing its closing ']'"))?;
            let i = index
                .parse()
                .map_err(|_| format!("{s:?}: [{index}] is not an index: expected a number"))?;
            steps.push(Step::Index(i));
            rest = after;
        } else {
            return Err(format!(
                "{s:?}: unexpected {rest:?} after the placeholder: expected .key or [index]"
            ));
        }
    }
    match placeholder {
        Placeholder::Body => {}
        Placeholder::Header if !matches!(steps.as_slice(), [Step::Key(_)]) => {
            return Err(format!(
                "{s:?}: [HEADER] needs one header name, e.g. [HEADER].content-type"
            ));
        }
        Placeholder::Header => {}
        _ if !steps.is_empty() => {
            return Err(format!(
                "{s:?}: only [BODY] and [HEADER] take a path after them"
            ));
        }
        _ => {}
    }
    Ok(Path { placeholder, steps })
}

fn parse_right(s: &str) -> Result<Right, String> {
    if let Some(inner) = s.strip_prefix("pat(") {
        let inner = inner
            .strip_suffix(')')
            .ok_or_else(|| "pat(...) is missing its closing ')'".to_string())?;
        return Ok(Right::Pattern(inner.to_string()));
    }
    if let Some(inner) = s.strip_prefix("any(") {
        let inner = inner
            .strip_suffix(')')
            .ok_or_else(|| "any(...) is missing its closing ')'".to_string())?;
        let options: Vec<String> = inner.split(',').map(|o| o.trim().to_string()).collect();
        if options.iter().any(String::is_empty) {
            return Err("any(...) has an empty value".to_string());
        }
        return Ok(Right::Any(options));
    }
    Ok(Right::Literal(s.to_string()))
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Condition {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Condition::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(status: u16, body: &str) -> Observation {
        Observation {
            status: Some(status),
            response_time_ms: 120.0,
            body: Some(body.as_bytes().to_vec()),
            headers: vec![(
                "content-type".into(),
                "application/json; charset=utf-8".into(),
            )],
            certificate_expiration: Some(Duration::from_secs(50 * 3600)),
            connected: true,
            ..Observation::default()
        }
    }

    fn check(cond: &str, seen: &Observation) -> Result<(), String> {
        Condition::parse(cond).unwrap().evaluate(seen)
    }

    #[test]
    fn the_gatus_forms_hold_and_fail_as_expected() {
        let seen = http(
            200,
            r#"{"status": "ok", "items": [{"id": 7}, {"id": 8}], "count": 2, "up": true}"#,
        );
        for holds in [
            "[STATUS] == 200",
            "[STATUS] < 300",
            "[STATUS] == any(200, 204)",
            "[RESPONSE_TIME] < 300",
            "[BODY].status == ok",
            "[BODY].items[1].id == 8",
            "[BODY].count >= 2",
            "[BODY].up == true",
            "len([BODY].items) > 0",
            "len([BODY].items) == 2",
            "has([BODY].status) == true",
            "has([BODY].missing) == false",
            "[HEADER].content-type == pat(application/json*)",
            "[HEADER].Content-Type != pat(text/*)",
            "[CERTIFICATE_EXPIRATION] > 48h",
            "[CERTIFICATE_EXPIRATION] < 3d",
            "[CONNECTED] == true",
            "[BODY].missing != 1",
        ] {
            assert_eq!(check(holds, &seen), Ok(()), "{holds}");
        }
        for (fails, message) in [
            ("[STATUS] == 201", "[STATUS] == 201 (actual: 200)"),
            (
                "[STATUS] == any(201, 204)",
                "[STATUS] == any(201, 204) (actual: 200)",
            ),
            (
                "[BODY].status == down",
                "[BODY].status == down (actual: \"ok\")",
            ),
            (
                "[BODY].items[5].id == 1",
                "[BODY].items[5].id == 1 (actual: nothing)",
            ),
            ("len([BODY].items) > 2", "len([BODY].items) > 2 (actual: 2)"),
            (
                "[CERTIFICATE_EXPIRATION] > 72h",
                "[CERTIFICATE_EXPIRATION] > 72h (actual: 2days 2h)",
            ),
            (
                "[DNS_RCODE] == NOERROR",
                "[DNS_RCODE] == NOERROR (actual: nothing)",
            ),
        ] {
            assert_eq!(check(fails, &seen), Err(message.to_string()), "{fails}");
        }
    }

    #[test]
    fn a_plain_body_compares_as_text_or_number() {
        let seen = http(503, "  healthy\n");
        assert_eq!(check("[BODY] == healthy", &seen), Ok(()));
        assert_eq!(check("[BODY] == pat(*ealth*)", &seen), Ok(()));
        assert_eq!(check("len([BODY]) == 7", &seen), Ok(()));
        // Text against a number: not comparable, so only != holds.
        assert!(check("[BODY] > 3", &seen).is_err());
        assert_eq!(check("[STATUS] >= 500", &seen), Ok(()));
    }

    #[test]
    fn bad_conditions_say_what_is_wrong() {
        for (bad, says) in [
            ("[STATUS]==200", "with a space on each side"),
            ("[STAUTS] == 200", "unknown placeholder [STAUTS]"),
            ("STATUS == 200", "is not a placeholder"),
            ("[STATUS] == ", "nothing after the operator"),
            ("[STATUS]", "expected `placeholder OPERATOR value`"),
            ("[STATUS] > pat(2*)", "go with == or !="),
            ("[STATUS] < ok", "needs a number or a duration"),
            ("[CERTIFICATE_EXPIRATION] > soon", "is not a duration"),
            ("[DOMAIN_EXPIRATION] > a month", "is not a duration"),
            ("[DOMAIN_EXPIRATION].x > 1d", "only [BODY] and [HEADER]"),
            ("[HEADER] == x", "needs one header name"),
            ("[STATUS].x == 1", "only [BODY] and [HEADER]"),
            ("[BODY].a[x] == 1", "is not an index"),
            ("len([BODY] == 1", "closing ')'"),
        ] {
            let e = Condition::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn serializes_as_its_text() {
        let c = Condition::parse("[BODY].status == ok").unwrap();
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            "\"[BODY].status == ok\""
        );
        let back: Condition = serde_json::from_str("\"[BODY].status == ok\"").unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn domain_expiration_compares_with_durations() {
        let seen = Observation {
            domain_expiration: Some(Duration::from_secs(10 * 86_400)),
            ..Observation::default()
        };
        assert_eq!(check("[DOMAIN_EXPIRATION] < 30d", &seen), Ok(()));
        assert_eq!(
            check("[DOMAIN_EXPIRATION] > 240h", &seen),
            Err("[DOMAIN_EXPIRATION] > 240h (actual: 10days)".to_string())
        );
        assert_eq!(
            check("[DOMAIN_EXPIRATION] > 30d", &seen),
            Err("[DOMAIN_EXPIRATION] > 30d (actual: 10days)".to_string())
        );
        // A probe that read no expiry (another type): nothing, so the condition fails.
        assert_eq!(
            check("[DOMAIN_EXPIRATION] > 30d", &Observation::default()),
            Err("[DOMAIN_EXPIRATION] > 30d (actual: nothing)".to_string())
        );
    }
}
