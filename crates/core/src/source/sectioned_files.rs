//! One file per migration with marked sections: dbmate's
//! `-- migrate:up` / `-- migrate:down` (options such as `transaction:false`
//! on the marker line), goose's `-- +goose Up` / `-- +goose Down`
//! (`-- +goose NO TRANSACTION` for the whole file; `StatementBegin`/`End`
//! are only for goose's own splitter and mean nothing to PostgreSQL's
//! parser), and node-pg-migrate's `-- Up Migration` / `-- Down Migration`
//! (any case, dashes and spaces between `--` and the word; a file with no
//! up marker is its up whole). Each section keeps the file's own line
//! numbers. A file with another tool's markers is never run whole: the
//! folder's layout is told by the markers its files hold.

use std::path::{Path, PathBuf};

use super::{
    entries, file_name, keep_lines, numeric_order, split_stem, Discovered, Found, Ignored, Layout,
    PartSource, Problem, ProblemKind, SourceError,
};
use crate::source::Part;

/// The layout whose section markers `path` uses, if any.
pub(super) fn marker_layout(path: &Path) -> Option<Layout> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|line| match Marker::of(line)? {
        Marker::Dbmate { .. } => Some(Layout::Dbmate),
        Marker::Goose(_) => Some(Layout::Goose),
        Marker::NodePg { .. } => Some(Layout::NodePgMigrate),
    })
}

/// A marker line.
enum Marker<'a> {
    /// `-- migrate:up` / `-- migrate:down` and the options after it;
    /// `indented` when the line does not start with it (dbmate reads only
    /// a marker at the start of a line).
    Dbmate { up: bool, options: &'a str, indented: bool },
    /// `-- +goose <annotation>`.
    Goose(&'a str),
    /// node-pg-migrate's `-- Up Migration` / `-- Down Migration`: `--`,
    /// then spaces or dashes, the word, space, `migration`, any case.
    NodePg { up: bool },
}

impl Marker<'_> {
    fn of(line: &str) -> Option<Marker<'_>> {
        let comment = line.trim_start().strip_prefix("--")?.trim_start();
        if let Some(rest) = comment.strip_prefix("migrate:") {
            let (word, options) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            let indented = !line.starts_with("--");
            return match word {
                "up" => Some(Marker::Dbmate { up: true, options, indented }),
                "down" => Some(Marker::Dbmate { up: false, options, indented }),
                _ => None,
            };
        }
        if let Some(annotation) = comment.strip_prefix("+goose") {
            return Some(Marker::Goose(annotation.trim()));
        }
        let lower = comment.trim_start_matches(['-', ' ', '\t']).to_ascii_lowercase();
        let (word, rest) = lower.split_once(char::is_whitespace)?;
        let up = match word {
            "up" => true,
            "down" => false,
            _ => return None,
        };
        rest.trim_start().starts_with("migration").then_some(Marker::NodePg { up })
    }
}

pub(super) fn discover(dir: &Path, layout: Layout) -> Result<Discovered, SourceError> {
    let mut out = Discovered::default();
    for path in entries(dir)? {
        let name = file_name(&path).to_string();
        let script = |ext: &str| name.strip_suffix(ext);
        let stem = name.strip_suffix(".sql").or_else(|| match layout {
            // goose also runs migrations written in Go, node-pg-migrate in
            // JavaScript or TypeScript.
            Layout::Goose => script(".go"),
            Layout::NodePgMigrate => {
                script(".js").or(script(".cjs")).or(script(".mjs")).or(script(".ts"))
            }
            _ => None,
        });
        let Some((version, title)) =
            stem.filter(|_| !super::real_dir(&path)).and_then(leading_version)
        else {
            out.ignored.push(Ignored { path, why: format!("not a {layout} migration file") });
            continue;
        };
        let tool_version = match layout {
            // goose parses the version as an integer; dbmate keeps the
            // digits; node-pg-migrate keys a migration by its file's name.
            Layout::Goose => {
                let v = version.trim_start_matches('0');
                if v.is_empty() { "0" } else { v }.to_string()
            }
            Layout::NodePgMigrate => stem.unwrap_or_default().to_string(),
            _ => version.clone(),
        };
        let found = if !name.ends_with(".sql") {
            script_migration(path, layout, (version, tool_version, title))
        } else {
            match std::fs::read_to_string(&path) {
                Ok(text) => split(&path, &text, layout, version, tool_version, title),
                // Reported as unreadable when parsed.
                Err(_) => Found::new(version, tool_version, title, PartSource::file(path)),
            }
        };
        out.migrations.push(found);
    }
    out.migrations.sort_by(|a, b| match layout {
        Layout::Goose => numeric_order(&a.tool_version, &b.tool_version),
        // node-pg-migrate orders by the timestamp its names start with.
        Layout::NodePgMigrate => {
            numeric_order(&a.version, &b.version).then_with(|| a.tool_version.cmp(&b.tool_version))
        }
        // dbmate orders its files by name, which starts with the version.
        _ => a.version.cmp(&b.version).then_with(|| a.name.cmp(&b.name)),
    });
    Ok(out)
}

