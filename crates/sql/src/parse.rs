//! Splitting migration SQL into statements with PostgreSQL's own parser,
//! each with the facts the engine needs before it runs it (`facts.rs`).

use pg_query::protobuf::{self, Token};
use pg_query::NodeEnum;
use std::ops::Range;

use crate::facts::{facts_of, Facts};

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
/// A data migration of many megabytes costs memory in proportion to its
/// text, not to its tree (see [`each_statement`]).
pub fn split(text: &str) -> Result<Vec<Statement>, SyntaxError> {
    let lines = Lines::new(text);
    let mut statements = Vec::new();
    each_statement(text, |parsed| {
        let (sql, lead) = trim_leading_comments(parsed.sql);
        if sql.is_empty() {
            return;
        }
        let offset = parsed.start + lead;
        let facts = parsed.tree.as_ref().map(facts_of).unwrap_or_default();
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

/// The size of text parsed in one call (see [`pieces`]): its trees take a
/// few megabytes at most.
const PARSE_WHOLE: usize = 64 << 10;

/// One statement as [`each_statement`] hands it over.
pub struct Parsed<'t> {
    /// Byte offset of `sql` in the text.
    pub start: usize,
    /// As PostgreSQL's parser delimits it, leading comments included.
    pub sql: &'t str,
    /// Where the tree's locations count from, as a byte offset in the text.
    pub base: usize,
    pub tree: Option<NodeEnum>,
    /// The tree is an `INSERT ... VALUES` whose rows after the first were
    /// dropped (see [`slim`]).
    pub slimmed: bool,
}

/// Calls `f` with each statement of `text` in order, parsing it a piece at
/// a time (see [`pieces`]).
pub fn each_statement<'t>(text: &'t str, mut f: impl FnMut(Parsed<'t>)) -> Result<(), SyntaxError> {
    for piece in pieces(text)? {
        parse_piece(text, piece, &mut f)?;
    }
    Ok(())
}

/// The pieces of `text` that are parsed one call each, in order, covering
/// the text: the whole text when it is short, else runs of whole
/// statements of about [`PARSE_WHOLE`] bytes, found by a split that builds
/// no trees. So the trees of one piece at most are built at once, and
/// memory follows the text's size, not its tree's; and the pieces of one
/// long file can be parsed on several cores.
pub fn pieces(text: &str) -> Result<Vec<Range<usize>>, SyntaxError> {
    if text.len() <= PARSE_WHOLE {
        let whole = 0..text.len();
        return Ok(vec![whole]);
    }
    let mut pieces = Vec::new();
    let mut from = 0;
    for sql in split_in_windows(text).map_err(|e| locate_error(text, e))? {
        // The slices borrow from `text`, so the pointer difference is the offset.
        let start = sql.as_ptr() as usize - text.as_ptr() as usize;
        if start + sql.len() - from > PARSE_WHOLE && start > from {
            pieces.push(from..start);
            from = start;
        }
    }
    pieces.push(from..text.len());
    Ok(pieces)
}

/// Parses the piece `range` of `text` (see [`pieces`]) in one call and
/// calls `f` with each of its statements. An `INSERT ... VALUES` keeps
/// only its first row in the tree: no rule reads the values, and a data
/// migration's rows would otherwise cost hundreds of bytes of tree per
/// value.
pub fn parse_piece<'t>(
    text: &'t str,
    range: Range<usize>,
    mut f: impl FnMut(Parsed<'t>),
) -> Result<(), SyntaxError> {
    let base = range.start;
    let piece = &text[range];
    let tree = pg_query::parse(piece, 0).map_err(|e| {
        let error = locate_error(piece, e);
        let offset = base + error.offset;
        SyntaxError { offset, position: Position::of(text, offset), ..error }
    })?;
    for raw in tree.protobuf.stmts {
        let start = usize::try_from(raw.stmt_location).unwrap_or(0).min(piece.len());
        let end = match usize::try_from(raw.stmt_len) {
            Ok(0) | Err(_) => piece.len(),
            Ok(len) => (start + len).min(piece.len()),
        };
        let (tree, slimmed) = match raw.stmt.and_then(|n| n.node).map(slim) {
            Some((tree, slimmed)) => (Some(tree), slimmed),
            None => (None, false),
        };
        f(Parsed { start: base + start, sql: &piece[start..end], base, tree, slimmed });
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

/// Calls `f` with the tokens of `text` in order, the same as one scan of
/// the whole text would give, but scanned in pieces of about
/// [`PARSE_WHOLE`] bytes cut at the given statement ends, each piece's
/// tokens let go before the next is scanned: a scan of a whole large file
/// costs about fifteen times its size at once, and its tokens alone more
/// than twice.
pub fn scan_in_pieces(
    text: &str,
    ends: &[usize],
    mut f: impl FnMut(&protobuf::ScanToken),
) -> Result<(), pg_query::Error> {
    let mut cuts = Vec::new();
    let (mut from, mut previous) = (0, 0);
    for &end in ends {
        if end - from > PARSE_WHOLE && previous > from {
            cuts.push(previous);
            from = previous;
        }
        previous = end;
    }
    cuts.push(text.len());
    let mut from = 0;
    for end in cuts {
        let Some(piece) = text.get(from..end).filter(|p| !p.is_empty()) else { continue };
        let base = i32::try_from(from).unwrap_or(i32::MAX);
        for mut t in scan(piece)? {
            t.start += base;
            t.end += base;
            f(&t);
        }
        from = end;
    }
    Ok(())
}

/// Drops the rows after the first of an `INSERT ... VALUES`; says
/// whether there were any.
fn slim(mut node: NodeEnum) -> (NodeEnum, bool) {
    let mut slimmed = false;
    if let NodeEnum::InsertStmt(insert) = &mut node {
        if let Some(NodeEnum::SelectStmt(select)) =
            insert.select_stmt.as_mut().and_then(|s| s.node.as_mut())
        {
            slimmed = select.values_lists.len() > 1;
            select.values_lists.truncate(1);
            select.values_lists.shrink_to_fit();
        }
    }
    (node, slimmed)
}

/// `tokens` (of a text, in order) without those of the rows after the
/// first of each `INSERT ... VALUES` in `inserts` (the statements' byte
/// ranges) that hold only constants: the tokens of a data migration's
/// rows cost more than twice its text, and the tree, which keeps only the
/// first row, has let them go already ([`slim`]). A row that names
/// anything (an identifier: a function, a column, a schema) keeps its
/// tokens for the rules that read names from tokens; comments are kept.
pub fn without_data_rows(
    tokens: Vec<protobuf::ScanToken>,
    inserts: &[Range<usize>],
) -> Vec<protobuf::ScanToken> {
    let mut dropped: Vec<Range<usize>> = Vec::new();
    for span in inserts {
        let lo = tokens.partition_point(|t| (t.start as usize) < span.start);
        let hi = tokens.partition_point(|t| (t.end as usize) <= span.end).max(lo);
        dropped
            .extend(constant_rows(&tokens[lo..hi]).into_iter().map(|r| r.start + lo..r.end + lo));
    }
    if dropped.is_empty() {
        return tokens;
    }
    let mut kept = Vec::with_capacity(tokens.len());
    let mut rows = dropped.iter().peekable();
    for (i, t) in tokens.into_iter().enumerate() {
        while rows.peek().is_some_and(|r| r.end <= i) {
            rows.next();
        }
        let in_row = rows.peek().is_some_and(|r| r.contains(&i));
        if !in_row || is_comment(t.token) {
            kept.push(t);
        }
    }
    kept.shrink_to_fit();
    kept
}

/// The token ranges (indexes into `stmt`, one statement's tokens) of the
/// rows after the first of its top-level `VALUES` that name nothing, each
/// with the comma before it.
fn constant_rows(stmt: &[protobuf::ScanToken]) -> Vec<Range<usize>> {
    let code: Vec<usize> = (0..stmt.len()).filter(|&i| !is_comment(stmt[i].token)).collect();
    let kind = |k: usize| code.get(k).map(|&i| stmt[i].token);
    let (open, close, comma) = (i32::from(b'('), i32::from(b')'), i32::from(b','));
    // The end of the parenthesised group opened at code[k]: the code index of its `)`.
    let group_end = |k: usize| -> Option<usize> {
        let mut depth = 0;
        for (j, &i) in code.iter().enumerate().skip(k) {
            match stmt[i].token {
                t if t == open => depth += 1,
                t if t == close => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(j);
                    }
                }
                _ => {}
            }
        }
        None
    };
    let mut depth = 0;
    let mut values = None;
    for (k, &i) in code.iter().enumerate() {
        match stmt[i].token {
            t if t == open => depth += 1,
            t if t == close => depth -= 1,
            t if t == Token::Values as i32 && depth == 0 => {
                values = Some(k);
                break;
            }
            _ => {}
        }
    }
    let mut rows = Vec::new();
    let Some(values) = values else { return rows };
    if kind(values + 1) != Some(open) {
        return rows;
    }
    let Some(mut end) = group_end(values + 1) else { return rows };
    while kind(end + 1) == Some(comma) && kind(end + 2) == Some(open) {
        let Some(row_end) = group_end(end + 2) else { break };
        let names = code[end + 2..=row_end].iter().any(|&i| {
            stmt[i].token == Token::Ident as i32 || stmt[i].token == Token::Uident as i32
        });
        if !names {
            rows.push(code[end + 1]..code[row_end] + 1);
        }
        end = row_end;
    }
    rows
}

/// Byte offsets of line starts, for turning many offsets of one text into
/// line and column without rescanning it each time.
pub struct Lines<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    pub fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Lines { text, starts }
    }

    /// The 1-based line of byte `offset`, without counting columns.
    pub fn line(&self, offset: usize) -> usize {
        self.starts.partition_point(|&s| s <= offset.min(self.text.len()))
    }

    pub fn position(&self, offset: usize) -> Position {
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
    let tokens = scan(slice).unwrap_or_default();
    let first = tokens.iter().find(|t| !is_comment(t.token)).map(|t| t.start as usize);
    match first {
        Some(start) => (slice[start..].trim_end(), start),
        None => ("", slice.len()),
    }
}

/// The tokens of `text`, straight from PostgreSQL's scanner (no protobuf
/// round trip). Text of blanks alone has none, and is not handed to the
/// binding, which reads a null list then.
pub fn scan(text: &str) -> Result<Vec<protobuf::ScanToken>, pg_query::Error> {
    if text.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)) {
        return Ok(Vec::new());
    }
    pg_query::scan_tokens(text)
}

