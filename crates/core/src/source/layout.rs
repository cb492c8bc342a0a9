//! The layouts Backstop reads, and telling which one a folder is in.

use std::path::{Path, PathBuf};

use super::{entries, file_name, flyway, sectioned_files, split_stem, SourceError};

/// Where a project's migrations were found, and what said so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub dir: PathBuf,
    /// `None` when the folder's own files tell the layout (`migrations/`).
    pub layout: Option<Layout>,
    /// What pointed at it: `drizzle.config.ts (out)`, `the Supabase CLI's folder`.
    pub why: String,
}

/// The tool whose folder layout a migrations folder follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// `VERSION_name/{up,down,verify}.sql` with diesel's `metadata.toml`;
    /// Backstop's own layout (`backstop new` writes it).
    #[serde(alias = "backstop")]
    Diesel,
    /// `VERSION_name.up.sql` / `.down.sql`, or `VERSION_name.sql`.
    Sqlx,
    /// `VERSION_name.sql` with `-- migrate:up` / `-- migrate:down` sections.
    Dbmate,
    /// `VERSION_name.up.sql` / `.down.sql`, never wrapped in a transaction
    /// by its tool.
    GolangMigrate,
    /// `VERSION_name.sql` with `-- +goose Up` / `-- +goose Down` sections.
    Goose,
    /// `V<version>__<desc>.sql`, undo `U…`, repeatable `R__…`.
    Flyway,
    /// `sqitch.plan` with `deploy/`, `revert/` and `verify/`.
    Sqitch,
    /// `supabase/migrations/<timestamp>_name.sql`: up only.
    Supabase,
    /// `prisma/migrations/<timestamp>_name/migration.sql`: up only.
    Prisma,
    /// `NNNN_name.sql` ordered by `meta/_journal.json`: up only.
    Drizzle,
    /// `.gmrc`, `migrations/committed/000001.sql` with a hash chain: up only.
    GraphileMigrate,
    /// `<version>_<name>.sql` beside `atlas.sum`: up only.
    Atlas,
    /// `<version>_<name>/{up,down}.sql` in a Hasura project's migrations
    /// folder (one folder per database with `config.yaml` version 3).
    Hasura,
    /// `<timestamp>_<name>.sql` with `-- Up Migration` / `-- Down
    /// Migration` sections, as node-pg-migrate reads them.
    NodePgMigrate,
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Layout::Diesel => f.write_str("backstop/diesel"),
            other => f.write_str(other.name()),
        }
    }
}

impl Layout {
    /// Every layout, for help texts and `adopt --from`.
    pub const ALL: [Layout; 14] = [
        Layout::Diesel,
        Layout::Sqlx,
        Layout::Dbmate,
        Layout::GolangMigrate,
        Layout::Goose,
        Layout::Flyway,
        Layout::Sqitch,
        Layout::Supabase,
        Layout::Prisma,
        Layout::Drizzle,
        Layout::GraphileMigrate,
        Layout::Atlas,
        Layout::Hasura,
        Layout::NodePgMigrate,
    ];