/// The digits a file name starts with, and the title after `_`.
fn leading_version(stem: &str) -> Option<(String, String)> {
    if let Some(pair) = split_stem(stem).filter(|(v, _)| v.chars().all(|c| c.is_ascii_digit())) {
        return Some(pair);
    }
    let digits: String = stem.chars().take_while(|c| c.is_ascii_digit()).collect();
    (!digits.is_empty()).then(|| (digits.clone(), stem[digits.len()..].to_string()))
}

/// A migration its tool runs as a program of its own (goose's Go,
/// node-pg-migrate's JavaScript): kept with its problem, so that only the
/// command that would run it refuses.
fn script_migration(
    path: PathBuf,
    layout: Layout,
    (version, tool_version, title): (String, String, String),
) -> Found {
    let mut found = Found::new(
        version,
        tool_version,
        title,
        PartSource { path: path.clone(), text: Some(String::new()), no_transaction: false },
    );
    let message = match layout {
        Layout::Goose => {
            "a goose migration written in Go; Backstop runs SQL only, so run this one \
                          with goose or rewrite it as SQL"
        }
        _ => {
            "a node-pg-migrate migration written in JavaScript or TypeScript; Backstop runs SQL \
              only, so run this one with node-pg-migrate or rewrite it as SQL (`-- Up Migration` \
              and `-- Down Migration` sections)"
        }
    };
    found.problems.push(problem_at(&path, 0, ProblemKind::Unsupported, message.into()));
    found
}

/// A problem of the file at `path`, on its line `line` (from 0), that
/// stops its up from running.
fn problem_at(path: &Path, line: usize, kind: ProblemKind, message: String) -> Problem {
    Problem { part: Part::Up, kind, path: path.to_path_buf(), line: line + 1, column: 1, message }
}

/// Why a node-pg-migrate file with a down marker and no up marker is
/// refused: node-pg-migrate runs a file with no up marker whole as its up,
/// which would run the down's statements too.
fn down_alone() -> String {
    "a `-- Down Migration` section with no `-- Up Migration` before the up's statements: \
     node-pg-migrate runs such a file whole as its up, the down's statements too; add `-- Up \
     Migration` as its first line"
        .into()
}

/// Where a file's markers are: each section's marker line and whether it
/// runs outside a transaction, whether the whole file does, and what in
/// the markers cannot be honoured.
struct Scan {
    up: Option<(usize, bool)>,
    down: Option<(usize, bool)>,
    file_no_tx: bool,
    problems: Vec<Problem>,
}

