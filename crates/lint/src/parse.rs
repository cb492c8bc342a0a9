//! Splitting migration SQL into statements with PostgreSQL's own parser, and
//! the facts about each statement that the engine needs before it runs them.

use pg_query::protobuf::{self, AlterTableType, DropBehavior, Token};
use pg_query::NodeEnum;

/// A place in a SQL text, 1-based, as editors show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl Position {
    /// The line and column of byte `offset` in `text` (columns count characters).
    pub fn of(text: &str, offset: usize) -> Self {
        let offset = offset.min(text.len());
        let before = &text[..floor_char_boundary(text, offset)];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Position { line, column }
    }
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// SQL the parser rejected, with the place of the offending token.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message} (line {}, column {})", position.line, position.column)]
pub struct SyntaxError {
    /// PostgreSQL's own message, e.g. `syntax error at or near "TABEL"`.
    pub message: String,
    /// Byte offset in the whole text.
    pub offset: usize,
    pub position: Position,
}

/// A relation named in a statement, as written (schema may be empty).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RelationName {
    pub schema: Option<String>,
    pub name: String,
}

impl RelationName {
    pub(crate) fn from_range_var(rv: &protobuf::RangeVar) -> Self {
        RelationName {
            schema: (!rv.schemaname.is_empty()).then(|| rv.schemaname.clone()),
            name: rv.relname.clone(),
        }
    }
}

/// What the engine must know about a statement before running it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// `BEGIN`, `COMMIT`, `ROLLBACK`, `SAVEPOINT`...: Backstop owns the transaction.
    pub transaction_control: bool,
    /// PostgreSQL refuses to run it inside a transaction block (e.g.
    /// `CREATE INDEX CONCURRENTLY`); names the construct.
    pub outside_transaction_only: Option<&'static str>,
    /// Relations whose storage the statement replaces (TRUNCATE, a rewriting
    /// ALTER TABLE, CLUSTER, VACUUM FULL): their rows must be counted around it.
    pub rewrites: Vec<RelationName>,
    /// The table a `CREATE TABLE` (or `CREATE TABLE AS`) makes.
    pub creates_table: Option<RelationName>,
    /// Tables a `DROP TABLE` removes.
    pub drops_tables: Vec<RelationName>,
    /// Columns `ALTER TABLE ... ADD COLUMN` adds: (table, column).
    pub adds_columns: Vec<(RelationName, String)>,
    /// Columns `ALTER TABLE ... DROP COLUMN` removes: (table, column).
    pub drops_columns: Vec<(RelationName, String)>,
    /// A `TRUNCATE ... CASCADE`, which also empties tables it does not name.
    pub truncate_cascade: bool,
    /// Tables a `TRUNCATE` empties.
    pub truncates: Vec<RelationName>,
    /// The table a `DELETE` removes rows from.
    pub deletes_from: Option<RelationName>,
    /// The value an `ALTER TYPE ... ADD VALUE` adds, and to which type.
    pub adds_enum_value: Option<EnumValue>,
    /// The enum type a `CREATE TYPE ... AS ENUM` makes, as written.
    pub creates_enum_type: Option<String>,
    /// A function or procedure whose body PostgreSQL reads only when it
    /// runs (any language but SQL), by name.
    pub defines_routine: Option<Routine>,
    /// `CREATE TRIGGER`: the table and the function it runs.
    pub trigger: Option<(RelationName, String)>,
    /// The table an `INSERT`, `UPDATE`, `DELETE`, `MERGE` or `COPY ... FROM` writes.
    pub writes_table: Option<RelationName>,
    /// `ALTER TABLE ... ENABLE ROW LEVEL SECURITY`.
    pub enables_rls: bool,
    /// A table (or view) or one of its columns that `ALTER ... RENAME` gives
    /// a new name: later statements know it by that name.
    pub renames: Option<Rename>,
}

/// `ALTER TABLE t RENAME TO n` (no column) or `ALTER TABLE t RENAME
/// COLUMN c TO n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rename {
    pub table: RelationName,
    /// The column renamed; `None` when the table itself is.
    pub column: Option<String>,
    pub to: String,
}

