//! Running the rules over the files of one check: parse each file once,
//! work out which tables each statement meets as new (created earlier in
//! the same migration) or existing, run every rule, apply
//! `-- backstop:ignore` comments, and turn hits into located findings.

use std::ops::Range;

use pg_query::protobuf::{AlterTableType, ObjectType, ScanToken};
use pg_query::NodeEnum;

use crate::codes::Code;
use crate::context::{Cx, Hit, OwnerTable, PolicyDef, RlsChange, RunFacts};
pub use crate::context::{Input, Options, DEFAULT_OWNER_COLUMNS};
use crate::model::{Finding, Origin, Subject};
use crate::risk::Severity;
use crate::rules::rls_missing::owner_table;
use crate::rules::{Family, Phase};
use crate::suppress;
use backstop_sql::facts::{facts_of, RelationName};
use backstop_sql::parse::{Lines, Position, SyntaxError};
use backstop_sql::stmt::{alter_cmds, is_comment, same_table, string_value, Stmt};

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

/// A file parsed: each statement's tree (see [`parse_all`])
/// and the file's tokens.
struct Parsed {
    /// Each statement's text range in the file, where its tree's locations
    /// count from, and its tree.
    stmts: Vec<(Range<usize>, usize, NodeEnum)>,
    tokens: Vec<ScanToken>,
}

impl Parsed {
    /// Stands in for a file the parser rejected: no statements, no tokens.
    fn empty() -> Parsed {
        Parsed { stmts: Vec::new(), tokens: Vec::new() }
    }
}

/// Every file parsed, or why it could not be. A short file is parsed
/// whole by the thread that reads it; a long one (a pulled schema, a data
/// migration) is cut into pieces ([`backstop_sql::parse::pieces`]) meanwhile, and
/// its pieces are then parsed on every core rather than holding up the
/// run. They go in batches of a few megabytes of text, each batch's trees
/// and tokens joining their file's before the next is parsed: a long data
/// migration's pieces are never all held twice.
fn parse_all(inputs: &[Input<'_>]) -> Vec<Result<Parsed, InputError>> {
    const BATCH_BYTES: usize = 4 << 20;
    let located = |input: &Input<'_>, error| InputError { path: input.path.to_string(), error };
    let first = crate::parallel::in_parallel(inputs.iter().collect(), |input| {
        let pieces = backstop_sql::parse::pieces(input.text).map_err(|e| located(input, e))?;
        match pieces.as_slice() {
            [whole] => parse_piece(input.text, whole.clone())
                .map(|parsed| (parsed, Vec::new()))
                .map_err(|e| located(input, e)),
            _ => Ok((Parsed::empty(), pieces)),
        }
    });
    let mut batches: Vec<Vec<(usize, Range<usize>)>> = vec![Vec::new()];
    let mut bytes = 0;
    let mut files = Vec::with_capacity(first.len());
    for (file, result) in first.into_iter().enumerate() {
        let (parsed, pieces) = match result {
            Ok(done) => done,
            Err(e) => {
                files.push(Err(e));
                continue;
            }
        };
        files.push(Ok(parsed));
        for range in pieces {
            if bytes + range.len() > BATCH_BYTES && bytes > 0 {
                batches.push(Vec::new());
                bytes = 0;
            }
            bytes += range.len();
            batches.last_mut().expect("one batch at least").push((file, range));
        }
    }
    for batch in batches.into_iter().filter(|b| !b.is_empty()) {
        let done = crate::parallel::in_parallel(batch, |(file, range)| {
            (file, parse_piece(inputs[file].text, range))
        });
        for (file, piece) in done {
            let Ok(all) = &mut files[file] else { continue };
            match piece {
                Ok(piece) => {
                    all.stmts.extend(piece.stmts);
                    all.tokens.extend(piece.tokens);
                }
                Err(e) => files[file] = Err(located(&inputs[file], e)),
            }
        }
    }
    files
}

/// One piece of a file parsed, with its tokens (offsets in the file).
fn parse_piece(text: &str, range: Range<usize>) -> Result<Parsed, SyntaxError> {
    let mut stmts = Vec::new();
    let mut inserts = Vec::new();
    backstop_sql::parse::parse_piece(text, range.clone(), |p| {
        if let Some(tree) = p.tree {
            let span = p.start..p.start + p.sql.len();
            if p.slimmed {
                inserts.push(span.clone());
            }
            stmts.push((span, p.base, tree));
        }
    })?;
    let base = i32::try_from(range.start).unwrap_or(i32::MAX);
    let tokens = backstop_sql::parse::scan(&text[range])
        .map_err(|_| SyntaxError {
            message: "the file could not be scanned".into(),
            offset: 0,
            position: Position { line: 1, column: 1 },
        })?
        .into_iter()
        .map(|mut t| {
            t.start += base;
            t.end += base;
            t
        })
        .collect();
    let tokens = backstop_sql::parse::without_data_rows(tokens, &inserts);
    Ok(Parsed { stmts, tokens })
}

fn statements(parsed: &Parsed) -> Vec<Stmt<'_>> {
    let mut out = Vec::new();
    for (range, base, node) in &parsed.stmts {
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
            base: *base,
        });
    }
    out
}

