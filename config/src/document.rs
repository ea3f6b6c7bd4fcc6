//! A parsed TOML document that keeps the place of every key, so that every problem, from a syntax
//! error to a duplicate check name, is reported with its file, line, column and key.
//!
//! Loading runs in three passes, each of which collects all of its problems before the next:
//! 1. syntax (the parser recovers and reports every error),
//! 2. `${VAR}` / `${VAR:-default}` interpolation inside string values (`$${` is a literal `${`),
//! 3. typed deserialisation, one section and one array element at a time, so that a mistake in one
//!    `[[checks]]` entry does not hide a mistake in the next.
//!
//! Interpolation is done on parsed string values, never on the raw text, so a secret cannot inject
//! TOML syntax and the reported positions stay those of the file as written.

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeString, DeTable, DeValue, ValueDeserializer};

use crate::error::{ConfigError, ConfigErrors, LineIndex};

/// One step of a key path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    /// A key in a table.
    Key(String),
    /// An element of an array.
    Index(usize),
}

/// The path of a key, such as `checks[2].url`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPath(pub Vec<Seg>);

impl KeyPath {
    /// A path of one key.
    pub fn key(k: &str) -> Self {
        Self(vec![Seg::Key(k.to_string())])
    }

    /// This path extended by a key.
    pub fn child(&self, k: &str) -> Self {
        let mut p = self.0.clone();
        p.push(Seg::Key(k.to_string()));
        Self(p)
    }

    /// This path extended by an array index.
    pub fn index(&self, i: usize) -> Self {
        let mut p = self.0.clone();
        p.push(Seg::Index(i));
        Self(p)
    }
}

impl std::fmt::Display for KeyPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// Looks up environment variables for interpolation; tests pass their own.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// A parsed, interpolated document and the problems found so far.
pub struct Document<'i> {
    file: PathBuf,
    lines: LineIndex<'i>,
    root: Spanned<DeTable<'i>>,
    errors: Vec<ConfigError>,
}

impl<'i> Document<'i> {
    /// Parses `text` (read from `file`) and interpolates environment variables. Syntax errors
    /// end loading here; interpolation errors are kept and reported with the rest.
    pub fn parse(file: &Path, text: &'i str, env: EnvLookup<'_>) -> Result<Self, ConfigErrors> {
        let lines = LineIndex::new(text);
        let (mut root, syntax) = DeTable::parse_recoverable(text);
        let mut doc = Self {
            file: file.to_path_buf(),
            lines,
            root: Spanned::new(0..0, DeTable::new()),
            errors: Vec::new(),
        };
        if !syntax.is_empty() {
            for e in syntax {
                let span = e.span().unwrap_or(0..0);
                doc.push_error(
                    span,
                    KeyPath::default(),
                    format!("invalid TOML: {}", e.message()),
                );
            }
            return Err(ConfigErrors(doc.errors));
        }
        let mut problems = Vec::new();
        interpolate_table(root.get_mut(), &KeyPath::default(), env, &mut problems);
        doc.root = root;
        for (span, path, msg) in problems {
            doc.push_error(span, path, msg);
        }
        Ok(doc)
    }

    /// The file this document was read from.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Deserialises the value at top-level `key`, or `None` when the key is absent or invalid
    /// (the problem is recorded).
    pub fn section<T: DeserializeOwned>(&mut self, key: &str) -> Option<T> {
        let value = self.root.get_ref().get(key)?.clone();
        self.deserialize(value, KeyPath::key(key))
    }