/// A label an `ALTER TYPE ... ADD VALUE` adds to an enum type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnumValue {
    /// The type as written: `mood` or `app.mood`.
    pub type_name: String,
    pub label: String,
}

/// A routine whose body is text until it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routine {
    pub name: String,
    /// `CREATE OR REPLACE`: an existing routine (and the triggers that run
    /// it) may get the new body.
    pub replace: bool,
}

/// One statement of a migration file.
#[derive(Debug, Clone)]
pub struct Statement {
    /// The statement's text, without the separating semicolon or surrounding blanks.
    pub sql: String,
    /// Byte offset of `sql` in the file.
    pub offset: usize,
    /// Where `sql` starts in the file.
    pub position: Position,
    pub facts: Facts,
}

/// Splits `text` into statements with the real parser; comments and blank
/// statements are dropped. A syntax error names its line and column.
///
/// Only one statement's parse tree is held at a time (see [`each_statement`]),
/// so a data migration of many megabytes costs memory in proportion to its
/// text, not to its tree.
pub fn split(text: &str) -> Result<Vec<Statement>, SyntaxError> {
    let lines = Lines::new(text);
    let mut statements = Vec::new();
    each_statement(text, |start, slice, node| {
        let (sql, lead) = trim_leading_comments(slice);
        if sql.is_empty() {
            return;
        }
        let offset = start + lead;
        let facts = node.as_ref().map(facts_of).unwrap_or_default();
        statements.push(Statement {
            sql: sql.to_string(),
            offset,
            position: lines.position(offset),
            facts,
        });
    })?;
    Ok(statements)
}

/// The statements of `text` as [`split`] gives them, but without their
/// facts: the parser only finds where each ends, and no tree is built.
/// For a caller that parses the statements itself (the check).
pub fn split_only(text: &str) -> Result<Vec<Statement>, SyntaxError> {
    let lines = Lines::new(text);
    let mut statements = Vec::new();
    for slice in split_in_windows(text).map_err(|e| locate_error(text, e))? {
        let start = slice.as_ptr() as usize - text.as_ptr() as usize;
        let (sql, lead) = trim_leading_comments(slice);
        if sql.is_empty() {
            continue;
        }
        let offset = start + lead;
        statements.push(Statement {
            sql: sql.to_string(),
            offset,
            position: lines.position(offset),
            facts: Facts::default(),
        });
    }
    Ok(statements)
}

/// Calls `f` with each statement of `text` in order: its byte offset, its
/// text (as PostgreSQL's parser delimits it, leading comments included) and
/// its tree. The parser first finds where each statement ends without
/// building trees for the caller, then each statement is parsed alone and
/// its tree dropped after `f` returns (so locations in the tree count from
/// the start of the statement's text, not of `text`). An `INSERT ...
/// VALUES` keeps only its first row in the tree: no rule reads the values,
/// and a data migration's rows would otherwise cost hundreds of bytes of
/// tree per value.
pub(crate) fn each_statement<'t>(
    text: &'t str,
    mut f: impl FnMut(usize, &'t str, Option<NodeEnum>),
) -> Result<(), SyntaxError> {
    for slice in split_in_windows(text).map_err(|e| locate_error(text, e))? {
        // The slices borrow from `text`, so the pointer difference is the offset.
        let start = slice.as_ptr() as usize - text.as_ptr() as usize;
        let tree = pg_query::parse(slice, 0).map_err(|e| {
            let error = locate_error(slice, e);
            let offset = start + error.offset;
            SyntaxError { offset, position: Position::of(text, offset), ..error }
        })?;
        let mut stmts = tree.protobuf.stmts;
        let mut node = stmts.pop().and_then(|raw| raw.stmt).and_then(|n| n.node);
        if let Some(node) = node.as_mut() {
            slim(node);
        }
        f(start, slice, node);
    }
    Ok(())
}

