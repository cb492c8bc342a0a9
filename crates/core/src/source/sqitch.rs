//! sqitch: `sqitch.plan` lists the changes in deploy order with their
//! dependencies (`[requires !conflicts]`) and tags; each change has
//! `deploy/<change>.sql`, `revert/<change>.sql` and `verify/<change>.sql`.
//! A change reworked after a tag keeps its earlier scripts as
//! `<change>@<tag>.sql`. sqitch never wraps a script in a transaction:
//! scripts carry their own `BEGIN` … `COMMIT`. The plan is read whole, as
//! sqitch reads it (pragmas, each line's time, planner and note, the tags
//! after each change), since sqitch's registry names a change by a hash of
//! all of that ([`read_plan`]).

use std::collections::HashMap;
use std::path::Path;

use super::{Discovered, Found, Ignored, Part, PartSource, Problem, ProblemKind, SourceError};

/// When and by whom a plan line was planned
/// (`2013-12-30T23:19:22Z Marge <marge@example.com>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// As the plan writes it and sqitch hashes it: `YYYY-MM-DDTHH:MM:SSZ`.
    pub at: String,
    pub planner_name: String,
    pub planner_email: String,
}

/// A tag line, which belongs to the change before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    /// Without its `@`.
    pub name: String,
    /// `None` where the line lacks its time or planner (sqitch refuses such a plan).
    pub planned: Option<Planned>,
    pub note: String,
}

/// One change line of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub name: String,
    /// The version Backstop keys it by: the name, or `name@tag` for an
    /// instance that a later line reworks.
    pub version: String,
    /// Every dependency as written (`users`, `users@v1.0`, `!old`,
    /// `other:thing`), in the line's order.
    pub dependencies: Vec<String>,
    /// `None` where the line lacks its time or planner (sqitch refuses such a plan).
    pub planned: Option<Planned>,
    /// The note after `#`, trimmed, with `\n`, `\r` and `\\` read as sqitch reads them.
    pub note: String,
    /// The tags between this line and the next change.
    pub tags: Vec<Tag>,
    /// This project's changes it requires, to order by.
    requires: Vec<String>,
    pub line: usize,
}

/// A plan: its `%project` and `%uri`, and the changes in order.
#[derive(Debug, Default)]
pub struct Plan {
    pub project: Option<String>,
    pub uri: Option<String>,
    pub changes: Vec<Change>,
}

impl Plan {
    /// For each change, the first tag after it in the plan.
    fn tag_after(&self) -> Vec<Option<&str>> {
        let mut out = vec![None; self.changes.len()];
        let mut next: Option<&str> = None;
        for (i, c) in self.changes.iter().enumerate().rev() {
            if let Some(t) = c.tags.first() {
                next = Some(&t.name);
            }
            out[i] = next;
        }
        out
    }
}

fn plan_error(path: &Path, line: usize, message: impl Into<String>) -> SourceError {
    SourceError::Plan { path: path.to_path_buf(), line, message: message.into() }
}

/// The plan in `dir`'s `sqitch.plan`, read as sqitch reads it.
pub fn read_plan(dir: &Path) -> Result<Plan, SourceError> {
    let plan_path = dir.join("sqitch.plan");
    let text = std::fs::read_to_string(&plan_path)
        .map_err(|source| SourceError::Read { path: plan_path.clone(), source })?;
    parse_plan(&plan_path, &text)
}

/// A note as sqitch keeps it: trimmed, its escapes read.
fn unescape_note(note: &str) -> String {
    let mut out = String::new();
    let mut chars = note.trim().chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.clone().next() {
            Some(e @ ('n' | 'r' | '\\')) => {
                chars.next();
                out.push(match e {
                    'n' => '\n',
                    'r' => '\r',
                    _ => '\\',
                });
            }
            _ => out.push(c),
        }
    }
    out
}

/// `TIMESTAMP PLANNER <EMAIL>`, as sqitch's plan grammar reads the end of a line.
fn planned(rest: &str) -> Option<Planned> {
    let rest = rest.trim_start_matches([' ', '\t']);
    let (at, planner) = rest.split_once([' ', '\t']).unwrap_or((rest, ""));
    let b = at.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    let stamp = b.len() == 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19] == b'Z';
    let planner = planner.trim_start_matches([' ', '\t']);
    let (name, email) = planner.strip_suffix('>')?.split_once('<')?;
    // `[^<]+[[:blank:]]+<`: the name keeps all but the one blank before `<`.
    let name = name.strip_suffix([' ', '\t'])?;
    let ok = stamp && !name.is_empty() && !email.is_empty() && !email.contains('>');
    ok.then(|| Planned {
        at: at.to_string(),
        planner_name: name.to_string(),
        planner_email: email.to_string(),
    })
}