/// Reads the markers of `text` (at `path`) as `layout`'s tool reads them.
fn scan(path: &Path, text: &str, layout: Layout) -> Scan {
    let mut up: Option<(usize, bool)> = None; // (marker line, no transaction)
    let mut down: Option<(usize, bool)> = None;
    let mut file_no_tx = false;
    let mut problems = Vec::new();
    let problem = |line: usize, kind, message: String| problem_at(path, line, kind, message);
    for (i, line) in text.lines().enumerate() {
        match (Marker::of(line), layout) {
            (Some(Marker::Dbmate { up: is_up, indented: true, .. }), Layout::Dbmate) => {
                let word = if is_up { "up" } else { "down" };
                problems.push(problem(
                    i,
                    ProblemKind::Unsupported,
                    format!(
                        "an indented `-- migrate:{word}`: dbmate reads its markers only at the \
                         start of a line, so it refuses this file (or would run what follows as \
                         part of the section before); remove the indentation"
                    ),
                ));
            }
            (Some(Marker::Dbmate { up: is_up, options, .. }), Layout::Dbmate) => {
                let no_tx = options.split_whitespace().any(|o| o == "transaction:false");
                for option in options.split_whitespace() {
                    if option != "transaction:false" && option != "transaction:true" {
                        problems.push(problem(
                            i,
                            ProblemKind::Unsupported,
                            format!(
                                "dbmate option `{option}` is not one Backstop knows; remove it \
                                 or run this migration with dbmate"
                            ),
                        ));
                    }
                }
                let slot = if is_up { &mut up } else { &mut down };
                slot.get_or_insert((i, no_tx));
            }
            (Some(Marker::Goose(annotation)), Layout::Goose) => {
                let word = annotation.to_ascii_lowercase();
                match word.as_str() {
                    "up" => {
                        up.get_or_insert((i, false));
                    }
                    "down" => {
                        down.get_or_insert((i, false));
                    }
                    "no transaction" => file_no_tx = true,
                    "statementbegin" | "statementend" => {}
                    w if w.starts_with("envsub") => problems.push(problem(
                        i,
                        ProblemKind::Unsupported,
                        "`-- +goose ENVSUB` substitutes environment variables into the SQL; \
                         Backstop runs the file as written, so run this migration with goose"
                            .into(),
                    )),
                    _ => {}
                }
            }
            // The first of each marker counts, as node-pg-migrate's search
            // finds it.
            (Some(Marker::NodePg { up: true }), Layout::NodePgMigrate) => {
                up.get_or_insert((i, false));
            }
            (Some(Marker::NodePg { up: false }), Layout::NodePgMigrate) => {
                down.get_or_insert((i, false));
            }
            _ => {}
        }
    }
    Scan { up, down, file_no_tx, problems }
}

/// Cuts a file into its up and down sections by its markers.
fn split(
    path: &Path,
    text: &str,
    layout: Layout,
    version: String,
    tool_version: String,
    title: String,
) -> Found {
    let Scan { mut up, down, file_no_tx, mut problems } = scan(path, text, layout);
    let problem = |line: usize, kind, message: String| problem_at(path, line, kind, message);
    let lines = text.lines().count() + 1;
    if layout == Layout::NodePgMigrate && up.is_none() {
        match down {
            None => up = Some((0, false)),
            Some((at, _)) => problems.push(problem(at, ProblemKind::Unsupported, down_alone())),
        }
    }
    let Some((up_at, up_no_tx)) = up else {
        let marker = match layout {
            Layout::Dbmate => "-- migrate:up",
            Layout::NodePgMigrate => "-- Up Migration",
            _ => "-- +goose Up",
        };
        let mut found = Found::new(
            version,
            tool_version,
            title,
            PartSource {
                path: path.to_path_buf(),
                text: Some(String::new()),
                no_transaction: false,
            },
        );
        if problems.is_empty() {
            problems.push(problem(
                0,
                ProblemKind::Unsupported,
                format!("no `{marker}` line: {layout} needs one before the migration's SQL"),
            ));
        }
        found.problems = problems;
        return found;
    };
    // Each section runs from its marker to the other marker after it, or the end.
    let end_of = |start: usize, other: Option<usize>| other.filter(|o| *o > start).unwrap_or(lines);
    let down_at = down.map(|d| d.0);
    let section = |start: usize, end: usize, no_tx: bool| PartSource {
        path: path.to_path_buf(),
        text: Some(keep_lines(text, start..end)),
        no_transaction: no_tx || file_no_tx,
    };
    let mut found =
        Found::new(version, tool_version, title, section(up_at, end_of(up_at, down_at), up_no_tx));
    found.down = down.map(|(at, no_tx)| section(at, end_of(at, Some(up_at)), no_tx));
    found.problems = problems;
    found
}
