//! How a file runs as its own tool runs it: in one transaction, outside
//! one, or in parts the author's own `BEGIN` and `COMMIT` mark.
//!
//! Layouts whose tool runs a file as written (golang-migrate, sqitch,
//! Prisma on PostgreSQL) leave transactions to the author: the author's
//! `BEGIN` … `COMMIT` are honoured by running what they enclose inside
//! Backstop's guarded transaction, and a `COMMIT` that follows
//! `ALTER TYPE … ADD VALUE` is where the run commits before going on (the
//! new value can be used only after it commits). Drizzle runs a migration
//! inside its own transaction, which the author may end: what precedes
//! the author's `COMMIT` commits with the group, and what follows runs
//! outside a transaction, statement by statement, as drizzle runs it,
//! until a `BEGIN` opens one again. A file that must run outside a
//! transaction runs so where its tool runs it so (Prisma's one-statement
//! script). A `BEGIN` the file never commits, a `ROLLBACK` in an up, and a
//! statement that cannot run where the file puts it are problems of the
//! file with their place.

use std::ops::Range;

use backstop_sql::{Position, Statement};

use super::{Layout, Part, ProblemKind, SqlFile};

/// Where a file's run commits before it goes on, at its author's word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Boundary {
    /// The first statement after it (an index into the file's statements).
    pub from: usize,
    /// Whether the statements from here to the next boundary run inside a
    /// transaction.
    pub transactional: bool,
    /// The line of the author's statement that makes it.
    pub line: usize,
    /// Why the run commits here.
    pub why: String,
}

/// A run of a file's statements in one transaction, or outside one.
#[derive(Debug, Clone)]
pub struct Segment<'a> {
    pub statements: Range<usize>,
    pub transactional: bool,
    /// The boundary it starts at; `None` for the file's first segment.
    pub boundary: Option<&'a Boundary>,
}

impl SqlFile {
    /// The file's statements in the parts its run commits between: one
    /// part for most files.
    pub fn segments(&self) -> Vec<Segment<'_>> {
        let mut out = Vec::with_capacity(self.boundaries.len() + 1);
        let mut start = 0;
        let mut transactional = !self.no_transaction;
        let mut boundary = None;
        for b in &self.boundaries {
            out.push(Segment { statements: start..b.from, transactional, boundary });
            (start, transactional, boundary) = (b.from, b.transactional, Some(b));
        }
        out.push(Segment { statements: start..self.statements.len(), transactional, boundary });
        // A file whose first statement already runs outside a transaction
        // starts with an empty part; a file of no statement keeps its one.
        if out.len() > 1 {
            out.retain(|s| !s.statements.is_empty());
        }
        out
    }

    /// Whether the whole file runs in one transaction.
    pub fn in_one_transaction(&self) -> bool {
        !self.no_transaction && self.boundaries.is_empty()
    }

    /// Byte ranges of the text whose statements run outside a transaction
    /// though the file runs in one (what follows drizzle's `COMMIT`).
    pub fn outside_transaction(&self) -> Vec<Range<usize>> {
        if self.no_transaction {
            return Vec::new();
        }
        let end_of = |i: usize| {
            let s: &Statement = &self.statements[i];
            s.offset + s.sql.len()
        };
        self.segments()
            .into_iter()
            .filter(|seg| !seg.transactional && !seg.statements.is_empty())
            .map(|seg| self.statements[seg.statements.start].offset..end_of(seg.statements.end - 1))
            .collect()
    }
}

/// A problem of the file: its kind, place and message.
pub(super) type Found = (ProblemKind, Position, String);

/// Reads how `file` runs under `layout`'s tool, setting its
/// no-transaction flag and boundaries, and says what cannot run.
pub(super) fn read(file: &mut SqlFile, layout: Layout, part: Part) -> Vec<Found> {
    let mut problems = Vec::new();
    let control = file.statements.iter().any(|s| s.facts.transaction_control);
    let outside = |s: &Statement| s.facts.outside_transaction_only.is_some();
    // A file that can only run outside a transaction runs so where its
    // tool runs it so: Prisma sends a one-statement script alone (a longer
    // one runs in an implicit transaction); golang-migrate and sqitch
    // leave a file without BEGIN to the server, which runs such a
    // statement outside a transaction wherever it is.
    let lone = matches!(file.statements.as_slice(), [s] if outside(s));
    let any_outside = file.statements.iter().any(outside);
    let by_server = matches!(layout, Layout::GolangMigrate | Layout::Sqitch);
    if !control && ((lone && layout == Layout::Prisma) || (any_outside && by_server)) {
        file.no_transaction = true;
    }
    if file.no_transaction {
        return problems;
    }
    let honoured = layout.honours_authors_transactions();
    if control && honoured {
        let rollback_ok = part == Part::Verify;
        match authors_transactions(file, layout, rollback_ok) {
            Ok(()) => blank_control(file),
            Err(found) => problems.push(found),
        }
        // A down or verify script runs whole: in one transaction, or
        // statement by statement where a part of it must.
        if part != Part::Up && !file.boundaries.is_empty() {
            file.no_transaction = file.boundaries.iter().any(|b| !b.transactional);
            file.boundaries.clear();
        }
    }
    let in_transaction: Vec<Range<usize>> =
        file.segments().into_iter().filter(|s| s.transactional).map(|s| s.statements).collect();
    for range in in_transaction {
        for stmt in &file.statements[range] {
            problems.extend(cannot_run_in_a_transaction(stmt, layout, honoured && control));
        }
    }
    problems
}

