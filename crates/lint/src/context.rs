//! What a rule sees and says: the files of one check and the options
//! around them ([`Input`], [`Options`]), one file's context ([`Cx`]) with
//! the helpers rules use to find names and place findings, and what a rule
//! reports ([`Hit`]).

use std::ops::Range;

use pg_query::protobuf::{self, AlterTableType, ScanToken};
use pg_query::NodeEnum;

use crate::codes::Code;
use crate::model::{Ignore, Origin, Subject};
use crate::risk::{Impact, Probability};
use backstop_sql::facts::RelationName;
use backstop_sql::stmt::{alter_cmds, is_comment, split_configured, Stmt};

/// One file to check.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    /// The path as it should be shown (relative paths stay relative).
    pub path: &'a str,
    pub text: &'a str,
    /// The migration runs outside a transaction (`-- backstop:no-transaction`).
    pub no_transaction: bool,
    /// Byte ranges of a migration that runs in a transaction whose
    /// statements run outside one: after its author's `COMMIT`, where the
    /// migration's tool leaves them so (drizzle).
    pub outside_transaction: Vec<Range<usize>>,
    /// Whether the migration has a down file; `None` for a plain SQL file
    /// whose layout says nothing about one.
    pub has_down: Option<bool>,
}

impl<'a> Input<'a> {
    /// A file on its own: the no-transaction marker is read from its first line.
    pub fn file(path: &'a str, text: &'a str) -> Input<'a> {
        let no_transaction =
            text.lines().next().is_some_and(|l| l.trim() == crate::NO_TRANSACTION_MARKER);
        Input { path, text, no_transaction, outside_transaction: Vec::new(), has_down: None }
    }
}

/// What the rules need to know beyond the SQL.
#[derive(Debug, Clone)]
pub struct Options {
    /// `[migrations] protected_tables`: `users` or `schema.users`.
    pub protected_tables: Vec<String>,
    /// Columns that make a new table hold per-user rows (`[check] owner_columns`).
    pub owner_columns: Vec<String>,
    /// The runner sets `lock_timeout` itself (backstop migrate does, from
    /// `[migrations] lock_timeout`), so files need not.
    pub runner_sets_lock_timeout: bool,
    /// Rules turned off (`[check] skip`).
    pub skip: Vec<Code>,
    /// Opt-in rules turned on (`[check] enable`): the type and naming
    /// preferences run only when named here.
    pub enable: Vec<Code>,
    /// The files run in order, in one go, against the same database (the
    /// pending migrations): a table created by an earlier file is new for
    /// a later one. Off, each file is judged on its own, as when checking
    /// a folder whose older migrations are long applied.
    pub sequential: bool,
    /// The major version of the server the files will run on (from the
    /// database, or `[check] server_version`); `None`: unknown, and
    /// syntax newer than some server is not judged.
    pub server_major: Option<u32>,
}

impl Options {
    /// Whether rule `code` runs: not skipped, and turned on if opt-in.
    pub fn runs(&self, code: Code) -> bool {
        !self.skip.contains(&code) && (!code.opt_in() || self.enable.contains(&code))
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            protected_tables: Vec::new(),
            owner_columns: DEFAULT_OWNER_COLUMNS.iter().map(|s| s.to_string()).collect(),
            runner_sets_lock_timeout: false,
            skip: Vec::new(),
            enable: Vec::new(),
            sequential: true,
            server_major: None,
        }
    }
}

/// Column names that mark a table as holding each user's own rows.
pub const DEFAULT_OWNER_COLUMNS: &[&str] = &["user_id", "tenant_id", "owner_id"];

/// A policy some file of the run creates.
pub(crate) struct PolicyDef {
    pub file: usize,
    pub stmt: usize,
    pub table: RelationName,
    pub name: String,
    pub span: Range<usize>,
    /// The table is new at that point (created earlier in the run).
    pub table_is_new: bool,
    /// A `DROP POLICY` of the same name on the same table comes before it.
    pub dropped_before: bool,
}

/// One change of a table's row level security: `ALTER TABLE t
/// ENABLE|DISABLE|FORCE|NO FORCE ROW LEVEL SECURITY`.
pub(crate) struct RlsChange {
    pub file: usize,
    pub stmt: usize,
    pub table: RelationName,
    pub kind: pg_query::protobuf::AlterTableType,
}

