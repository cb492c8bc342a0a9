//! Reading a migrations folder into one model, whatever tool wrote it:
//! backstop/diesel folders, sqlx and golang-migrate file pairs, dbmate and
//! goose files with marked sections, Flyway scripts and sqitch plans, and
//! the up-only layouts of the Supabase CLI, Prisma and Drizzle. Each
//! layout is an adapter (one file each) that finds the migrations, maps the
//! tool's own options onto the no-transaction flag and orders the versions
//! by the tool's own rule.
//!
//! Folders are read leniently and run strictly: a file that does not parse,
//! or cannot run the way it is declared, stays in the model with its
//! [`Problem`]; only a command that would execute that very file refuses.
//! A file a layout names that cannot be read (a symlink that leads nowhere,
//! to a folder or round in a loop) is a problem of its migration, never
//! skipped. Files that are not migrations are ignored and listed; a file that looks
//! like a migration but that its tool would never run is a [`Stray`]: a
//! finding, never a reason to stop reading.

pub mod atlas;
mod atlas_files;
pub mod drizzle;
mod error;
mod file_pairs;
mod flyway;
mod flyway_places;
mod folder_per_migration;
pub(crate) mod graphile;
pub mod hasura;
mod js;
mod kept;
mod layout;
mod nested;
mod node_pg_migrate;
mod prisma;
pub mod project;
mod runs_tool;
mod sectioned_files;
pub mod sqitch;
mod supabase;
mod transactions;
mod unclaimed;
mod unreadable;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use backstop_sql::{Position, Statement};

pub use error::SourceError;
pub use layout::{Layout, Place};
pub use project::HistoryTable;
pub use runs_tool::runs_tool;
pub use transactions::{Boundary, Segment};

/// The first-line marker of a migration that must run outside a transaction.
pub const NO_TRANSACTION_MARKER: &str = backstop_lint::NO_TRANSACTION_MARKER;

/// Which part of a migration a [`Problem`] is in, so that only the command
/// that would run that part refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Part {
    Up,
    Down,
    Verify,
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Part::Up => "up",
            Part::Down => "down",
            Part::Verify => "verify",
        })
    }
}

/// What kind of thing is wrong with a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The file could not be read, or is not UTF-8.
    Unreadable,
    /// PostgreSQL's parser rejects it.
    Syntax,
    /// An up with no statement (diesel and backstop refuse those).
    Empty,
    /// `BEGIN`/`COMMIT` in a file Backstop wraps in its own transaction.
    TransactionControl,
    /// A statement PostgreSQL refuses inside a transaction, in a
    /// migration declared transactional.
    NeedsNoTransaction,
    /// The layout names a file that is not there (a sqitch plan entry
    /// without its deploy script, a migration folder without up.sql).
    MissingFile,
    /// The tool's migration cannot be run by Backstop (a goose Go
    /// migration, an option that changes semantics Backstop does not have).
    Unsupported,
    /// The layout's own list of its migrations (drizzle's journal) cannot
    /// be read, so the migration's order and identity are unknown.
    Journal,
    /// The tool's own record of the file's text (graphile-migrate's hash
    /// chain) no longer matches it: the file changed after it was made.
    Hash,
    /// A statement needs a newer PostgreSQL than the server's (known only
    /// with the server: see [`Migration::needs_newer_server`]).
    NeedsNewerServer,
}

/// A file that cannot run as it is: where, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Problem {
    pub part: Part,
    pub kind: ProblemKind,
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}: {}", self.path.display(), self.line, self.column, self.message)
    }
}

