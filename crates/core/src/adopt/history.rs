//! Reading another tool's history table into one shape: which versions it
//! applied, when, with what checksum, and which it marks failed or dirty;
//! and which table that is, where the tool may keep it under another name
//! ([`locate`]).

use chrono::{DateTime, Utc};
use postgres::Client;

use super::AdoptError;
use crate::source::{HistoryTable, Layout, Migration};

/// A checksum as the other tool recorded it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum ToolChecksum {
    /// sqlx: SHA-384 of the migration file.
    Sha384(String),
    /// Flyway: CRC-32 of the script's lines, as a signed integer.
    Crc32(i32),
    /// sqitch: SHA-1 of the deploy script.
    Sha1(String),
    /// Prisma (of migration.sql) and Drizzle (of the file's text): SHA-256.
    Sha256(String),
    /// graphile-migrate: the hash of the body chained to the one before
    /// (see [`crate::source::graphile::hash`]).
    Graphile(String),
    /// Atlas: the file's hash in `atlas.sum` (see
    /// [`crate::source::atlas::sum_of`]).
    AtlasSum(String),
    /// The Supabase CLI keeps no checksum but the statements it ran: this
    /// is a digest of their token streams (see [`statements_digest`]), so
    /// that how the CLI cut and trimmed them does not count.
    Statements(String),
}

/// What the tool says about one version.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowState {
    Applied,
    /// Failed or left dirty: the tool does not know what state it left.
    Failed {
        why: String,
    },
}

/// One version in the other tool's history.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ToolRow {
    /// The version as the tool records it (a Flyway repeatable: its
    /// description; sqitch: the change name).
    pub version: String,
    pub repeatable: bool,
    pub applied_at: Option<DateTime<Utc>>,
    pub applied_by: Option<String>,
    pub duration_ms: Option<i64>,
    pub checksum: Option<ToolChecksum>,
    pub state: RowState,
    /// golang-migrate records only its current version: every migration
    /// up to it counts as applied.
    pub up_to: bool,
}

impl ToolRow {
    fn applied(version: String) -> ToolRow {
        ToolRow {
            version,
            repeatable: false,
            applied_at: None,
            applied_by: None,
            duration_ms: None,
            checksum: None,
            state: RowState::Applied,
            up_to: false,
        }
    }
}

/// The table (or schema) a tool keeps its history in.
pub fn table_of(tool: Layout) -> &'static str {
    match tool {
        Layout::Sqlx => "_sqlx_migrations",
        Layout::Diesel => "__diesel_schema_migrations",
        Layout::Dbmate | Layout::GolangMigrate => "schema_migrations",
        Layout::Goose => "goose_db_version",
        Layout::Flyway => "flyway_schema_history",
        Layout::Sqitch => "sqitch.changes",
        Layout::Supabase => "supabase_migrations.schema_migrations",
        Layout::Prisma => "_prisma_migrations",
        Layout::Drizzle => "drizzle.__drizzle_migrations",
        Layout::GraphileMigrate => "graphile_migrate.migrations",
        Layout::Atlas => "atlas_schema_revisions.atlas_schema_revisions",
        Layout::Hasura => "hdb_catalog.hdb_version",
        Layout::NodePgMigrate => "pgmigrations",
    }
}

/// The table a tool keeps its history in unless told otherwise.
pub fn default_table(tool: Layout) -> HistoryTable {
    HistoryTable::parse(table_of(tool)).expect("the tools' tables are names")
}

/// The table as SQL names it.
pub fn sql_name(table: &HistoryTable) -> String {
    crate::pg::quote_qualified(table.schema.as_deref(), &table.name)
}

