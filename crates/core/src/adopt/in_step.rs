//! Keeping the team's other tools in step: a migration that Backstop
//! applies gets the row its own tool would have written (the Supabase
//! CLI's, Prisma's and drizzle's here; sqlx's, diesel's, dbmate's,
//! golang-migrate's, goose's and Flyway's in [`super::writers`]; sqitch's
//! registry in [`super::sqitch`]), and one Backstop reverts loses it as that
//! tool's own undo would take it out, in the transaction that writes or
//! removes the `backstop.applied` row. `supabase migration list`, `prisma
//! migrate status` and drizzle's migrator then agree with the database,
//! whoever ran the migration. What is written reads back through
//! [`super::history`] as applied, with the checksum the tool compares.
//! The table is the one the database holds: the one the latest `backstop
//! adopt` read, else the one with the tool's rows of the tool's default
//! and the one its settings name (drizzle's `migrations.table`), else the
//! first of those that exists; where none does, it is created as the tool
//! would, under the name its settings give, where the project shows it
//! runs that tool (see [`makes`]), so that the tool, run by the
//! application at its start, finds nothing to run.

use postgres::types::ToSql;
use postgres::GenericClient;

use super::history::{self, sql_name};
use crate::source::{HistoryTable, Layout, Migration};

/// `[migrations] tool_history`: the history of the project's own tool
/// (its `schema_migrations`, `_sqlx_migrations`, `flyway_schema_history`…),
/// written as that tool writes it, so that it runs nothing Backstop ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InStep {
    /// Kept in step where the table exists, and made as the tool makes it
    /// where it does not and the project shows it runs the tool (see
    /// [`crate::source::runs_tool`]): on a fresh database for every such
    /// tool, and on any database for golang-migrate (one row) and the
    /// up-only tools (Supabase, Prisma, Drizzle).
    #[default]
    Auto,
    /// Kept in step only where the table exists; none is made.
    Existing,
    /// No other tool's table is written (rehearsals' and proofs' copies).
    Off,
}

impl InStep {
    /// Whether the tool's rows are written at all.
    pub fn writes(self) -> bool {
        self != InStep::Off
    }
}

/// Why the other tool's history could not follow a migration: the
/// migration's own transaction went back with it.
#[derive(Debug, thiserror::Error)]
pub enum InStepError {
    #[error(
        "could not {action} {tool}'s own history row for {version} in {table}, so neither it \
         nor Backstop's own record was written; let Backstop's role create and write {table} \
         (or create it as {tool} does), then run the command again"
    )]
    Write {
        tool: Layout,
        table: String,
        /// The version as the tool records it.
        version: String,
        /// `write` or `take out`.
        action: &'static str,
        #[source]
        source: postgres::Error,
    },
    /// Which table holds the tool's history cannot be told (two hold rows).
    #[error(transparent)]
    Table(Box<super::AdoptError>),
    /// sqitch's registry row cannot be written as sqitch writes it: the
    /// plan does not give the change's id.
    #[error(
        "could not {action} sqitch's registry row for {version} in {table} as sqitch would: \
         {why}; so neither it nor Backstop's own record was written; fix sqitch.plan (`sqitch \
         plan` reads it as sqitch does), then run the command again"
    )]
    Sqitch {
        table: String,
        version: String,
        /// `write` or `take out`.
        action: &'static str,
        why: String,
    },
    /// A rollback would revert migrations beneath one the tool applied
    /// and Backstop has not recorded.
    #[error(
        "cannot roll back {reverting}: {table} ({tool}'s history) records {later} as applied \
         after it, which Backstop has not recorded, so its downs would run beneath a migration \
         it knows nothing of; nothing ran; take the history over first (`{command}`), then roll \
         back"
    )]
    Beneath { reverting: String, tool: Layout, table: String, later: String, command: String },
}