impl RunFacts {
    /// Whether the run changes the row level security of `table` with
    /// `kind` after statement `stmt` of file `file` (a later file counts
    /// where the files run as one sequence).
    pub(crate) fn rls_later(
        &self,
        (file, stmt): (usize, usize),
        table: &RelationName,
        kind: pg_query::protobuf::AlterTableType,
        sequential: bool,
    ) -> bool {
        self.rls_changes.iter().any(|c| {
            c.kind == kind
                && backstop_sql::stmt::same_table(&c.table, table)
                && runs_after((c.file, c.stmt), (file, stmt), sequential)
        })
    }

    /// Whether the run drops `table` after statement `stmt` of file `file`.
    pub(crate) fn dropped_later(
        &self,
        (file, stmt): (usize, usize),
        table: &RelationName,
        sequential: bool,
    ) -> bool {
        self.dropped_tables.iter().any(|(f, s, t)| {
            backstop_sql::stmt::same_table(t, table)
                && runs_after((*f, *s), (file, stmt), sequential)
        })
    }
}

/// Whether statement `a` (file, statement) runs after statement `b` in
/// the run: later in the same file, or in a later file where the files
/// run as one sequence.
pub(crate) fn runs_after(a: (usize, usize), b: (usize, usize), sequential: bool) -> bool {
    (a.0 == b.0 && a.1 > b.1) || (sequential && a.0 > b.0)
}

/// A new table with an owner column (`[check] owner_columns`).
pub(crate) struct OwnerTable {
    pub file: usize,
    pub stmt: usize,
    pub table: RelationName,
    pub column: String,
}

/// An index some statement of the run creates (a `PRIMARY KEY` or
/// `UNIQUE` constraint makes one too).
pub(crate) struct IndexDef {
    pub file: usize,
    pub stmt: usize,
    /// The table as the statement names it.
    pub table: RelationName,
    /// The index's name, for a `DROP INDEX` later in the run.
    pub name: Option<String>,
    pub columns: Vec<String>,
    pub partial: bool,
    /// The table's name once the whole run is done; `None` when the run
    /// drops the table or the index.
    pub final_table: Option<RelationName>,
}

/// Facts about the whole run that rules of one file need.
#[derive(Default)]
pub(crate) struct RunFacts {
    /// Indexes the run creates, with what became of them.
    pub indexes: Vec<IndexDef>,
    /// `DROP INDEX`es of the run: file, statement, index name.
    pub dropped_indexes: Vec<(usize, usize, String)>,
    /// `ALTER TABLE ... DROP CONSTRAINT`s of the run: file, statement,
    /// table, constraint name.
    pub dropped_constraints: Vec<(usize, usize, RelationName, String)>,
    /// Tables that some statement of the run puts under row level security.
    pub rls_enabled: Vec<RelationName>,
    /// Every change of a table's row level security in the run, in order.
    pub rls_changes: Vec<RlsChange>,
    /// `DROP POLICY`s of the run (plain statements): file, statement,
    /// table, policy.
    pub dropped_policies: Vec<(usize, usize, RelationName, String)>,
    /// New tables with an owner column, in run order.
    pub owner_tables: Vec<OwnerTable>,
    /// `DROP TABLE`s of the run: file, statement, table.
    pub dropped_tables: Vec<(usize, usize, RelationName)>,
    /// `CREATE TABLE`s of the run: file, statement, table as written.
    pub created_tables: Vec<(usize, usize, RelationName)>,
    /// `CREATE FUNCTION`s of the run: file, statement, the function's
    /// name (without schema), whether it is volatile (as PostgreSQL
    /// makes one not declared `STABLE` or `IMMUTABLE`), the file's path.
    pub functions: Vec<(usize, usize, String, bool, String)>,
    /// `CREATE VIEW`s of the run: file, statement, view as written, the
    /// file's path.
    pub views: Vec<(usize, usize, RelationName, String)>,
    pub policies: Vec<PolicyDef>,
    /// Statements of the run that may run DDL no reader sees (a function
    /// called, SQL built at run time): file, statement. A policy they may
    /// drop is not judged taken across them (see `batch_names::runs_unseen`).
    pub unseen: Vec<(usize, usize)>,
    /// Objects named like the platform's that the run creates itself
    /// (`(kind, name)`, as BS702 names them): the project's own.
    pub platform_made: Vec<(&'static str, String)>,
    /// The CHECK constraints of the run, for BS204: a `SET NOT NULL` after
    /// a valid `CHECK (col IS NOT NULL)` skips its scan.
    pub checks: Vec<RunCheck>,
}

/// A CHECK constraint a statement of the run adds, or validates.
pub struct RunCheck {
    pub file: usize,
    pub stmt: usize,
    pub table: RelationName,
    pub name: String,
    /// Its expression; `None` for a `VALIDATE CONSTRAINT` of `name`.
    pub expr: Option<protobuf::Node>,
    /// Added without `NOT VALID`.
    pub valid: bool,
}

/// What rules see: one file, its statements and the run around it.
pub struct Cx<'a> {
    pub input: &'a Input<'a>,
    pub opts: &'a Options,
    pub stmts: Vec<Stmt<'a>>,
    pub(crate) file: usize,
    pub(crate) run: &'a RunFacts,
    pub(crate) ignores: Vec<Ignore>,
    pub(crate) tokens: &'a [ScanToken],
    /// What the run does to names, statement by statement.
    pub(crate) batch: &'a crate::batch_names::Batch,
    /// Where each line of the file starts.
    pub(crate) lines: backstop_sql::parse::Lines<'a>,
}