/// The tables `tool`'s history may be in, the one its settings name
/// (drizzle's `migrations.table`, as read with the `migrations`) first,
/// then the tool's default.
pub fn candidates(tool: Layout, migrations: &[&Migration]) -> Vec<HistoryTable> {
    let configured =
        migrations.iter().filter(|m| m.layout == tool).find_map(|m| m.history.as_deref().cloned());
    let mut out: Vec<HistoryTable> = configured.into_iter().collect();
    // Hasura's config version alone says where its CLI keeps the state;
    // the server makes and fills both tables.
    if tool == Layout::Hasura && !out.is_empty() {
        return out;
    }
    let default = default_table(tool);
    if !out.iter().any(|t| t.schema == default.schema && t.name == default.name) {
        out.push(default);
    }
    out
}

/// A candidate as a message names it: with the setting that named it.
pub fn described(table: &HistoryTable) -> String {
    match &table.set_in {
        Some(place) => format!("{table} (named in {place})"),
        None => table.to_string(),
    }
}

/// Which of `candidates` holds the tool's history in this database: the
/// one with rows; with none, the first that exists (`Ok(None)` when none
/// does); two with rows is an error that names both.
pub fn in_use(
    client: &mut impl postgres::GenericClient,
    tool: Layout,
    candidates: &[HistoryTable],
) -> Result<Option<HistoryTable>, AdoptError> {
    let mut existing = Vec::new();
    let mut holding = Vec::new();
    for t in candidates {
        let name = sql_name(t);
        let exists: bool = client
            .query_one("select to_regclass($1) is not null", &[&name])
            .map_err(db_of(&name))?
            .get(0);
        if !exists {
            continue;
        }
        let rows: bool = client
            .query_one(&format!("select exists (select from {name})"), &[])
            .map_err(db_of(&name))?
            .get(0);
        existing.push(t.clone());
        if rows {
            holding.push(t.clone());
        }
    }
    match holding.as_slice() {
        [first, second, ..] => Err(AdoptError::TwoHistories {
            tool,
            first: described(first),
            second: described(second),
        }),
        [one] => Ok(Some(one.clone())),
        [] => Ok(existing.into_iter().next()),
    }
}

/// The history table of `tool` to adopt from: `named` outright (`adopt
/// --table`), else the one of [`candidates`] that [`in_use`] finds.
pub fn locate(
    client: &mut Client,
    tool: Layout,
    named: Option<&HistoryTable>,
    migrations: &[&Migration],
) -> Result<HistoryTable, AdoptError> {
    if let Some(t) = named {
        return Ok(t.clone());
    }
    let candidates = candidates(tool, migrations);
    in_use(client, tool, &candidates)?.ok_or_else(|| AdoptError::NoHistory {
        tool,
        table: candidates.iter().map(described).collect::<Vec<_>>().join(" or "),
    })
}

/// A digest of SQL statements that ignores how they were cut into pieces,
/// their comments and whitespace: each piece is split by PostgreSQL's
/// parser and each statement's token checksum goes in, in order. A piece
/// that does not parse makes a digest no file can match.
pub fn statements_digest<'a>(pieces: impl IntoIterator<Item = &'a str>) -> String {
    let mut hasher = blake3::Hasher::new();
    for piece in pieces {
        let sums = backstop_sql::split(piece).and_then(|stmts| {
            stmts.iter().map(|s| backstop_sql::checksum(&s.sql)).collect::<Result<Vec<_>, _>>()
        });
        match sums {
            Ok(sums) => sums.iter().for_each(|s| {
                hasher.update(s.as_bytes());
            }),
            Err(_) => return format!("unparsable:{}", blake3::hash(piece.as_bytes()).to_hex()),
        }
    }
    hasher.finalize().to_hex().to_string()
}

fn db_of(table: &str) -> impl FnOnce(postgres::Error) -> AdoptError + '_ {
    move |source| {
        AdoptError::Db(crate::pg::DbError::new(format!("reading or writing {table}"), source))
    }
}