/// The statements of `text`, as [`pg_query::split_with_parser`] delimits
/// them, found a window at a time: the parser's memory for a whole text is
/// about six times its size. A window ends after a line that ends in `;`;
/// if the parser rejects the window (the cut fell inside a string, a
/// comment or a function body), the window doubles, up to the whole rest of
/// the text, whose verdict is final.
fn split_in_windows(text: &str) -> Result<Vec<&str>, pg_query::Error> {
    const WINDOW: usize = 1 << 20;
    let mut statements = Vec::new();
    let mut from = 0;
    let mut window = WINDOW;
    while from < text.len() {
        let rest = &text[from..];
        let cut = if rest.len() <= window {
            rest.len()
        } else {
            let mut end = window;
            while !rest.is_char_boundary(end) {
                end -= 1;
            }
            let ends_statement = |i: &usize| rest[..*i].trim_end_matches('\r').ends_with(';');
            match rest[..end].rmatch_indices('\n').map(|(i, _)| i).find(ends_statement) {
                Some(i) => i + 1,
                None => {
                    window *= 2;
                    continue;
                }
            }
        };
        match pg_query::split_with_parser(&rest[..cut]) {
            Ok(found) => {
                statements.extend(found);
                from += cut;
                window = WINDOW;
            }
            Err(e) if cut == rest.len() => return Err(e),
            Err(_) => window *= 2,
        }
    }
    Ok(statements)
}

/// The tokens of `text`, the same as one scan of the whole text would give,
/// but scanned piece by piece between the given statement ends: a scan of a
/// whole large file costs about fifteen times its size at once.
pub(crate) fn scan_in_pieces(
    text: &str,
    ends: &[usize],
) -> Result<Vec<protobuf::ScanToken>, pg_query::Error> {
    let mut tokens = Vec::new();
    let mut from = 0;
    for &end in ends.iter().chain(std::iter::once(&text.len())) {
        let Some(piece) = text.get(from..end).filter(|p| !p.is_empty()) else { continue };
        let base = i32::try_from(from).unwrap_or(i32::MAX);
        tokens.extend(pg_query::scan(piece)?.tokens.into_iter().map(|mut t| {
            t.start += base;
            t.end += base;
            t
        }));
        from = end;
    }
    Ok(tokens)
}

/// Drops the rows after the first of an `INSERT ... VALUES`.
fn slim(node: &mut NodeEnum) {
    let NodeEnum::InsertStmt(insert) = node else { return };
    let Some(NodeEnum::SelectStmt(select)) =
        insert.select_stmt.as_mut().and_then(|s| s.node.as_mut())
    else {
        return;
    };
    select.values_lists.truncate(1);
    select.values_lists.shrink_to_fit();
}

/// Byte offsets of line starts, for turning many offsets of one text into
/// line and column without rescanning it each time.
pub(crate) struct Lines<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Lines { text, starts }
    }

    /// The 1-based line of byte `offset`, without counting columns.
    pub(crate) fn line(&self, offset: usize) -> usize {
        self.starts.partition_point(|&s| s <= offset.min(self.text.len()))
    }

    pub(crate) fn position(&self, offset: usize) -> Position {
        let offset = floor_char_boundary(self.text, offset.min(self.text.len()));
        let line = self.starts.partition_point(|&s| s <= offset);
        let start = self.starts[line - 1];
        Position { line, column: self.text[start..offset].chars().count() + 1 }
    }
}

/// Strips blanks and comments before a statement and blanks after it, so that
/// line numbers point at the statement's first keyword. Returns the text and
/// how many bytes were dropped at the front.
fn trim_leading_comments(slice: &str) -> (&str, usize) {
    // Most statements start with a keyword: no comment to skip, no scan.
    let lead = slice.len() - slice.trim_start_matches(|c: char| c.is_ascii_whitespace()).len();
    let rest = &slice[lead..];
    if !rest.starts_with("--") && !rest.starts_with("/*") {
        return if rest.trim_end().is_empty() {
            ("", slice.len())
        } else {
            (rest.trim_end(), lead)
        };
    }
    let tokens = pg_query::scan(slice).map(|s| s.tokens).unwrap_or_default();
    let first = tokens.iter().find(|t| !is_comment(t.token)).map(|t| t.start as usize);
    match first {
        Some(start) => (slice[start..].trim_end(), start),
        None => ("", slice.len()),
    }
}