impl InStepError {
    /// 1 where the database's history stops it (a tool's migrations not
    /// adopted), 2 where the project's files are at fault (a sqitch plan),
    /// else 3.
    pub fn exit_code(&self) -> u8 {
        match self {
            InStepError::Beneath { .. } => 1,
            InStepError::Sqitch { .. } => 2,
            _ => 3,
        }
    }
}

/// Why a rollback of `reverting` (versions of `migrations`) must not run,
/// if it must not: a tool's history records a later migration of the
/// folder as applied that Backstop has not, so the downs would run
/// beneath a migration only the tool knows of (drizzle's migrator applied
/// 0002; reverting 0001 drops what 0002 built on).
pub fn beneath(
    client: &mut postgres::Client,
    migrations: &[Migration],
    reverting: &[&str],
) -> Result<Option<InStepError>, crate::pg::DbError> {
    let order = |v: &str| migrations.iter().position(|m| m.version == v);
    let Some(earliest) = reverting.iter().filter_map(|v| order(v)).min() else {
        return Ok(None);
    };
    let all: Vec<&Migration> = migrations.iter().collect();
    for u in super::unadopted(client, &all)? {
        let later: Vec<&str> = u
            .applied
            .iter()
            .filter(|v| order(v).is_some_and(|i| i > earliest))
            .map(String::as_str)
            .collect();
        if !later.is_empty() {
            return Ok(Some(InStepError::Beneath {
                reverting: migrations[earliest].label(),
                tool: u.tool,
                command: u.command(),
                table: u.table.clone(),
                later: later.join(", "),
            }));
        }
    }
    Ok(None)
}

/// The Supabase CLI's table as the CLI creates it (with the columns its
/// later versions add right away: `statements` and `name`).
const SUPABASE_TABLE: &str = "create schema if not exists supabase_migrations;
    create table if not exists supabase_migrations.schema_migrations (
        version text not null primary key, statements text[], name text)";

/// `_prisma_migrations` as `prisma migrate deploy` creates it, in the
/// schema the connection's search path names first.
const PRISMA_TABLE: &str = "create table if not exists _prisma_migrations (
        id varchar(36) primary key not null,
        checksum varchar(64) not null,
        finished_at timestamptz,
        migration_name varchar(255) not null,
        logs text,
        rolled_back_at timestamptz,
        started_at timestamptz not null default now(),
        applied_steps_count integer not null default 0)";

/// drizzle-orm's migrator table for PostgreSQL, in the schema and under
/// the name drizzle's settings give.
fn drizzle_table(t: &HistoryTable) -> String {
    let schema = t.schema.as_deref().unwrap_or("drizzle");
    format!(
        "create schema if not exists {}; create table if not exists {} (
            id serial primary key, hash text not null, created_at bigint)",
        crate::pg::quote_ident(schema),
        sql_name(t)
    )
}

/// The table `m`'s tool keeps its history in here (see the module's
/// comment), and whether it exists.
fn table_for(
    client: &mut impl GenericClient,
    m: &Migration,
) -> Result<(HistoryTable, bool), InStepError> {
    let boxed = |e: super::AdoptError| InStepError::Table(Box::new(e));
    let fail = |source| {
        boxed(super::AdoptError::Db(crate::pg::DbError::new("reading backstop.events", source)))
    };
    let adopted = crate::schema::events::adopted_from(client, m.layout.name()).map_err(fail)?;
    let mut candidates = history::candidates(m.layout, &[m]);
    if let Some(t) = adopted.as_deref().and_then(HistoryTable::parse) {
        let exists = !columns(client, &sql_name(&t)).map_err(failing(m, "read", &t))?.is_empty();
        if exists {
            return Ok((t, true));
        }
    }
    match history::in_use(client, m.layout, &candidates).map_err(boxed)? {
        Some(t) => Ok((t, true)),
        None => Ok((candidates.remove(0), false)),
    }
}