/// Reads `tool`'s history from `table` in the database `client` is
/// connected to.
pub fn read(
    client: &mut impl postgres::GenericClient,
    tool: Layout,
    table: &HistoryTable,
    project: Option<&str>,
) -> Result<Vec<ToolRow>, AdoptError> {
    let t = sql_name(table);
    let t = t.as_str();
    let db = db_of;
    let exists: bool =
        client.query_one("select to_regclass($1) is not null", &[&t]).map_err(db(t))?.get(0);
    if !exists {
        return Err(AdoptError::NoHistory { tool, table: table.to_string() });
    }
    let columns: Vec<String> = client
        .query(
            "select attname::text from pg_attribute where attrelid = to_regclass($1) and attnum > 0 and not attisdropped",
            &[&t],
        )
        .map_err(db(t))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let has = |c: &str| columns.iter().any(|x| x == c);
    same_tool(tool, table, &has)?;
    let rows = match tool {
        Layout::Sqlx => client
            .query(
                &format!(
                    "select version::text, installed_on, success, encode(checksum, 'hex'),
                            (execution_time / 1000000)::bigint
                       from {t} order by version"
                ),
                &[],
            )
            .map_err(db(t))?
            .iter()
            .map(|r| {
                let success: bool = r.get(2);
                ToolRow {
                    applied_at: r.get(1),
                    duration_ms: r.get(4),
                    checksum: Some(ToolChecksum::Sha384(r.get(3))),
                    state: if success {
                        RowState::Applied
                    } else {
                        RowState::Failed { why: "sqlx recorded it with success = false".into() }
                    },
                    ..ToolRow::applied(r.get(0))
                }
            })
            .collect(),
        Layout::Diesel => client
            .query(
                &format!(
                    "select version::text, extract(epoch from run_on)::float8 from {t} order by version"
                ),
                &[],
            )
            .map_err(db(t))?
            .iter()
            .map(|r| ToolRow { applied_at: epoch(r.get(1)), ..ToolRow::applied(r.get(0)) })
            .collect(),
        Layout::GraphileMigrate => graphile(&mut *client, t)?,
        Layout::Atlas => atlas(&mut *client, t)?,
        Layout::NodePgMigrate => node_pg_migrate(&mut *client, t)?,
        Layout::Dbmate => client
            .query(&format!("select version::text from {t} order by version"), &[])
            .map_err(db(t))?
            .iter()
            .map(|r| ToolRow::applied(r.get(0)))
            .collect(),
        Layout::GolangMigrate => client
            .query(&format!("select version::text, dirty from {t}"), &[])
            .map_err(db(t))?
            .iter()
            .map(|r| {
                let dirty: bool = r.get(1);
                ToolRow {
                    up_to: true,
                    state: if dirty {
                        RowState::Failed {
                            why: "golang-migrate marks it dirty: it failed half-way".into(),
                        }
                    } else {
                        RowState::Applied
                    },
                    ..ToolRow::applied(r.get(0))
                }
            })
            .collect(),
        Layout::Goose => {
            // The latest row of each version decides; version 0 is goose's own.
            client
                .query(
                    &format!(
                        "select distinct on (version_id) version_id::text, is_applied, extract(epoch from tstamp)::float8
                           from {t} where version_id <> 0
                          order by version_id, id desc"
                    ),
                    &[],
                )
                .map_err(db(t))?
                .iter()
                .filter(|r| r.get::<_, bool>(1))
                .map(|r| ToolRow { applied_at: epoch(r.get(2)), ..ToolRow::applied(r.get(0)) })
                .collect()
        }
        Layout::Flyway => flyway(&mut *client, t)?,
        Layout::Sqitch => sqitch(&mut *client, table, project)?,
        Layout::Supabase => supabase(&mut *client, t, &has)?,
        Layout::Prisma => prisma(&mut *client, t)?,
        Layout::Drizzle => drizzle(&mut *client, t)?,
        Layout::Hasura => hasura(&mut *client, t, has("cli_state"), project)?,
    };
    Ok(rows)
}

