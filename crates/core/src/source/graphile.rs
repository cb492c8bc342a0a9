//! Graphile Migrate's layout: `.gmrc` (JSON5; or `.gmrc.js`) at the
//! project's root, its `migrationsFolder` (else `migrations`) holding
//! `committed/000001.sql` or `000001-message.sql`, each opening with
//! headers (`--! Previous: <hash of the one before, or ->`, `--! Hash:
//! sha1:…`, maybe `--! Message:` and `--! AllowInvalidHash`) and a blank
//! line; `current.sql` is the migration in progress, never run. Read as
//! graphile-migrate reads them: in the order of their numbers, each hash
//! the SHA-1 of the hash before and the body, the chain of `Previous`
//! unbroken; a file whose hash or link no longer matches is refused by
//! name (graphile-migrate refuses it too). The placeholders `.gmrc` sets
//! (`:NAME`, a value or `!ENV` for the variable `NAME`) are filled in as
//! the tool fills them; `:DATABASE_NAME` and `:DATABASE_OWNER`, which it
//! takes from the connection, are refused where used. No down: up-only.

use std::path::{Path, PathBuf};

use super::js::{js_values, JsValue};
use super::{entries, file_name, Discovered, Found, Ignored, Part, PartSource, Problem};
use super::{ProblemKind, SourceError, Stray};

/// The files graphile-migrate takes its settings from.
pub(super) const SETTINGS: [&str; 3] = [".gmrc", ".gmrc.js", ".gmrc.cjs"];

/// A project's graphile-migrate settings, as far as Backstop uses them.
pub(super) struct Gmrc {
    pub file: PathBuf,
    /// The `migrationsFolder`, from the project's root.
    pub migrations: PathBuf,
    values: Vec<JsValue>,
}

/// The settings of the project at `root`, if it has them.
pub(super) fn settings(root: &Path) -> Option<Gmrc> {
    SETTINGS.iter().find_map(|name| {
        let file = root.join(name);
        let text = std::fs::read_to_string(&file).ok()?;
        let values = js_values(&text);
        let folder = values
            .iter()
            .find(|v| v.key == ["migrationsFolder"])
            .map_or("migrations", |v| v.value.as_str());
        Some(Gmrc { migrations: root.join(folder), file, values })
    })
}

/// The settings of the project whose migrations folder (or its
/// `committed/`) is `dir`: `.gmrc` in a folder above it.
fn settings_above(dir: &Path) -> Option<Gmrc> {
    dir.ancestors().take(5).find_map(settings)
}

/// What a placeholder is filled with, or why it cannot be.
fn placeholder(gmrc: Option<&Gmrc>, key: &str) -> Result<String, String> {
    let set = gmrc.and_then(|g| {
        g.values.iter().find(|v| v.key.len() == 2 && v.key[0] == "placeholders" && v.key[1] == key)
    });
    match set.map(|v| v.value.as_str()) {
        Some("!ENV") => {
            let var = &key[1..];
            std::env::var(var).map_err(|_| {
                format!("{key} is filled from the environment variable {var} (`!ENV` in .gmrc), which is not set; set it and run again")
            })
        }
        Some(value) => Ok(value.to_string()),
        None if key == ":DATABASE_OWNER" => gmrc
            .and_then(|g| g.values.iter().find(|v| v.key == ["databaseOwner"]))
            .map(|v| v.value.clone())
            .ok_or_else(|| {
                format!("{key} is filled by graphile-migrate from its connection; set `databaseOwner` in .gmrc so that Backstop fills it the same")
            }),
        None if key == ":DATABASE_NAME" => Err(format!(
            "{key} is filled by graphile-migrate with the name of the database it runs on, which Backstop does not do; write the name, or a placeholder .gmrc sets"
        )),
        None => Err(String::new()),
    }
}

/// `text` with its placeholders filled (a `:NAME` that ends at a word's
/// end, as graphile-migrate matches them), and the first one that cannot
/// be, with its line.
fn filled(text: &str, gmrc: Option<&Gmrc>) -> (String, Option<(usize, String)>) {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::with_capacity(text.len());
    let mut refused = None;
    let mut rest = text;
    while let Some(at) = rest.find(':') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let len = after.find(|c: char| !word(c)).unwrap_or(after.len());
        let key = &rest[at..at + 1 + len];
        let upper = len > 0
            && after[..len]
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        match (upper, upper.then(|| placeholder(gmrc, key))) {
            (true, Some(Ok(value))) => out.push_str(&value),
            (true, Some(Err(why))) if !why.is_empty() => {
                if refused.is_none() {
                    let line = text[..text.len() - rest.len() + at].matches('\n').count() + 1;
                    refused = Some((line, why));
                }
                out.push_str(key);
            }
            _ => out.push_str(key),
        }
        rest = &rest[at + 1 + len..];
    }
    out.push_str(rest);
    (out, refused)
}