/// Writes the row `m`'s tool keeps for an applied migration, creating the
/// table first when it is missing and `mode` lets it be made (see
/// [`makes`]); `duration_ms` is how long the migration ran. Nothing for
/// layouts whose tool is not kept in step.
pub fn applied(
    client: &mut impl GenericClient,
    m: &Migration,
    duration_ms: i64,
    mode: InStep,
) -> Result<(), InStepError> {
    let (table, exists) = table_for(client, m)?;
    if !exists && !makes(client, m, mode).map_err(failing(m, "write", &table))? {
        return Ok(());
    }
    if m.layout == Layout::Sqitch {
        if !exists {
            super::sqitch::create_registry(client, &table)
                .map_err(sqitch_failing(m, "write", &table))?;
        }
        return super::sqitch::applied(client, m, &table)
            .map_err(sqitch_failing(m, "write", &table));
    }
    let fail = failing(m, "write", &table);
    let t = sql_name(&table);
    if !exists {
        let ddl = match m.layout {
            Layout::Supabase => SUPABASE_TABLE.to_string(),
            Layout::Prisma => PRISMA_TABLE.to_string(),
            Layout::Drizzle => drizzle_table(&table),
            _ => super::writers::table(m.layout, &table),
        };
        client.batch_execute(&ddl).map_err(&fail)?;
    }
    let columns = columns(client, &t).map_err(&fail)?;
    match m.layout {
        Layout::Supabase => supabase_applied(client, m, &t, &columns),
        Layout::Prisma => prisma_applied(client, m, &t, duration_ms),
        Layout::Drizzle => drizzle_applied(client, m, &t),
        _ => super::writers::applied(client, m, &t, duration_ms),
    }
    .map_err(fail)
}

/// Whether the missing table of `m`'s tool is made now: never where
/// `mode` says so, nor where the project does not show it runs the tool
/// (a backstop/diesel folder, sqlx's pairs without sqlx in a `Cargo.toml`:
/// [`crate::source::runs_tool`]). golang-migrate's (its one row is its
/// whole history) and the up-only tools' (Supabase, Prisma, Drizzle: made
/// whenever missing, as before this rule) at once; the other tools' rows
/// per migration only on a fresh database (Backstop's record holds
/// nothing before `m`), since a table made in the middle of a history
/// would lack the migrations before it, which the tool would run again.
fn makes(
    client: &mut impl GenericClient,
    m: &Migration,
    mode: InStep,
) -> Result<bool, postgres::Error> {
    // Hasura's state lives in tables its server makes: never made here.
    if mode != InStep::Auto
        || m.layout == Layout::Hasura
        || !crate::source::runs_tool(&m.up.path, m.layout)
    {
        return Ok(false);
    }
    if matches!(
        m.layout,
        Layout::Supabase | Layout::Prisma | Layout::Drizzle | Layout::GolangMigrate
    ) {
        return Ok(true);
    }
    let before: bool = client
        .query_one(
            "select exists (select 1 from backstop.applied where version <> $1)",
            &[&m.version],
        )?
        .get(0);
    Ok(!before)
}

/// Takes `m` out of its tool's history as the tool's own undo does: the
/// Supabase CLI's `migration repair --status reverted` deletes the row,
/// Prisma's rows are marked rolled back (`prisma migrate status` then
/// counts the migration as not applied), drizzle's row goes so that its
/// migrator applies the migration again. Nothing when the table is missing.
pub fn reverted(client: &mut impl GenericClient, m: &Migration) -> Result<(), InStepError> {
    let (table, exists) = table_for(client, m)?;
    if !exists {
        return Ok(());
    }
    if m.layout == Layout::Sqitch {
        return super::sqitch::reverted(client, m, &table)
            .map_err(sqitch_failing(m, "take out", &table));
    }
    let fail = failing(m, "take out", &table);
    let t = sql_name(&table);
    let version = m.tool_version.as_str();
    match m.layout {
        Layout::Supabase => {
            client.execute(&format!("delete from {t} where version = $1"), &[&version]).map(drop)
        }
        Layout::Prisma => client
            .execute(
                &format!(
                    "update {t} set rolled_back_at = clock_timestamp()
                      where migration_name = $1 and rolled_back_at is null"
                ),
                &[&version],
            )
            .map(drop),
        Layout::Drizzle => match drizzle_when(m) {
            Some(when) => client
                .execute(&format!("delete from {t} where created_at = $1"), &[&when])
                .map(drop),
            None => Ok(()),
        },
        _ => crate::schema::applied::versions(client).and_then(|mut applied| {
            applied.retain(|v| v != &m.version);
            super::writers::reverted(client, m, &t, &applied)
        }),
    }
    .map_err(fail)
}