/// What is wrong with `stmt` in a part of a file that runs in a
/// transaction.
fn cannot_run_in_a_transaction(stmt: &Statement, layout: Layout, honoured: bool) -> Option<Found> {
    if stmt.facts.transaction_control {
        let first = stmt.sql.lines().next().unwrap_or_default();
        let fix = if honoured {
            "only BEGIN, COMMIT and END are honoured where the author writes them; remove it"
        } else {
            "Backstop runs each migration in a transaction itself; remove it, or mark the \
             migration as one that runs outside a transaction"
        };
        return Some((
            ProblemKind::TransactionControl,
            stmt.position,
            format!("`{first}` inside a migration; {fix}"),
        ));
    }
    let what = stmt.facts.outside_transaction_only?;
    Some((
        ProblemKind::NeedsNoTransaction,
        stmt.position,
        format!(
            "{what} cannot run inside a transaction; put it in its own migration marked to run \
             outside one ({})",
            layout.no_transaction_hint()
        ),
    ))
}

/// What a transaction statement of the author's does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Control {
    Begin,
    Commit,
    /// `ROLLBACK`, which undoes what the file did before it.
    Rollback,
    /// `SAVEPOINT`, `RELEASE`, `ROLLBACK TO`, `PREPARE TRANSACTION` and the
    /// like: nothing Backstop can run the author's way.
    Other,
}

fn control_of(sql: &str) -> Control {
    let words: Vec<String> = sql
        .split_whitespace()
        .take(2)
        .map(|w| w.trim_end_matches(';').to_ascii_uppercase())
        .collect();
    match (words.first().map(String::as_str), words.get(1).map(String::as_str)) {
        (Some("BEGIN" | "START"), _) => Control::Begin,
        (Some("COMMIT" | "END"), w) if w != Some("PREPARED") => Control::Commit,
        (Some("ROLLBACK" | "ABORT"), None | Some("WORK" | "TRANSACTION")) => Control::Rollback,
        _ => Control::Other,
    }
}

/// Reads the author's `BEGIN` and `COMMIT` into boundaries (statement
/// indexes as they will be once the control statements are gone), or the
/// first thing in them that cannot be honoured.
fn authors_transactions(
    file: &mut SqlFile,
    layout: Layout,
    rollback_ok: bool,
) -> Result<(), Found> {
    // drizzle runs the file in its own transaction and psql (sqitch's
    // runner) in none: after the author's COMMIT both run statement by
    // statement. Prisma and golang-migrate send the file as one query,
    // whose statements after a COMMIT run in a new implicit transaction.
    let drizzle = matches!(layout, Layout::Drizzle | Layout::Sqitch);
    let path = file.path.display().to_string();
    let mut boundaries: Vec<Boundary> = Vec::new();
    // The author's open BEGIN, by its statement; whether the run is inside
    // a transaction now (drizzle's own until the author ends it); the last
    // ADD VALUE since the run last committed.
    let mut open: Option<&Statement> = None;
    let mut in_transaction = true;
    let mut added: Option<(&Statement, String)> = None;
    let mut kept = 0;
    for stmt in &file.statements {
        if !stmt.facts.transaction_control {
            if let Some(v) = &stmt.facts.adds_enum_value {
                added = Some((stmt, format!("'{}' to {}", v.label, v.type_name)));
            }
            kept += 1;
            continue;
        }
        let line = stmt.position.line;
        match control_of(&stmt.sql) {
            Control::Begin => {
                if drizzle && !in_transaction {
                    boundaries.push(Boundary {
                        from: kept,
                        transactional: true,
                        line,
                        why: "BEGIN: what follows runs in a transaction again".into(),
                    });
                    in_transaction = true;
                }
                open = open.or(Some(stmt));
            }
            Control::Commit if drizzle => {
                if in_transaction {
                    boundaries.push(Boundary {
                        from: kept,
                        transactional: false,
                        line,
                        why: format!(
                            "ends the transaction: what follows runs outside one, statement by \
                             statement, as {layout} runs it"
                        ),
                    });
                    in_transaction = false;
                }
                open = None;
                added = None;
            }
            Control::Commit => {
                if let Some((adder, value)) = added.take() {
                    boundaries.push(Boundary {
                        from: kept,
                        transactional: true,
                        line,
                        why: format!(
                            "follows the ADD VALUE of {value} at {path}:{}: a new enum value can \
                             be used only once it is committed",
                            adder.position.line
                        ),
                    });
                }
                open = None;
            }
            Control::Rollback if rollback_ok => {}
            Control::Rollback | Control::Other => return Err(not_honoured(stmt)),
        }
    }
    if let (Some(begin), false) = (open, drizzle) {
        return Err((
            ProblemKind::TransactionControl,
            begin.position,
            format!(
                "`BEGIN` at {path}:{} is never committed: the file ends inside its transaction; \
                 add `COMMIT;` where the transaction ends",
                begin.position.line
            ),
        ));
    }
    settle(file, boundaries, kept);
    Ok(())
}