pub fn is_comment(token: i32) -> bool {
    token == Token::SqlComment as i32 || token == Token::CComment as i32
}

impl Statement {
    /// Every string literal in the statement, as written but unquoted.
    /// Read on demand: a data migration holds millions.
    pub fn string_literals(&self) -> Vec<String> {
        let Ok(tokens) = scan(&self.sql) else {
            return Vec::new();
        };
        tokens
            .iter()
            .filter(|t| t.token == Token::Sconst as i32)
            .filter_map(|t| self.sql.get(t.start as usize..t.end as usize))
            .map(|lit| lit.trim_start_matches(['E', 'e']).trim_matches('\'').replace("''", "'"))
            .collect()
    }
}

/// Finds where a statement the parser rejects goes wrong. The parser's Rust
/// binding reports only the message, so the offending token is found by
/// parsing ever longer prefixes: the first prefix whose error is no longer
/// "at end of input" ends with the token PostgreSQL complains about.
pub fn locate_error(text: &str, err: pg_query::Error) -> SyntaxError {
    let message = match err {
        pg_query::Error::Parse(m) | pg_query::Error::Scan(m) | pg_query::Error::Split(m) => m,
        other => other.to_string(),
    };
    let offset = error_offset(text).unwrap_or(0);
    SyntaxError { message, offset, position: Position::of(text, offset) }
}