/// What the history of the project's own tool (the table kept in step)
/// records as applied, as Backstop's versions of `migrations` (the whole
/// folder, in order), with the table; `None` where no such table exists.
/// golang-migrate's one row counts every migration up to it.
pub fn recorded_by_tool(
    client: &mut impl GenericClient,
    migrations: &[Migration],
) -> Result<Option<ToolRecord>, InStepError> {
    let Some(first) = migrations.first() else { return Ok(None) };
    let (table, exists) = table_for(client, first)?;
    if !exists {
        return Ok(None);
    }
    let all: Vec<&Migration> = migrations.iter().collect();
    let project = super::unadopted::tool_scope(&all);
    let rows = history::read(client, first.layout, &table, project.as_deref())
        .map_err(|e| InStepError::Table(Box::new(e)))?;
    let mut applied = std::collections::BTreeSet::new();
    for row in rows.iter().filter(|r| r.state == history::RowState::Applied) {
        let Some(i) = migrations.iter().position(|m| super::same_version(first.layout, row, m))
        else {
            continue;
        };
        match row.up_to {
            true => applied.extend(migrations[..=i].iter().map(|m| m.version.clone())),
            false => {
                applied.insert(migrations[i].version.clone());
            }
        }
    }
    Ok(Some(ToolRecord { tool: first.layout, table: table.to_string(), applied }))
}

/// The versions a tool's history records as applied (see
/// [`recorded_by_tool`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolRecord {
    pub tool: Layout,
    pub table: String,
    pub applied: std::collections::BTreeSet<String>,
}

impl ToolRecord {
    /// What differs between this record, read after a rollback's downs,
    /// and `before` (read before them) less the `reverted` versions: each
    /// a sentence naming the version and what the tool would do.
    pub fn differences(&self, before: &ToolRecord, reverted: &[String]) -> Vec<String> {
        let whose = format!("{}'s history ({})", self.tool, self.table);
        let expected: std::collections::BTreeSet<&String> =
            before.applied.iter().filter(|v| !reverted.contains(v)).collect();
        let mut out = Vec::new();
        for v in &self.applied {
            if !expected.contains(v) {
                out.push(format!(
                    "{whose} still records {v} as applied after its down: {} would never run it again",
                    self.tool
                ));
            }
        }
        for v in expected {
            if !self.applied.contains(v) {
                out.push(format!(
                    "{whose} no longer records {v} as applied, which this rollback did not revert: {} would run it again",
                    self.tool
                ));
            }
        }
        out
    }
}

fn failing<'m>(
    m: &'m Migration,
    action: &'static str,
    table: &HistoryTable,
) -> impl Fn(postgres::Error) -> InStepError + 'm {
    let table = table.to_string();
    move |source| InStepError::Write {
        tool: m.layout,
        table: table.clone(),
        version: m.tool_version.clone(),
        action,
        source,
    }
}

fn sqitch_failing<'m>(
    m: &'m Migration,
    action: &'static str,
    table: &HistoryTable,
) -> impl Fn(super::sqitch::RegistryError) -> InStepError + 'm {
    let table = table.to_string();
    move |e| match e {
        super::sqitch::RegistryError::Db(source) => InStepError::Write {
            tool: m.layout,
            table: table.clone(),
            version: m.tool_version.clone(),
            action,
            source,
        },
        super::sqitch::RegistryError::Plan(why) => {
            InStepError::Sqitch { table: table.clone(), version: m.version.clone(), action, why }
        }
    }
}