    /// Deserialises each element of the top-level array `key` on its own, so every element's
    /// problem is reported. Returns the valid elements with their index in the file.
    pub fn array_section<T: DeserializeOwned>(&mut self, key: &str) -> Vec<(usize, T)> {
        let Some(value) = self.root.get_ref().get(key).cloned() else {
            return Vec::new();
        };
        let span = value.span();
        let DeValue::Array(items) = value.into_inner() else {
            self.push_error(
                span,
                KeyPath::key(key),
                format!("expected an array of tables, written [[{key}]]"),
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            if let Some(v) = self.deserialize(item.clone(), KeyPath::key(key).index(i)) {
                out.push((i, v));
            }
        }
        out
    }

    /// Deserialises the top-level table without the keys in `sections` (which are read with
    /// [`Document::section`] or [`Document::array_section`]). With `deny_unknown_fields` on `T`
    /// this is also what reports an unknown top-level key.
    pub fn rest<T: DeserializeOwned>(&mut self, sections: &[&str]) -> Option<T> {
        let mut table = DeTable::new();
        for (k, v) in self.root.get_ref().iter() {
            if !sections.contains(&k.get_ref().as_ref()) {
                table.insert(k.clone(), v.clone());
            }
        }
        let span = self.root.span();
        self.deserialize(
            Spanned::new(span, DeValue::Table(table)),
            KeyPath::default(),
        )
    }

    fn deserialize<T: DeserializeOwned>(
        &mut self,
        value: Spanned<DeValue<'i>>,
        path: KeyPath,
    ) -> Option<T> {
        let whole = value.span();
        match T::deserialize(ValueDeserializer::from(value)) {
            Ok(v) => Some(v),
            Err(e) => {
                let span = e.span().unwrap_or(whole);
                let key = self.key_at(&path, span.start);
                self.push_error(span, key, e.message().to_string());
                None
            }
        }
    }

    /// Records a problem found after deserialisation (a duplicate name, an unknown channel...)
    /// at the place of `path` in the file.
    pub fn error_at(&mut self, path: &KeyPath, message: impl Into<String>) {
        let span = self.span_of(path);
        self.push_error(span, path.clone(), message.into());
    }

    /// Ends loading: the value when no problem was recorded, otherwise every problem.
    pub fn finish<T>(self, value: T) -> Result<T, ConfigErrors> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(ConfigErrors(self.errors))
        }
    }

    /// Ends loading after a section that could not be read (its problem is recorded).
    pub fn into_errors(self) -> ConfigErrors {
        ConfigErrors(self.errors)
    }

    fn push_error(&mut self, span: Range<usize>, path: KeyPath, message: String) {
        let (line, column) = self.lines.position(span.start);
        self.errors.push(ConfigError {
            file: self.file.clone(),
            line,
            column,
            key: path.to_string(),
            message,
        });
    }

    /// The span of the value at `path`, or of its nearest ancestor that exists.
    fn span_of(&self, path: &KeyPath) -> Range<usize> {
        let mut span = self.root.span();
        let mut here: Option<&DeValue<'_>> = None;
        for seg in &path.0 {
            let next = match (seg, here) {
                (Seg::Key(k), None) => self.root.get_ref().get(k.as_str()),
                (Seg::Key(k), Some(DeValue::Table(t))) => t.get(k.as_str()),
                (Seg::Index(i), Some(DeValue::Array(a))) => a.get(*i),
                _ => None,
            };
            match next {
                Some(v) => {
                    span = v.span();
                    here = Some(v.get_ref());
                }
                None => break,
            }
        }
        span
    }

    /// Extends `path` (the section being read) by the deepest key whose value contains `offset`,
    /// so that a serde error is reported as `checks[1].interval`, not just `checks[1]`.
    fn key_at(&self, path: &KeyPath, offset: usize) -> KeyPath {
        let mut out = path.clone();
        let mut here: Option<&DeValue<'_>> = None;
        for seg in &path.0 {
            here = match (seg, here) {
                (Seg::Key(k), None) => self.root.get_ref().get(k.as_str()).map(|v| v.get_ref()),
                (Seg::Key(k), Some(DeValue::Table(t))) => t.get(k.as_str()).map(|v| v.get_ref()),
                (Seg::Index(i), Some(DeValue::Array(a))) => a.get(*i).map(|v| v.get_ref()),
                _ => None,
            };
        }
        let mut table = match here {
            None if path.0.is_empty() => Some(self.root.get_ref()),
            Some(DeValue::Table(t)) => Some(t),
            _ => None,
        };
        while let Some(t) = table {
            table = None;
            for (k, v) in t.iter() {
                let (ks, vs) = (k.span(), v.span());
                if ks.contains(&offset) || vs.contains(&offset) {
                    out = out.child(k.get_ref());
                    if let DeValue::Table(inner) = v.get_ref() {
                        table = Some(inner);
                    }
                    break;
                }
            }
        }
        out
    }
}

type Problem = (Range<usize>, KeyPath, String);

fn interpolate_table(
    table: &mut DeTable<'_>,
    path: &KeyPath,
    env: EnvLookup<'_>,
    problems: &mut Vec<Problem>,
) {
    for (k, v) in table.iter_mut() {
        interpolate_value(v, &path.child(k.get_ref()), env, problems);
    }
}

fn interpolate_value(
    value: &mut Spanned<DeValue<'_>>,
    path: &KeyPath,
    env: EnvLookup<'_>,
    problems: &mut Vec<Problem>,
) {
    let span = value.span();
    match value.get_mut() {
        DeValue::String(s) if s.contains('$') => match interpolate(s, env) {
            Ok(out) => *s = DeString::Owned(out),
            Err(msg) => problems.push((span, path.clone(), msg)),
        },
        DeValue::Table(t) => interpolate_table(t, path, env, problems),
        DeValue::Array(a) => {
            for (i, item) in a.iter_mut().enumerate() {
                interpolate_value(item, &path.index(i), env, problems);
            }
        }
        _ => {}
    }
}

/// Replaces `${VAR}` and `${VAR:-default}` in `s`; `$${` stands for a literal `${`.
pub fn interpolate(s: &str, env: EnvLookup<'_>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix("${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| "unterminated ${...}: expected a closing '}'".to_string())?;
            let expr = &body[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (expr, None),
            };
            if name.is_empty()
                || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                || name.starts_with(|c: char| c.is_ascii_digit())
            {
                return Err(format!(
                    "invalid variable name {name:?} in ${{{expr}}}: expected letters, digits and _"
                ));
            }
            match (env(name), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(format!(
                        "environment variable {name} is not set (referenced as ${{{name}}}; \
                         set it, or write ${{{name}:-default}})"
                    ));
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("s3cret".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn interpolates_set_default_and_escaped() {
        assert_eq!(interpolate("a ${TOKEN} b", &env).unwrap(), "a s3cret b");
        assert_eq!(interpolate("${NOPE:-x:y}", &env).unwrap(), "x:y");
        assert_eq!(interpolate("${EMPTY:-x}", &env).unwrap(), "");
        assert_eq!(interpolate("$${TOKEN} $5", &env).unwrap(), "${TOKEN} $5");
    }

    #[test]
    fn unset_variable_is_named() {
        let err = interpolate("x ${MISSING_VAR} y", &env).unwrap_err();
        assert!(err.contains("MISSING_VAR"), "{err}");
        assert!(
            interpolate("${OPEN", &env)
                .unwrap_err()
                .contains("unterminated")
        );
        assert!(
            interpolate("${a-b}", &env)
                .unwrap_err()
                .contains("invalid variable")
        );
    }
}