pub(crate) fn is_comment(token: i32) -> bool {
    token == Token::SqlComment as i32 || token == Token::CComment as i32
}

impl Statement {
    /// Every string literal in the statement, as written but unquoted.
    /// Read on demand: a data migration holds millions.
    pub fn string_literals(&self) -> Vec<String> {
        let Ok(scan) = pg_query::scan(&self.sql) else {
            return Vec::new();
        };
        scan.tokens
            .iter()
            .filter(|t| t.token == Token::Sconst as i32)
            .filter_map(|t| self.sql.get(t.start as usize..t.end as usize))
            .map(|lit| lit.trim_start_matches(['E', 'e']).trim_matches('\'').replace("''", "'"))
            .collect()
    }
}

pub(crate) fn facts_of(node: &NodeEnum) -> Facts {
    let mut facts = Facts::default();
    match node {
        NodeEnum::TransactionStmt(_) => facts.transaction_control = true,
        NodeEnum::IndexStmt(s) if s.concurrent => {
            facts.outside_transaction_only = Some("CREATE INDEX CONCURRENTLY")
        }
        NodeEnum::DropStmt(s) if s.concurrent => {
            facts.outside_transaction_only = Some("DROP INDEX CONCURRENTLY")
        }
        NodeEnum::ReindexStmt(s) if has_option(&s.params, "concurrently") => {
            facts.outside_transaction_only = Some("REINDEX CONCURRENTLY");
        }
        NodeEnum::VacuumStmt(s) if s.is_vacuumcmd => {
            facts.outside_transaction_only = Some("VACUUM");
            if has_option(&s.options, "full") {
                facts.rewrites.extend(s.rels.iter().filter_map(|r| match &r.node {
                    Some(NodeEnum::VacuumRelation(v)) => {
                        v.relation.as_ref().map(RelationName::from_range_var)
                    }
                    _ => None,
                }));
            }
        }
        NodeEnum::CreateStmt(s) => {
            facts.creates_table = s.relation.as_ref().map(RelationName::from_range_var);
        }
        NodeEnum::CreateTableAsStmt(s) => {
            facts.creates_table =
                s.into.as_ref().and_then(|i| i.rel.as_ref()).map(RelationName::from_range_var);
        }
        NodeEnum::CreatedbStmt(_) => facts.outside_transaction_only = Some("CREATE DATABASE"),
        NodeEnum::DropdbStmt(_) => facts.outside_transaction_only = Some("DROP DATABASE"),
        NodeEnum::AlterSystemStmt(_) => facts.outside_transaction_only = Some("ALTER SYSTEM"),
        NodeEnum::CreateTableSpaceStmt(_) => {
            facts.outside_transaction_only = Some("CREATE TABLESPACE")
        }
        NodeEnum::DropTableSpaceStmt(_) => facts.outside_transaction_only = Some("DROP TABLESPACE"),
        NodeEnum::TruncateStmt(s) => {
            facts.truncate_cascade = s.behavior == DropBehavior::DropCascade as i32;
            facts.truncates.extend(s.relations.iter().filter_map(|r| match &r.node {
                Some(NodeEnum::RangeVar(rv)) => Some(RelationName::from_range_var(rv)),
                _ => None,
            }));
            facts.rewrites.extend(facts.truncates.iter().cloned());
        }
        NodeEnum::DeleteStmt(s) => {
            facts.deletes_from = written(&s.relation);
            facts.writes_table = facts.deletes_from.clone();
        }
        NodeEnum::ClusterStmt(s) => {
            facts.rewrites.extend(s.relation.as_ref().map(RelationName::from_range_var));
        }
        NodeEnum::DropStmt(s) if s.remove_type == protobuf::ObjectType::ObjectTable as i32 => {
            facts.drops_tables.extend(s.objects.iter().filter_map(dropped_name));
        }
        NodeEnum::AlterTableStmt(s) => {
            if let Some(rel) = s.relation.as_ref().map(RelationName::from_range_var) {
                for cmd in s.cmds.iter().filter_map(|c| match &c.node {
                    Some(NodeEnum::AlterTableCmd(cmd)) => Some(cmd),
                    _ => None,
                }) {
                    match AlterTableType::try_from(cmd.subtype) {
                        Ok(AlterTableType::AtAddColumn) => {
                            if let Some(NodeEnum::ColumnDef(col)) =
                                cmd.def.as_ref().and_then(|d| d.node.as_ref())
                            {
                                facts.adds_columns.push((rel.clone(), col.colname.clone()));
                            }
                        }
                        Ok(AlterTableType::AtDropColumn) => {
                            facts.drops_columns.push((rel.clone(), cmd.name.clone()));
                        }
                        Ok(AlterTableType::AtEnableRowSecurity) => facts.enables_rls = true,
                        _ => {}
                    }
                }
            }
            let rewriting = s.cmds.iter().any(|c| match &c.node {
                Some(NodeEnum::AlterTableCmd(cmd)) => rewrites_table(cmd.subtype),
                _ => false,
            });
            if rewriting {
                facts.rewrites.extend(s.relation.as_ref().map(RelationName::from_range_var));
            }
        }
        NodeEnum::AlterEnumStmt(s) if !s.new_val.is_empty() => {
            let type_name = dotted(&s.type_name);
            facts.adds_enum_value = Some(EnumValue { type_name, label: s.new_val.clone() });
        }
        NodeEnum::RenameStmt(s) => facts.renames = rename_of(s),
        NodeEnum::CreateEnumStmt(s) => facts.creates_enum_type = Some(dotted(&s.type_name)),
        NodeEnum::CreateFunctionStmt(f) if f.sql_body.is_none() && routine_language(f) != "sql" => {
            let name = f.funcname.last().map(|n| dotted(std::slice::from_ref(n)));
            facts.defines_routine = name.map(|name| Routine { name, replace: f.replace });
        }
        NodeEnum::CreateTrigStmt(t) => {
            let table = t.relation.as_ref().map(RelationName::from_range_var);
            let function = t.funcname.last().map(|n| dotted(std::slice::from_ref(n)));
            facts.trigger = table.zip(function);
        }
        NodeEnum::InsertStmt(s) => facts.writes_table = written(&s.relation),
        NodeEnum::UpdateStmt(s) => facts.writes_table = written(&s.relation),
        NodeEnum::MergeStmt(s) => facts.writes_table = written(&s.relation),
        NodeEnum::CopyStmt(s) if s.is_from => facts.writes_table = written(&s.relation),
        _ => {}
    }
    facts
}

