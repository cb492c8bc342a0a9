//! Reading a migrations folder into one model, whatever its layout: the
//! diesel/backstop layout `VERSION_name/{up,down,verify}.sql` and the sqlx
//! layout `VERSION_name.up.sql` / `VERSION_name.down.sql` (or a plain
//! `VERSION_name.sql`). Every file is parsed here, so a syntax error stops
//! the run before anything touches the database.

mod layout;

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use backstop_lint::{Position, Statement, SyntaxError};

pub use layout::Layout;

/// The first-line marker of a migration that must run outside a transaction.
pub const NO_TRANSACTION_MARKER: &str = backstop_lint::NO_TRANSACTION_MARKER;

/// What is wrong with the migrations folder. All are input errors (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("migrations dir {path} does not exist; create it with `backstop init` or set [migrations] dir in backstop.toml")]
    DirMissing { path: PathBuf },
    #[error("could not read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not valid UTF-8 (first bad byte at offset {offset}); save the file as UTF-8")]
    NotUtf8 { path: PathBuf, offset: usize },
    #[error("{path}:{}:{}: {}", .error.position.line, .error.position.column, .error.message)]
    Syntax { path: PathBuf, error: SyntaxError },
    #[error("duplicate migration version {version}: {first} and {second}; give one of them a new version")]
    Duplicate { version: String, first: PathBuf, second: PathBuf },
    #[error("{path}: empty migration (no SQL statements, only comments or blanks); write the migration or delete it")]
    Empty { path: PathBuf },
    #[error("{path}: cannot tell the version from the name; name it VERSION_name (e.g. 20260107120000_add_clients) {hint}")]
    BadName { path: PathBuf, hint: &'static str },
    #[error("{path}: migration folder has no up.sql; add one or remove the folder")]
    MissingUp { path: PathBuf },
    #[error("{path}: a down migration without its up migration; add {expected}")]
    OrphanDown { path: PathBuf, expected: String },
    #[error(
        "{path}:{line}: `{statement}` inside a migration; Backstop runs each migration in a transaction \
         itself, remove it (or mark the migration with `{NO_TRANSACTION_MARKER}` as its first line)"
    )]
    TransactionControl { path: PathBuf, line: usize, statement: String },
    #[error(
        "{path}:{line}: {what} cannot run inside a transaction; put it in its own migration whose \
         first line is `{NO_TRANSACTION_MARKER}`"
    )]
    NeedsNoTransaction { path: PathBuf, line: usize, what: &'static str },
}

/// One SQL file of a migration, parsed.
#[derive(Debug, Clone)]
pub struct SqlFile {
    pub path: PathBuf,
    pub text: String,
    pub statements: Vec<Statement>,
}

impl SqlFile {
    /// The file position of a character offset (1-based, as PostgreSQL
    /// reports it) inside statement `index`.
    pub fn position_in(&self, index: usize, char_pos: Option<u32>) -> Position {
        let stmt = &self.statements[index];
        let Some(pos) = char_pos.filter(|p| *p > 0) else {
            return stmt.position;
        };
        let byte = stmt.sql.char_indices().nth(pos as usize - 1).map_or(stmt.sql.len(), |(i, _)| i);
        Position::of(&self.text, stmt.offset + byte)
    }
}

/// One migration, whatever layout it came from.
#[derive(Debug, Clone)]
pub struct Migration {
    pub version: String,
    pub name: String,
    pub up: SqlFile,
    pub down: Option<SqlFile>,
    pub verify: Option<SqlFile>,
    /// Over the up SQL's tokens: comments and whitespace do not count.
    pub checksum: String,
    /// Runs outside a transaction, statement by statement.
    pub no_transaction: bool,
    pub layout: Layout,
}

impl Migration {
    /// `VERSION_name`, as in file names and messages.
    pub fn label(&self) -> String {
        format!("{}_{}", self.version, self.name)
    }
}

/// Orders versions numerically part by part, so `9` < `10` and diesel's
/// `2026-01-07-120000` sorts by date.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    version_key(a).cmp(&version_key(b)).then_with(|| a.cmp(b))
}

fn version_key(v: &str) -> Vec<(usize, String)> {
    v.split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .map(|p| {
            let digits = p.trim_start_matches('0');
            (digits.len(), digits.to_string())
        })
        .collect()
}

/// Reads every migration in `dir`, sorted by version.
pub fn load(dir: &Path) -> Result<Vec<Migration>, SourceError> {
    load_with(dir, true)
}

