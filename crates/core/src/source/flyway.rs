//! Flyway's scripts: versioned `V<version>__<description>.sql`, their undo
//! `U<version>__<description>.sql`, and repeatable `R__<description>.sql`,
//! found in the folder and its subfolders, with a script's
//! `<script>.conf` (`executeInTransaction=false`). Versions order by their
//! numeric parts (`1.10` after `1.9`; `1_1` is `1.1`); repeatable scripts
//! come after every versioned one, by description, and apply again when
//! their checksum changes. A baseline script `B<version>__…` stands for
//! every versioned script up to its version: Flyway runs the newest one
//! on a database without history in their place. Where those versioned
//! scripts are gone from the folder, the baseline is the first migration
//! (as Flyway runs it on a new database); where they are still there,
//! they run and the baseline is listed as ignored, with why.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{
    entries, file_name, numeric_order, Discovered, Found, Ignored, Part, PartSource, Problem,
    ProblemKind, SourceError,
};

/// The prefix of a repeatable migration's version in Backstop's history.
pub const REPEATABLE_PREFIX: &str = "R__";

/// What a Flyway script name says.
#[derive(Debug, PartialEq, Eq)]
enum Script {
    Versioned { version: String, description: String },
    Undo { version: String, description: String },
    Baseline { version: String, description: String },
    Repeatable { description: String },
}

/// Whether `name` is a Flyway SQL script name.
pub(super) fn is_script_name(name: &str) -> bool {
    parse_name(name).is_some()
}

/// Whether `name` is a Flyway script name with one of `suffixes`
/// (Flyway's `.sql` where there are none).
pub(super) fn is_script_name_with(name: &str, suffixes: Option<&[String]>) -> bool {
    match suffixes {
        Some(list) => as_sql_name(name, list).is_some_and(|n| parse_name(&n).is_some()),
        None => is_script_name(name),
    }
}

/// The `.sql` name `name` stands for when it ends in one of `suffixes`
/// (`V1__init.pgsql` is `V1__init.sql` with `.pgsql` set).
fn as_sql_name(name: &str, suffixes: &[String]) -> Option<String> {
    let suffix = suffixes.iter().find(|s| name.len() > s.len() && name.ends_with(s.as_str()))?;
    Some(format!("{}.sql", &name[..name.len() - suffix.len()]))
}

fn parse_name(name: &str) -> Option<Script> {
    let base = name.strip_suffix(".sql")?;
    if let Some(description) = base.strip_prefix(REPEATABLE_PREFIX) {
        return (!description.is_empty())
            .then(|| Script::Repeatable { description: description.to_string() });
    }
    let (kind, rest) = base.split_at_checked(1)?;
    let (version, description) = rest.split_once("__")?;
    let valid = !version.is_empty()
        && version.starts_with(|c: char| c.is_ascii_digit())
        && version.chars().all(|c| c.is_ascii_digit() || c == '.' || c == '_');
    if !valid || description.is_empty() {
        return None;
    }
    let version = normalize(version);
    let description = description.to_string();
    match kind {
        "V" => Some(Script::Versioned { version, description }),
        "U" => Some(Script::Undo { version, description }),
        "B" => Some(Script::Baseline { version, description }),
        _ => None,
    }
}

/// Flyway's version: parts split at `.` or `_`, leading zeros and trailing
/// zero parts dropped (`1_01_0` is `1.1`).
fn normalize(version: &str) -> String {
    let mut parts: Vec<String> = version
        .split(['.', '_'])
        .filter(|p| !p.is_empty())
        .map(|p| {
            let p = p.trim_start_matches('0');
            if p.is_empty() { "0" } else { p }.to_string()
        })
        .collect();
    while parts.len() > 1 && parts.last().is_some_and(|p| p == "0") {
        parts.pop();
    }
    parts.join(".")
}