impl Cx<'_> {
    /// Whether `stmt` runs inside a transaction block: the migration's
    /// own, up to its author's `COMMIT` where its tool honours one.
    pub fn in_transaction(&self, stmt: &Stmt<'_>) -> bool {
        !self.input.no_transaction
            && !self.input.outside_transaction.iter().any(|r| r.contains(&stmt.start))
    }
}

/// One subcommand of an `ALTER TABLE` on an existing table, with what
/// rules need around it.
pub struct Alter<'s, 'a> {
    pub stmt: &'s Stmt<'a>,
    pub alter: &'a protobuf::AlterTableStmt,
    pub rv: &'a protobuf::RangeVar,
    pub table: RelationName,
    /// The subcommand's position in the statement.
    pub k: usize,
    pub cmd: &'a protobuf::AlterTableCmd,
    pub kind: AlterTableType,
}

/// What a rule reports; the runner adds place, severity and docs.
#[derive(Debug, Clone)]
pub struct Hit {
    pub code: Code,
    pub stmt: Option<usize>,
    pub span: Range<usize>,
    pub message: String,
    pub help: String,
    pub subject: Option<Subject>,
    /// Overrides the rule's default probability and impact.
    pub rating: Option<(Probability, Impact)>,
    /// Only a live check can confirm it: goes to [`Report::probes`].
    pub latent: bool,
}

impl Hit {
    pub fn new(
        code: Code,
        stmt: &Stmt<'_>,
        span: Range<usize>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> Hit {
        Hit {
            code,
            stmt: Some(stmt.index),
            span,
            message: message.into(),
            help: help.into(),
            subject: None,
            rating: None,
            latent: false,
        }
    }

    pub fn subject(mut self, subject: Subject) -> Hit {
        self.subject = Some(subject);
        self
    }

    pub fn rated(mut self, probability: Probability, impact: Impact) -> Hit {
        self.rating = Some((probability, impact));
        self
    }

    pub fn latent(mut self) -> Hit {
        self.latent = true;
        self
    }
}

impl<'a> Cx<'a> {
    /// The table a `RangeVar` names.
    pub fn rel(rv: &protobuf::RangeVar) -> RelationName {
        RelationName::from_range_var(rv)
    }

    /// True when `table`, as statement `stmt` names it, was made by an
    /// earlier statement of the batch (this file's, or an earlier file's
    /// when the files run as one sequence), under this name or another it
    /// was renamed from: locks on it block nobody and it holds no one's
    /// data yet.
    pub fn is_new(&self, stmt: usize, table: &RelationName) -> bool {
        matches!(self.batch.table(self.file, stmt, table), Origin::Created { .. })
    }

