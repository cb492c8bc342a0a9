//! What keeps a migrations folder as a whole from being read.

use std::path::PathBuf;

use super::Layout;

/// What keeps the folder as a whole from being read. All are input errors
/// (exit 2); a problem with one file is a [`super::Problem`] instead.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("migrations dir {path} does not exist; create it with `backstop init` or set [migrations] dir in backstop.toml")]
    DirMissing { path: PathBuf },
    #[error(
        "no migrations found in {root}: looked for supabase/migrations, prisma/migrations (and \
         Prisma's settings in prisma.config.*, package.json), a drizzle output folder \
         (drizzle.config.*'s out, meta/_journal.json), sqitch.plan, diesel.toml, a Hasura \
         project's config.yaml (at the root or in hasura/), Flyway's \
         sql/ and db/migration, migrations/ and db/migrations at the root; below it, the \
         *.up.sql or goose folders of a Go module that requires golang-migrate or goose, in \
         the root and any Java module the locations of flyway.conf, conf/flyway.conf or \
         spring.flyway.locations (application.properties, application.yml), else Flyway's \
         src/main/resources/db/migration, and the Supabase and Prisma folders of a \
         monorepo's packages; run Backstop from the \
         project's root, set [migrations] dir in backstop.toml, or create a folder with \
         `backstop init`"
    )]
    NothingFound { root: PathBuf },
    #[error(
        "{root} holds the migrations of {} projects: {}; set [migrations] dir (and layout) in \
         backstop.toml to the one Backstop runs",
        .places.len(),
        .places.join("; ")
    )]
    Several { root: PathBuf, places: Vec<String> },
    #[error(
        "{setting}:{line}: {key} names {dir}, which does not exist; correct it there, or create \
         the folder with the tool ({tool}) first"
    )]
    NamedMissing { setting: PathBuf, line: usize, key: String, dir: PathBuf, tool: Layout },
    #[error("could not read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not valid UTF-8 (first bad byte at offset {offset}); save the file as UTF-8")]
    NotUtf8 { path: PathBuf, offset: usize },
    #[error("duplicate migration version {version}: {first} and {second}; give one of them a new version")]
    Duplicate { version: String, first: PathBuf, second: PathBuf },
    /// The same Flyway version in two folders of one location.
    #[error(
        "duplicate migration version {version} in two folders: {first} and {second}; Flyway \
         reads a location with every folder in it: where the folders are for different \
         databases, set [migrations] dir to PostgreSQL's (or name it in the location, with \
         {{vendor}}); else give one of them a new version"
    )]
    DuplicateApart { version: String, first: PathBuf, second: PathBuf },
    #[error(
        "{dir} mixes two layouts: {first} is {a}, {second} is {b}; keep one tool's migrations \
         in this folder, or set [migrations] layout in backstop.toml to the one to read"
    )]
    MixedLayouts { dir: PathBuf, a: Layout, first: PathBuf, b: Layout, second: PathBuf },
    #[error("{path}:{line}: {message}")]
    Plan { path: PathBuf, line: usize, message: String },
    #[error(
        "{dir} holds {count} migration file(s) no layout Backstop reads takes for migrations: \
         {files}{looks}; nothing was run or created: set [migrations] dir and layout in \
         backstop.toml to the SQL migrations of a tool Backstop reads (docs/layouts.md)"
    )]
    Unclaimed { dir: PathBuf, count: usize, files: String, looks: String },
    #[error("could not write {path}; check the folder's permissions and free space")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