/// dbmate and golang-migrate share a table name; the columns tell them apart.
fn same_tool(
    tool: Layout,
    table: &HistoryTable,
    has: &dyn Fn(&str) -> bool,
) -> Result<(), AdoptError> {
    let why = match tool {
        Layout::GolangMigrate if !has("dirty") => "it has no `dirty` column: dbmate's table?",
        Layout::Dbmate if has("dirty") => "it has a `dirty` column: golang-migrate's table?",
        Layout::Hasura if !has("cli_state") && !has("dirty") => {
            "it has neither the server's `cli_state` nor the CLI's `dirty` column"
        }
        _ => return Ok(()),
    };
    Err(AdoptError::WrongTable { tool, table: table.to_string(), why })
}

/// The Hasura CLI's state (see [`crate::source::hasura`]): with `catalog`,
/// the versions under `database` in `cli_state`'s `migrations`, else the
/// rows of the CLI's own table; a version marked dirty failed part-way.
fn hasura(
    client: &mut impl postgres::GenericClient,
    t: &str,
    catalog: bool,
    database: Option<&str>,
) -> Result<Vec<ToolRow>, AdoptError> {
    let rows = if catalog {
        let sql = format!(
            "select m.key, coalesce(m.value = 'true'::jsonb, false)
               from {t}, jsonb_each(coalesce(cli_state -> 'migrations' -> $1::text, '{{}}')) m
              order by m.key"
        );
        client.query(&sql, &[&database.unwrap_or("default")])
    } else {
        client.query(&format!("select version::text, dirty from {t} order by version"), &[])
    };
    Ok(rows
        .map_err(db_of(t))?
        .iter()
        .map(|r| {
            let state = match r.get::<_, bool>(1) {
                true => {
                    RowState::Failed { why: "Hasura marks it dirty: it failed half-way".into() }
                }
                false => RowState::Applied,
            };
            ToolRow { state, ..ToolRow::applied(r.get(0)) }
        })
        .collect())
}

/// Atlas's revisions: a row per migration file (`type` 1 a baseline, 2
/// executed, 4 resolved by hand); one with an error, or fewer statements
/// applied than it has, failed part-way. Atlas's own rows of other kinds
/// (versions starting with a dot) are not files.
fn atlas(client: &mut impl postgres::GenericClient, t: &str) -> Result<Vec<ToolRow>, AdoptError> {
    let sql = format!(
        "select version, hash, extract(epoch from executed_at)::float8, (execution_time / 1000000)::bigint,
                error, applied, total
           from {t} where version not like '.%' order by version"
    );
    let rows = client.query(&sql, &[]).map_err(db_of(t))?;
    Ok(rows
        .iter()
        .map(|r| {
            let error: Option<String> = r.get(4);
            let (applied, total): (i64, i64) = (r.get(5), r.get(6));
            let state = match error {
                Some(e) => RowState::Failed { why: format!("Atlas recorded an error: {e}") },
                None if applied < total => RowState::Failed {
                    why: format!("Atlas applied {applied} of its {total} statements"),
                },
                None => RowState::Applied,
            };
            ToolRow {
                applied_at: epoch(r.get(2)),
                duration_ms: r.get(3),
                checksum: Some(ToolChecksum::AtlasSum(r.get(1))),
                state,
                ..ToolRow::applied(r.get(0))
            }
        })
        .collect())
}

/// graphile-migrate's history: a row per migration, its `filename` the
/// number with `.sql`, its `hash` chained to the one before.
fn graphile(
    client: &mut impl postgres::GenericClient,
    t: &str,
) -> Result<Vec<ToolRow>, AdoptError> {
    let sql = format!(
        "select filename, hash, extract(epoch from date)::float8 from {t} order by filename"
    );
    let rows = client.query(&sql, &[]).map_err(db_of(t))?;
    Ok(rows
        .iter()
        .map(|r| {
            let filename: String = r.get(0);
            let version = filename.strip_suffix(".sql").unwrap_or(&filename).to_string();
            ToolRow {
                applied_at: epoch(r.get(2)),
                checksum: Some(ToolChecksum::Graphile(r.get(1))),
                ..ToolRow::applied(version)
            }
        })
        .collect())
}