/// One SQL file (or one section of a file) of a migration, parsed.
#[derive(Debug, Clone)]
pub struct SqlFile {
    pub path: PathBuf,
    /// The text as it runs: for a file with up and down sections, the whole
    /// file with the other section blanked, so lines and columns are the
    /// file's own. Shared, not copied, by what reads it whole (the check's
    /// sources): a data migration's text may be tens of megabytes.
    pub text: std::sync::Arc<str>,
    /// Empty when the file does not parse (see the migration's problems).
    pub statements: Vec<Statement>,
    /// Runs outside a transaction, statement by statement.
    pub no_transaction: bool,
    /// Where a file that runs in a transaction commits before going on, at
    /// its author's word ([`transactions`]); empty for most files.
    pub boundaries: Vec<Boundary>,
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
    /// The version as the folder writes it; the key in `backstop.applied`.
    pub version: String,
    /// The version as the migration's own tool records it in its history
    /// table (diesel drops the dashes, Flyway joins parts with dots).
    pub tool_version: String,
    pub name: String,
    pub up: SqlFile,
    pub down: Option<SqlFile>,
    /// A down file (or section) that holds no statement, only comments or
    /// blanks (the template `backstop new`, diesel or Hasura write): no
    /// down, so `down` is `None` and one is computed and proved as for a
    /// migration without a file; `check` names the file.
    pub empty_down: Option<PathBuf>,
    pub verify: Option<SqlFile>,
    /// Over the up SQL's tokens: comments and whitespace do not count.
    pub checksum: String,
    /// The up runs outside a transaction, statement by statement.
    pub no_transaction: bool,
    pub layout: Layout,
    /// A Flyway repeatable migration: no version, applied after the
    /// versioned ones, again whenever its checksum changes.
    pub repeatable: bool,
    /// Migrations (by version) that must be applied before this one
    /// (sqitch `requires`).
    pub requires: Vec<String>,
    /// Why parts of it cannot run; empty for a healthy migration.
    pub problems: Vec<Problem>,
    /// The history table its tool's settings name (drizzle's
    /// `migrations.table`), looked for beside the tool's default.
    pub history: Option<std::sync::Arc<HistoryTable>>,
}

impl Migration {
    /// `VERSION_name`, as in file names and messages.
    pub fn label(&self) -> String {
        if self.repeatable || self.version == self.name {
            self.version.clone()
        } else {
            format!("{}_{}", self.version, self.name)
        }
    }

    /// The problems that stop `part` from running.
    pub fn problems_in(&self, part: Part) -> impl Iterator<Item = &Problem> {
        self.problems.iter().filter(move |p| p.part == part)
    }

    /// Whether its up or down may write PostgreSQL's catalogs directly
    /// (`UPDATE pg_attribute …`, or a `DO` block whose SQL is built at
    /// run time): a change no DDL command makes, which only a listing of
    /// the catalogs finds (`pg::Tracked::catalogs_written`).
    pub fn writes_catalogs(&self) -> bool {
        let parts = std::iter::once(&self.up).chain(self.down.as_ref());
        parts.flat_map(|f| &f.statements).any(|s| backstop_sql::rows::writes_catalogs(&s.sql))
    }

    /// The values its up loses by dropping columns of tables that were
    /// there (a down adds the column back, not its values): each table as
    /// the up names it, and the loss in the words `loses` uses everywhere.
    pub fn dropped_values(&self) -> Vec<(backstop_sql::RelationName, String)> {
        use backstop_sql::rewrite::{ident, relation};
        let statements = &self.up.statements;
        backstop_sql::up_shapes::dropped_columns(statements.iter().map(|s| s.sql.as_str()))
            .into_iter()
            .map(|(i, table, column)| {
                let what = format!(
                    "values of column {}.{}: the up dropped the column ({}:{}); the down adds it \
                     back with its default, or empty",
                    relation(&table),
                    ident(&column),
                    self.up.path.display(),
                    statements[i].position.line
                );
                (table, what)
            })
            .collect()
    }

    /// Whether the file of `part` can be run (it may still not exist).
    pub fn runnable(&self, part: Part) -> bool {
        self.problems_in(part).next().is_none()
    }

    /// The first statement of the down that needs a newer PostgreSQL than
    /// `server_major` (syntax or a feature a later release brought), as a
    /// problem that blocks a rollback through this migration.
    pub fn needs_newer_server(&self, server_major: u32) -> Option<Problem> {
        let down = self.down.as_ref()?;
        down.statements.iter().find_map(|st| {
            let need = backstop_sql::versions::newest_need(&st.sql)?;
            (need.major > server_major).then(|| Problem {
                part: Part::Down,
                kind: ProblemKind::NeedsNewerServer,
                path: down.path.clone(),
                line: st.position.line,
                column: st.position.column,
                message: format!(
                    "{} needs PostgreSQL {}; the server is PostgreSQL {server_major} (write it as {})",
                    need.what, need.major, need.instead
                ),
            })
        })
    }
}

/// What the header of a down Backstop computed says (`backstop downs
/// --write`), and what it says of one it proved.
pub const COMPUTED_MARK: &str = "computed by `backstop downs`";
pub const PROVED_MARK: &str = "-- Proved on a replayed copy";