/// `text`, the plan at `path`, read as sqitch reads it.
pub fn parse_plan(path: &Path, text: &str) -> Result<Plan, SourceError> {
    let mut plan = Plan::default();
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        // sqitch ends a line's content at its first `#`: the rest is its note.
        let (content, note) = match raw.split_once('#') {
            Some((c, n)) => (c, unescape_note(n)),
            None => (raw, String::new()),
        };
        let line = content.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(pragma) = line.strip_prefix('%') {
            if let Some((key, value)) = pragma.split_once('=') {
                match key.trim() {
                    "project" => plan.project = Some(value.trim().to_string()),
                    "uri" => plan.uri = Some(value.trim().to_string()),
                    _ => {}
                }
            }
            continue;
        }
        if let Some(tag) = line.strip_prefix('@') {
            let (name, rest) = tag.split_once(char::is_whitespace).unwrap_or((tag, ""));
            let Some(change) = plan.changes.last_mut().filter(|_| !name.is_empty()) else {
                return Err(plan_error(
                    path,
                    line_no,
                    "a tag line without a name or without a change before it; write `@name TIMESTAMP PLANNER <EMAIL>` after a change",
                ));
            };
            change.tags.push(Tag { name: name.to_string(), planned: planned(rest), note });
            continue;
        }
        let change = parse_change(path, line_no, line, &plan.changes)?;
        plan.changes.push(Change { note, ..change });
    }
    set_versions(path, &mut plan)?;
    Ok(plan)
}

/// A change line without its note: `[+-]name [deps] TIMESTAMP PLANNER <EMAIL>`.
fn parse_change(
    path: &Path,
    line_no: usize,
    line: &str,
    earlier: &[Change],
) -> Result<Change, SourceError> {
    let line = line.trim_start_matches(['+', '-', ' ', '\t']);
    let end = line.find([' ', '\t', '[']).unwrap_or(line.len());
    let (name, rest) = line.split_at(end);
    let valid = !name.is_empty()
        && !name.contains(['@', ':', ']', '\\'])
        && !name.starts_with(|c: char| c.is_ascii_punctuation());
    if !valid {
        return Err(plan_error(
            path,
            line_no,
            format!("`{name}` is not a change name; a change line is `name [requires] TIMESTAMP PLANNER <EMAIL> # note`"),
        ));
    }
    let mut requires = Vec::new();
    let mut dependencies = Vec::new();
    let mut rest = rest.trim_start();
    if let Some(deps) = rest.strip_prefix('[') {
        let Some((deps, after)) = deps.split_once(']') else {
            return Err(plan_error(
                path,
                line_no,
                "`[` without its `]` in the dependencies; close the list",
            ));
        };
        rest = after;
        for dep in deps.split_whitespace() {
            dependencies.push(dep.to_string());
            if dep.starts_with('!') || dep.contains(':') {
                // A conflict, or a change of another project: not ours to order.
                continue;
            }
            let known = earlier.iter().any(|c| c.name == dep.split('@').next().unwrap_or(dep));
            if !known {
                return Err(plan_error(
                    path,
                    line_no,
                    format!("change {name} requires `{dep}`, which no earlier line of the plan adds; add it above, or fix the name"),
                ));
            }
            requires.push(dep.to_string());
        }
    }
    Ok(Change {
        name: name.to_string(),
        version: name.to_string(),
        dependencies,
        planned: planned(rest),
        note: String::new(),
        tags: Vec::new(),
        requires,
        line: line_no,
    })
}

/// Each change's version: its name, or name@tag for an instance that a
/// later line of the plan reworks (sqitch keeps its scripts under that name).
fn set_versions(path: &Path, plan: &mut Plan) -> Result<(), SourceError> {
    let tag_after: Vec<Option<String>> =
        plan.tag_after().into_iter().map(|t| t.map(str::to_string)).collect();
    let mut versions = Vec::with_capacity(plan.changes.len());
    for (i, (change, tag)) in plan.changes.iter().zip(&tag_after).enumerate() {
        let reworked_later = plan.changes[i + 1..].iter().any(|c| c.name == change.name);
        versions.push(match (tag, reworked_later) {
            (Some(tag), true) => format!("{}@{tag}", change.name),
            (None, true) => {
                return Err(plan_error(
                    path,
                    change.line,
                    format!("change {} is reworked later without a tag between; sqitch needs a tag before a rework", change.name),
                ))
            }
            (_, false) => change.name.clone(),
        });
    }
    for (change, version) in plan.changes.iter_mut().zip(versions) {
        change.version = version;
    }
    Ok(())
}

