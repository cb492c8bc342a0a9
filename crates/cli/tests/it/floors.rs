//! The house rules of ARCHITECTURE.md, checked on the sources: crates and
//! core's modules only import from their own floor or below, no import
//! circle between modules or between the files of one folder, no source
//! file over 800 lines, no function over 120.
//!
//! Imports are read as text (`crate::a::b`, `super::x`, `use crate::{a,
//! b}`, `backstop_core::a`), outside `#[cfg(test)]` modules, which may
//! reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The crates from the ground up; each may use only those before it.
const CRATES: [(&str, &str); 5] = [
    ("sql", "backstop_sql"),
    ("lint", "backstop_lint"),
    ("core", "backstop_core"),
    ("server", "backstop_server"),
    ("cli", "backstop_cli"),
];

/// Core's floors from the ground up. A module may import modules of its
/// own floor or of floors below; the domains of one floor may use each
/// other as long as no circle forms.
const CORE_FLOORS: [&[&str]; 6] = [
    &["kit"],
    &["pg", "shell"],
    &["schema"],
    &["source"],
    &[
        // the migration path
        "migrate", "expand", "check", "copies", "rehearse", "adopt", "downs", "rollout",
        "undo", // safety
        "backup", "freeze", "verify", // response
        "flags", "decide", "incident", "respond", "watch", "drill", // data tools
        "compare", "sync", "clear", // what status and serve show
        "overview",
    ],
    &["config", "migrator", "exit"],
];

const MAX_LINES: usize = 800;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("..")
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The text of a file without its `#[cfg(test)]` module and comments.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => &text[..],
    };
    text.lines()
        .map(|l| match l.trim_start().starts_with("//") {
            true => "",
            false => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The module path of a file under a crate's `src/`: `backup/restore.rs`
/// is `["backup", "restore"]`, `backup/mod.rs` is `["backup"]`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> =
        rel.iter().map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string()).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        parts.pop();
    }
    parts
}

/// The module paths a file names: `crate::a::b` and `super::x`, and each
/// name of `use crate::{a, b::c}`, resolved against the file's module.
fn imports(module: &[String], text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let bytes = text;
    let mut i = 0;
    while let Some(at) = bytes[i..].find(['c', 's']).map(|k| k + i) {
        i = at + 1;
        if at > 0 && bytes[..at].chars().next_back().is_some_and(|c| word(c) || c == ':') {
            continue;
        }
        let rest = &bytes[at..];
        let (base, tail) = if let Some(t) = rest.strip_prefix("crate::") {
            (Vec::new(), t)
        } else if let Some(t) = rest.strip_prefix("super::") {
            // A file's module path already drops `mod`: `super` is one up
            // for `a/mod.rs` (module `a`) and for `a/b.rs` (module `a::b`).
            let mut b = module.to_vec();
            b.pop();
            (b, t)
        } else {
            continue;
        };
        if let Some(group) = tail.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let path: Vec<String> = item
                    .trim()
                    .split("::")
                    .map(|s| s.trim().to_string())
                    .take_while(|s| !s.is_empty() && s.chars().all(word))
                    .collect();
                if !path.is_empty() {
                    out.push([base.clone(), path].concat());
                }
            }
        } else {
            let end = tail.find(|c: char| !(word(c) || c == ':')).unwrap_or(tail.len());
            let path: Vec<String> =
                tail[..end].split("::").take_while(|s| !s.is_empty()).map(str::to_string).collect();
            out.push([base, path].concat());
        }
    }
    out
}

/// The longest prefix of `path` that is a module with a file of its own.
fn file_of(modules: &BTreeSet<Vec<String>>, path: &[String]) -> Option<Vec<String>> {
    (1..=path.len()).rev().map(|n| path[..n].to_vec()).find(|p| modules.contains(p))
}