/// Whether `text` is a down Backstop computed and proved: one with no
/// statement is still a down (its up changed nothing a down takes back).
fn proved_by_backstop(text: &str) -> bool {
    text.lines().take(3).any(|l| l.contains(COMPUTED_MARK))
        && text.lines().take(4).any(|l| l.starts_with(PROVED_MARK))
}

/// A file in the migrations folder that is not (part of) a migration.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Ignored {
    pub path: PathBuf,
    pub why: String,
}

/// A file that looks like a migration but that its tool would never run:
/// a `.sql` file with a name the Supabase CLI skips, one that drizzle's
/// journal does not list. Unlike an [`Ignored`] file it is a finding:
/// `status` and `check` say where it is and what to do.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Stray {
    pub path: PathBuf,
    pub line: usize,
    /// What is wrong and the fix.
    pub message: String,
}

impl std::fmt::Display for Stray {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.path.display(), self.line, self.message)
    }
}

/// A migrations folder as read: its layout, its migrations in the order
/// they apply, and what was ignored.
#[derive(Debug, Clone)]
pub struct Folder {
    /// Where the migrations are: `[migrations] dir`, or the tool's folder
    /// inside it when it names a project's root (`supabase/migrations`).
    pub dir: PathBuf,
    pub layout: Layout,
    pub migrations: Vec<Migration>,
    pub ignored: Vec<Ignored>,
    /// Files that look like migrations and that the tool would not run.
    pub strays: Vec<Stray>,
}

impl Folder {
    /// Every problem of every migration, in folder order.
    pub fn problems(&self) -> impl Iterator<Item = (&Migration, &Problem)> {
        self.migrations.iter().flat_map(|m| m.problems.iter().map(move |p| (m, p)))
    }
}

/// Positions of versions in folder order, for ordering history rows and
/// telling out-of-order migrations apart.
pub struct Order<'a> {
    index: HashMap<&'a str, usize>,
}

impl<'a> Order<'a> {
    pub fn of(migrations: &'a [Migration]) -> Order<'a> {
        Order {
            index: migrations.iter().enumerate().map(|(i, m)| (m.version.as_str(), i)).collect(),
        }
    }

    /// Where `version` stands in the folder, `None` when it is not there.
    pub fn position(&self, version: &str) -> Option<usize> {
        self.index.get(version).copied()
    }
}

/// Reads every migration in `dir` with `layout` (`None`: detect it).
pub fn load(dir: &Path, layout: Option<Layout>) -> Result<Folder, SourceError> {
    load_parsing(dir, layout, true, Depth::Full)
}

/// Reads the migrations of a project: in `dir` when the configuration
/// names it (`given`), else found from `dir`, the project's root, where
/// the project's tool keeps them ([`project::find`]).
pub fn load_from(dir: &Path, layout: Option<Layout>, given: bool) -> Result<Folder, SourceError> {
    load_parsing(dir, layout, given, Depth::Full)
}

/// What the check needs of a folder, which parses the up files itself:
/// the same as [`load`], except that up files are not parsed (no
/// statements, or for diesel's emptiness check statements without facts)
/// and no checksum is taken, so no file is parsed twice. Layouts whose up files must be read to know how they run
/// (the author's own transactions, Prisma's lone statement) are read in
/// full. Not for anything that runs, plans or compares migrations.
pub fn load_for_check(
    dir: &Path,
    layout: Option<Layout>,
    given: bool,
) -> Result<Folder, SourceError> {
    load_parsing(dir, layout, given, Depth::SplitUp)
}

/// How deep `load` reads the up files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Depth {
    Full,
    SplitUp,
}

/// Where the migrations of `dir` are, and their layout when the place
/// tells it: `dir` itself (or the tool's folder inside it) when the
/// configuration names it, else found from the project's root.
pub fn resolve(
    dir: &Path,
    layout: Option<Layout>,
    given: bool,
) -> Result<(PathBuf, Option<Layout>), SourceError> {
    if !given {
        return match project::find(dir, layout)? {
            Some(place) => Ok((place.dir, place.layout.or(layout))),
            None => Err(SourceError::NothingFound { root: dir.to_path_buf() }),
        };
    }
    if !dir.is_dir() {
        return Err(SourceError::DirMissing { path: dir.to_path_buf() });
    }
    let (found, located) = layout::locate(dir, layout)?;
    if located.is_none() && !layout::holds_migrations(&found) {
        // A project's root named as the folder: its tool's place inside.
        if let Some(place) = project::find(dir, layout)? {
            return Ok((place.dir, place.layout.or(layout)));
        }
    }
    Ok((found, located))
}