pub(super) fn discover(dir: &Path) -> Result<Discovered, SourceError> {
    let plan_path = dir.join("sqitch.plan");
    let plan = read_plan(dir)?;
    let mut out = Discovered::default();
    let mut latest: HashMap<&str, &str> = HashMap::new();
    for change in &plan.changes {
        let version = &change.version;
        let script = |folder: &str| dir.join(folder).join(format!("{version}.sql"));
        let deploy = script("deploy");
        let mut found = Found::new(
            version.clone(),
            change.name.clone(),
            change.name.clone(),
            PartSource::file(deploy.clone()),
        );
        if !super::present(&deploy) {
            found.up.text = Some(String::new());
            found.problems.push(Problem {
                part: Part::Up,
                kind: ProblemKind::MissingFile,
                path: plan_path.clone(),
                line: change.line,
                column: 1,
                message: format!(
                    "change {} has no deploy script {}; add it, or remove the change from the plan",
                    change.name,
                    relative(dir, &deploy)
                ),
            });
        }
        found.down = Some(script("revert")).filter(|p| super::present(p)).map(PartSource::file);
        found.verify = Some(script("verify")).filter(|p| super::present(p)).map(PartSource::file);
        // `requires` names a change; with a rework, the instance deployed
        // before this line.
        found.requires = change
            .requires
            .iter()
            .map(|r| latest.get(r.as_str()).map_or_else(|| r.clone(), |v| v.to_string()))
            .collect();
        latest.insert(&change.name, version);
        out.migrations.push(found);
    }
    for folder in ["deploy", "revert", "verify"] {
        let Ok(entries) = super::entries(&dir.join(folder)) else { continue };
        for path in entries {
            let stem = super::file_name(&path).strip_suffix(".sql").unwrap_or_default();
            if !plan.changes.iter().any(|c| c.version == stem) {
                out.ignored.push(Ignored { path, why: "not a change of sqitch.plan".into() });
            }
        }
    }
    Ok(out)
}

fn relative(dir: &Path, path: &Path) -> String {
    path.strip_prefix(dir).unwrap_or(path).display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAN: &str = "%syntax-version=1.0.0
%project=flipr

appschema 2013-12-30T23:19:22Z Marge <marge@example.com> # Add schema.
users [appschema] 2013-12-30T23:49:00Z Marge <marge@example.com> # Users.
@v1.0 2013-12-31T18:26:59Z Marge <marge@example.com> # Tag.
users [users@v1.0 !old other:thing] 2014-01-02T00:00:00Z Marge <marge@example.com> # Rework.
";

    #[test]
    fn a_plan_gives_changes_dependencies_and_tags() {
        let plan = parse_plan(Path::new("sqitch.plan"), PLAN).unwrap();
        let names: Vec<_> = plan.changes.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["appschema", "users", "users"]);
        assert_eq!(plan.changes[1].requires, ["appschema"]);
        assert_eq!(plan.changes[2].requires, ["users@v1.0"]);
        assert_eq!(plan.tag_after(), [Some("v1.0"), Some("v1.0"), None]);
        assert_eq!(plan.changes[1].line, 5);
        let versions: Vec<_> = plan.changes.iter().map(|c| c.version.as_str()).collect();
        assert_eq!(versions, ["appschema", "users@v1.0", "users"]);
    }

    #[test]
    fn a_plan_keeps_what_sqitch_hashes_into_a_change_id() {
        let text = "%project=flipr\n%uri=https://example.com/flipr/\n\n".to_string() + PLAN;
        let plan = parse_plan(Path::new("sqitch.plan"), &text).unwrap();
        assert_eq!(plan.project.as_deref(), Some("flipr"));
        assert_eq!(plan.uri.as_deref(), Some("https://example.com/flipr/"));
        let users = &plan.changes[1];
        let planned = users.planned.as_ref().unwrap();
        assert_eq!(
            (planned.at.as_str(), planned.planner_name.as_str(), planned.planner_email.as_str()),
            ("2013-12-30T23:49:00Z", "Marge", "marge@example.com")
        );
        assert_eq!(users.note, "Users.");
        assert_eq!(users.tags.len(), 1);
        assert_eq!((users.tags[0].name.as_str(), users.tags[0].note.as_str()), ("v1.0", "Tag."));
        assert_eq!(plan.changes[2].dependencies, ["users@v1.0", "!old", "other:thing"]);
        assert!(plan.changes[0].tags.is_empty());
    }

    #[test]
    fn notes_and_planners_are_read_as_sqitch_reads_them() {
        assert_eq!(unescape_note("  two\\nlines\\r\\\\ \\x  "), "two\nlines\r\\ \\x");
        let p = planned("2013-12-30T23:49:00Z Marge N. Simpson  <m@x.org>").unwrap();
        assert_eq!(p.planner_name, "Marge N. Simpson ");
        assert!(planned("2013-12-30 Marge <m@x.org>").is_none());
        assert!(planned("2013-12-30T23:49:00Z").is_none());
    }

    #[test]
    fn an_unknown_dependency_names_the_plan_line() {
        let err = parse_plan(Path::new("sqitch.plan"), "a [b] 2013-12-30T23:19:22Z M <m@x>\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("sqitch.plan:1: change a requires `b`"), "{err}");
    }
}