/// graphile-migrate's hash of a committed migration's body.
pub(crate) fn hash(body: &str, previous: Option<&str>) -> String {
    use sha1::Digest as _;
    let text = format!("{}\n{}", previous.unwrap_or(""), body.trim());
    let digest = sha1::Sha1::digest(format!("{}\n", text.trim()).as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha1:{hex}")
}

/// A committed file's headers and where its body starts (its line), or
/// why they cannot be read.
pub(crate) struct Headers {
    pub previous: Option<String>,
    pub hash: String,
    pub allow_invalid: bool,
    pub body: String,
}

/// Reads a committed file's headers as graphile-migrate does.
pub(crate) fn headers(text: &str) -> Result<Headers, (usize, String)> {
    let lines: Vec<&str> = text.split('\n').collect();
    let mut found: Vec<(String, Option<String>)> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(rest) = line.strip_prefix("--! ") else { break };
        let (key, value) = match rest.split_once(':') {
            Some((k, v)) => (k, Some(v.trim().to_string())),
            None => (rest, None),
        };
        let is_key = key.starts_with(|c: char| c.is_ascii_uppercase())
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !is_key {
            break;
        }
        if found.iter().any(|(k, _)| k == key) {
            return Err((i + 1, format!("the header `{key}` is given twice")));
        }
        found.push((key.to_string(), value));
    }
    let count = found.len();
    if lines.get(count).is_none_or(|l| !l.is_empty()) {
        return Err((count + 1, "the headers must be followed by a blank line".into()));
    }
    let get = |k: &str| found.iter().find(|(key, _)| key == k).and_then(|(_, v)| v.clone());
    let previous = get("Previous")
        .filter(|v| !v.is_empty())
        .ok_or((1, "no `--! Previous:` header".to_string()))?;
    let hash =
        get("Hash").filter(|v| !v.is_empty()).ok_or((1, "no `--! Hash:` header".to_string()))?;
    Ok(Headers {
        previous: (previous != "-").then_some(previous),
        hash,
        allow_invalid: found.iter().any(|(k, _)| k == "AllowInvalidHash"),
        body: format!("{}\n", lines[count..].join("\n").trim()),
    })
}

/// Whether `dir` holds committed migrations: a `.sql` file opening with
/// graphile-migrate's `--! Previous:` header.
pub(super) fn committed_files(dir: &Path) -> bool {
    let Ok(found) = entries(dir) else { return false };
    found
        .iter()
        .filter(|p| file_name(p).ends_with(".sql"))
        .take(5)
        .any(|p| std::fs::read_to_string(p).is_ok_and(|t| t.starts_with("--! Previous:")))
}

