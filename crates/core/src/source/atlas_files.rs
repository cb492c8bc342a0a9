//! What an Atlas migration file's directives (the `-- atlas:…` comment
//! lines at its top, before the first blank line) make of it, as Atlas
//! reads them:
//!
//! - `txmode none`: it runs outside a transaction;
//! - `delimiter <d>`: its statements are parted by `<d>` (`\n` a line
//!   break), not by `;`: a `;` is put before each `<d>` for the parser;
//! - `checkpoint`: it holds the whole schema at its version (see
//!   [`super::atlas`] for when it runs);
//! - `txtar`: it is an archive of sections, each opened by a line
//!   `-- <name> --`: `migration.sql` is the up, `down.sql` the down, and
//!   the others (`checks.sql`) assertions that must hold before the up:
//!   each is run, in the up's transaction, as a check that stops the
//!   migration when its query does not give true.
//!
//! The texts keep the file's lines where they were, so that a statement's
//! line in a message is its line in the file.

use backstop_sql::split;

/// An Atlas file as Backstop runs it.
#[derive(Debug, Default)]
pub(super) struct Read {
    pub up: String,
    /// The archive's `down.sql`, where it has one.
    pub down: Option<String>,
    pub no_transaction: bool,
    pub checkpoint: bool,
    /// What cannot be read as Atlas reads it: the line and why.
    pub problems: Vec<(usize, String)>,
}

/// The directives of `text`: its leading `-- atlas:` lines, what follows
/// `atlas:` on each, and how many lines the header holds.
fn directives(text: &str) -> (Vec<&str>, usize) {
    let header: Vec<&str> = text.lines().take_while(|l| l.trim_start().starts_with("--")).collect();
    let said = header
        .iter()
        .filter_map(|l| l.trim().strip_prefix("--")?.trim().strip_prefix("atlas:"))
        .collect();
    (said, header.len())
}

pub(super) fn read(text: &str) -> Read {
    let (said, header) = directives(text);
    let mut out = Read {
        no_transaction: said.iter().any(|d| d.split_whitespace().eq(["txmode", "none"])),
        checkpoint: said.iter().any(|d| d.trim() == "checkpoint"),
        ..Read::default()
    };
    let delimiter = said
        .iter()
        .find_map(|d| d.strip_prefix("delimiter "))
        .map(|d| d.trim().replace("\\n", "\n").replace("\\t", "\t"))
        .filter(|d| !d.is_empty());
    let body = match &delimiter {
        Some(d) => parted(text, header, d),
        None => text.to_string(),
    };
    if said.iter().any(|d| d.trim() == "txtar") {
        archive(&body, header, &mut out);
    } else {
        out.up = body;
    }
    out
}

/// `text` with a `;` before each `delimiter` after its header, so that
/// the parser ends a statement there as Atlas does.
fn parted(text: &str, header: usize, delimiter: &str) -> String {
    let at: usize = text.lines().take(header).map(|l| l.len() + 1).sum::<usize>().min(text.len());
    let (head, rest) = text.split_at(at);
    format!("{head}{};", rest.replace(delimiter, &format!(";{delimiter}")))
}

/// A section of an archive: its name and its body's lines (0-based,
/// end excluded).
struct Section<'t> {
    name: &'t str,
    lines: std::ops::Range<usize>,
}

/// Reads the sections of an archive into `out`'s up and down.
fn archive(text: &str, header: usize, out: &mut Read) {
    let lines: Vec<&str> = text.lines().collect();
    let mut sections: Vec<Section> = Vec::new();
    for (i, line) in lines.iter().enumerate().skip(header) {
        let marker = line.trim().strip_prefix("-- ").and_then(|l| l.strip_suffix(" --"));
        if let Some(name) = marker.filter(|n| !n.is_empty() && !n.contains(' ')) {
            if let Some(last) = sections.last_mut() {
                last.lines.end = i;
            }
            sections.push(Section { name, lines: i + 1..lines.len() });
        }
    }
    let blank = || vec![String::new(); lines.len()];
    let (mut up, mut down) = (blank(), blank());
    let mut has_up = false;
    for s in &sections {
        match s.name {
            "migration.sql" => {
                has_up = true;
                copy(&lines, &s.lines, &mut up);
            }
            "down.sql" => {
                copy(&lines, &s.lines, &mut down);
                out.down = Some(String::new());
            }
            name if name.ends_with(".sql") && name.contains("check") => {
                checks(&lines, s, &mut up, &mut out.problems);
            }
            name => out.problems.push((
                s.lines.start,
                format!(
                    "the archive's section `{name}` is none Atlas runs (migration.sql, down.sql, \
                     checks.sql): rename it, or take it out"
                ),
            )),
        }
    }
    if !has_up {
        out.problems.push((
            header.max(1),
            "an `atlas:txtar` file without a `-- migration.sql --` section: Atlas finds no \
             migration in it; add the section"
                .into(),
        ));
    }
    out.up = up.join("\n");
    if out.down.is_some() {
        out.down = Some(down.join("\n"));
    }
}