fn load_parsing(
    dir: &Path,
    layout: Option<Layout>,
    given: bool,
    depth: Depth,
) -> Result<Folder, SourceError> {
    let (dir, located) = resolve(dir, layout, given)?;
    let dir = dir.as_path();
    let layout = match located {
        Some(l) => l,
        // A pair of *.up.sql files is golang-migrate's in a Go module that
        // requires it; sqlx's elsewhere.
        None => match (layout::detect(dir)?, nested::go_tool(dir)) {
            (Layout::Sqlx, Some(Layout::GolangMigrate)) => Layout::GolangMigrate,
            // A folder of a Hasura project's, named by hand.
            (Layout::Diesel, _) if layout.is_none() && hasura::history(dir).is_some() => {
                Layout::Hasura
            }
            (found, _) => found,
        },
    };
    let found = match layout {
        Layout::Diesel | Layout::Hasura => folder_per_migration::discover(dir)?,
        Layout::Sqlx | Layout::GolangMigrate => file_pairs::discover(dir, layout)?,
        Layout::Dbmate | Layout::Goose | Layout::NodePgMigrate => {
            sectioned_files::discover(dir, layout)?
        }
        Layout::Flyway => flyway::discover(dir, flyway_places::suffixes(dir))?,
        Layout::Sqitch => sqitch::discover(dir)?,
        Layout::Supabase => supabase::discover(dir)?,
        Layout::Prisma => prisma::discover(dir)?,
        Layout::Drizzle => drizzle::discover(dir)?,
        Layout::GraphileMigrate => graphile::discover(dir)?,
        Layout::Atlas => atlas::discover(dir)?,
    };
    if found.migrations.is_empty() {
        unclaimed::refuse(dir, &found.strays)?;
    }
    let mut found = found;
    computed_downs(dir, &mut found.migrations);
    // Each file is read and parsed on its own: on every core.
    let full = depth == Depth::Full || layout.honours_authors_transactions();
    let history = match layout {
        Layout::Drizzle => project::drizzle_history(dir),
        Layout::Flyway => flyway_places::history(dir),
        Layout::Hasura => hasura::history(dir),
        Layout::NodePgMigrate => node_pg_migrate::history(dir),
        _ => None,
    };
    let history = history.map(std::sync::Arc::new);
    let migrations = backstop_lint::parallel::in_parallel(found.migrations, |entry| Migration {
        history: history.clone(),
        ..read_migration(entry, layout, full)
    });
    check_duplicates(&migrations)?;
    Ok(Folder {
        dir: dir.to_path_buf(),
        layout,
        migrations,
        ignored: found.ignored,
        strays: found.strays,
    })
}

/// Where `backstop downs --write` keeps the downs it computed for a
/// layout that has none (or for a migration its tool gives none): the
/// `backstop/downs` folder beside the migrations folder, one
/// `<version>.down.sql` each.
pub fn downs_dir(dir: &Path) -> PathBuf {
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    parent.join("backstop").join("downs")
}

/// Gives each migration without a down of its own the computed one kept
/// for it in [`downs_dir`], if any.
fn computed_downs(dir: &Path, found: &mut [Found]) {
    let downs = downs_dir(dir);
    if !downs.is_dir() {
        return;
    }
    for entry in found.iter_mut().filter(|f| f.down.is_none() && !f.repeatable) {
        let path = downs.join(format!("{}.down.sql", entry.version));
        if present(&path) {
            entry.down = Some(PartSource::file(path));
        }
    }
}

fn check_duplicates(migrations: &[Migration]) -> Result<(), SourceError> {
    let mut seen: HashMap<&str, &Migration> = HashMap::new();
    for m in migrations {
        for key in [m.version.as_str(), m.tool_version.as_str()] {
            if let Some(first) = seen.get(key).filter(|f| !std::ptr::eq(**f, m)) {
                return Err(SourceError::Duplicate {
                    version: m.version.clone(),
                    first: first.up.path.clone(),
                    second: m.up.path.clone(),
                });
            }
        }
        seen.insert(&m.version, m);
        seen.insert(&m.tool_version, m);
    }
    Ok(())
}

/// Where a part's SQL comes from: a whole file, or text an adapter has
/// already cut out of one (a section, with the rest blanked).
#[derive(Debug)]
pub(crate) struct PartSource {
    pub path: PathBuf,
    pub text: Option<String>,
    /// The layout's own option says this part runs outside a transaction.
    pub no_transaction: bool,
}