/// Why the author's `stmt` cannot be run their way.
fn not_honoured(stmt: &Statement) -> Found {
    let message = if control_of(&stmt.sql) == Control::Rollback {
        "`ROLLBACK` in a migration undoes what came before it, so the file cannot apply as \
         written; remove it (Backstop rolls back on any failure)"
            .to_string()
    } else {
        let first = stmt.sql.lines().next().unwrap_or_default();
        format!("`{first}`: only BEGIN, COMMIT and END are honoured where the author writes them; remove it")
    };
    (ProblemKind::TransactionControl, stmt.position, message)
}

/// Gives `file` the boundaries found among its `kept` statements, less
/// those that change nothing: one with nothing after it, one another
/// boundary at the same place overrides, one at the very start (which
/// says how the file begins instead).
fn settle(file: &mut SqlFile, boundaries: Vec<Boundary>, kept: usize) {
    let mut merged: Vec<Boundary> = Vec::new();
    for b in boundaries.into_iter().filter(|b| b.from < kept) {
        match merged.last_mut() {
            Some(last) if last.from == b.from => *last = b,
            _ => merged.push(b),
        }
    }
    match merged.as_slice() {
        // The whole file runs outside a transaction.
        [only] if only.from == 0 && !only.transactional => {
            file.no_transaction = true;
            merged.clear();
        }
        [first, ..] if first.from == 0 && first.transactional => {
            merged.remove(0);
        }
        _ => {}
    }
    file.boundaries = merged;
}

