//! Reading another tool's history table into one shape: which versions it
//! applied, when, with what checksum, and which it marks failed or dirty.

use chrono::{DateTime, Utc};
use postgres::Client;

use super::AdoptError;
use crate::source::Layout;

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
    }
}

fn db(table: &'static str) -> impl FnOnce(postgres::Error) -> AdoptError {
    move |source| {
        AdoptError::Db(crate::pg::DbError::new(format!("reading or writing {table}"), source))
    }
}

/// Reads `tool`'s history from the database `client` is connected to.
pub fn read(
    client: &mut Client,
    tool: Layout,
    project: Option<&str>,
) -> Result<Vec<ToolRow>, AdoptError> {
    let table = table_of(tool);
    let exists: bool = client
        .query_one("select to_regclass($1) is not null", &[&table])
        .map_err(db(table))?
        .get(0);
    if !exists {
        return Err(AdoptError::NoHistory { tool, table });
    }
    let columns: Vec<String> = client
        .query(
            "select attname::text from pg_attribute where attrelid = to_regclass($1) and attnum > 0 and not attisdropped",
            &[&table],
        )
        .map_err(db(table))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let has = |c: &str| columns.iter().any(|x| x == c);
    // dbmate and golang-migrate share a table name; the columns tell them apart.
    match tool {
        Layout::GolangMigrate if !has("dirty") => {
            return Err(AdoptError::WrongTable {
                tool,
                table,
                why: "it has no `dirty` column: dbmate's table?",
            })
        }
        Layout::Dbmate if has("dirty") => {
            return Err(AdoptError::WrongTable {
                tool,
                table,
                why: "it has a `dirty` column: golang-migrate's table?",
            })
        }
        _ => {}
    }
    let rows = match tool {
        Layout::Sqlx => client
            .query(
                "select version::text, installed_on, success, encode(checksum, 'hex'),
                        (execution_time / 1000000)::bigint
                   from _sqlx_migrations order by version",
                &[],
            )
            .map_err(db(table))?
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
                "select version::text, extract(epoch from run_on)::float8 from __diesel_schema_migrations order by version",
                &[],
            )
            .map_err(db(table))?
            .iter()
            .map(|r| ToolRow { applied_at: epoch(r.get(1)), ..ToolRow::applied(r.get(0)) })
            .collect(),
        Layout::Dbmate => client
            .query("select version::text from schema_migrations order by version", &[])
            .map_err(db(table))?
            .iter()
            .map(|r| ToolRow::applied(r.get(0)))
            .collect(),
        Layout::GolangMigrate => client
            .query("select version::text, dirty from schema_migrations", &[])
            .map_err(db(table))?
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
                    "select distinct on (version_id) version_id::text, is_applied, extract(epoch from tstamp)::float8
                       from goose_db_version where version_id <> 0
                      order by version_id, id desc",
                    &[],
                )
                .map_err(db(table))?
                .iter()
                .filter(|r| r.get::<_, bool>(1))
                .map(|r| ToolRow { applied_at: epoch(r.get(2)), ..ToolRow::applied(r.get(0)) })
                .collect()
        }
        Layout::Flyway => flyway(client)?,
        Layout::Sqitch => sqitch(client, project)?,
    };
    Ok(rows)
}

/// Flyway's history replayed in order: undo and delete entries take a
/// version back out, a baseline counts every version up to it, the latest
/// entry of a repeatable script holds its checksum.
fn flyway(client: &mut Client) -> Result<Vec<ToolRow>, AdoptError> {
    let rows = client
        .query(
            "select version, description, type, checksum, installed_by,
                    extract(epoch from installed_on)::float8, execution_time::bigint, success
               from flyway_schema_history order by installed_rank",
            &[],
        )
        .map_err(db("flyway_schema_history"))?;
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
/// is a failure.
fn sqitch(client: &mut Client, project: Option<&str>) -> Result<Vec<ToolRow>, AdoptError> {
    let changes = client
        .query(
            "select change, script_hash, committed_at, committer_name
               from sqitch.changes where $1::text is null or project = $1
              order by committed_at, change_id",
            &[&project],
        )
        .map_err(db("sqitch.changes"))?;
    let mut out: Vec<ToolRow> = changes
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
            "select distinct on (change) change, event
               from sqitch.events where $1::text is null or project = $1
              order by change, committed_at desc",
            &[&project],
        )
        .map_err(db("sqitch.events"))?;
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