/// Like [`load`], but lets through what only `migrate` must refuse
/// (`BEGIN`/`COMMIT` in a file, `CONCURRENTLY` without the no-transaction
/// marker), so that `backstop check` can report them as findings among
/// the others. Syntax errors still stop it.
pub fn load_for_check(dir: &Path) -> Result<Vec<Migration>, SourceError> {
    load_with(dir, false)
}

/// The files of one migration, found but not read.
#[derive(Debug, Clone)]
pub struct MigrationFiles {
    pub version: String,
    pub name: String,
    pub up: PathBuf,
    pub down: Option<PathBuf>,
}

/// The migrations in `dir`, sorted by version, without reading or parsing
/// them: for `backstop check`, which parses each file once itself.
pub fn discover(dir: &Path) -> Result<Vec<MigrationFiles>, SourceError> {
    if !dir.is_dir() {
        return Err(SourceError::DirMissing { path: dir.to_path_buf() });
    }
    let mut found: Vec<MigrationFiles> = layout::discover(dir)?
        .into_iter()
        .map(|f| MigrationFiles { version: f.version, name: f.name, up: f.up, down: f.down })
        .collect();
    found.sort_by(|a, b| compare_versions(&a.version, &b.version));
    Ok(found)
}

fn load_with(dir: &Path, strict: bool) -> Result<Vec<Migration>, SourceError> {
    if !dir.is_dir() {
        return Err(SourceError::DirMissing { path: dir.to_path_buf() });
    }
    let found = layout::discover(dir)?;
    let mut migrations = Vec::with_capacity(found.len());
    for entry in found {
        migrations.push(read_migration(entry, strict)?);
    }
    migrations.sort_by(|a, b| compare_versions(&a.version, &b.version));
    for pair in migrations.windows(2) {
        if version_key(&pair[0].version) == version_key(&pair[1].version) {
            return Err(SourceError::Duplicate {
                version: pair[1].version.clone(),
                first: pair[0].up.path.clone(),
                second: pair[1].up.path.clone(),
            });
        }
    }
    Ok(migrations)
}

fn read_migration(entry: layout::Found, strict: bool) -> Result<Migration, SourceError> {
    let up = read_sql(&entry.up)?.ok_or_else(|| SourceError::Empty { path: entry.up.clone() })?;
    let down = entry.down.as_deref().map(read_sql).transpose()?.flatten();
    let verify = entry.verify.as_deref().map(read_sql).transpose()?.flatten();
    let no_transaction = up.text.lines().next().is_some_and(|l| l.trim() == NO_TRANSACTION_MARKER);
    if strict {
        for file in [Some(&up), down.as_ref()].into_iter().flatten() {
            check_statements(file, no_transaction)?;
        }
        if let Some(v) = &verify {
            check_statements(v, false)?;
        }
    }
    let checksum = backstop_lint::checksum(&up.text)
        .map_err(|error| SourceError::Syntax { path: up.path.clone(), error })?;
    Ok(Migration {
        version: entry.version,
        name: entry.name,
        up,
        down,
        verify,
        checksum,
        no_transaction,
        layout: entry.layout,
    })
}

/// Reads and parses one SQL file; `None` when it holds no statement.
fn read_sql(path: &Path) -> Result<Option<SqlFile>, SourceError> {
    let bytes =
        std::fs::read(path).map_err(|source| SourceError::Read { path: path.into(), source })?;
    let text = String::from_utf8(bytes).map_err(|e| SourceError::NotUtf8 {
        path: path.into(),
        offset: e.utf8_error().valid_up_to(),
    })?;
    let statements = backstop_lint::split(&text)
        .map_err(|error| SourceError::Syntax { path: path.into(), error })?;
    if statements.is_empty() {
        return Ok(None);
    }
    Ok(Some(SqlFile { path: path.into(), text, statements }))
}

