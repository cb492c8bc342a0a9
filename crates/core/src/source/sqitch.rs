//! sqitch: `sqitch.plan` lists the changes in deploy order with their
//! dependencies (`[requires !conflicts]`) and tags; each change has
//! `deploy/<change>.sql`, `revert/<change>.sql` and `verify/<change>.sql`.
//! A change reworked after a tag keeps its earlier scripts as
//! `<change>@<tag>.sql`. sqitch never wraps a script in a transaction:
//! scripts carry their own `BEGIN` … `COMMIT`.

use std::collections::HashMap;
use std::path::Path;

use super::{Discovered, Found, Ignored, Part, PartSource, Problem, ProblemKind, SourceError};

/// One change line of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Change {
    name: String,
    requires: Vec<String>,
    line: usize,
}

/// A plan: changes in order, and the tag that follows each change (if any).
#[derive(Debug, Default)]
struct Plan {
    changes: Vec<Change>,
    /// For each change, the first tag after it in the plan.
    tag_after: Vec<Option<String>>,
}

fn plan_error(path: &Path, line: usize, message: impl Into<String>) -> SourceError {
    SourceError::Plan { path: path.to_path_buf(), line, message: message.into() }
}

fn parse_plan(path: &Path, text: &str) -> Result<Plan, SourceError> {
    let mut plan = Plan::default();
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.split_once(" #").map_or(raw, |(l, _)| l).trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('%') {
            continue;
        }
        if let Some(tag) = line.strip_prefix('@') {
            let name = tag.split_whitespace().next().unwrap_or_default();
            if name.is_empty() {
                return Err(plan_error(
                    path,
                    line_no,
                    "a tag line without a name; write `@name TIMESTAMP PLANNER <EMAIL>`",
                ));
            }
            for slot in plan.tag_after.iter_mut().rev() {
                if slot.is_some() {
                    break;
                }
                *slot = Some(name.to_string());
            }
            continue;
        }
        let (name, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let name = name.trim_start_matches(['+', '-']);
        let valid = !name.is_empty()
            && !name.contains(['@', ':', '[', ']', '#'])
            && !name.starts_with(|c: char| c.is_ascii_punctuation());
        if !valid {
            return Err(plan_error(
                path,
                line_no,
                format!("`{name}` is not a change name; a change line is `name [requires] TIMESTAMP PLANNER <EMAIL> # note`"),
            ));
        }
        let mut requires = Vec::new();
        let rest = rest.trim_start();
        if let Some(deps) = rest.strip_prefix('[') {
            let Some((deps, _)) = deps.split_once(']') else {
                return Err(plan_error(
                    path,
                    line_no,
                    "`[` without its `]` in the dependencies; close the list",
                ));
            };
            for dep in deps.split_whitespace() {
                if dep.starts_with('!') || dep.contains(':') {
                    // A conflict, or a change of another project: not ours to order.
                    continue;
                }
                let known =
                    plan.changes.iter().any(|c| c.name == dep.split('@').next().unwrap_or(dep));
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
        plan.changes.push(Change { name: name.to_string(), requires, line: line_no });
        plan.tag_after.push(None);
    }
    Ok(plan)
}

pub(super) fn discover(dir: &Path) -> Result<Discovered, SourceError> {
    let plan_path = dir.join("sqitch.plan");
    let text = std::fs::read_to_string(&plan_path)
        .map_err(|source| SourceError::Read { path: plan_path.clone(), source })?;
    let plan = parse_plan(&plan_path, &text)?;
    let mut out = Discovered::default();
    // Each change's version: its name, or name@tag for an instance that a
    // later line of the plan reworks.
    let mut versions: Vec<String> = Vec::with_capacity(plan.changes.len());
    for (i, change) in plan.changes.iter().enumerate() {
        let reworked_later = plan.changes[i + 1..].iter().any(|c| c.name == change.name);
        let version = match (&plan.tag_after[i], reworked_later) {
            (Some(tag), true) => format!("{}@{tag}", change.name),
            (None, true) => {
                return Err(plan_error(
                    &plan_path,
                    change.line,
                    format!("change {} is reworked later without a tag between; sqitch needs a tag before a rework", change.name),
                ))
            }
            (_, false) => change.name.clone(),
        };
        versions.push(version);
    }
    let mut latest: HashMap<&str, &str> = HashMap::new();
    for (change, version) in plan.changes.iter().zip(&versions) {
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
            if !versions.iter().any(|v| v == stem) {
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
        assert_eq!(plan.tag_after, [Some("v1.0".into()), Some("v1.0".into()), None]);
        assert_eq!(plan.changes[1].line, 5);
    }

    #[test]
    fn an_unknown_dependency_names_the_plan_line() {
        let err = parse_plan(Path::new("sqitch.plan"), "a [b] 2013-12-30T23:19:22Z M <m@x>\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("sqitch.plan:1: change a requires `b`"), "{err}");
    }
}