fn rename_of(s: &protobuf::RenameStmt) -> Option<Rename> {
    use protobuf::ObjectType as T;
    let table = s.relation.as_ref().map(RelationName::from_range_var)?;
    let column = match s.rename_type() {
        T::ObjectTable | T::ObjectView | T::ObjectMatview | T::ObjectForeignTable => None,
        T::ObjectColumn => Some(s.subname.clone()),
        _ => return None,
    };
    Some(Rename { table, column, to: s.newname.clone() })
}

fn written(relation: &Option<protobuf::RangeVar>) -> Option<RelationName> {
    relation.as_ref().map(RelationName::from_range_var)
}

/// `a.b` from a list of `String` nodes.
fn dotted(items: &[protobuf::Node]) -> String {
    let parts: Vec<&str> = items
        .iter()
        .filter_map(|i| match &i.node {
            Some(NodeEnum::String(s)) => Some(s.sval.as_str()),
            _ => None,
        })
        .collect();
    parts.join(".")
}

/// The `LANGUAGE` of a `CREATE FUNCTION`, lowercase (`sql` when unsaid).
pub(crate) fn routine_language(f: &protobuf::CreateFunctionStmt) -> String {
    f.options
        .iter()
        .find_map(|o| match &o.node {
            Some(NodeEnum::DefElem(d)) if d.defname == "language" => {
                match d.arg.as_ref().and_then(|a| a.node.as_ref()) {
                    Some(NodeEnum::String(s)) => Some(s.sval.to_lowercase()),
                    _ => None,
                }
            }
            _ => None,
        })
        .unwrap_or_else(|| "sql".to_string())
}