/// Checks `inputs` in order, as one run (e.g. the pending migrations).
pub fn check(inputs: &[Input<'_>], opts: &Options) -> Report {
    // A file the parser rejects is a finding; the others are checked as usual.
    let mut unparsable = Vec::new();
    let parsed: Vec<Parsed> = parse_all(inputs)
        .into_iter()
        .map(|result| {
            result.unwrap_or_else(|e| {
                if !opts.skip.contains(&Code::BS003) {
                    unparsable.push(syntax_finding(&e));
                }
                Parsed::empty()
            })
        })
        .collect();
    let stmts: Vec<Vec<Stmt<'_>>> =
        crate::parallel::in_parallel(parsed.iter().collect(), statements);
    let batch = {
        let files: Vec<(&str, &str, &[Stmt<'_>])> =
            inputs.iter().zip(&stmts).map(|(i, s)| (i.path, i.text, s.as_slice())).collect();
        crate::batch_names::Batch::build(&files, opts.sequential)
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
            lines: Lines::new(input.text),
        };
        collect_run_facts(&cx, &mut run);
        crate::rules::fk_without_index::collect(&cx, &mut run);
        crate::rules::set_not_null::collect(&cx, &mut run);
        contexts.push(cx);
    }
    crate::rules::fk_without_index::finish(&mut run, &batch);
    report.created_tables = created_by_file.into_iter().flatten().collect();

    // Each file's rules run apart, on every core.
    let run = &run;
    let per_file = crate::parallel::in_parallel(contexts, |mut cx| {
        cx.run = run;
        findings_of(&cx, opts)
    });
    for (findings, probes) in per_file {
        report.findings.extend(findings);
        report.probes.extend(probes);
    }
    report.findings.extend(unparsable);
    // Freeing every tree takes a twentieth of a check: it happens on
    // another thread, while the caller goes on with the report.
    // Its stack is the parser threads' (`parallel.rs`): freeing a deep tree recurses.
    let _ = std::thread::Builder::new()
        .name("free trees".into())
        .stack_size(8 << 20)
        .spawn(move || drop(parsed));
    report
}

/// The findings and the probes of one file, in the file's order.
fn findings_of(cx: &Cx<'_>, opts: &Options) -> (Vec<Finding>, Vec<Finding>) {
    let mut hits = Vec::new();
    for code in Code::ALL.iter().filter(|c| opts.runs(**c)) {
        if code.meta().phase == Phase::Statements {
            code.check(cx, &mut hits);
        }
    }
    let mut findings: Vec<Finding> = Vec::new();
    let mut probes: Vec<Finding> = Vec::new();
    for hit in hits.into_iter().filter_map(|h| judged_by_batch(cx, h)) {
        let latent = hit.latent;
        let finding = to_finding(cx, hit);
        if latent {
            probes.push(finding);
        } else {
            findings.push(finding);
        }
    }
    // An ignore comment covers a probe too: a live check that confirms
    // it keeps it suppressed, and the comment is not unused meanwhile.
    let mut extra = suppress::apply(cx, &mut probes);
    extra.extend(suppress::apply(cx, &mut findings));
    findings.extend(extra.into_iter().map(|h| to_finding(cx, h)));
    let mut late = Vec::new();
    for code in Code::ALL.iter().filter(|c| opts.runs(**c)) {
        if code.meta().phase == Phase::AfterSuppression {
            code.check(cx, &mut late);
        }
    }
    findings.extend(late.into_iter().map(|h| to_finding(cx, h)));
    findings.sort_by_key(|f| (f.span.start, f.code));
    (findings, probes)
}

/// `hit` as what the batch did before its statement leaves it, or
/// `None` when that clears it: a statement with IF EXISTS on a table
/// the batch already dropped does nothing, a lock on a table the batch made blocks
/// no one, a table or column it made holds no one's rows yet and no
/// running code knows it. A lock is judged by its table, also when
/// the column it concerns is one the batch added: the hit is then
/// about the table, whose size the live check weighs.
fn judged_by_batch(cx: &Cx<'_>, mut hit: Hit) -> Option<Hit> {
    let (Some(stmt), Some(subject)) = (hit.stmt, hit.subject.as_ref()) else {
        return Some(hit);
    };
    let created = |o: &Origin| matches!(o, Origin::Created { .. });
    // Dropped earlier in the batch and dropped again IF EXISTS: a no-op.
    if matches!(subject, Subject::Table { missing_ok: true, .. })
        && matches!(cx.origin(stmt, subject), Some(Origin::Dropped { .. }))
    {
        return None;
    }
    match hit.code.meta().family {
        Family::Locks => {
            let Some(table) = subject.table() else { return Some(hit) };
            if created(&cx.batch.table(cx.file, stmt, table)) {
                return None;
            }
            let column_made =
                matches!(subject, Subject::ColumnType { .. } | Subject::NotNull { .. })
                    && cx.origin(stmt, subject).as_ref().is_some_and(created);
            if column_made {
                let table = table.clone();
                hit.subject = Some(Subject::Table { table, missing_ok: false });
            }
            Some(hit)
        }
        Family::DataLoss | Family::Compatibility => {
            (!cx.origin(stmt, subject).as_ref().is_some_and(created)).then_some(hit)
        }
        _ => Some(hit),
    }
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
fn to_finding(cx: &Cx<'_>, hit: Hit) -> Finding {
    let meta = hit.code.meta();
    let (probability, impact) = hit.rating.unwrap_or((meta.probability, meta.impact));
    let start = cx.lines.position(hit.span.start);
    let end = cx.lines.position(hit.span.end.max(hit.span.start));
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

/// Row level security, owner tables and policies across the run.
fn collect_run_facts(cx: &Cx<'_>, run: &mut RunFacts) {
    let mut dropped_policies: Vec<(RelationName, String)> = Vec::new();
    for stmt in &cx.stmts {
        run.platform_made.extend(crate::rules::platform_dependency::creates(stmt));
        if crate::batch_names::runs_unseen(stmt.node) {
            run.unseen.push((cx.file, stmt.index));
        }
        if let Some((table, column)) = owner_table(stmt, &cx.opts.owner_columns) {
            run.owner_tables.push(OwnerTable { file: cx.file, stmt: stmt.index, table, column });
        }
        match stmt.node {
            NodeEnum::CreateStmt(c) => {
                if let Some(rv) = &c.relation {
                    run.created_tables.push((cx.file, stmt.index, Cx::rel(rv)));
                }
            }
            NodeEnum::AlterTableStmt(a) => {
                let Some(rv) = &a.relation else { continue };
                if alter_cmds(a).any(|(_, _, t)| t == AlterTableType::AtEnableRowSecurity) {
                    run.rls_enabled.push(Cx::rel(rv));
                }
                for (_, _, kind) in alter_cmds(a) {
                    if matches!(
                        kind,
                        AlterTableType::AtEnableRowSecurity
                            | AlterTableType::AtDisableRowSecurity
                            | AlterTableType::AtForceRowSecurity
                            | AlterTableType::AtNoForceRowSecurity
                    ) {
                        let (file, stmt, table) = (cx.file, stmt.index, Cx::rel(rv));
                        run.rls_changes.push(RlsChange { file, stmt, table, kind });
                    }
                }
            }
            NodeEnum::DropStmt(d) if d.remove_type() == ObjectType::ObjectPolicy => {
                let dropped = policies_dropped(d);
                let at =
                    |(t, n): &(RelationName, String)| (cx.file, stmt.index, t.clone(), n.clone());
                run.dropped_policies.extend(dropped.iter().map(at));
                dropped_policies.extend(dropped);
            }
            NodeEnum::CreateFunctionStmt(f) if !f.is_procedure => {
                let name = f.funcname.iter().rev().find_map(backstop_sql::stmt::string_value);
                let volatility = f.options.iter().find_map(|o| match o.node.as_ref() {
                    Some(NodeEnum::DefElem(d)) if d.defname == "volatility" => {
                        d.arg.as_deref().and_then(backstop_sql::stmt::string_value)
                    }
                    _ => None,
                });
                if let Some(name) = name {
                    let volatile = volatility.is_none_or(|v| v == "volatile");
                    let path = cx.input.path.to_string();
                    run.functions.push((cx.file, stmt.index, name.to_string(), volatile, path));
                }
            }
            NodeEnum::ViewStmt(v) => {
                if let Some(rv) = &v.view {
                    run.views.push((cx.file, stmt.index, Cx::rel(rv), cx.input.path.to_string()));
                }
            }
            NodeEnum::DropStmt(d) if d.remove_type() == ObjectType::ObjectTable => {
                let tables = d.objects.iter().filter_map(backstop_sql::stmt::object_name);
                run.dropped_tables.extend(tables.map(|t| (cx.file, stmt.index, t)));
            }
            // A DO block that drops a policy (`IF EXISTS (…) THEN DROP
            // POLICY …`) frees its name as a plain DROP POLICY does.
            NodeEnum::DoStmt(d) => {
                for sql in backstop_sql::plpgsql::sql_statements(d) {
                    let Ok(tree) = pg_query::parse(&sql, 0) else { continue };
                    for raw in &tree.protobuf.stmts {
                        if let Some(NodeEnum::DropStmt(d)) =
                            raw.stmt.as_ref().and_then(|s| s.node.as_ref())
                        {
                            if d.remove_type() == ObjectType::ObjectPolicy {
                                dropped_policies.extend(policies_dropped(d));
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

/// DROP POLICY name ON table: each object is [schema?, table, name].
fn policies_dropped(d: &pg_query::protobuf::DropStmt) -> Vec<(RelationName, String)> {
    let mut out = Vec::new();
    for obj in &d.objects {
        if let Some(NodeEnum::List(l)) = obj.node.as_ref() {
            let parts: Vec<&str> = l.items.iter().filter_map(string_value).collect();
            if let Some((name, table)) = parts.split_last() {
                if let Some((t, schema)) = table.split_last() {
                    let table = RelationName {
                        schema: schema.last().map(|s| s.to_string()),
                        name: t.to_string(),
                    };
                    out.push((table, name.to_string()));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use backstop_sql::stmt::check_proves_not_null;

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
    fn a_policy_dropped_in_a_do_block_may_be_created_again() {
        let create = "CREATE TABLE IF NOT EXISTS t (id int);\nALTER TABLE t ENABLE ROW LEVEL SECURITY;\nCREATE POLICY p ON t USING (true);\n";
        let again = "CREATE POLICY p ON t USING (id > 0);\n";
        assert!(codes(&format!("{create}{again}")).contains(&"BS502"));
        let drop = "DO $$ BEGIN\n  IF EXISTS (SELECT 1 FROM pg_policies WHERE policyname = 'p') THEN\n    DROP POLICY p ON t;\n  END IF;\nEND $$;\n";
        assert!(!codes(&format!("{create}{drop}{again}")).contains(&"BS502"));
    }

    #[test]
    fn a_policy_dropped_by_sql_no_reading_sees_is_not_judged_taken() {
        let create = "CREATE TABLE IF NOT EXISTS t (id int);\nALTER TABLE t ENABLE ROW LEVEL SECURITY;\nCREATE POLICY p ON t USING (true);\n";
        let function = "CREATE FUNCTION drop_policies(tbl text) RETURNS void LANGUAGE plpgsql AS $$\nDECLARE r record;\nBEGIN\n  FOR r IN SELECT policyname FROM pg_policies WHERE tablename = tbl LOOP\n    EXECUTE format('DROP POLICY %I ON %I', r.policyname, tbl);\n  END LOOP;\nEND $$;\n";
        let again = "CREATE POLICY p ON t USING (id > 0);\n";
        // Made, but not called: the name is still taken.
        assert!(codes(&format!("{create}{function}{again}")).contains(&"BS502"));
        for call in [
            "SELECT drop_policies('t');\n",
            "DO $$ BEGIN PERFORM drop_policies('t'); END $$;\n",
            "DO $$ DECLARE r record; BEGIN FOR r IN SELECT policyname FROM pg_policies WHERE tablename = 't' LOOP EXECUTE format('DROP POLICY %I ON t', r.policyname); END LOOP; END $$;\n",
        ] {
            let sql = format!("{create}{function}{call}{again}");
            assert!(!codes(&sql).contains(&"BS502"), "{call}");
        }
        // A block that only reads and creates frees no name.
        let reads = "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_policies WHERE policyname = 'q') THEN CREATE POLICY q ON t USING (true); END IF; END $$;\n";
        assert!(codes(&format!("{create}{reads}{again}")).contains(&"BS502"));
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