/// The number and message slug of a committed file's name.
fn parse_name(name: &str) -> Option<(&str, &str)> {
    let stem = name.strip_suffix(".sql")?;
    let digits = stem.find(|c: char| !c.is_ascii_digit()).unwrap_or(stem.len());
    let (number, slug) = stem.split_at(digits);
    let slug_ok = slug.is_empty()
        || (slug.starts_with('-')
            && slug.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    (!number.is_empty() && slug_ok).then_some((number, slug))
}

pub(super) fn discover(dir: &Path) -> Result<Discovered, SourceError> {
    let committed =
        if file_name(dir) == "committed" { dir.to_path_buf() } else { dir.join("committed") };
    let gmrc = settings_above(dir);
    let mut out = Discovered::default();
    if let Some(folder) = committed.parent() {
        for name in ["current.sql", "current"] {
            let path = folder.join(name);
            if path.exists() {
                let why = "graphile-migrate's migration in progress, never run by `migrate` (`graphile-migrate commit` makes it a committed one)";
                out.ignored.push(Ignored { path, why: why.into() });
            }
        }
    }
    if !committed.is_dir() {
        return Ok(out);
    }
    let mut files: Vec<(String, String, PathBuf)> = Vec::new();
    for path in entries(&committed)? {
        let name = file_name(&path).to_string();
        match parse_name(&name) {
            Some((number, slug)) if !path.is_dir() => files.push((number.to_string(), slug.to_string(), path)),
            _ if name.ends_with(".sql") => out.strays.push(Stray {
                path,
                line: 1,
                message: format!("`{name}` is not named as graphile-migrate names committed migrations (`000001.sql`, `000001-message.sql`), so it never runs"),
            }),
            _ => out.ignored.push(Ignored { path, why: "not a committed migration".into() }),
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let mut before: Option<String> = None;
    for (number, slug, path) in files {
        let name = slug.trim_start_matches('-');
        let name = if name.is_empty() { "migration" } else { name };
        let mut found = Found::new(
            number.clone(),
            number.clone(),
            name.replace('-', "_"),
            PartSource::file(path.clone()),
        );
        let problem = |line, message: String| Problem {
            part: Part::Up,
            kind: ProblemKind::Hash,
            path: path.clone(),
            line,
            column: 1,
            message,
        };
        let Ok(text) = std::fs::read_to_string(&path) else {
            out.migrations.push(found);
            continue;
        };
        match headers(&text) {
            Err((line, why)) => found
                .problems
                .push(problem(line, format!("{why}; graphile-migrate refuses the file"))),
            Ok(h) => {
                let own = hash(&h.body, h.previous.as_deref());
                if own != h.hash && !h.allow_invalid {
                    found.problems.push(problem(2, format!("the file no longer matches its hash ({} in the file, {own} of its text): it was changed after `graphile-migrate commit`; graphile-migrate refuses it too; put the file back, or commit the change as a new migration", h.hash)));
                }
                if h.previous != before {
                    let said = h.previous.as_deref().unwrap_or("-");
                    let was = before.as_deref().unwrap_or("- (none)");
                    found.problems.push(problem(1, format!("`--! Previous: {said}` does not name the hash of the migration before it ({was}): the chain is broken, as graphile-migrate says; renumber or commit the files again")));
                }
                before = Some(h.hash);
                let first = h.body.lines().next().unwrap_or("");
                found.up.no_transaction = first
                    .strip_prefix("--!")
                    .is_some_and(|r| r.trim_start().starts_with("no-transaction"));
            }
        }
        let (text, refused) = filled(&text, gmrc.as_ref());
        if let Some((line, why)) = refused {
            found.problems.push(Problem { kind: ProblemKind::Unsupported, ..problem(line, why) });
        }
        found.up.text = Some(text);
        out.migrations.push(found);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_headers_and_hashes_are_read_as_graphile_migrate_reads_them() {
        assert_eq!(parse_name("000001.sql"), Some(("000001", "")));
        assert_eq!(parse_name("000012-add-users_x.sql"), Some(("000012", "-add-users_x")));
        assert_eq!(parse_name("current.sql"), None);
        assert_eq!(parse_name("000001_x.sql"), None);
        let body = "create table a (id int);\n";
        let first = hash(body, None);
        let text = format!("--! Previous: -\n--! Hash: {first}\n--! Message: a\n\n{body}");
        let h = headers(&text).unwrap();
        assert_eq!((h.previous, h.hash.as_str(), h.body.as_str()), (None, first.as_str(), body));
        assert!(headers("--! Previous: -\n--! Hash: sha1:x\ncreate table a ();\n").is_err());
        assert!(headers("--! Hash: sha1:x\n\nselect 1;\n").is_err());
        assert_ne!(hash(body, Some(&first)), first);
    }

    #[test]
    fn placeholders_are_filled_at_a_words_end_and_refused_where_unknown() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(
            tmp.path().join(".gmrc"),
            "{\n  // the roles\n  placeholders: {\n    \":VISITOR\": \"app_visitor\",\n    \":SECRET_ROLE\": \"!ENV\",\n  },\n}\n",
        )
        .unwrap();
        let gmrc = settings(tmp.path());
        let (text, refused) =
            filled("grant select on t to :VISITOR;\nselect ':VISITORS', :X;\n", gmrc.as_ref());
        assert_eq!(text, "grant select on t to app_visitor;\nselect ':VISITORS', :X;\n");
        assert!(refused.is_none());
        let (_, refused) = filled("select 1;\ngrant x to :DATABASE_NAME;\n", gmrc.as_ref());
        assert_eq!(refused.map(|r| r.0), Some(2));
        let (_, refused) = filled("select 1;\n:DATABASE_NAME\n", gmrc.as_ref());
        assert_eq!(refused.map(|r| r.0), Some(2), "at the start of its line");
        std::env::remove_var("SECRET_ROLE");
        let (_, refused) = filled("grant x to :SECRET_ROLE;\n", gmrc.as_ref());
        assert!(refused.is_some_and(|r| r.1.contains("SECRET_ROLE")));
    }
}
