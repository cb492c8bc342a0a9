//! `[migrations]`: where the migrations are and the guards every run of
//! them gets; and [`Settings`], the part of it that apply needs.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

pub use crate::adopt::in_step::InStep;

/// `[migrations]`: where the migrations are and how they are guarded.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MigrationsSection {
    /// The migrations folder, relative to the config file; when the
    /// configuration does not name one, the project's root (the config
    /// file's folder, or the current one), where the migrations are found
    /// by their tool's place (`dir_given` false).
    pub dir: PathBuf,
    /// Whether `dir` was written in the configuration.
    #[serde(skip)]
    pub dir_given: bool,
    /// Tables that no migration or rollback may drop, truncate or delete rows from.
    pub protected_tables: Vec<String>,
    /// `SET LOCAL lock_timeout` for every migration transaction
    /// (`"off"`: zero, no limit).
    #[serde(deserialize_with = "crate::kit::duration::de_guard")]
    pub lock_timeout: Duration,
    /// `SET LOCAL statement_timeout` for every migration transaction
    /// (`"off"`: zero, no limit).
    #[serde(deserialize_with = "crate::kit::duration::de_guard")]
    pub statement_timeout: Duration,
    /// How long to wait for another run's migration lock.
    #[serde(deserialize_with = "crate::kit::duration::de")]
    pub lock_wait: Duration,
    /// How often a migration that hit `lock_timeout` is retried (with backoff).
    pub lock_retries: u32,
    /// The tool whose layout the folder follows; `None` (`"auto"`): detect it.
    #[serde(deserialize_with = "layout")]
    pub layout: Option<crate::source::Layout>,
    /// Refuse, before anything runs, a batch of pending migrations that
    /// cannot be one transaction (a no-transaction migration, or an enum
    /// value added and used by a later migration), instead of committing
    /// between its groups.
    pub all_or_nothing: bool,
    /// On a layout without downs (Supabase, Prisma, Drizzle), `migrate`
    /// computes and proves the down of each migration it applies and keeps
    /// it with the migration's record, for `rollback`.
    pub keep_downs: bool,
    /// What `migrate` does with a migration whose own down, proved after
    /// its up on a copy, does not bring the schema back while a down that
    /// does was proved.
    pub defective_downs: DefectiveDowns,
    /// Which tables of the project's own tool `migrate` and `rollback`
    /// keep in step (see [`crate::adopt::in_step`]).
    pub tool_history: InStep,
}

/// `[migrations] defective_downs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DefectiveDowns {
    /// Refuse a deploy onto a database with history, naming the down and
    /// its differences, with the fix (`backstop downs --write --force`);
    /// on a bootstrap (no migration of the project applied yet: a
    /// laptop, CI, a new tenant) keep the proved down instead, as
    /// [`DefectiveDowns::KeepProved`], and name the defective files once:
    /// old downs nobody runs do not stop a history its own tool runs.
    #[default]
    RefuseAfterBootstrap,
    /// Refuse the run, bootstrap or not, naming the down and its
    /// differences, with the fix (`backstop downs --write --force`).
    Refuse,
    /// Deploy, and keep the proved down with the record: `rollback` runs
    /// it instead of the file.
    KeepProved,
    /// Deploy with the migration's own down as it is (said as a warning):
    /// `rollback` runs it, and its check before COMMIT refuses it where it
    /// leaves the schema other than before.
    Deploy,
}

fn layout<'de, D: Deserializer<'de>>(d: D) -> Result<Option<crate::source::Layout>, D::Error> {
    use crate::source::Layout;
    let text = String::deserialize(d)?;
    if text == "auto" {
        return Ok(None);
    }
    Layout::lookup(&text).map(Some).ok_or_else(|| {
        let names: Vec<&str> = Layout::ALL.iter().map(|l| l.name()).collect();
        serde::de::Error::custom(format!(
            "unknown layout {text:?}; use \"auto\" (detect it), \"backstop\" or one of: {}",
            names.join(", ")
        ))
    })
}

impl Default for MigrationsSection {
    fn default() -> Self {
        MigrationsSection {
            dir: PathBuf::from("."),
            dir_given: false,
            protected_tables: Vec::new(),
            lock_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(15 * 60),
            lock_wait: Duration::from_secs(10 * 60),
            lock_retries: 3,
            layout: None,
            all_or_nothing: false,
            keep_downs: true,
            defective_downs: DefectiveDowns::RefuseAfterBootstrap,
            tool_history: InStep::Auto,
        }
    }
}