/// The table's columns; none when it does not exist.
fn columns(client: &mut impl GenericClient, table: &str) -> Result<Vec<String>, postgres::Error> {
    Ok(client
        .query(
            "select attname::text from pg_attribute
              where attrelid = to_regclass($1) and attnum > 0 and not attisdropped",
            &[&table],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// The CLI's row: the version, the name and the statements it ran, plus
/// who ran it where a newer table keeps that. A row the CLI left for the
/// same version (a migration applied again after a repair) is replaced.
fn supabase_applied(
    client: &mut impl GenericClient,
    m: &Migration,
    table: &str,
    columns: &[String],
) -> Result<(), postgres::Error> {
    let has = |c: &str| columns.iter().any(|x| x == c);
    let statements: Vec<&str> = m.up.statements.iter().map(|s| s.sql.as_str()).collect();
    let actor = crate::schema::actor();
    let mut names = vec!["version"];
    let mut values: Vec<&(dyn ToSql + Sync)> = vec![&m.tool_version];
    if has("name") {
        names.push("name");
        values.push(&m.name);
    }
    if has("statements") {
        names.push("statements");
        values.push(&statements);
    }
    if has("created_by") {
        names.push("created_by");
        values.push(&actor);
    }
    let places: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
    client.execute(&format!("delete from {table} where version = $1"), &[&m.tool_version])?;
    client.execute(
        &format!("insert into {table} ({}) values ({})", names.join(", "), places.join(", ")),
        &values,
    )?;
    Ok(())
}

/// Prisma's row of one finished attempt: its id, the SHA-256 of
/// migration.sql, the folder's name, one step applied, started when the
/// migration started.
fn prisma_applied(
    client: &mut impl GenericClient,
    m: &Migration,
    table: &str,
    duration_ms: i64,
) -> Result<(), postgres::Error> {
    let checksum = sha256_hex(m.up.text.as_bytes());
    let seconds = duration_ms as f64 / 1000.0;
    // One clock reading for both ends: two put the start after the end of
    // a migration that took no time (a contract records 0 ms).
    client.execute(
        &format!(
            "insert into {table}
               (id, checksum, finished_at, migration_name, logs, rolled_back_at, started_at,
                applied_steps_count)
             select $1, $2, t.at, $3, null, null, t.at - make_interval(secs => $4), 1
               from (select clock_timestamp() as at) t"
        ),
        &[&uuid_v4(), &checksum, &m.tool_version, &seconds],
    )?;
    Ok(())
}

/// drizzle's row: the SHA-256 of the file's text and the journal entry's
/// `when`, which its migrator compares with the entries of the journal.
fn drizzle_applied(
    client: &mut impl GenericClient,
    m: &Migration,
    table: &str,
) -> Result<(), postgres::Error> {
    let Some(when) = drizzle_when(m) else {
        // A migration whose journal entry cannot be read never runs.
        return Ok(());
    };
    client.execute(&format!("delete from {table} where created_at = $1"), &[&when])?;
    client.execute(
        &format!("insert into {table} (hash, created_at) values ($1, $2)"),
        &[&sha256_hex(m.up.text.as_bytes()), &when],
    )?;
    Ok(())
}

/// The journal entry's `when`, which drizzle records as `created_at`.
fn drizzle_when(m: &Migration) -> Option<i64> {
    m.tool_version.parse().ok()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    super::hex(&sha2::Sha256::digest(bytes))
}

/// A random (version 4) UUID as text, as Prisma gives each attempt.
fn uuid_v4() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = super::hex(&b);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_version_4_uuids() {
        let id = uuid_v4();
        assert_eq!(id.len(), 36, "{id}");
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), [8, 4, 4, 4, 12]);
        assert!(parts[2].starts_with('4'), "{id}");
        assert!(matches!(&parts[3][..1], "8" | "9" | "a" | "b"), "{id}");
        assert_ne!(id, uuid_v4());
    }
}