    /// Where the batch put rows in `table`, as statement `stmt` names it,
    /// when the batch made it; `None` for a table it did not make or left
    /// empty.
    pub fn filled_new(&self, stmt: usize, table: &RelationName) -> Option<String> {
        self.batch.filled(self.file, stmt, table)
    }

    /// Where the batch added `table`.`column`, as statement `stmt` names
    /// them, to a live table with nothing to fill it (see
    /// `Batch::added_empty`).
    pub fn added_empty(&self, stmt: usize, table: &RelationName, column: &str) -> Option<String> {
        self.batch.added_empty(self.file, stmt, table, column)
    }

    /// Where `table`.`column`, as statement `stmt` names it, came from.
    pub fn column_origin(&self, stmt: usize, table: &RelationName, column: &str) -> Origin {
        self.batch.column(self.file, stmt, table, column)
    }

    /// Where the subject of a finding at statement `stmt` came from.
    pub fn origin(&self, stmt: usize, subject: &Subject) -> Option<Origin> {
        let b = self.batch;
        Some(match subject {
            Subject::Table { table, .. }
            | Subject::Policy { table, .. }
            | Subject::ForeignKey { table, .. }
            | Subject::KeyIndex { table, .. }
            | Subject::Functions { table, .. } => b.table(self.file, stmt, table),
            Subject::ColumnType { table, column, .. } | Subject::NotNull { table, column } => {
                b.column(self.file, stmt, table, column)
            }
            Subject::Extension { .. }
            | Subject::Platform { .. }
            | Subject::RowSecurity { .. }
            | Subject::RowPolicies { .. }
            | Subject::OwnerColumns { .. } => return None,
        })
    }

    /// Every subcommand of every `ALTER TABLE` on a table that existed
    /// before (see [`Cx::is_new`]): the shape most lock and data rules read.
    pub fn existing_table_alters(&self) -> impl Iterator<Item = Alter<'_, 'a>> + '_ {
        self.table_alters().filter(|a| !self.is_new(a.stmt.index, &a.table))
    }

