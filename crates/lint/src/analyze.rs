//! Running the rules over the files of one check: parse each file once,
//! work out which tables each statement meets as new (created earlier in
//! the same migration) or existing, run every rule, apply
//! `-- backstop:ignore` comments, and turn hits into located findings.

use std::ops::Range;

use pg_query::protobuf::{self, AlterTableType, ObjectType, ScanToken, Token};
use pg_query::NodeEnum;

use crate::model::{Finding, Impact, Probability, Severity, Subject, TypeSpec};
use crate::parse::{facts_of, Facts, Lines, Position, RelationName, SyntaxError};
use crate::rules::{Code, Phase};
use crate::suppress::{self, Ignore};

/// One file to check.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    /// The path as it should be shown (relative paths stay relative).
    pub path: &'a str,
    pub text: &'a str,
    /// The migration runs outside a transaction (`-- backstop:no-transaction`).
    pub no_transaction: bool,
    /// Whether the migration has a down file; `None` for a plain SQL file
    /// whose layout says nothing about one.
    pub has_down: Option<bool>,
}

impl<'a> Input<'a> {
    /// A file on its own: the no-transaction marker is read from its first line.
    pub fn file(path: &'a str, text: &'a str) -> Input<'a> {
        let no_transaction =
            text.lines().next().is_some_and(|l| l.trim() == crate::NO_TRANSACTION_MARKER);
        Input { path, text, no_transaction, has_down: None }
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
    /// The files run in order, in one go, against the same database (the
    /// pending migrations): a table created by an earlier file is new for
    /// a later one. Off, each file is judged on its own, as when checking
    /// a folder whose older migrations are long applied.
    pub sequential: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            protected_tables: Vec::new(),
            owner_columns: DEFAULT_OWNER_COLUMNS.iter().map(|s| s.to_string()).collect(),
            runner_sets_lock_timeout: false,
            skip: Vec::new(),
            sequential: true,
        }
    }
}

/// Column names that mark a table as holding each user's own rows.
pub const DEFAULT_OWNER_COLUMNS: &[&str] = &["user_id", "tenant_id", "owner_id"];

/// A file the parser rejected; the check cannot say anything about it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{path}:{}:{}: {}", .error.position.line, .error.position.column, .error.message)]
pub struct InputError {
    pub path: String,
    #[source]
    pub error: SyntaxError,
}

/// A checked file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FileSummary {
    pub path: String,
    pub statements: usize,
}

/// Everything one check found, before any live facts.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub files: Vec<FileSummary>,
    /// Findings in file order; suppressed ones carry their reason.
    pub findings: Vec<Finding>,
    /// Findings only the live database can confirm (e.g. a policy name that
    /// may already exist); a live check turns them into findings or drops them.
    pub probes: Vec<Finding>,
    /// Tables created by some file of the run: a live check must not call
    /// them missing.
    pub created_tables: Vec<RelationName>,
}

/// One statement, parsed, with its place in the file.
pub struct Stmt<'a> {
    /// 0-based position among the file's statements.
    pub index: usize,
    pub node: &'a NodeEnum,
    /// Byte range in the file, from the first keyword to the last token.
    pub start: usize,
    pub end: usize,
    pub facts: Facts,
    /// Indexes of the statement's tokens in the file's token list.
    toks: Range<usize>,
    /// Byte offset in the file of the text the statement was parsed from:
    /// locations in its tree count from there.
    base: usize,
}

impl Stmt<'_> {
    pub fn span(&self) -> Range<usize> {
        self.start..self.end
    }
}

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

/// Facts about the whole run that rules of one file need.
#[derive(Default)]
pub(crate) struct RunFacts {
    /// Tables that some statement of the run puts under row level security.
    pub rls_enabled: Vec<RelationName>,
    pub policies: Vec<PolicyDef>,
}

/// What rules see: one file, its statements and the run around it.
pub struct Cx<'a> {
    pub input: &'a Input<'a>,
    pub opts: &'a Options,
    pub stmts: Vec<Stmt<'a>>,
    pub(crate) file: usize,
    pub(crate) run: &'a RunFacts,
    pub(crate) ignores: Vec<Ignore>,
    tokens: &'a [ScanToken],
    /// What the run does to names, statement by statement.
    batch: &'a crate::batch::Batch,
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