    /// The name used in `backstop.toml` and messages.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Diesel => "diesel",
            Layout::Sqlx => "sqlx",
            Layout::Dbmate => "dbmate",
            Layout::GolangMigrate => "golang-migrate",
            Layout::Goose => "goose",
            Layout::Flyway => "flyway",
            Layout::Sqitch => "sqitch",
            Layout::Supabase => "supabase",
            Layout::Prisma => "prisma",
            Layout::Drizzle => "drizzle",
            Layout::GraphileMigrate => "graphile-migrate",
            Layout::Atlas => "atlas",
            Layout::Hasura => "hasura",
            Layout::NodePgMigrate => "node-pg-migrate",
        }
    }

    /// Whether the tool writes down migrations at all. For the up-only
    /// layouts (Supabase, Prisma, Drizzle) a migration's down is never
    /// read from the folder: it stays `None` unless Backstop keeps one of
    /// its own.
    pub fn has_downs(self) -> bool {
        !matches!(
            self,
            Layout::Supabase
                | Layout::Prisma
                | Layout::Drizzle
                | Layout::GraphileMigrate
                | Layout::Atlas
        )
    }

    /// Finds a layout by its name (`backstop` is diesel's).
    pub fn lookup(name: &str) -> Option<Layout> {
        if name.eq_ignore_ascii_case("backstop") {
            return Some(Layout::Diesel);
        }
        Layout::ALL.into_iter().find(|l| l.name().eq_ignore_ascii_case(name))
    }

    /// Whether the tool keeps its migrations at a place of its own in a
    /// project, so that a `migrations/` folder is never its.
    pub fn fixed_place(self) -> bool {
        matches!(
            self,
            Layout::Supabase
                | Layout::Prisma
                | Layout::Drizzle
                | Layout::Sqitch
                | Layout::GraphileMigrate
        )
    }

    /// Whether the tool leaves transactions to the author: it never wraps a
    /// migration in one, so `BEGIN` … `COMMIT` in a file is the author's.
    pub fn author_owns_transactions(self) -> bool {
        matches!(self, Layout::GolangMigrate | Layout::Sqitch | Layout::Prisma)
    }

    /// Whether the author's own `BEGIN` and `COMMIT` in a file are
    /// honoured: where the tool leaves transactions to the author, and in
    /// drizzle and graphile-migrate, whose transaction the author may end
    /// with `COMMIT` (graphile-migrate sends the file as one query in its
    /// transaction, so what follows runs as the server runs it then).
    pub fn honours_authors_transactions(self) -> bool {
        self.author_owns_transactions() || matches!(self, Layout::Drizzle | Layout::GraphileMigrate)
    }

    /// How a migration of this layout says it must run outside a transaction.
    pub fn no_transaction_hint(self) -> &'static str {
        match self {
            Layout::Diesel => {
                "`run_in_transaction = false` in its metadata.toml, or `-- backstop:no-transaction` \
                 as the first line of up.sql"
            }
            Layout::Sqlx => "`-- no-transaction` as its first line",
            Layout::Dbmate => "`-- migrate:up transaction:false`",
            Layout::Goose => "`-- +goose NO TRANSACTION`",
            Layout::Flyway => "`executeInTransaction=false` in the script's .conf file",
            Layout::GolangMigrate => "no BEGIN … COMMIT in the file",
            Layout::Sqitch => {
                "a `COMMIT;` before it (psql runs what follows outside a transaction), or no \
                 BEGIN … COMMIT in the file"
            }
            Layout::Prisma => {
                "the statement alone in its own migration.sql (Prisma runs a one-statement \
                 script outside a transaction), or `-- backstop:no-transaction` as its first line"
            }
            Layout::Drizzle => {
                "a `COMMIT;` line before it: drizzle, and Backstop, then run what follows outside \
                 a transaction"
            }
            Layout::Supabase => {
                "`-- backstop:no-transaction` as its first line; the tool itself always runs \
                 migrations in a transaction, so such a migration can only be run by Backstop"
            }
            Layout::GraphileMigrate => "`--! no-transaction` as the first line after the headers",
            Layout::Atlas => "`-- atlas:txmode none` at the top of the file, then `atlas migrate hash`",
            Layout::Hasura => {
                "`-- backstop:no-transaction` as the first line of up.sql; Hasura itself runs \
                 every migration in a transaction, so such a migration can only be run by Backstop"
            }
            Layout::NodePgMigrate => {
                "`-- backstop:no-transaction` as the file's first line; node-pg-migrate runs a \
                 SQL migration in a transaction (`pgm.noTransaction()` is for its JavaScript \
                 ones), so such a migration can only be run by Backstop"
            }
        }
    }
}