impl PartSource {
    pub fn file(path: PathBuf) -> PartSource {
        PartSource { path, text: None, no_transaction: false }
    }
}

/// One migration as an adapter found it, before its files are parsed.
#[derive(Debug)]
pub(crate) struct Found {
    pub version: String,
    pub tool_version: String,
    pub name: String,
    pub up: PartSource,
    pub down: Option<PartSource>,
    pub verify: Option<PartSource>,
    pub repeatable: bool,
    pub requires: Vec<String>,
    /// Problems the adapter saw (a missing file, an unsupported option).
    pub problems: Vec<Problem>,
}

impl Found {
    pub fn new(version: String, tool_version: String, name: String, up: PartSource) -> Found {
        Found {
            version,
            tool_version,
            name,
            up,
            down: None,
            verify: None,
            repeatable: false,
            requires: Vec::new(),
            problems: Vec::new(),
        }
    }
}

/// What an adapter found: migrations in the tool's order, and the rest.
#[derive(Debug, Default)]
pub(crate) struct Discovered {
    pub migrations: Vec<Found>,
    pub ignored: Vec<Ignored>,
    pub strays: Vec<Stray>,
}

fn read_migration(entry: Found, layout: Layout, full: bool) -> Migration {
    let mut problems = entry.problems;
    let mut read = |part: Part, src: PartSource| -> SqlFile {
        let deep = full || part != Part::Up;
        let (file, mut found) = read_part(part, src, layout, deep);
        problems.append(&mut found);
        file
    };
    let up = read(Part::Up, entry.up);
    let mut down = entry.down.map(|d| read(Part::Down, d));
    let verify = entry.verify.map(|v| read(Part::Verify, v));
    // A down with no statement undoes nothing: it is no down. One that
    // does not parse stays, with its problem, so `rollback` refuses it.
    let empty_down = match &down {
        Some(d)
            if d.statements.is_empty()
                && !problems.iter().any(|p| p.part == Part::Down)
                && !proved_by_backstop(&d.text) =>
        {
            down.take().map(|d| d.path)
        }
        _ => None,
    };
    if matches!(layout, Layout::Diesel | Layout::Hasura)
        && up.statements.is_empty()
        && !problems.iter().any(|p| p.part == Part::Up)
    {
        problems.push(Problem {
            part: Part::Up,
            kind: ProblemKind::Empty,
            path: up.path.clone(),
            line: 1,
            column: 1,
            message: "empty migration (no SQL statements, only comments or blanks); write the \
                      migration or delete it"
                .into(),
        });
    }
    let checksum = if full {
        backstop_sql::checksum_split(&up.text, &up.statements)
            .unwrap_or_else(|_| format!("raw:{}", blake3::hash(up.text.as_bytes()).to_hex()))
    } else {
        String::new()
    };
    Migration {
        version: entry.version,
        tool_version: entry.tool_version,
        name: entry.name,
        no_transaction: up.no_transaction,
        up,
        down,
        empty_down,
        verify,
        checksum,
        layout,
        repeatable: entry.repeatable,
        requires: entry.requires,
        problems,
        history: None,
    }
}

/// Reads and parses one part (`deep`: with each statement's facts and
/// whether the file can run as declared; otherwise only split). Never
/// fails: what is wrong comes back as problems beside a file with no
/// statements.
fn read_part(part: Part, src: PartSource, layout: Layout, deep: bool) -> (SqlFile, Vec<Problem>) {
    let problem = |kind, line, column, message: String| Problem {
        part,
        kind,
        path: src.path.clone(),
        line,
        column,
        message,
    };
    let text = match src.text.clone() {
        Some(text) => Ok(text),
        None => read_text(&src.path),
    };
    let text = match text {
        Ok(text) => text,
        Err(e) => {
            let message = match &e {
                SourceError::Read { source, .. } => unreadable::why(&src.path, source),
                _ => e.to_string(),
            };
            let empty = SqlFile {
                path: src.path.clone(),
                text: std::sync::Arc::from(""),
                statements: Vec::new(),
                no_transaction: src.no_transaction,
                boundaries: Vec::new(),
            };
            return (empty, vec![problem(ProblemKind::Unreadable, 1, 1, message)]);
        }
    };
    let marker = text.lines().next().is_some_and(|l| l.trim() == NO_TRANSACTION_MARKER);
    let mut file = SqlFile {
        path: src.path.clone(),
        text: std::sync::Arc::from(text),
        statements: Vec::new(),
        no_transaction: src.no_transaction || marker,
        boundaries: Vec::new(),
    };
    // Only split, only where the layout needs the statements to read the
    // folder (diesel: an empty up is a problem); the check parses the rest.
    if !deep && !matches!(layout, Layout::Diesel | Layout::Hasura) {
        return (file, Vec::new());
    }
    let split = if deep { backstop_sql::split } else { backstop_sql::split_only };
    match split(&file.text) {
        Ok(statements) => file.statements = statements,
        Err(error) => {
            let p = problem(
                ProblemKind::Syntax,
                error.position.line,
                error.position.column,
                error.message,
            );
            return (file, vec![p]);
        }
    }
    if !deep {
        return (file, Vec::new());
    }
    let problems = transactions::read(&mut file, layout, part)
        .into_iter()
        .map(|(kind, pos, message)| problem(kind, pos.line, pos.column, message))
        .collect();
    (file, problems)
}