/// Flyway's history replayed in order: undo and delete entries take a
/// version back out, a baseline counts every version up to it, the latest
/// entry of a repeatable script holds its checksum.
fn flyway(client: &mut impl postgres::GenericClient, t: &str) -> Result<Vec<ToolRow>, AdoptError> {
    let rows = client
        .query(
            &format!(
                "select version, description, type, checksum, installed_by,
                        extract(epoch from installed_on)::float8, execution_time::bigint, success
                   from {t} order by installed_rank"
            ),
            &[],
        )
        .map_err(db_of(t))?;
    let mut out: Vec<ToolRow> = Vec::new();
    for r in rows {
        let version: Option<String> = r.get(0);
        let description: String = r.get(1);
        let kind: String = r.get(2);
        let success: bool = r.get(7);
        let at = epoch(r.get(5));
        let row = |version: String, repeatable: bool| ToolRow {
            repeatable,
            applied_at: at,
            applied_by: r.get(4),
            duration_ms: r.get(6),
            checksum: r.get::<_, Option<i32>>(3).map(ToolChecksum::Crc32),
            state: if success {
                RowState::Applied
            } else {
                RowState::Failed { why: "Flyway recorded it with success = false".into() }
            },
            up_to: kind == "BASELINE",
            version,
        };
        match (kind.as_str(), version) {
            ("UNDO_SQL" | "DELETE", Some(v)) if success => {
                out.retain(|o| o.repeatable || o.version != v)
            }
            ("SCHEMA", _) => {}
            (_, Some(v)) => {
                out.retain(|o| o.repeatable || o.version != v);
                out.push(row(v, false));
            }
            (_, None) => {
                out.retain(|o| !o.repeatable || o.version != description);
                out.push(row(description, true));
            }
        }
    }
    Ok(out)
}

/// A time the tool wrote (with or without a time zone) as seconds since
/// the epoch, read back as UTC.
fn epoch(seconds: Option<f64>) -> Option<DateTime<Utc>> {
    let s = seconds?;
    DateTime::from_timestamp(s.trunc() as i64, (s.fract() * 1e9) as u32)
}

/// sqitch's deployed changes of the project, and changes whose latest event
/// is a failure (in `events` beside `changes`, in the registry's schema).
fn sqitch(
    client: &mut impl postgres::GenericClient,
    changes: &HistoryTable,
    project: Option<&str>,
) -> Result<Vec<ToolRow>, AdoptError> {
    let events = sql_name(&HistoryTable { name: "events".into(), ..changes.clone() });
    let changes = sql_name(changes);
    let rows = client
        .query(
            &format!(
                "select change, script_hash, committed_at, committer_name
                   from {changes} where $1::text is null or project = $1
                  order by committed_at, change_id"
            ),
            &[&project],
        )
        .map_err(db_of(&changes))?;
    let mut out: Vec<ToolRow> = rows
        .iter()
        .map(|r| ToolRow {
            applied_at: r.get(2),
            applied_by: r.get(3),
            checksum: r.get::<_, Option<String>>(1).map(ToolChecksum::Sha1),
            ..ToolRow::applied(r.get(0))
        })
        .collect();
    let failed = client
        .query(
            &format!(
                "select distinct on (change) change, event
                   from {events} where $1::text is null or project = $1
                  order by change, committed_at desc"
            ),
            &[&project],
        )
        .map_err(db_of(&events))?;
    for r in failed {
        let (change, event): (String, String) = (r.get(0), r.get(1));
        if event == "fail" && !out.iter().any(|o| o.version == change) {
            out.push(ToolRow {
                state: RowState::Failed {
                    why: "its latest sqitch event is a failed deploy".into(),
                },
                ..ToolRow::applied(change)
            });
        }
    }
    Ok(out)
}