/// Where the migrations of `dir` are, for the tools that keep them at a
/// fixed place in a project: `supabase/migrations`, `prisma/migrations`,
/// and drizzle's output folder (the one with `meta/_journal.json`).
/// `[migrations] dir` may name that folder or the project's root; the
/// layout comes back when the place says it. With `layout` given, only
/// that tool's place is looked for. A root holding two tools' folders is
/// an error naming both.
pub(super) fn locate(
    dir: &Path,
    layout: Option<Layout>,
) -> Result<(PathBuf, Option<Layout>), SourceError> {
    let wanted = |l: Layout| layout.is_none_or(|w| w == l);
    let named = |p: &Path, name: &str| file_name(p) == name;
    let mut found: Vec<(Layout, PathBuf)> = Vec::new();
    if wanted(Layout::Supabase) {
        let parent_is_supabase = dir.parent().is_some_and(|p| named(p, "supabase"));
        if named(dir, "migrations") && parent_is_supabase {
            return Ok((dir.to_path_buf(), Some(Layout::Supabase)));
        }
        if named(dir, "supabase") && dir.join("migrations").is_dir() {
            return Ok((dir.join("migrations"), Some(Layout::Supabase)));
        }
        if dir.join("supabase/migrations").is_dir() {
            found.push((Layout::Supabase, dir.join("supabase/migrations")));
        }
    }
    if wanted(Layout::Prisma) {
        if dir.join("migration_lock.toml").is_file() {
            return Ok((dir.to_path_buf(), Some(Layout::Prisma)));
        }
        if named(dir, "prisma") && dir.join("migrations").is_dir() {
            return Ok((dir.join("migrations"), Some(Layout::Prisma)));
        }
        if dir.join("prisma/migrations").is_dir() {
            found.push((Layout::Prisma, dir.join("prisma/migrations")));
        }
    }
    if wanted(Layout::Atlas) {
        if dir.join(super::atlas::SUM).is_file() {
            return Ok((dir.to_path_buf(), Some(Layout::Atlas)));
        }
        if let Some((folder, _)) = super::atlas::hcl_dir(dir).filter(|(d, _)| d.is_dir()) {
            found.push((Layout::Atlas, folder));
        }
    }
    if wanted(Layout::GraphileMigrate) {
        if named(dir, "committed") && super::graphile::committed_files(dir) {
            let folder = dir.parent().unwrap_or(dir).to_path_buf();
            return Ok((folder, Some(Layout::GraphileMigrate)));
        }
        let committed = dir.join("committed");
        if super::graphile::committed_files(&committed) {
            return Ok((dir.to_path_buf(), Some(Layout::GraphileMigrate)));
        }
        if let Some(g) = super::graphile::settings(dir).filter(|g| g.migrations.is_dir()) {
            found.push((Layout::GraphileMigrate, g.migrations));
        }
    }
    if wanted(Layout::Drizzle) {
        if dir.join("meta").is_dir() && dir.join(super::drizzle::JOURNAL).is_file() {
            return Ok((dir.to_path_buf(), Some(Layout::Drizzle)));
        }
        if dir.join("drizzle").join(super::drizzle::JOURNAL).is_file() {
            found.push((Layout::Drizzle, dir.join("drizzle")));
        }
    }
    match found.len() {
        0 => Ok((dir.to_path_buf(), layout)),
        1 => {
            let (l, path) = found.remove(0);
            Ok((path, Some(l)))
        }
        _ => Err(SourceError::MixedLayouts {
            dir: dir.to_path_buf(),
            a: found[0].0,
            first: found[0].1.clone(),
            b: found[1].0,
            second: found[1].1.clone(),
        }),
    }
}

/// Whether `dir` holds anything shaped like a migration: a `.sql` file, a
/// folder with `up.sql` or `migration.sql`, a sqitch plan or a drizzle
/// journal. A project's root holds none of these directly.
pub(super) fn holds_migrations(dir: &Path) -> bool {
    if dir.join("sqitch.plan").is_file() || dir.join(super::drizzle::JOURNAL).is_file() {
        return true;
    }
    let Ok(found) = entries(dir) else { return false };
    found.iter().any(|p| {
        if p.is_dir() {
            p.join("up.sql").is_file() || p.join(super::prisma::SCRIPT).is_file()
        } else {
            file_name(p).to_ascii_lowercase().ends_with(".sql")
        }
    })
}