/// Removes the author's transaction statements from what runs, blanking
/// them in the text too, so that the file's lines stay where they are and
/// the analysis sees what runs.
fn blank_control(file: &mut SqlFile) {
    let mut text = file.text.as_bytes().to_vec();
    for stmt in file.statements.iter().filter(|s| s.facts.transaction_control) {
        let end = (stmt.offset + stmt.sql.len()).min(text.len());
        text[stmt.offset..end].iter_mut().for_each(|b| {
            if *b != b'\n' {
                *b = b' ';
            }
        });
    }
    file.text = String::from_utf8(text).expect("ASCII keywords replaced by spaces").into();
    file.statements.retain(|s| !s.facts.transaction_control);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_as(layout: Layout, sql: &str) -> (SqlFile, Vec<Found>) {
        let mut file = SqlFile {
            path: "m.sql".into(),
            text: sql.into(),
            statements: backstop_sql::split(sql).unwrap(),
            no_transaction: false,
            boundaries: Vec::new(),
        };
        let problems = read(&mut file, layout, Part::Up);
        (file, problems)
    }

    fn sqls(file: &SqlFile) -> Vec<&str> {
        file.statements.iter().map(|s| s.sql.as_str()).collect()
    }

    #[test]
    fn prismas_begin_and_commit_around_the_file_run_in_backstops_transaction() {
        let (file, problems) = read_as(
            Layout::Prisma,
            "BEGIN;\nCREATE TABLE a (id int);\nCREATE TABLE b (id int);\nCOMMIT;\n",
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(sqls(&file).len(), 2);
        assert!(file.in_one_transaction());
        assert!(!file.text.contains("BEGIN") && !file.text.contains("COMMIT"), "{:?}", file.text);
        assert_eq!(file.statements[0].position.line, 2, "lines stay where they were");
    }

    #[test]
    fn a_commit_after_add_value_is_where_the_run_commits() {
        let (file, problems) = read_as(
            Layout::Prisma,
            "ALTER TYPE kind ADD VALUE 'b';\nCOMMIT;\nUPDATE t SET k = 'b';\nCREATE INDEX i ON t (k) WHERE k = 'b';\n",
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(file.boundaries.len(), 1);
        let b = &file.boundaries[0];
        assert_eq!((b.from, b.transactional, b.line), (1, true, 2));
        assert!(b.why.contains("ADD VALUE of 'b' to kind at m.sql:1"), "{}", b.why);
        let segments = file.segments();
        assert_eq!(segments.len(), 2);
        assert_eq!((segments[1].statements.clone(), segments[1].transactional), (1..3, true));
        // A COMMIT with no ADD VALUE before it changes nothing.
        let (plain, _) =
            read_as(Layout::Prisma, "CREATE TABLE a (id int);\nCOMMIT;\nCREATE TABLE b (id int);");
        assert!(plain.in_one_transaction());
    }

    #[test]
    fn drizzles_commit_leaves_what_follows_outside_a_transaction() {
        let sql = "CREATE TABLE t (id int);\n--> statement-breakpoint\nCOMMIT;\n--> statement-breakpoint\nCREATE INDEX CONCURRENTLY i ON t (id);\n--> statement-breakpoint\nCREATE INDEX CONCURRENTLY j ON t (id);\n";
        let (file, problems) = read_as(Layout::Drizzle, sql);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(sqls(&file).len(), 3);
        assert_eq!(file.boundaries.len(), 1);
        assert_eq!((file.boundaries[0].from, file.boundaries[0].transactional), (1, false));
        let outside = file.outside_transaction();
        assert_eq!(outside.len(), 1);
        assert!(file.text[outside[0].clone()].starts_with("CREATE INDEX CONCURRENTLY i"));
        assert!(file.text[outside[0].clone()].ends_with("ON t (id)"));
        // BEGIN opens a transaction again.
        let (again, _) = read_as(
            Layout::Drizzle,
            "CREATE TABLE t (id int);\nCOMMIT;\nCREATE INDEX CONCURRENTLY i ON t (id);\nBEGIN;\nCREATE TABLE u (id int);\n",
        );
        let shape: Vec<_> =
            again.segments().iter().map(|s| (s.statements.clone(), s.transactional)).collect();
        assert_eq!(shape, [(0..1, true), (1..2, false), (2..3, true)]);
        // A file that ends drizzle's transaction first runs outside one.
        let (first, problems) =
            read_as(Layout::Drizzle, "COMMIT;\nCREATE INDEX CONCURRENTLY i ON t (id);\n");
        assert!(problems.is_empty() && first.no_transaction && first.boundaries.is_empty());
    }

    #[test]
    fn what_cannot_be_honoured_is_a_problem_with_its_place() {
        let (_, problems) =
            read_as(Layout::Prisma, "CREATE TABLE a (id int);\nBEGIN;\nCREATE TABLE b (id int);\n");
        let (kind, at, message) = &problems[0];
        assert_eq!((*kind, at.line), (ProblemKind::TransactionControl, 2));
        assert!(message.contains("`BEGIN` at m.sql:2 is never committed"), "{message}");
        let (_, problems) = read_as(Layout::Prisma, "CREATE TABLE a (id int);\nROLLBACK;\n");
        assert!(problems[0].2.contains("ROLLBACK"), "{problems:?}");
        let (_, problems) = read_as(
            Layout::Prisma,
            "CREATE TABLE a (id int);\nDO $$ BEGIN UPDATE a SET id = 1; COMMIT; END $$;\n",
        );
        let (kind, at, message) = &problems[0];
        assert_eq!((*kind, at.line), (ProblemKind::NeedsNoTransaction, 2));
        assert!(
            message.starts_with("a DO block that commits cannot run inside a transaction"),
            "{message}"
        );
        // Alone in Prisma's script, it runs alone, as Prisma runs it.
        let (alone, problems) = read_as(Layout::Prisma, "DO $$ BEGIN COMMIT; END $$;");
        assert!(problems.is_empty() && alone.no_transaction, "{problems:?}");
        // drizzle never commits a BEGIN itself: its own COMMIT does.
        let (_, problems) = read_as(
            Layout::Drizzle,
            "COMMIT;\nCREATE INDEX CONCURRENTLY i ON t (id);\nBEGIN;\nCREATE TABLE u (id int);\n",
        );
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn layouts_that_wrap_the_file_still_refuse_the_authors_commit() {
        let (_, problems) = read_as(Layout::Diesel, "BEGIN;\nCREATE TABLE a (id int);\nCOMMIT;\n");
        assert_eq!(problems.len(), 2);
        assert!(problems.iter().all(|p| p.0 == ProblemKind::TransactionControl));
    }
}