/// A circle in `graph`, if there is one, as the names along it.
fn circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in graph.get(n).into_iter().flatten() {
            match state.get(m.as_str()) {
                Some(1) => {
                    let from = stack.iter().position(|s| s == m).unwrap();
                    let mut c = stack[from..].to_vec();
                    c.push(m.clone());
                    return Some(c);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(m, graph, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in graph.keys() {
        if !state.contains_key(n) {
            if let Some(c) = visit(n, graph, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

/// File → files it imports, within one crate.
fn file_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let files = sources(src);
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(src, f)).collect();
    let mut graph = BTreeMap::new();
    for f in &files {
        let module = module_of(src, f);
        let me = module.join("::");
        let entry: &mut BTreeSet<String> = graph.entry(me.clone()).or_default();
        for path in imports(&module, &code(f)) {
            if let Some(target) = file_of(&modules, &path) {
                let target = target.join("::");
                // A folder's mod.rs and its files name each other by design
                // (`pub use`, `mod`); only the files' own ties count.
                let parent_of_me = module.len() > target.split("::").count()
                    && me.starts_with(&format!("{target}::"));
                if target != me && !target.is_empty() && !parent_of_me {
                    entry.insert(target);
                }
            }
        }
    }
    graph
}

#[test]
fn no_import_circle_between_the_files_of_any_crate() {
    for (dir, _) in CRATES {
        let src = root().join("crates").join(dir).join("src");
        let graph = file_graph(&src);
        assert_eq!(circle(&graph), None, "an import circle in crates/{dir}/src");
    }
}

#[test]
fn cores_modules_only_import_from_their_floor_or_below() {
    let src = root().join("crates/core/src");
    let floor = |m: &str| CORE_FLOORS.iter().position(|f| f.contains(&m));
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut wrong = Vec::new();
    for f in sources(&src) {
        let module = module_of(&src, &f);
        let Some(top) = module.first().cloned() else { continue };
        let Some(mine) = floor(&top) else {
            wrong.push(format!("{}: module {top} is on no floor of CORE_FLOORS", f.display()));
            continue;
        };
        for path in imports(&module, &code(&f)) {
            let Some(other) = path.first() else { continue };
            if *other == top {
                continue;
            }
            let Some(theirs) = floor(other) else { continue };
            if theirs > mine {
                wrong.push(format!(
                    "{} imports {} from a higher floor",
                    f.strip_prefix(&src).unwrap().display(),
                    path.join("::")
                ));
            }
            graph.entry(top.clone()).or_default().insert(other.clone());
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(circle(&graph), None, "an import circle between core's modules");
}

#[test]
fn crates_only_use_the_crates_below_them() {
    for (i, (dir, _)) in CRATES.iter().enumerate() {
        for f in sources(&root().join("crates").join(dir).join("src")) {
            let text = code(&f);
            for (above, name) in &CRATES[i + 1..] {
                assert!(
                    !text.contains(&format!("{name}::")),
                    "{} uses the {above} crate, which stands above {dir}",
                    f.display()
                );
            }
        }
    }
}

#[test]
fn no_source_file_is_over_800_lines() {
    let mut long = Vec::new();
    for (dir, _) in CRATES {
        for f in sources(&root().join("crates").join(dir).join("src")) {
            let n = std::fs::read_to_string(&f).unwrap().lines().count();
            if n > MAX_LINES {
                long.push(format!("{} has {n} lines", f.display()));
            }
        }
    }
    assert!(long.is_empty(), "split these by what they do:\n{}", long.join("\n"));
}

/// Functions longer than `max` lines outside test modules: (file, name,
/// lines). A function ends at the first `}` at its own indentation.
fn long_functions(max: usize) -> Vec<(String, String, usize)> {
    let mut out = Vec::new();
    for (dir, _) in CRATES {
        for f in sources(&root().join("crates").join(dir).join("src")) {
            let text = std::fs::read_to_string(&f).unwrap();
            let text = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
            let lines: Vec<&str> = text.lines().collect();
            let mut i = 0;
            while i < lines.len() {
                let line = lines[i];
                let trimmed = line.trim_start();
                let indent = line.len() - trimmed.len();
                let body = ["fn ", "pub fn ", "pub(crate) fn ", "pub(super) fn ", "async fn "]
                    .iter()
                    .find_map(|p| trimmed.strip_prefix(p));
                match body {
                    Some(rest) if !line.trim_end().ends_with(';') => {
                        let name: String =
                            rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                        let end = (i + 1..lines.len())
                            .find(|&j| {
                                let l = lines[j];
                                l.len() - l.trim_start().len() == indent
                                    && l.trim_start().starts_with('}')
                            })
                            .unwrap_or(lines.len() - 1);
                        if end - i + 1 > max {
                            out.push((f.display().to_string(), name, end - i + 1));
                        }
                        i = end + 1;
                    }
                    _ => i += 1,
                }
            }
        }
    }
    out
}

#[test]
fn no_function_is_over_120_lines() {
    let long: Vec<String> = long_functions(120)
        .into_iter()
        .map(|(file, name, n)| format!("{file}: fn {name} has {n} lines"))
        .collect();
    assert!(long.is_empty(), "split these into steps with names:\n{}", long.join("\n"));
}

#[test]
fn the_import_reader_sees_each_form() {
    let module = vec!["backup".to_string(), "restore".to_string()];
    let text = "use crate::{freeze::FreezeGuard, pg};\nlet x = super::store::dir();\ncrate::kit::error::chain(e)";
    let found = imports(&module, text);
    assert!(found.contains(&vec!["freeze".into(), "FreezeGuard".into()]), "{found:?}");
    assert!(found.contains(&vec!["pg".into()]), "{found:?}");
    assert!(found.contains(&vec!["backup".into(), "store".into(), "dir".into()]), "{found:?}");
    let mut graph = BTreeMap::new();
    graph.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    graph.insert("b".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(circle(&graph), Some(vec!["a".into(), "b".into(), "a".into()]));
    // The function reader finds long functions where there are some.
    assert!(long_functions(60).iter().any(|(_, name, _)| name == "parse"), "config's parse");
}