impl MigrationsSection {
    /// The project's migrations, read whole: from `dir` when the
    /// configuration names it, else found from the project's root.
    pub fn load(&self) -> Result<crate::source::Folder, crate::source::SourceError> {
        crate::source::load_from(&self.dir, self.layout, self.dir_given)
    }

    /// The same, read as the check needs it (see [`crate::source::load_for_check`]).
    pub fn load_for_check(&self) -> Result<crate::source::Folder, crate::source::SourceError> {
        crate::source::load_for_check(&self.dir, self.layout, self.dir_given)
    }

    /// Where the migrations are and the layout the place tells, without
    /// reading them.
    pub fn resolve(
        &self,
    ) -> Result<(PathBuf, Option<crate::source::Layout>), crate::source::SourceError> {
        crate::source::resolve(&self.dir, self.layout, self.dir_given)
    }
}

/// The guards that apply to every run.
#[derive(Debug, Clone)]
pub struct Settings {
    pub protected_tables: Vec<String>,
    pub lock_timeout: Duration,
    pub statement_timeout: Duration,
    pub lock_wait: Duration,
    pub lock_retries: u32,
    /// Where the values a rollback's downs remove are exported before they
    /// run (this run's folder); `None`: not kept.
    pub keep: Option<PathBuf>,
    /// Whether applying and reverting also writes the history row of the
    /// migration's own tool, and makes its table (see [`InStep`] and
    /// [`crate::adopt::in_step`]). Off on throwaway copies (rehearsals,
    /// computed downs), whose pictures and round trips hold only the
    /// project's own schema.
    pub tool_history: InStep,
    /// Why the run is made, as the person who ran it said
    /// (`rollback --reason`): written into its audit events.
    pub reason: Option<String>,
    /// The protected tables one of the project's migrations creates (see
    /// [`Settings::knowing`]): where one does not exist yet, the migration
    /// that makes it is still to come and there are no rows to lose, so
    /// the pre-flight does not refuse (a fresh database, a replay from
    /// the platform, one migration at a time).
    pub protected_made: Vec<String>,
    /// On a copy worked on as the source's role (`rehearse::RunsAs`):
    /// that role. A statement on an extension runs as the copy's
    /// superuser, and the session goes back to the role after it:
    /// managed platforms let their database's owner manage extensions
    /// through hooks of their own, which a copy lacks ([`Settings::as_run`]).
    pub extensions_as_superuser: Option<String>,
}

impl Settings {
    /// These settings for a throwaway copy of `migrations`' target: no
    /// other tool's history.
    pub fn on_copy(&self, migrations: &[crate::source::Migration]) -> Settings {
        Settings { tool_history: InStep::Off, ..self.knowing(migrations) }
    }

    /// `sql` (one statement) as it runs: on a copy worked on as the
    /// source's role, a statement on an extension as the copy's superuser
    /// (see [`Settings::extensions_as_superuser`]).
    pub fn as_run<'a>(&self, sql: &'a str) -> std::borrow::Cow<'a, str> {
        match &self.extensions_as_superuser {
            Some(role) if backstop_sql::refs::on_extension(sql) => std::borrow::Cow::Owned(
                format!("RESET ROLE;\n{sql}\n;SET ROLE {}", crate::pg::quote_ident(role)),
            ),
            _ => std::borrow::Cow::Borrowed(sql),
        }
    }

    /// These settings with the protected tables `migrations` create known.
    pub fn knowing(&self, migrations: &[crate::source::Migration]) -> Settings {
        let protected_made = super::protect::made_by(&self.protected_tables, migrations);
        Settings { protected_made, ..self.clone() }
    }
}

impl From<&MigrationsSection> for Settings {
    fn from(m: &MigrationsSection) -> Self {
        Settings {
            protected_tables: m.protected_tables.clone(),
            lock_timeout: m.lock_timeout,
            statement_timeout: m.statement_timeout,
            lock_wait: m.lock_wait,
            lock_retries: m.lock_retries,
            keep: None,
            tool_history: m.tool_history,
            reason: None,
            protected_made: Vec::new(),
            extensions_as_superuser: None,
        }
    }
}

/// `[rollback]`: what an undo keeps before it removes data.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RollbackSection {
    /// Before a down migration drops a table, a column, an enum value in
    /// use or rows, their values are exported (the table's key and the
    /// values, CSV with BLAKE3 checksums in a manifest). `false` turns it
    /// off, for a person who means to lose them.
    pub export_dropped: bool,
    /// Where those exports go, relative to the config file; each rollback
    /// makes a folder of its own (`<UTC time>/`) in it.
    pub dir: PathBuf,
}

impl Default for RollbackSection {
    fn default() -> Self {
        RollbackSection { export_dropped: true, dir: PathBuf::from(".backstop/exports") }
    }
}