    /// Every `ALTER TABLE` command of the file, on any table.
    pub fn table_alters(&self) -> impl Iterator<Item = Alter<'_, 'a>> + '_ {
        self.stmts.iter().flat_map(move |stmt| {
            let found = match stmt.node {
                NodeEnum::AlterTableStmt(alter) => alter.relation.as_ref().map(|rv| (alter, rv)),
                _ => None,
            };
            found.into_iter().flat_map(move |(alter, rv)| {
                alter_cmds(alter).map(move |(k, cmd, kind)| Alter {
                    stmt,
                    alter,
                    rv,
                    table: Cx::rel(rv),
                    k,
                    cmd,
                    kind,
                })
            })
        })
    }

    /// The protected table (as configured) that `table` is, if any.
    pub fn protected(&self, table: &RelationName) -> Option<&'a str> {
        self.opts.protected_tables.iter().map(String::as_str).find(|configured| {
            let (schema, name) = split_configured(configured);
            table.name == name
                && (table.schema.is_none() || schema.is_none() || table.schema.as_deref() == schema)
        })
    }

    /// The statement's tokens, comments left out.
    pub fn tokens(&self, stmt: &Stmt<'_>) -> impl Iterator<Item = &'a ScanToken> + '_ {
        self.tokens.get(stmt.toks.clone()).unwrap_or_default().iter().filter(|t| !is_comment(t))
    }

    pub(crate) fn token_text(&self, t: &ScanToken) -> &'a str {
        self.input.text.get(t.start as usize..t.end as usize).unwrap_or("")
    }

    /// The first `n` tokens of the statement, e.g. `CREATE INDEX`.
    pub fn head(&self, stmt: &Stmt<'_>, n: usize) -> Range<usize> {
        let mut toks = self.tokens(stmt).take(n.max(1));
        let first = toks.next();
        let last = toks.last().or(first);
        match (first, last) {
            (Some(f), Some(l)) => f.start as usize..l.end as usize,
            _ => stmt.span(),
        }
    }

    /// The token that starts at (or contains) byte `offset`, for a parser
    /// location such as a `RangeVar`'s.
    pub fn token_at(&self, stmt: &Stmt<'_>, offset: i32) -> Range<usize> {
        if offset < 0 {
            return self.head(stmt, 2);
        }
        let offset = stmt.base + offset as usize;
        self.tokens(stmt)
            .find(|t| (t.end as usize) > offset)
            .map(|t| t.start as usize..t.end as usize)
            .unwrap_or_else(|| self.head(stmt, 2))
    }

    /// `n` tokens from the one at byte `offset`: e.g. `SECURITY DEFINER`.
    pub fn tokens_from(&self, stmt: &Stmt<'_>, offset: i32, n: usize) -> Range<usize> {
        let start = self.token_at(stmt, offset).start;
        let end = self
            .tokens(stmt)
            .filter(|t| t.start as usize >= start)
            .take(n.max(1))
            .last()
            .map_or(start, |t| t.end as usize);
        start..end
    }

    /// From the token at `offset` up to (not including) the next top-level
    /// comma or the statement's end: e.g. a column definition or constraint.
    pub fn clause_at(&self, stmt: &Stmt<'_>, offset: i32) -> Range<usize> {
        if offset < 0 {
            return self.head(stmt, 2);
        }
        let start = self.token_at(stmt, offset).start;
        let mut depth = 0i32;
        let mut end = start;
        for t in self.tokens(stmt).filter(|t| t.start as usize >= start) {
            match self.token_text(t) {
                "(" => depth += 1,
                ")" if depth == 0 => break,
                ")" => depth -= 1,
                "," if depth == 0 => break,
                _ => {}
            }
            end = t.end as usize;
        }
        start..end.max(start)
    }

    /// The first token in the statement that names `name` (as an
    /// identifier, quoted or not), searching from byte `from`.
    pub fn name_token(&self, stmt: &Stmt<'_>, name: &str, from: usize) -> Option<Range<usize>> {
        self.tokens(stmt).filter(|t| t.start as usize >= from).find_map(|t| {
            let text = self.token_text(t);
            let matches = match text.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                Some(quoted) => quoted.replace("\"\"", "\"") == name,
                None => text.eq_ignore_ascii_case(name),
            };
            matches.then_some(t.start as usize..t.end as usize)
        })
    }

    /// The `k`-th subcommand of an `ALTER TABLE` statement: the text between
    /// top-level commas after the table name.
    pub fn alter_cmd(
        &self,
        stmt: &Stmt<'_>,
        relation: Option<&protobuf::RangeVar>,
        k: usize,
    ) -> Range<usize> {
        let Some(rv) = relation else { return self.head(stmt, 2) };
        let after_name = self.qualified_name_end(stmt, rv.location);
        let mut segments: Vec<Range<usize>> = Vec::new();
        let mut depth = 0i32;
        let mut current: Option<Range<usize>> = None;
        for t in self.tokens(stmt).filter(|t| t.start as usize >= after_name) {
            let text = self.token_text(t);
            match text {
                "(" => depth += 1,
                ")" => depth -= 1,
                _ => {}
            }
            if text == "," && depth == 0 {
                segments.extend(current.take());
                continue;
            }
            let (s, e) = (t.start as usize, t.end as usize);
            current = Some(match current {
                Some(r) => r.start..e,
                None => s..e,
            });
        }
        segments.extend(current);
        segments.into_iter().nth(k).unwrap_or_else(|| self.head(stmt, 2))
    }

    /// The end of a possibly qualified name starting at `location`.
    fn qualified_name_end(&self, stmt: &Stmt<'_>, location: i32) -> usize {
        let from = stmt.base + location.max(0) as usize;
        let mut toks = self.tokens(stmt).skip_while(|t| (t.end as usize) <= from);
        let Some(first) = toks.next() else { return stmt.end };
        let mut end = first.end as usize;
        let mut expect_dot = true;
        for t in toks {
            let text = self.token_text(t);
            if expect_dot && text == "." {
                expect_dot = false;
            } else if !expect_dot {
                end = t.end as usize;
                expect_dot = true;
            } else {
                break;
            }
        }
        end
    }
}