/// `DROP TABLE a.b` names its tables as lists of strings.
fn dropped_name(object: &protobuf::Node) -> Option<RelationName> {
    let Some(NodeEnum::List(list)) = &object.node else {
        return None;
    };
    let parts: Vec<String> = list
        .items
        .iter()
        .filter_map(|i| match &i.node {
            Some(NodeEnum::String(s)) => Some(s.sval.clone()),
            _ => None,
        })
        .collect();
    match parts.as_slice() {
        [name] => Some(RelationName { schema: None, name: name.clone() }),
        [.., schema, name] => {
            Some(RelationName { schema: Some(schema.clone()), name: name.clone() })
        }
        [] => None,
    }
}

/// ALTER TABLE subcommands that may give the table new storage.
fn rewrites_table(subtype: i32) -> bool {
    matches!(
        AlterTableType::try_from(subtype),
        Ok(AlterTableType::AtAddColumn
            | AlterTableType::AtAlterColumnType
            | AlterTableType::AtSetAccessMethod
            | AlterTableType::AtSetLogged
            | AlterTableType::AtSetUnLogged
            | AlterTableType::AtSetTableSpace
            | AlterTableType::AtDropExpression
            | AlterTableType::AtSetExpression)
    )
}

fn has_option(options: &[protobuf::Node], name: &str) -> bool {
    options.iter().any(|o| matches!(&o.node, Some(NodeEnum::DefElem(d)) if d.defname == name))
}

/// Finds where a statement the parser rejects goes wrong. The parser's Rust
/// binding reports only the message, so the offending token is found by
/// parsing ever longer prefixes: the first prefix whose error is no longer
/// "at end of input" ends with the token PostgreSQL complains about.
pub(crate) fn locate_error(text: &str, err: pg_query::Error) -> SyntaxError {
    let message = match err {
        pg_query::Error::Parse(m) | pg_query::Error::Scan(m) | pg_query::Error::Split(m) => m,
        other => other.to_string(),
    };
    let offset = error_offset(text).unwrap_or(0);
    SyntaxError { message, offset, position: Position::of(text, offset) }
}