/// Same table, allowing either side to leave the schema out.
pub fn same_table(a: &RelationName, b: &RelationName) -> bool {
    a.name == b.name && (a.schema.is_none() || b.schema.is_none() || a.schema == b.schema)
}

/// `schema.table` or `table`, as people write it.
pub fn display_table(t: &RelationName) -> String {
    match &t.schema {
        Some(s) => format!("{s}.{}", t.name),
        None => t.name.clone(),
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
        matches!(self.batch.table(self.file, stmt, table), crate::batch::Origin::Created { .. })
    }

    /// Where `table`.`column`, as statement `stmt` names it, came from.
    pub fn column_origin(
        &self,
        stmt: usize,
        table: &RelationName,
        column: &str,
    ) -> crate::batch::Origin {
        self.batch.column(self.file, stmt, table, column)
    }

    /// Where the subject of a finding at statement `stmt` came from.
    pub fn origin(&self, stmt: usize, subject: &Subject) -> Option<crate::batch::Origin> {
        let b = self.batch;
        Some(match subject {
            Subject::Table { table, .. }
            | Subject::Policy { table, .. }
            | Subject::ForeignKey { table, .. }
            | Subject::Functions { table, .. } => b.table(self.file, stmt, table),
            Subject::ColumnType { table, column, .. } | Subject::NotNull { table, column } => {
                b.column(self.file, stmt, table, column)
            }
            Subject::Extension { .. } => return None,
        })
    }

    /// Every subcommand of every `ALTER TABLE` on a table that existed
    /// before (see [`Cx::is_new`]): the shape most lock and data rules read.
    pub fn existing_table_alters(&self) -> impl Iterator<Item = Alter<'_, 'a>> + '_ {
        self.stmts.iter().flat_map(move |stmt| {
            let found = match stmt.node {
                NodeEnum::AlterTableStmt(alter) => alter.relation.as_ref().map(|rv| (alter, rv)),
                _ => None,
            };
            let found = found.filter(|(_, rv)| !self.is_new(stmt.index, &Cx::rel(rv)));
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

    fn token_text(&self, t: &ScanToken) -> &'a str {
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

/// `schema.table` from config, split.
pub(crate) fn split_configured(configured: &str) -> (Option<&str>, &str) {
    match configured.split_once('.') {
        Some((schema, table)) if !schema.is_empty() && !table.contains('.') => {
            (Some(schema), table)
        }
        _ => (None, configured),
    }
}

/// The name in a `DROP` object list entry: a list of strings, the last
/// one the name, the one before it the schema.
pub fn object_name(node: &protobuf::Node) -> Option<RelationName> {
    let parts: Vec<&str> = match node.node.as_ref()? {
        NodeEnum::List(l) => l.items.iter().filter_map(string_value).collect(),
        NodeEnum::String(s) => vec![s.sval.as_str()],
        _ => return None,
    };
    let (name, rest) = parts.split_last()?;
    Some(RelationName { schema: rest.last().map(|s| s.to_string()), name: name.to_string() })
}

/// The text of a `String` node.
pub fn string_value(node: &protobuf::Node) -> Option<&str> {
    match node.node.as_ref()? {
        NodeEnum::String(s) => Some(s.sval.as_str()),
        _ => None,
    }
}

/// The `AlterTableCmd`s of an `ALTER TABLE`, with their position.
pub fn alter_cmds(
    stmt: &protobuf::AlterTableStmt,
) -> impl Iterator<Item = (usize, &protobuf::AlterTableCmd, AlterTableType)> {
    stmt.cmds.iter().enumerate().filter_map(|(k, c)| match c.node.as_ref()? {
        NodeEnum::AlterTableCmd(cmd) => Some((k, cmd.as_ref(), cmd.subtype())),
        _ => None,
    })
}

/// A type as written: `pg_catalog.varchar` with modifiers `[50]`.
pub fn type_spec(tn: &protobuf::TypeName, using: bool) -> TypeSpec {
    let names: Vec<&str> = tn.names.iter().filter_map(string_value).collect();
    let modifiers = tn
        .typmods
        .iter()
        .filter_map(|m| match m.node.as_ref()? {
            NodeEnum::AConst(c) => match c.val.as_ref()? {
                protobuf::a_const::Val::Ival(i) => Some(i64::from(i.ival)),
                _ => None,
            },
            _ => None,
        })
        .collect();
    TypeSpec { name: names.join("."), modifiers, array: !tn.array_bounds.is_empty(), using }
}

impl TypeSpec {
    /// The type as people write it: `varchar(50)`, `integer[]`.
    pub fn display(&self) -> String {
        let base = self.name.strip_prefix("pg_catalog.").unwrap_or(&self.name);
        let base = match base {
            "int2" => "smallint",
            "int4" => "integer",
            "int8" => "bigint",
            "float4" => "real",
            "float8" => "double precision",
            "bpchar" => "char",
            "bool" => "boolean",
            other => other,
        };
        let mut out = base.to_string();
        if !self.modifiers.is_empty() {
            let mods: Vec<String> = self.modifiers.iter().map(i64::to_string).collect();
            out.push_str(&format!("({})", mods.join(",")));
        }
        if self.array {
            out.push_str("[]");
        }
        out
    }

    /// The bare type name without schema, lowercase.
    pub fn base(&self) -> &str {
        self.name.rsplit('.').next().unwrap_or(&self.name)
    }
}

/// Whether a CHECK constraint, as `pg_get_constraintdef` prints it (e.g.
/// `CHECK ((email IS NOT NULL))`), proves `column` is never NULL, so that
/// `SET NOT NULL` can skip its scan. Read with the parser, not by pattern.
pub fn check_proves_not_null(definition: &str, column: &str) -> bool {
    let sql = format!("ALTER TABLE t ADD {definition}");
    let Ok(parsed) = pg_query::parse(&sql, 0) else { return false };
    let Some(NodeEnum::AlterTableStmt(a)) =
        parsed.protobuf.stmts.first().and_then(|s| s.stmt.as_ref()).and_then(|n| n.node.as_ref())
    else {
        return false;
    };
    fn proves(node: Option<&protobuf::Node>, column: &str) -> bool {
        match node.and_then(|n| n.node.as_ref()) {
            Some(NodeEnum::NullTest(t)) => {
                t.nulltesttype() == protobuf::NullTestType::IsNotNull
                    && matches!(t.arg.as_deref().and_then(|a| a.node.as_ref()),
                        Some(NodeEnum::ColumnRef(c))
                            if c.fields.last().and_then(string_value) == Some(column))
            }
            Some(NodeEnum::BoolExpr(b)) if b.boolop() == protobuf::BoolExprType::AndExpr => {
                b.args.iter().any(|a| proves(Some(a), column))
            }
            _ => false,
        }
    }
    let proven =
        alter_cmds(a).any(|(_, cmd, _)| match cmd.def.as_ref().and_then(|d| d.node.as_ref()) {
            Some(NodeEnum::Constraint(c)) => proves(c.raw_expr.as_deref(), column),
            _ => false,
        });
    proven
}

fn is_comment(t: &ScanToken) -> bool {
    t.token == Token::SqlComment as i32 || t.token == Token::CComment as i32
}

/// A file parsed: each statement's tree (see [`crate::parse::each_statement`])
/// and the file's tokens.
struct Parsed {
    /// Each statement's text range in the file, and its tree.
    stmts: Vec<(Range<usize>, NodeEnum)>,
    tokens: Vec<ScanToken>,
}

impl Parsed {
    /// Stands in for a file the parser rejected: no statements, no tokens.
    fn empty() -> Parsed {
        Parsed { stmts: Vec::new(), tokens: Vec::new() }
    }
}

fn parse(input: &Input<'_>) -> Result<Parsed, InputError> {
    let located = |error| InputError { path: input.path.to_string(), error };
    let mut stmts = Vec::new();
    crate::parse::each_statement(input.text, |start, slice, node| {
        if let Some(node) = node {
            stmts.push((start..start + slice.len(), node));
        }
    })
    .map_err(located)?;
    let ends: Vec<usize> = stmts.iter().map(|(range, _)| range.end).collect();
    let tokens = crate::parse::scan_in_pieces(input.text, &ends).map_err(|_| {
        located(SyntaxError {
            message: "the file could not be scanned".into(),
            offset: 0,
            position: Position { line: 1, column: 1 },
        })
    })?;
    Ok(Parsed { stmts, tokens })
}

fn statements(parsed: &Parsed) -> Vec<Stmt<'_>> {
    let mut out = Vec::new();
    for (range, node) in &parsed.stmts {
        let (from, to) = (range.start, range.end);
        let tokens = &parsed.tokens;
        let lo = tokens.partition_point(|t| (t.start as usize) < from);
        let hi = tokens.partition_point(|t| (t.end as usize) <= to).max(lo);
        let code = |t: &&ScanToken| !is_comment(t);
        let (Some(first), Some(last)) =
            (tokens[lo..hi].iter().find(code), tokens[lo..hi].iter().rfind(code))
        else {
            continue;
        };
        out.push(Stmt {
            index: out.len(),
            node,
            start: first.start as usize,
            end: last.end as usize,
            facts: facts_of(node),
            toks: lo..hi,
            base: from,
        });
    }
    out
}

/// Checks `inputs` in order, as one run (e.g. the pending migrations).
pub fn check(inputs: &[Input<'_>], opts: &Options) -> Report {
    // A file the parser rejects is a finding; the others are checked as usual.
    let mut unparsable = Vec::new();
    let parsed: Vec<Parsed> = inputs
        .iter()
        .map(|input| {
            parse(input).unwrap_or_else(|e| {
                if !opts.skip.contains(&Code::BS003) {
                    unparsable.push(syntax_finding(&e));
                }
                Parsed::empty()
            })
        })
        .collect();
    let stmts: Vec<Vec<Stmt<'_>>> = parsed.iter().map(statements).collect();
    let batch = {
        let files: Vec<(&str, &str, &[Stmt<'_>])> =
            inputs.iter().zip(&stmts).map(|(i, s)| (i.path, i.text, s.as_slice())).collect();
        crate::batch::Batch::build(&files, opts.sequential)
    };

    // Tables created anywhere in the run, which the live check must not
    // call missing.
    let mut created_by_file: Vec<Vec<RelationName>> = Vec::new();
    for file in &stmts {
        let mut created: Vec<RelationName> = Vec::new();
        for s in file {
            if let Some(t) = &s.facts.creates_table {
                created.push(t.clone());
            }
        }
        created_by_file.push(created);
    }
    let mut report = Report::default();
    let mut run = RunFacts::default();
    let mut contexts: Vec<Cx<'_>> = Vec::new();
    // Contexts first (without the run facts), to collect what the run does.
    let empty = RunFacts::default();
    for (file, ((input, p), file_stmts)) in inputs.iter().zip(&parsed).zip(stmts).enumerate() {
        report
            .files
            .push(FileSummary { path: input.path.to_string(), statements: file_stmts.len() });
        let cx = Cx {
            input,
            opts,
            stmts: file_stmts,
            file,
            run: &empty,
            ignores: suppress::parse(input.text, &p.tokens),
            tokens: &p.tokens,
            batch: &batch,
        };
        collect_run_facts(&cx, &mut run);
        contexts.push(cx);
    }
    report.created_tables = created_by_file.into_iter().flatten().collect();

    for mut cx in contexts {
        cx.run = &run;
        let lines = Lines::new(cx.input.text);
        let mut hits = Vec::new();
        for code in Code::ALL.iter().filter(|c| !opts.skip.contains(c)) {
            if code.meta().phase == Phase::Statements {
                code.check(&cx, &mut hits);
            }
        }
        let mut findings: Vec<Finding> = Vec::new();
        for hit in hits {
            let latent = hit.latent;
            let finding = to_finding(&cx, &lines, hit);
            if latent {
                report.probes.push(finding);
            } else {
                findings.push(finding);
            }
        }
        let extra = suppress::apply(&cx, &mut findings);
        findings.extend(extra.into_iter().map(|h| to_finding(&cx, &lines, h)));
        let mut late = Vec::new();
        for code in Code::ALL.iter().filter(|c| !opts.skip.contains(c)) {
            if code.meta().phase == Phase::AfterSuppression {
                code.check(&cx, &mut late);
            }
        }
        findings.extend(late.into_iter().map(|h| to_finding(&cx, &lines, h)));
        findings.sort_by_key(|f| (f.span.start, f.code));
        report.findings.extend(findings);
    }
    report.findings.extend(unparsable);
    report
}

/// The finding for a file the parser rejected.
fn syntax_finding(e: &InputError) -> Finding {
    let pos = e.error.position;
    let mut f = file_finding(
        Code::BS003,
        &e.path,
        pos,
        format!("{}: the file cannot run as written", e.error.message),
        "fix the SQL at this line (a missing semicolon or a misspelt keyword is the usual cause)",
    );
    f.span = e.error.offset..e.error.offset;
    f
}

/// A finding about a whole file rather than a statement, rated as its
/// rule rates it: for what the engine finds in files (one that cannot be
/// read or run as declared) as well as for the parser's rejections.
pub fn file_finding(code: Code, path: &str, at: Position, message: String, help: &str) -> Finding {
    let mut f = Finding::new(code, path, at.line, message, help);
    f.column = at.column;
    f.end_column = at.column;
    f
}

/// Builds a finding from a hit: place, rating and the rule's mitigation.
fn to_finding(cx: &Cx<'_>, lines: &Lines<'_>, hit: Hit) -> Finding {
    let meta = hit.code.meta();
    let (probability, impact) = hit.rating.unwrap_or((meta.probability, meta.impact));
    let start = lines.position(hit.span.start);
    let end = lines.position(hit.span.end.max(hit.span.start));
    Finding {
        code: hit.code,
        rule: meta.name,
        severity: Severity::of(probability, impact),
        probability,
        impact,
        file: cx.input.path.to_string(),
        line: start.line,
        column: start.column,
        end_line: end.line,
        end_column: end.column,
        message: hit.message,
        help: hit.help,
        mitigation: meta.mitigation.to_string(),
        facts: Vec::new(),
        suppressed: None,
        statement: hit.stmt.map(|s| s + 1),
        span: hit.span,
        origin: hit
            .stmt
            .zip(hit.subject.as_ref())
            .and_then(|(stmt, subject)| cx.origin(stmt, subject)),
        subject: hit.subject,
    }
}

/// Row level security and policies across the run.
fn collect_run_facts(cx: &Cx<'_>, run: &mut RunFacts) {
    let mut dropped_policies: Vec<(RelationName, String)> = Vec::new();
    for stmt in &cx.stmts {
        match stmt.node {
            NodeEnum::AlterTableStmt(a) => {
                let Some(rv) = &a.relation else { continue };
                if alter_cmds(a).any(|(_, _, t)| t == AlterTableType::AtEnableRowSecurity) {
                    run.rls_enabled.push(Cx::rel(rv));
                }
            }
            NodeEnum::DropStmt(d) if d.remove_type() == ObjectType::ObjectPolicy => {
                // DROP POLICY name ON table: the object is [schema?, table, name].
                for obj in &d.objects {
                    if let Some(NodeEnum::List(l)) = obj.node.as_ref() {
                        let parts: Vec<&str> = l.items.iter().filter_map(string_value).collect();
                        if let Some((name, table)) = parts.split_last() {
                            if let Some((t, schema)) = table.split_last() {
                                dropped_policies.push((
                                    RelationName {
                                        schema: schema.last().map(|s| s.to_string()),
                                        name: t.to_string(),
                                    },
                                    name.to_string(),
                                ));
                            }
                        }
                    }
                }
            }
            NodeEnum::CreatePolicyStmt(p) => {
                let Some(rv) = &p.table else { continue };
                let table = Cx::rel(rv);
                let dropped_before = dropped_policies
                    .iter()
                    .any(|(t, n)| n == &p.policy_name && same_table(t, &table));
                run.policies.push(PolicyDef {
                    file: cx.file,
                    stmt: stmt.index,
                    table_is_new: cx.is_new(stmt.index, &table),
                    table,
                    name: p.policy_name.clone(),
                    span: cx.head(stmt, 3),
                    dropped_before,
                });
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quiet() -> Options {
        Options { runner_sets_lock_timeout: true, ..Options::default() }
    }

    fn codes(sql: &str) -> Vec<&'static str> {
        let report = check(&[Input::file("t.sql", sql)], &quiet());
        report.findings.iter().filter(|f| f.suppressed.is_none()).map(|f| f.code.as_str()).collect()
    }

    #[test]
    fn statements_on_tables_created_in_the_same_file_are_not_lock_risks() {
        let sql = "CREATE TABLE IF NOT EXISTS t (id int);\nCREATE INDEX IF NOT EXISTS t_id ON t (id);\nALTER TABLE t ADD CONSTRAINT c CHECK (id > 0);\n";
        assert_eq!(codes(sql), Vec::<&str>::new());
    }

    #[test]
    fn a_table_dropped_and_recreated_is_new_after_the_create() {
        let sql = "DROP TABLE IF EXISTS t;\nCREATE TABLE IF NOT EXISTS t (id int);\nCREATE INDEX IF NOT EXISTS t_id ON t (id);\n";
        assert_eq!(codes(sql), vec!["BS101"]);
    }

    #[test]
    fn a_table_created_by_an_earlier_file_of_the_run_is_new() {
        let a = Input::file("1.sql", "CREATE TABLE IF NOT EXISTS t (id int);");
        let b = Input::file("2.sql", "CREATE INDEX IF NOT EXISTS t_id ON t (id);");
        let report = check(&[a, b], &quiet());
        assert!(report.findings.is_empty(), "{:?}", report.findings);
    }

    #[test]
    fn files_checked_apart_do_not_make_each_others_tables_new() {
        let a = Input::file("1.sql", "CREATE TABLE IF NOT EXISTS t (id int);");
        let b = Input::file("2.sql", "CREATE INDEX IF NOT EXISTS t_id ON t (id);");
        let opts = Options { sequential: false, ..quiet() };
        let report = check(&[a, b], &opts);
        let codes: Vec<_> = report.findings.iter().map(|f| f.code.as_str()).collect();
        assert_eq!(codes, ["BS201"]);
    }

    #[test]
    fn findings_point_at_line_and_column() {
        let sql = "-- comment\nCREATE TABLE IF NOT EXISTS a (id int);\n  CREATE INDEX IF NOT EXISTS i ON users (email);\n";
        let report = check(&[Input::file("t.sql", sql)], &quiet());
        let f = &report.findings[0];
        assert_eq!((f.code.as_str(), f.line, f.column), ("BS201", 3, 3));
        assert_eq!(&sql[f.span.clone()], "CREATE INDEX");
    }

    #[test]
    fn check_definitions_that_prove_not_null_are_recognised() {
        assert!(check_proves_not_null("CHECK ((email IS NOT NULL))", "email"));
        assert!(check_proves_not_null("CHECK (((email IS NOT NULL) AND (id > 0)))", "email"));
        assert!(!check_proves_not_null("CHECK ((email IS NOT NULL))", "name"));
        assert!(!check_proves_not_null("CHECK (((email IS NOT NULL) OR (id > 0)))", "email"));
        assert!(!check_proves_not_null("not sql at all (", "email"));
    }

    #[test]
    fn a_syntax_error_is_a_finding_naming_file_line_and_column() {
        let report =
            check(&[Input::file("x/up.sql", "SELECT 1;\nCREATE TABEL t ();")], &Options::default());
        let f = &report.findings[0];
        assert_eq!((f.code, f.file.as_str(), f.line, f.column), (Code::BS003, "x/up.sql", 2, 8));
        assert_eq!(f.severity, Severity::Critical);
        assert!(f.message.starts_with("syntax error at or near \"TABEL\""), "{}", f.message);
    }
}