/// Tells the layout of `dir` from what is in it. A folder with evidence of
/// two layouts is an error naming one file of each; an empty folder is
/// Backstop's own layout.
pub(super) fn detect(dir: &Path) -> Result<Layout, SourceError> {
    if dir.join("sqitch.plan").is_file() {
        return Ok(Layout::Sqitch);
    }
    if dir.join(super::atlas::SUM).is_file() {
        return Ok(Layout::Atlas);
    }
    let mut seen: Vec<(Layout, PathBuf)> = Vec::new();
    let mut paired: Vec<PathBuf> = Vec::new();
    // Scripts a Flyway module's settings name with suffixes of their own.
    let suffixes = super::flyway_places::suffixes(dir).map(|(list, _)| list);
    for path in entries(dir)? {
        let name = file_name(&path);
        // A symlink with a file's name is taken as that file, wherever it leads.
        let layout = if super::real_dir(&path) || (path.is_dir() && !name.ends_with(".sql")) {
            if super::present(&path.join("up.sql")) {
                Layout::Diesel
            } else if super::present(&path.join(super::prisma::SCRIPT))
                && split_stem(name).is_some()
            {
                Layout::Prisma
            } else {
                continue;
            }
        } else if flyway::is_script_name(name)
            || suffixes.as_deref().is_some_and(|s| flyway::is_script_name_with(name, Some(s)))
        {
            Layout::Flyway
        } else if let Some(base) = name.strip_suffix(".sql") {
            let stem = base.strip_suffix(".up").or_else(|| base.strip_suffix(".down"));
            match stem {
                Some(stem) if split_stem(stem).is_some() => {
                    paired.push(path.clone());
                    Layout::Sqlx
                }
                Some(_) => continue,
                None if split_stem(base).is_some() => {
                    sectioned_files::marker_layout(&path).unwrap_or(Layout::Sqlx)
                }
                None => continue,
            }
        } else {
            continue;
        };
        // node-pg-migrate runs a file without markers whole as its up:
        // beside marked files, such a file (not an .up/.down pair) is its.
        let single = |l: Layout, p: &PathBuf| l == Layout::Sqlx && !paired.contains(p);
        if layout == Layout::NodePgMigrate {
            seen.retain(|(l, p)| !single(*l, p));
        }
        let unmarked = single(layout, &path);
        let compatible = |l: Layout| l == Layout::NodePgMigrate && unmarked;
        if let Some((other, first)) = seen.iter().find(|(l, _)| *l != layout && !compatible(*l)) {
            return Err(SourceError::MixedLayouts {
                dir: dir.to_path_buf(),
                a: *other,
                first: first.clone(),
                b: layout,
                second: path,
            });
        }
        if seen.is_empty() {
            seen.push((layout, path));
        }
    }
    match seen.first() {
        None => Ok(Layout::Diesel),
        Some((Layout::Sqlx, _))
            if !paired.is_empty() && paired.iter().any(|p| authors_begin(p)) =>
        {
            Ok(Layout::GolangMigrate)
        }
        Some((layout, _)) => Ok(*layout),
    }
}

/// Whether a file opens its own transaction, as golang-migrate authors do
/// (sqlx wraps every migration itself, so its files do not). A line that
/// looks like `BEGIN` may be the start of a plpgsql block: the parser says.
fn authors_begin(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    let looks_like_it = text.lines().any(|l| {
        let l = l.trim().trim_end_matches(';').trim().to_ascii_uppercase();
        l == "BEGIN" || l == "START TRANSACTION" || l == "BEGIN TRANSACTION"
    });
    looks_like_it
        && backstop_sql::split(&text)
            .is_ok_and(|stmts| stmts.iter().any(|s| s.facts.transaction_control))
}