/// Whether the file at `path` is a down: it exists and holds a statement
/// (one that does not parse counts: it is a down that cannot run). A file
/// of comments and blanks is no down.
pub fn holds_a_down(path: &Path) -> bool {
    match read_text(path) {
        Ok(text) => backstop_sql::split_only(&text).map_or(true, |s| !s.is_empty()),
        Err(_) => path.is_file(),
    }
}

fn read_text(path: &Path) -> Result<String, SourceError> {
    let bytes =
        std::fs::read(path).map_err(|source| SourceError::Read { path: path.into(), source })?;
    String::from_utf8(bytes).map_err(|e| SourceError::NotUtf8 {
        path: path.into(),
        offset: e.utf8_error().valid_up_to(),
    })
}

/// Blanks every line of `text` outside `keep` (0-based line numbers), so
/// that a section keeps the file's own line and column numbers.
pub(crate) fn keep_lines(text: &str, keep: std::ops::Range<usize>) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if keep.contains(&i) {
            out.push_str(line);
        } else if line.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// Splits `stem` at its first `_` into a version that starts with a digit
/// (digits, `-` and `.`) and a name.
pub(crate) fn split_stem(stem: &str) -> Option<(String, String)> {
    let (version, name) = stem.split_once('_')?;
    let valid = version.starts_with(|c: char| c.is_ascii_digit())
        && version.chars().all(|c| c.is_ascii_digit() || c == '-' || c == '.')
        && !name.is_empty();
    valid.then(|| (version.to_string(), name.to_string()))
}

/// The entries of `dir`, sorted by name, without hidden ones.
pub(crate) fn entries(dir: &Path) -> Result<Vec<PathBuf>, SourceError> {
    let read_err = |source| SourceError::Read { path: dir.to_path_buf(), source };
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(read_err)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(read_err)?;
    out.retain(|p| !file_name(p).starts_with('.'));
    out.sort();
    Ok(out)
}

/// Whether anything is at `path`, a symlink that leads nowhere included:
/// a file a layout names is taken when present and reported when it
/// cannot be read, never passed over as missing.
pub(crate) fn present(path: &Path) -> bool {
    path.symlink_metadata().is_ok()
}

/// Whether `path` is a folder in its own right, not a symlink: the layouts
/// of files pass over folders, but take a symlink with a migration's name
/// as the file it stands for, wherever it leads.
pub(crate) fn real_dir(path: &Path) -> bool {
    path.symlink_metadata().is_ok_and(|m| m.is_dir())
}

/// The 1-based line of the first `needle` in `text` (1 when absent).
pub(crate) fn line_of(text: &str, needle: &str) -> usize {
    text.find(needle).map_or(1, |at| text[..at].lines().count().max(1))
}

pub(crate) fn file_name(path: &Path) -> &str {
    path.file_name().and_then(|n| n.to_str()).unwrap_or_default()
}

/// Orders numeric versions as numbers (`9` before `10`), whatever their
/// length; used by the layouts whose tools parse versions as integers.
pub(crate) fn numeric_order(a: &str, b: &str) -> std::cmp::Ordering {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests;

/// Whether two paths are the same folder (as written, where either is missing).
pub(crate) fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Writes `text` at `path` under `root`, making its folders: how the
/// tests lay out a project.
#[cfg(test)]
pub(crate) fn write_under(root: &Path, path: &str, text: &str) {
    let p = root.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}
