//! The collector's layering, read from its sources (docs/architecture.md): no import circles
//! between the modules of one parent, the lower layers importing none of the upper ones, and
//! the agent crate used only to run the built-in local agent.
//!
//! The oracle is the source text itself: every `use crate::…`/`use super::…` tree and every
//! `crate::…`/`super::…` path in code (comments and test modules left out), resolved to the
//! modules the files declare. A new import that closes a circle, or a store or notify module
//! that reaches into rules, alert or the pages, fails here with the path that did it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module's path in the crate: `["rules", "engine"]`; the crate root is `[]`.
type ModPath = Vec<String>;

struct Source {
    module: ModPath,
    file: PathBuf,
    /// The text without comments and without its `#[cfg(test)] mod tests` block.
    code: String,
}

fn sources() -> Vec<Source> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(&root).expect("under src");
            let mut module: ModPath = rel
                .with_extension("")
                .iter()
                .map(|c| c.to_string_lossy().into_owned())
                .collect();
            // Tests may import what they test, from anywhere.
            if module.last().is_some_and(|m| m == "tests") {
                continue;
            }
            if matches!(
                module.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                module.pop();
            }
            let text = std::fs::read_to_string(&path).expect("read file");
            out.push(Source {
                module,
                file: rel.to_path_buf(),
                code: strip(&text),
            });
        }
    }
    out
}