fn error_offset(text: &str) -> Option<usize> {
    let tokens = match scan(text) {
        Ok(tokens) => tokens,
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
        if let Ok(tokens) = scan(&text[..end]) {
            return tokens.last().map_or(0, |t| t.end as usize).min(text.len());
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
    use crate::facts::{RelationName, Rename};

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

    /// A short text is parsed whole in one call; its statements, their
    /// places and their trees must be what splitting first gives: the same
    /// slices as the parser's own split, and tree locations that point
    /// into the statement.
    #[test]
    fn a_text_parsed_whole_gives_what_splitting_first_gives() {
        let text = "-- lead\nCREATE TABLE a (id int);\n/* c; */ SELECT 'x;y' AS v;;\r\n\
            CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$;\n\
            INSERT INTO a VALUES (1), (2), (3);\nALTER TABLE a ADD COLUMN b text -- no semicolon";
        assert!(text.len() <= PARSE_WHOLE);
        let mut whole = Vec::new();
        each_statement(text, |p| {
            let tree = p.tree.expect("every statement has a tree");
            whole.push((p.start, p.sql, p.base, tree));
        })
        .unwrap();
        let split = pg_query::split_with_parser(text).unwrap();
        assert_eq!(whole.len(), split.len());
        for ((start, sql, _, tree), expected) in whole.iter().zip(&split) {
            assert_eq!(*sql, *expected);
            assert_eq!(&text[*start..*start + sql.len()], *expected);
            let alone = pg_query::parse(expected, 0).unwrap().protobuf.stmts[0].stmt.clone();
            let alone = alone.and_then(|n| n.node).map(|n| slim(n).0).unwrap();
            assert_eq!(
                tree.deparse(Default::default()).unwrap(),
                alone.deparse(Default::default()).unwrap()
            );
        }
        // Locations count from `base`: the INSERT's table is where it is written.
        let (_, _, base, insert) = &whole[3];
        let NodeEnum::InsertStmt(insert) = insert else { panic!("{insert:?}") };
        let at = *base + insert.relation.as_ref().unwrap().location as usize;
        assert!(text[at..].starts_with("a VALUES"), "{}", &text[at..]);

        // A long text is parsed in pieces that cover it, cut between
        // statements: the same statements, and locations still in place.
        let long = format!("{text}\n;\n").repeat(3 * PARSE_WHOLE / text.len());
        let cut = pieces(&long).unwrap();
        assert!(cut.len() >= 3, "{cut:?}");
        assert!(cut.windows(2).all(|w| w[0].end == w[1].start) && cut[0].start == 0);
        assert_eq!(cut.last().unwrap().end, long.len());
        let split = pg_query::split_with_parser(&long).unwrap();
        let mut n = 0;
        each_statement(&long, |p| {
            assert_eq!(p.sql, split[n]);
            assert_eq!(&long[p.start..p.start + p.sql.len()], split[n]);
            if let Some(NodeEnum::InsertStmt(insert)) = &p.tree {
                let at = p.base + insert.relation.as_ref().unwrap().location as usize;
                assert!(long[at..].starts_with("a VALUES"), "{}", &long[at..]);
            }
            n += 1;
        })
        .unwrap();
        assert_eq!(n, split.len());
    }

    /// The tokens of a data migration's rows cost more than twice its
    /// text; only rows of constants after the first go, with their comma.
    #[test]
    fn only_the_later_rows_of_constants_lose_their_tokens() {
        let text = "INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y'), (auth.uid(), 'z'), \
                    (3, -4.5) -- note\n, (NULL, E'q''s') ON CONFLICT (a) DO NOTHING RETURNING a";
        let tokens = scan(text).unwrap();
        let whole = [Range { start: 0, end: text.len() }];
        let kept = without_data_rows(tokens.clone(), &whole);
        let words = |ts: &[protobuf::ScanToken]| {
            ts.iter().map(|t| &text[t.start as usize..t.end as usize]).collect::<Vec<_>>().join(" ")
        };
        assert_eq!(
            words(&kept),
            "INSERT INTO t ( a , b ) VALUES ( 1 , 'x' ) , ( auth . uid ( ) , 'z' ) -- note \
             ON CONFLICT ( a ) DO NOTHING RETURNING a"
        );
        // A statement that is not a slimmed INSERT keeps every token.
        assert_eq!(without_data_rows(tokens.clone(), &[]).len(), tokens.len());
        let select = "SELECT * FROM (VALUES (1), (2)) v";
        let all = scan(select).unwrap();
        let whole = [Range { start: 0, end: select.len() }];
        assert_eq!(without_data_rows(all.clone(), &whole).len(), all.len());
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