fn check_statements(file: &SqlFile, no_transaction: bool) -> Result<(), SourceError> {
    for stmt in &file.statements {
        if stmt.facts.transaction_control && !no_transaction {
            return Err(SourceError::TransactionControl {
                path: file.path.clone(),
                line: stmt.position.line,
                statement: stmt.sql.lines().next().unwrap_or_default().to_string(),
            });
        }
        if let (Some(what), false) = (stmt.facts.outside_transaction_only, no_transaction) {
            return Err(SourceError::NeedsNoTransaction {
                path: file.path.clone(),
                line: stmt.position.line,
                what,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn write(dir: &Path, rel: &str, text: &[u8]) {
        let path = dir.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    #[test]
    fn reads_both_layouts_in_version_order() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        write(d, "10_third/up.sql", b"CREATE TABLE c (id int);");
        write(d, "10_third/down.sql", b"DROP TABLE c;");
        write(d, "10_third/verify.sql", b"SELECT 1/count(*) FROM c WHERE false;");
        write(d, "9_second.up.sql", b"CREATE TABLE b (id int);");
        write(d, "9_second.down.sql", b"DROP TABLE b;");
        write(d, "1_first.sql", b"CREATE TABLE a (id int);");
        write(d, "README.md", b"not a migration");
        let ms = load(d).unwrap();
        let versions: Vec<_> = ms.iter().map(|m| m.version.as_str()).collect();
        assert_eq!(versions, ["1", "9", "10"]);
        assert_eq!(ms[0].name, "first");
        assert!(ms[0].down.is_none());
        assert_eq!(ms[1].layout, Layout::Files);
        assert!(ms[1].down.is_some());
        assert_eq!(ms[2].layout, Layout::Directory);
        assert!(ms[2].verify.is_some());
    }

    #[test]
    fn duplicate_versions_are_an_error_naming_both() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "0001_a/up.sql", b"SELECT 1;");
        write(tmp.path(), "1_b.up.sql", b"SELECT 2;");
        let err = load(tmp.path()).unwrap_err();
        assert!(matches!(err, SourceError::Duplicate { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains("0001_a") && text.contains("1_b.up.sql"), "{text}");
    }

    #[test]
    fn non_utf8_empty_and_syntax_errors_are_clear() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "1_a/up.sql", b"SELECT '\xff';");
        assert!(matches!(load(tmp.path()), Err(SourceError::NotUtf8 { offset: 8, .. })));

        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "1_a/up.sql", b"-- nothing yet\n\n");
        assert!(matches!(load(tmp.path()), Err(SourceError::Empty { .. })));

        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "1_a/up.sql", b"SELECT 1;\nCREATE TABEL x ();\n");
        let err = load(tmp.path()).unwrap_err().to_string();
        assert!(err.contains("up.sql:2:8: syntax error at or near \"TABEL\""), "{err}");
    }

    #[test]
    fn transaction_control_and_concurrent_index_need_the_marker() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "1_a/up.sql", b"BEGIN;\nCREATE TABLE t (id int);\nCOMMIT;\n");
        assert!(matches!(load(tmp.path()), Err(SourceError::TransactionControl { line: 1, .. })));

        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "1_a/up.sql", b"CREATE INDEX CONCURRENTLY i ON t (id);");
        assert!(matches!(load(tmp.path()), Err(SourceError::NeedsNoTransaction { .. })));

        let tmp = tempfile::tempdir().unwrap();
        write(
            tmp.path(),
            "1_a/up.sql",
            b"-- backstop:no-transaction\nCREATE INDEX CONCURRENTLY i ON t (id);",
        );
        assert!(load(tmp.path()).unwrap()[0].no_transaction);
    }

    #[test]
    fn comment_only_edits_keep_the_checksum_and_real_edits_change_it() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "1_a/up.sql", b"CREATE TABLE t (id int);");
        let before = load(tmp.path()).unwrap()[0].checksum.clone();
        write(tmp.path(), "1_a/up.sql", b"-- explained\nCREATE TABLE t (\n  id int  -- key\n);\n");
        assert_eq!(load(tmp.path()).unwrap()[0].checksum, before);
        write(tmp.path(), "1_a/up.sql", b"CREATE TABLE t (id bigint);");
        assert_ne!(load(tmp.path()).unwrap()[0].checksum, before);
    }

    #[test]
    fn versions_compare_numerically() {
        assert_eq!(compare_versions("9", "10"), Ordering::Less);
        assert_eq!(compare_versions("2026-01-07-120000", "2026-01-10-000000"), Ordering::Less);
        assert_eq!(compare_versions("20260107120000", "20260107120000"), Ordering::Equal);
    }

    #[test]
    fn error_positions_map_into_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "1_a/up.sql", "-- é\nSELECT 1;\n\nSELECT\n  nope;\n".as_bytes());
        let m = load(tmp.path()).unwrap().remove(0);
        // PostgreSQL reports 1-based character positions inside the statement.
        assert_eq!(m.up.position_in(1, Some(10)), Position { line: 5, column: 3 });
        assert_eq!(m.up.position_in(1, None), Position { line: 4, column: 1 });
    }
}