fn error_offset(text: &str) -> Option<usize> {
    let tokens = match pg_query::scan(text) {
        Ok(scan) => scan.tokens,
        // The scanner itself failed (e.g. an unterminated string): point at
        // the last token it could read before that.
        Err(_) => return Some(last_scannable_offset(text)),
    };
    let tokens: Vec<_> = tokens.into_iter().filter(|t| !is_comment(t.token)).collect();
    let fails_inside = |k: usize| -> bool {
        let end = tokens[k - 1].end as usize;
        match pg_query::split_with_parser(&text[..end]) {
            Ok(_) => false,
            Err(e) => !e.to_string().contains("at end of input"),
        }
    };
    // Smallest k in 1..=len with fails_inside(k); the property is monotone
    // because the parser reads left to right.
    let (mut lo, mut hi) = (1usize, tokens.len());
    if hi == 0 || !fails_inside(hi) {
        return Some(text.trim_end().len());
    }
    while lo < hi {
        let mid = (lo + hi) / 2;
        if fails_inside(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Some(tokens[lo - 1].start as usize)
}

fn last_scannable_offset(text: &str) -> usize {
    // Walk back from the end to the longest prefix the scanner accepts.
    let mut end = text.len();
    while end > 0 {
        end = floor_char_boundary(text, end - 1);
        if let Ok(scan) = pg_query::scan(&text[..end]) {
            return scan.tokens.last().map_or(0, |t| t.end as usize).min(text.len());
        }
    }
    0
}

/// Every table, view or sequence a statement reads or writes, as written
/// (`schema.name` or `name`); empty when it does not parse.
pub fn referenced_relations(sql: &str) -> Vec<String> {
    pg_query::parse(sql, 0).map(|p| p.tables()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::{checksum, checksum_split};

    #[test]
    fn splits_statements_with_dollar_quotes_and_semicolons_in_strings() {
        let sql = "-- header\nCREATE TABLE a (x text default ';');\n\nCREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;\n";
        let stmts = split(sql).unwrap();
        assert_eq!(stmts.len(), 2);
        assert_eq!(stmts[0].sql, "CREATE TABLE a (x text default ';')");
        assert_eq!(stmts[0].position, Position { line: 2, column: 1 });
        assert!(stmts[1].sql.starts_with("CREATE FUNCTION"));
        assert_eq!(stmts[1].position.line, 4);
    }

    #[test]
    fn syntax_error_points_at_the_offending_token() {
        let sql = "CREATE TABLE a (x int);\nCREATE TABEL b (y int);\n";
        let err = split(sql).unwrap_err();
        assert!(err.message.contains("TABEL"), "{}", err.message);
        assert_eq!(err.position, Position { line: 2, column: 8 });
    }

    #[test]
    fn syntax_error_at_end_of_input_points_at_the_end() {
        let err = split("SELECT (1").unwrap_err();
        assert!(err.message.contains("end of input"));
        assert_eq!(err.position, Position { line: 1, column: 10 });
    }

    #[test]
    fn comment_and_whitespace_edits_keep_the_checksum() {
        let a = checksum("CREATE TABLE t (id int);").unwrap();
        let many = "CREATE TABLE t (id int); -- one\nINSERT INTO t VALUES (1), (2);\n/* tail */";
        assert_eq!(
            checksum_split(many, &split(many).unwrap()).unwrap(),
            checksum(many).unwrap(),
            "scanning in pieces gives the checksum of one scan"
        );
        let b = checksum("-- why\ncreate   table T (\n  id INT -- key\n);").unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn literal_and_quoted_identifier_edits_change_the_checksum() {
        let a = checksum("ALTER TABLE t ALTER x SET DEFAULT 'a';").unwrap();
        let b = checksum("ALTER TABLE t ALTER x SET DEFAULT 'A';").unwrap();
        assert_ne!(a, b);
        let c = checksum("CREATE TABLE \"T\" (id int);").unwrap();
        let d = checksum("CREATE TABLE \"t\" (id int);").unwrap();
        assert_ne!(c, d);
    }

    #[test]
    fn facts_name_what_cannot_run_in_a_transaction() {
        let stmts = split("CREATE INDEX CONCURRENTLY i ON t (x); BEGIN; VACUUM t;").unwrap();
        assert_eq!(stmts[0].facts.outside_transaction_only, Some("CREATE INDEX CONCURRENTLY"));
        assert!(stmts[1].facts.transaction_control);
        assert_eq!(stmts[2].facts.outside_transaction_only, Some("VACUUM"));
    }

    #[test]
    fn facts_list_rewritten_and_truncated_tables() {
        let stmts = split(
            "TRUNCATE users, app.logs CASCADE; ALTER TABLE users ALTER COLUMN n TYPE bigint; ALTER TABLE users ADD CONSTRAINT c CHECK (n > 0) NOT VALID;",
        )
        .unwrap();
        assert!(stmts[0].facts.truncate_cascade);
        assert_eq!(stmts[0].facts.rewrites.len(), 2);
        assert_eq!(stmts[0].facts.rewrites[1].schema.as_deref(), Some("app"));
        assert_eq!(stmts[1].facts.rewrites[0].name, "users");
        assert!(stmts[2].facts.rewrites.is_empty());
    }

    #[test]
    fn facts_name_dropped_tables_and_added_or_dropped_columns() {
        let stmts = split(
            "DROP TABLE IF EXISTS a, app.b CASCADE; ALTER TABLE t ADD COLUMN c int, DROP COLUMN d;",
        )
        .unwrap();
        let dropped: Vec<_> = stmts[0]
            .facts
            .drops_tables
            .iter()
            .map(|r| (r.schema.as_deref(), r.name.as_str()))
            .collect();
        assert_eq!(dropped, [(None, "a"), (Some("app"), "b")]);
        assert_eq!(stmts[1].facts.adds_columns[0].1, "c");
        assert_eq!(stmts[1].facts.drops_columns[0].1, "d");
    }

    #[test]
    fn facts_name_renamed_tables_and_columns() {
        let stmts = split(
            "ALTER TABLE app.users RENAME TO accounts; ALTER TABLE t RENAME COLUMN a TO b; ALTER INDEX i RENAME TO j;",
        )
        .unwrap();
        let users = RelationName { schema: Some("app".into()), name: "users".into() };
        assert_eq!(
            stmts[0].facts.renames,
            Some(Rename { table: users, column: None, to: "accounts".into() })
        );
        let column = stmts[1].facts.renames.as_ref().unwrap();
        assert_eq!((column.column.as_deref(), column.to.as_str()), (Some("a"), "b"));
        assert_eq!(stmts[2].facts.renames, None, "an index is no table");
    }

    #[test]
    fn facts_name_created_tables() {
        let stmts = split("CREATE TABLE app.users (id int); CREATE TABLE t AS SELECT 1;").unwrap();
        let created = stmts[0].facts.creates_table.as_ref().unwrap();
        assert_eq!((created.schema.as_deref(), created.name.as_str()), (Some("app"), "users"));
        assert_eq!(stmts[1].facts.creates_table.as_ref().unwrap().name, "t");
    }

    #[test]
    fn enum_values_added_and_used_are_seen() {
        let stmts =
            split("ALTER TYPE mood ADD VALUE 'meh'; UPDATE t SET m = 'meh' WHERE m = 'it''s';")
                .unwrap();
        let added = stmts[0].facts.adds_enum_value.as_ref().unwrap();
        assert_eq!((added.type_name.as_str(), added.label.as_str()), ("mood", "meh"));
        assert_eq!(stmts[1].facts.writes_table.as_ref().unwrap().name, "t");
    }

    #[test]
    fn position_counts_characters_not_bytes() {
        assert_eq!(Position::of("é\nxé y", 6), Position { line: 2, column: 3 });
    }

    /// A text of several windows whose cuts fall inside a dollar-quoted
    /// body, a BEGIN ATOMIC body, a comment and CRLF lines is split exactly
    /// as one whole-text split does.
    #[test]
    fn split_in_windows_agrees_with_one_split_of_the_whole_text() {
        let mut text = String::new();
        let mut i = 0;
        while text.len() < 5 << 20 {
            i += 1;
            text.push_str(&match i % 5 {
                0 => format!(
                    "CREATE FUNCTION f{i}() RETURNS int LANGUAGE plpgsql AS $$\nBEGIN\n{}  RETURN 1;\nEND;\n$$;\n",
                    "  PERFORM 1;\n".repeat(3000)
                ),
                1 => format!(
                    "CREATE FUNCTION g{i}() RETURNS int LANGUAGE sql BEGIN ATOMIC\n{} SELECT 1;\nEND;\n",
                    " SELECT 1;\n".repeat(2000)
                ),
                2 => format!("/* a comment;\n{}*/ SELECT {i};\r\n", "x;\n".repeat(4000)),
                3 => format!("INSERT INTO t VALUES ('{}');\n", "a;\n".repeat(5000)),
                _ => format!("-- note;\nSELECT {i};\n"),
            });
        }
        let whole = pg_query::split_with_parser(&text).unwrap();
        let windows = split_in_windows(&text).unwrap();
        assert_eq!(windows.len(), whole.len());
        for (a, b) in windows.iter().zip(&whole) {
            assert_eq!(a.as_ptr(), b.as_ptr(), "each statement starts at the same place");
            assert_eq!(a, b);
        }
        let broken = format!("{text}SELECT (;\n");
        let error = split(&broken).unwrap_err();
        assert_eq!(error.position.line, broken.lines().count(), "{error}");
    }
}