/// The Supabase CLI's history: `version`, and where the CLI is recent
/// enough to keep them, `name` and `statements` (newer columns such as
/// `created_by` are read when present, never required). It records only
/// migrations that finished: its batch and the row commit together.
fn supabase(
    client: &mut impl postgres::GenericClient,
    table: &str,
    has: &dyn Fn(&str) -> bool,
) -> Result<Vec<ToolRow>, AdoptError> {
    let statements = if has("statements") { "statements" } else { "null::text[]" };
    let created_by = if has("created_by") { "created_by::text" } else { "null::text" };
    let sql =
        format!("select version::text, {statements}, {created_by} from {table} order by version");
    let rows = client.query(&sql, &[]).map_err(db_of(table))?;
    Ok(rows
        .iter()
        .map(|r| {
            let statements: Option<Vec<Option<String>>> = r.get(1);
            let statements: Vec<String> =
                statements.unwrap_or_default().into_iter().flatten().collect();
            ToolRow {
                applied_by: r.get(2),
                // A row without statements (an older CLI's, or one written
                // by hand) has nothing to compare.
                checksum: (!statements.is_empty()).then(|| {
                    ToolChecksum::Statements(statements_digest(
                        statements.iter().map(String::as_str),
                    ))
                }),
                ..ToolRow::applied(r.get(0))
            }
        })
        .collect())
}

/// Prisma's history: one row per attempt at a migration. A migration is
/// applied when an attempt finished and was not rolled back; an attempt
/// that neither finished nor was marked rolled back (`prisma migrate
/// resolve --rolled-back`) is a failed migration Prisma itself refuses to
/// go past.
fn prisma(
    client: &mut impl postgres::GenericClient,
    table: &str,
) -> Result<Vec<ToolRow>, AdoptError> {
    let rows = client
        .query(
            &format!(
                "select migration_name::text, checksum::text,
                        extract(epoch from finished_at)::float8, rolled_back_at is not null,
                        (extract(epoch from (finished_at - started_at)) * 1000)::bigint, logs
                   from {table} order by started_at, migration_name"
            ),
            &[],
        )
        .map_err(db_of(table))?;
    let mut out: Vec<ToolRow> = Vec::new();
    for r in &rows {
        let name: String = r.get(0);
        let finished: Option<f64> = r.get(2);
        let rolled_back: bool = r.get(3);
        let row = match (finished, rolled_back) {
            (_, true) => continue,
            (Some(at), false) => ToolRow {
                applied_at: epoch(Some(at)),
                duration_ms: r.get(4),
                checksum: Some(ToolChecksum::Sha256(r.get(1))),
                ..ToolRow::applied(name.clone())
            },
            (None, false) => {
                let logs: Option<String> = r.get(5);
                let first = logs.as_deref().and_then(|l| l.lines().find(|l| !l.trim().is_empty()));
                let why = match first {
                    Some(line) => format!(
                        "Prisma recorded it as started and never finished ({})",
                        line.chars().take(200).collect::<String>().trim()
                    ),
                    None => "Prisma recorded it as started and never finished".to_string(),
                };
                ToolRow { state: RowState::Failed { why }, ..ToolRow::applied(name.clone()) }
            }
        };
        // The latest attempt decides, but a finished one is never undone by
        // a failed row before it.
        out.retain(|o| o.version != name);
        out.push(row);
    }
    Ok(out)
}

/// node-pg-migrate's history: the file's name (without `.sql`) and when
/// it ran, in the order it ran them.
fn node_pg_migrate(
    client: &mut impl postgres::GenericClient,
    table: &str,
) -> Result<Vec<ToolRow>, AdoptError> {
    let rows = client
        .query(
            &format!(
                "select name::text, extract(epoch from run_on)::float8 from {table} order by run_on, id"
            ),
            &[],
        )
        .map_err(db_of(table))?;
    Ok(rows
        .iter()
        .map(|r| ToolRow { applied_at: epoch(r.get(1)), ..ToolRow::applied(r.get(0)) })
        .collect())
}