/// Orders normalized Flyway versions part by part, numerically.
fn order(a: &str, b: &str) -> std::cmp::Ordering {
    let mut ap = a.split('.');
    let mut bp = b.split('.');
    loop {
        match (ap.next(), bp.next()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (x, y) => {
                let o = numeric_order(x.unwrap_or("0"), y.unwrap_or("0"));
                if o.is_ne() {
                    return o;
                }
            }
        }
    }
}

/// Flyway's names for the databases it fills `{vendor}` with.
const VENDORS: &[&str] = &[
    "postgresql",
    "h2",
    "hsqldb",
    "mysql",
    "mariadb",
    "oracle",
    "sqlserver",
    "sqlite",
    "db2",
    "derby",
    "sybasease",
    "redshift",
    "cockroachdb",
    "snowflake",
    "informix",
    "firebird",
    "saphana",
    "bigquery",
    "spanner",
    "ignite",
    "tidb",
    "yugabytedb",
    "clickhouse",
];

/// Where a folder of vendor folders (`h2/`, `mysql/`, `postgresql/`, each
/// holding the same versions for its database) keeps PostgreSQL's
/// scripts: its `postgresql/`, where it holds no script of its own and
/// another vendor's folder sits beside it. A project chooses them with
/// `{vendor}` in a location, or in settings Backstop does not read
/// (code, a profile): the others are for other databases.
pub(super) fn vendor_folder(dir: &Path) -> Option<PathBuf> {
    let found = entries(dir).ok()?;
    let own_scripts = found.iter().any(|p| !p.is_dir() && is_script_name(file_name(p)));
    // Spring names them as its `DatabaseDriver` or `spring.jpa.database`
    // spells the vendor: `postgresql`, or `POSTGRESQL`.
    let vendor = |p: &PathBuf| file_name(p).to_ascii_lowercase();
    let others = found
        .iter()
        .filter(|p| p.is_dir() && vendor(p) != "postgresql")
        .any(|p| VENDORS.contains(&vendor(p).as_str()));
    let postgresql = found.iter().find(|p| p.is_dir() && vendor(p) == "postgresql")?;
    (!own_scripts && others).then(|| postgresql.clone())
}