fn copy(lines: &[&str], range: &std::ops::Range<usize>, into: &mut [String]) {
    for i in range.clone() {
        into[i] = lines[i].to_string();
    }
}

/// Each statement of a checks section, put on its first line as a block
/// that raises unless the query gives true.
fn checks(lines: &[&str], s: &Section, up: &mut [String], problems: &mut Vec<(usize, String)>) {
    let text = lines[s.lines.clone()].join("\n");
    let statements = match split(&text) {
        Ok(statements) => statements,
        Err(e) => {
            let line = s.lines.start + e.position.line;
            problems.push((line, format!("a check Atlas runs does not parse: {}", e.message)));
            return;
        }
    };
    for st in statements {
        let line = s.lines.start + st.position.line - 1;
        let query = st.sql.trim().trim_end_matches(';');
        let said = format!("{} (line {})", s.name, line + 1).replace('\'', "''");
        up[line] = format!(
            "DO $atlas_check$ BEGIN IF NOT coalesce(({query}), false) THEN RAISE EXCEPTION \
             'the Atlas pre-migration check of {said} does not hold: nothing of the migration \
             ran'; END IF; END $atlas_check$;"
        )
        .replace('\n', " ");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_archive_gives_its_migration_its_down_and_its_checks_on_their_lines() {
        let text = "-- atlas:txtar\n\n-- checks.sql --\nSELECT NOT EXISTS (SELECT 1 FROM users);\n\n\
                    -- migration.sql --\nDROP TABLE users;\n\n-- down.sql --\nCREATE TABLE users (id int);\n";
        let r = read(text);
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        let up: Vec<&str> = r.up.lines().collect();
        assert_eq!(up[6], "DROP TABLE users;", "the up's statement stays on line 7");
        assert!(up[3].starts_with("DO $atlas_check$ BEGIN IF NOT coalesce((SELECT NOT EXISTS"));
        assert!(!r.up.contains("CREATE TABLE"), "the down is no part of the up");
        let down = r.down.unwrap();
        assert_eq!(down.lines().nth(9), Some("CREATE TABLE users (id int);"));
        assert!(!down.contains("DROP"));
        let statements = split(&r.up).unwrap();
        assert_eq!(statements.len(), 2);
        assert_eq!(statements[1].position.line, 7);
    }

    #[test]
    fn an_archive_without_its_migration_or_with_a_strange_section_is_said() {
        let r = read("-- atlas:txtar\n\n-- notes.md --\nhello\n");
        let said: Vec<&str> = r.problems.iter().map(|(_, w)| w.as_str()).collect();
        assert_eq!(said.len(), 2, "{said:?}");
        assert!(said[0].contains("`notes.md`") && said[1].contains("without a `-- migration.sql"));
    }

    #[test]
    fn a_delimiter_parts_statements_and_directives_are_read_from_the_header_only() {
        let text = "-- atlas:delimiter -- end\n-- atlas:txmode none\n\nCREATE TABLE a (id int)\n\
                    -- end\nCREATE INDEX CONCURRENTLY a_id ON a (id)\n-- end\n";
        let r = read(text);
        assert!(r.no_transaction && !r.checkpoint);
        let statements = split(&r.up).unwrap();
        let sql: Vec<&str> = statements.iter().map(|s| s.sql.as_str()).collect();
        assert_eq!(sql, ["CREATE TABLE a (id int)", "CREATE INDEX CONCURRENTLY a_id ON a (id)"]);
        assert_eq!(statements[1].position.line, 6);
        let r = read("-- atlas:checkpoint\n\nCREATE TABLE a (id int);\n-- atlas:txmode none\n");
        assert!(r.checkpoint && !r.no_transaction, "a directive below the header is a comment");
    }
}