/// Drizzle's history: `hash` (SHA-256 of the file) and `created_at`, the
/// journal entry's `when`, which is how drizzle tells what it applied.
fn drizzle(
    client: &mut impl postgres::GenericClient,
    table: &str,
) -> Result<Vec<ToolRow>, AdoptError> {
    let rows = client
        .query(
            &format!("select created_at::text, hash::text from {table} order by created_at, id"),
            &[],
        )
        .map_err(db_of(table))?;
    Ok(rows
        .iter()
        .map(|r| ToolRow {
            checksum: Some(ToolChecksum::Sha256(r.get(1))),
            ..ToolRow::applied(r.get(0))
        })
        .collect())
}

/// The columns each tool's history table has, sorted: how a table is
/// known as a tool's under any name (drizzle's `migrations.table`, a
/// renamed `schema_migrations`). dbmate's one `version` column says too
/// little to tell.
const SHAPES: &[(Layout, &[&str])] = &[
    (Layout::NodePgMigrate, &["id", "name", "run_on"]),
    (Layout::Drizzle, &["created_at", "hash", "id"]),
    (Layout::GolangMigrate, &["dirty", "version"]),
    (Layout::Diesel, &["run_on", "version"]),
    (Layout::Goose, &["id", "is_applied", "tstamp", "version_id"]),
    (
        Layout::Sqlx,
        &["checksum", "description", "execution_time", "installed_on", "success", "version"],
    ),
    (
        Layout::Prisma,
        &[
            "applied_steps_count",
            "checksum",
            "finished_at",
            "id",
            "logs",
            "migration_name",
            "rolled_back_at",
            "started_at",
        ],
    ),
    (
        Layout::Flyway,
        &[
            "checksum",
            "description",
            "execution_time",
            "installed_by",
            "installed_on",
            "installed_rank",
            "script",
            "success",
            "type",
            "version",
        ],
    ),
];

/// Every table of the database that holds a migration tool's history:
/// each tool's default table (a bare name in any schema; all of sqitch's
/// registry), and any table shaped as one ([`by_shape`]).
pub fn tool_tables(client: &mut Client) -> Result<Vec<(String, String)>, postgres::Error> {
    let (mut qualified, mut bare) = (Vec::new(), Vec::new());
    for tool in Layout::ALL {
        let t = default_table(tool);
        match t.schema {
            Some(schema) => qualified.push(format!("{schema}.{}", t.name)),
            None => bare.push(t.name),
        }
    }
    let rows = client.query(
        "select n.nspname::text, c.relname::text
           from pg_class c join pg_namespace n on n.oid = c.relnamespace
          where c.relkind in ('r', 'p') and n.nspname not in ('pg_catalog', 'information_schema', 'backstop')
            and (n.nspname || '.' || c.relname = any($1) or c.relname = any($2) or n.nspname = 'sqitch')",
        &[&qualified, &bare],
    )?;
    let mut out: std::collections::BTreeSet<(String, String)> =
        rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    out.extend(by_shape(client)?.into_iter().map(|(_, t)| (t.schema.unwrap_or_default(), t.name)));
    Ok(out.into_iter().collect())
}

/// The tables of the database shaped as a tool's history, whatever their
/// name, with that tool.
pub fn by_shape(client: &mut Client) -> Result<Vec<(Layout, HistoryTable)>, postgres::Error> {
    let rows = client.query(
        "select n.nspname::text, c.relname::text,
                array_agg(a.attname::text order by a.attname::text)
           from pg_class c join pg_namespace n on n.oid = c.relnamespace
           join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
          where c.relkind in ('r', 'p') and n.nspname not in ('pg_catalog', 'information_schema', 'backstop')
            and n.nspname not like 'pg_toast%' and n.nspname not like 'pg_temp%'
          group by n.nspname, c.relname having count(*) between 2 and 10",
        &[],
    )?;
    let mut out = Vec::new();
    for r in rows {
        let columns: Vec<String> = r.get(2);
        let Some((tool, _)) = SHAPES.iter().find(|(_, shape)| *shape == columns.as_slice()) else {
            continue;
        };
        let table = HistoryTable { schema: Some(r.get(0)), name: r.get(1), set_in: None };
        out.push((*tool, table));
    }
    Ok(out)
}