/// `dir`'s scripts as Flyway reads them; with `suffixes` (those the
/// project's settings give, and where: see `flyway_places::suffixes`),
/// only the files with one of them, each read as the `.sql` name it
/// stands for (`V1__init.pg.sql` is `V1__init.sql`).
pub(super) fn discover(
    dir: &Path,
    suffixes: Option<(Vec<String>, String)>,
) -> Result<Discovered, SourceError> {
    let mut out = Discovered::default();
    let mut files = Vec::new();
    let vendor = vendor_folder(dir);
    walk(vendor.as_deref().unwrap_or(dir), &mut files)?;
    let mut versioned: BTreeMap<String, (PathBuf, String)> = BTreeMap::new();
    let mut undo: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut repeatable: Vec<(String, PathBuf)> = Vec::new();
    let mut baselines: Vec<(String, PathBuf, String)> = Vec::new();
    for path in files {
        let name = file_name(&path).to_string();
        let name = match &suffixes {
            Some((list, set)) => match as_sql_name(&name, list) {
                Some(sql) => sql,
                // A script's own settings: `<script>.conf`.
                None if name
                    .strip_suffix(".conf")
                    .is_some_and(|s| as_sql_name(s, list).is_some()) =>
                {
                    continue
                }
                None if name.ends_with(".sql") => {
                    let why = format!("not named with a suffix {set} gives ({})", list.join(", "));
                    out.ignored.push(Ignored { path, why });
                    continue;
                }
                None => name,
            },
            None => name,
        };
        match parse_name(&name) {
            Some(Script::Versioned { version, description }) => {
                if let Some((first, _)) = versioned.get(&version) {
                    let (first, second) = (first.clone(), path);
                    return Err(if first.parent() == second.parent() {
                        SourceError::Duplicate { version, first, second }
                    } else {
                        SourceError::DuplicateApart { version, first, second }
                    });
                }
                versioned.insert(version, (path, description));
            }
            Some(Script::Undo { version, .. }) => {
                undo.insert(version, path);
            }
            Some(Script::Baseline { version, description }) => {
                baselines.push((version, path, description));
            }
            Some(Script::Repeatable { description }) => repeatable.push((description, path)),
            None if name.ends_with(".sql.conf") => {}
            None => out.ignored.push(Ignored {
                path,
                why: "not a Flyway script name (V<version>__<description>.sql, U…, B…, R__…)"
                    .into(),
            }),
        }
    }
    baselines.sort_by(|a, b| order(&a.0, &b.0));
    // Flyway's pick on a new database: the newest baseline. It takes the
    // place of the versioned scripts up to its version only where none of
    // them is left to run.
    let newest = baselines.pop();
    let starts = newest
        .as_ref()
        .filter(|(v, ..)| !versioned.keys().any(|k| order(k, v).is_le()))
        .map(|(v, ..)| v.clone());
    for (version, path, _) in baselines.into_iter().chain(newest.clone()) {
        if starts.as_ref() == Some(&version) {
            continue;
        }
        let why = match &newest {
            Some((v, ..)) if *v != version => format!(
                "a Flyway baseline script older than the newest one (B{v}); Flyway, and \
                 Backstop, only ever start from the newest"
            ),
            _ => format!(
                "a Flyway baseline script: the versioned scripts up to {version} are in the \
                 folder and run in its place; delete them or the baseline so one remains"
            ),
        };
        out.ignored.push(Ignored { path, why });
    }
    if let Some((version, path, description)) = newest.filter(|(v, ..)| starts.as_ref() == Some(v))
    {
        let mut found = Found::new(version.clone(), version.clone(), description, script(path));
        found.problems = conf_problems(&mut found.up, Part::Up);
        out.migrations.push(found);
    }
    for (version, (path, description)) in versioned {
        let mut found = Found::new(version.clone(), version.clone(), description, script(path));
        found.down = undo.remove(&version).map(script);
        found.problems = conf_problems(&mut found.up, Part::Up);
        if let Some(down) = found.down.as_mut() {
            found.problems.extend(conf_problems(down, Part::Down));
        }
        out.migrations.push(found);
    }
    out.migrations.sort_by(|a, b| order(&a.version, &b.version));
    for (_, path) in undo {
        out.ignored
            .push(Ignored { path, why: "an undo script without its versioned script".into() });
    }
    repeatable.sort();
    for (description, path) in repeatable {
        let mut found = Found::new(
            format!("{REPEATABLE_PREFIX}{description}"),
            description.replace('_', " "),
            description,
            script(path),
        );
        found.repeatable = true;
        found.problems = conf_problems(&mut found.up, Part::Up);
        out.migrations.push(found);
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), SourceError> {
    for path in entries(dir)? {
        // A symlink with a script's name is that script, wherever it leads.
        if super::real_dir(&path) || (path.is_dir() && !is_script_name(file_name(&path))) {
            walk(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

fn script(path: PathBuf) -> PartSource {
    let text = std::fs::read_to_string(&path).ok();
    PartSource { path, text, no_transaction: false }
}

/// Applies a script's `.conf` and reports what Backstop cannot honour: a
/// conditional `shouldExecute`, an encoding other than UTF-8, and Flyway
/// placeholders (`${name}`), which Flyway substitutes and Backstop does not.
fn conf_problems(part: &mut PartSource, which: Part) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut conf_path = part.path.clone().into_os_string();
    conf_path.push(".conf");
    let conf_path = PathBuf::from(conf_path);
    if let Ok(conf) = std::fs::read_to_string(&conf_path) {
        for (i, line) in conf.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            let (key, value) = line.split_once(['=', ':']).unwrap_or((line, ""));
            let (key, value) = (key.trim(), value.trim());
            let unsupported = match key {
                "executeInTransaction" => {
                    part.no_transaction = value.eq_ignore_ascii_case("false");
                    None
                }
                "encoding"
                    if value.eq_ignore_ascii_case("utf-8")
                        || value.eq_ignore_ascii_case("utf8") =>
                {
                    None
                }
                "encoding" => Some("an encoding other than UTF-8; save the script as UTF-8"),
                "shouldExecute" => {
                    Some("runs the script only under a condition, which Backstop does not evaluate")
                }
                _ => Some("an option Backstop does not know"),
            };
            if let Some(why) = unsupported {
                problems.push(Problem {
                    part: which,
                    kind: ProblemKind::Unsupported,
                    path: conf_path.clone(),
                    line: i + 1,
                    column: 1,
                    message: format!("`{key}`: {why}; remove it or run this script with Flyway"),
                });
            }
        }
    }
    if let Some(text) = &part.text {
        if let Some((i, line)) = text.lines().enumerate().find(|(_, l)| l.contains("${")) {
            problems.push(Problem {
                part: which,
                kind: ProblemKind::Unsupported,
                path: part.path.clone(),
                line: i + 1,
                column: line.find("${").map_or(1, |c| c + 1),
                message: "a Flyway placeholder (`${…}`); Flyway substitutes it and Backstop \
                          runs the SQL as written: replace it with its value"
                    .into(),
            });
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_names_and_versions_follow_flyway() {
        assert_eq!(
            parse_name("V1_1__add_users.sql"),
            Some(Script::Versioned { version: "1.1".into(), description: "add_users".into() })
        );
        assert_eq!(
            parse_name("U01.10__x.sql"),
            Some(Script::Undo { version: "1.10".into(), description: "x".into() })
        );
        assert_eq!(
            parse_name("R__views.sql"),
            Some(Script::Repeatable { description: "views".into() })
        );
        assert_eq!(
            parse_name("B2__base.sql"),
            Some(Script::Baseline { version: "2".into(), description: "base".into() })
        );
        assert_eq!(parse_name("V1__.sql"), None);
        assert_eq!(parse_name("Vx__a.sql"), None);
        assert_eq!(parse_name("README.md"), None);
        assert_eq!(normalize("1.0.0"), "1");
        assert!(order("1.9", "1.10").is_lt());
        assert!(order("2", "1.10").is_gt());
        assert!(order("1", "1.0.1").is_lt());
    }

    fn folder(files: &[&str]) -> (tempfile::TempDir, Discovered) {
        let dir = tempfile::tempdir().unwrap();
        for f in files {
            std::fs::write(dir.path().join(f), "CREATE TABLE t (id int);\n").unwrap();
        }
        let found = discover(dir.path(), None).unwrap();
        (dir, found)
    }

    fn versions(d: &Discovered) -> Vec<&str> {
        d.migrations.iter().map(|m| m.version.as_str()).collect()
    }

    #[test]
    fn a_baseline_whose_versioned_scripts_are_gone_is_the_first_migration() {
        let (_dir, d) =
            folder(&["B1__old_base.sql", "B3__base.sql", "V4__posts.sql", "V3_1__tags.sql"]);
        assert_eq!(versions(&d), ["3", "3.1", "4"]);
        assert_eq!(d.ignored.len(), 1);
        assert!(
            d.ignored[0].why.contains("older than the newest one (B3)"),
            "{}",
            d.ignored[0].why
        );
    }

    #[test]
    fn a_baseline_beside_the_scripts_it_stands_for_is_named_not_run() {
        let (_dir, d) = folder(&["V1__users.sql", "V2__posts.sql", "B2__base.sql"]);
        assert_eq!(versions(&d), ["1", "2"]);
        assert_eq!(d.ignored.len(), 1);
        assert!(d.ignored[0].why.contains("up to 2 are in the folder"), "{}", d.ignored[0].why);
    }
}