/// The code of a file without comment lines and without a trailing test module.
fn strip(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .map(|l| match l.find(" // ") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path a `use` tree names: `crate::a::{b, c::d}` gives `crate::a::b`, `crate::a::c::d`.
fn expand_use(tree: &str) -> Vec<String> {
    // `a as b` keeps `a`; then whitespace means nothing.
    let tree = tree
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace(" as ", "@as@");
    let tree: String = tree.chars().filter(|c| !c.is_whitespace()).collect();
    fn walk(prefix: &str, tree: &str, out: &mut Vec<String>) {
        let mut depth = 0;
        let mut start = 0;
        let mut items = Vec::new();
        for (i, c) in tree.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    items.push(&tree[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        items.push(&tree[start..]);
        for item in items.into_iter().filter(|i| !i.is_empty()) {
            match item.find('{') {
                Some(open) => {
                    let close = item.rfind('}').unwrap_or(item.len());
                    walk(
                        &format!("{prefix}{}", &item[..open]),
                        &item[open + 1..close],
                        out,
                    );
                }
                None => out.push(format!("{prefix}{item}")),
            }
        }
    }
    let mut out = Vec::new();
    walk("", &tree, &mut out);
    out
}

/// The crate paths a file's code names, resolved against its module, as module paths.
fn references(src: &Source) -> Vec<(ModPath, String)> {
    let mut raw = Vec::new();
    let code = &src.code;
    let mut rest = code.as_str();
    while let Some(i) = rest.find("use ") {
        let before = rest[..i].chars().last();
        rest = &rest[i + 4..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let end = rest.find(';').unwrap_or(rest.len());
        for p in expand_use(&rest[..end]) {
            raw.push(p.split("@as@").next().unwrap_or(&p).to_string());
        }
        rest = &rest[end..];
    }
    for anchor in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(i) = code[from..].find(anchor) {
            let at = from + i;
            from = at + anchor.len();
            let before = code[..at].chars().last();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let path: String = code[at..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            raw.push(path);
        }
    }
    let mut out = Vec::new();
    for path in raw {
        let mut parts: Vec<&str> = path.split("::").filter(|p| !p.is_empty()).collect();
        let mut base: ModPath = match parts.first() {
            Some(&"crate") => {
                parts.remove(0);
                Vec::new()
            }
            Some(&"super") => {
                let mut b = src.module.clone();
                while parts.first() == Some(&"super") {
                    parts.remove(0);
                    b.pop();
                }
                b
            }
            _ => continue,
        };
        base.extend(parts.iter().map(|p| p.to_string()));
        out.push((base, path));
    }
    out
}

/// Every module the sources declare (a file, or a folder with `mod.rs`).
fn modules(sources: &[Source]) -> BTreeSet<ModPath> {
    let mut out = BTreeSet::new();
    for s in sources {
        for n in 0..=s.module.len() {
            out.insert(s.module[..n].to_vec());
        }
    }
    out
}

/// The edges between sibling modules: (parent, from child, to child) with the path that made
/// each.
fn sibling_edges(sources: &[Source]) -> BTreeMap<(ModPath, String, String), String> {
    let known = modules(sources);
    let mut edges = BTreeMap::new();
    for s in sources {
        for (target, path) in references(s) {
            let common = s
                .module
                .iter()
                .zip(&target)
                .take_while(|(a, b)| a == b)
                .count();
            let (Some(from), Some(to)) = (s.module.get(common), target.get(common)) else {
                continue;
            };
            let mut to_module = target[..common].to_vec();
            to_module.push(to.clone());
            if !known.contains(&to_module) {
                // An item of the parent module, not a sibling.
                continue;
            }
            edges
                .entry((s.module[..common].to_vec(), from.clone(), to.clone()))
                .or_insert_with(|| format!("{} names {path}", s.file.display()));
        }
    }
    edges
}

#[test]
fn no_import_circles_between_sibling_modules() {
    let sources = sources();
    let edges = sibling_edges(&sources);
    let mut by_parent: BTreeMap<ModPath, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (parent, from, to) in edges.keys() {
        by_parent
            .entry(parent.clone())
            .or_default()
            .entry(from.clone())
            .or_default()
            .insert(to.clone());
    }
    let mut circles = Vec::new();
    for (parent, graph) in &by_parent {
        // A circle is an edge a→b with a path back from b to a.
        for (from, tos) in graph {
            for to in tos {
                if let Some(back) = path_between(graph, to, from) {
                    let why: Vec<String> = std::iter::once(from.clone())
                        .chain(back)
                        .collect::<Vec<_>>()
                        .windows(2)
                        .map(|w| edges[&(parent.clone(), w[0].clone(), w[1].clone())].clone())
                        .collect();
                    circles.push(format!(
                        "in {}: {}",
                        if parent.is_empty() {
                            "the crate".to_string()
                        } else {
                            parent.join("::")
                        },
                        why.join("; ")
                    ));
                }
            }
        }
    }
    circles.sort();
    circles.dedup();
    assert!(
        circles.is_empty(),
        "import circles:\n{}",
        circles.join("\n")
    );
}

/// A path of modules from `from` to `to` (both included), if `to` can be reached.
fn path_between(
    graph: &BTreeMap<String, BTreeSet<String>>,
    from: &str,
    to: &str,
) -> Option<Vec<String>> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![vec![from.to_string()]];
    while let Some(path) = stack.pop() {
        let last = path.last().expect("never empty").clone();
        if last == to {
            return Some(path);
        }
        if !seen.insert(last.clone()) {
            continue;
        }
        for next in graph.get(&last).into_iter().flatten() {
            let mut p = path.clone();
            p.push(next.clone());
            stack.push(p);
        }
    }
    None
}

#[test]
fn lower_layers_import_no_upper_ones() {
    // Layer: what it must not name.
    let rules: &[(&str, &[&str])] = &[
        (
            "store",
            &["api", "web", "views", "rules", "alert", "notify", "auth"],
        ),
        ("notify", &["rules", "web", "api", "views", "alert"]),
        ("rules", &["notify", "web", "api", "views"]),
        ("alert", &["rules", "web", "api", "views"]),
        ("leadership", &["cluster", "evaluation", "rules", "store"]),
    ];
    let mut broken = Vec::new();
    for s in sources() {
        let Some(layer) = s.module.first() else {
            continue;
        };
        let Some((_, banned)) = rules.iter().find(|(l, _)| l == layer) else {
            continue;
        };
        for (target, path) in references(&s) {
            if target.first().is_some_and(|t| banned.contains(&t.as_str())) {
                broken.push(format!("{} names {path}", s.file.display()));
            }
        }
    }
    broken.sort();
    broken.dedup();
    assert!(broken.is_empty(), "layering broken:\n{}", broken.join("\n"));
}

#[test]
fn the_agent_crate_runs_only_the_local_agent() {
    let mut uses = BTreeSet::new();
    for s in sources() {
        let mut from = 0;
        while let Some(i) = s.code[from..].find("lookout_agent::") {
            let at = from + i;
            from = at + 1;
            let path: String = s.code[at..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            uses.insert(format!("{}: {path}", s.file.display()));
        }
    }
    // The local agent's entry point, `lookout_agent::local`, from the crate root that starts
    // it; nothing else of the agent.
    let other: Vec<&String> = uses
        .iter()
        .filter(|u| !u.starts_with("lib.rs: lookout_agent::local::"))
        .collect();
    assert!(
        other.is_empty(),
        "the collector uses the agent crate beyond its local agent: {other:?}"
    );
}
