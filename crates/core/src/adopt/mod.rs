//! Taking over another tool's history: its applied versions become
//! Backstop's, without running anything. Every applied version must have
//! its file in the folder, with the checksum the tool recorded (sqlx,
//! Flyway, sqitch, Prisma and Drizzle record one; the Supabase CLI records
//! the statements it ran, compared by their tokens; the others keep no
//! checksum), and none may be failed or dirty; any such
//! finding is named and nothing is adopted until it is resolved. The other
//! tool's table is only read by adopting; [`in_step`] writes it when
//! Backstop applies or reverts a migration of a Supabase, Prisma or Drizzle
//! project, and [`unadopted`] finds the histories Backstop has not taken
//! over. The table is the one the database holds: the tool's default and
//! the one its settings name are both looked for ([`history::locate`]),
//! or `adopt --table` names it.

pub mod history;
pub mod in_step;
pub mod keyed;
mod sqitch;
mod unadopted;
mod writers;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use postgres::Client;
use serde::Serialize;
use serde_json::json;

use crate::pg::lock::{LockError, MigrationLock};
use crate::schema::{self, events};
use crate::source::{HistoryTable, Layout, Migration};

pub use history::{RowState, ToolChecksum, ToolRow};
pub use in_step::InStepError;
pub use unadopted::{unadopted, Unadopted};

/// Why an adoption could not be planned or carried out.
#[derive(Debug, thiserror::Error)]
pub enum AdoptError {
    #[error(
        "no {table} in this database: nothing that {tool} recorded to adopt; check the database \
         URL, name the tool that migrated it with --from, or its table with --table SCHEMA.NAME"
    )]
    NoHistory { tool: Layout, table: String },
    #[error("{table} is not {tool}'s history table: {why}; name the right tool with --from")]
    WrongTable { tool: Layout, table: String, why: &'static str },
    #[error(
        "{tool}'s history is in two tables of this database, both with rows: {first} and \
         {second}; name the one {tool}'s migrator uses with `backstop history adopt --from {tool} \
         --table SCHEMA.NAME` (and empty or drop the other, so that the two cannot disagree)"
    )]
    TwoHistories { tool: Layout, first: String, second: String },
    #[error(
        "no other tool's history in this database records a migration of the folder: nothing \
         to adopt; name the tool that migrated it with --from (and its table with --table)"
    )]
    NothingToAdopt,
    #[error(
        "several tools' histories record migrations of the folder: {}; name the one to adopt \
         with --from (and --table)",
        .0.join(", ")
    )]
    Several(Vec<String>),
    #[error(transparent)]
    Db(#[from] crate::pg::DbError),
    #[error(transparent)]
    Lock(#[from] LockError),
}

impl AdoptError {
    /// Exit code: a missing or wrong table is a usage error, the rest environment.
    pub fn exit_code(&self) -> u8 {
        match self {
            AdoptError::NoHistory { .. }
            | AdoptError::WrongTable { .. }
            | AdoptError::TwoHistories { .. }
            | AdoptError::NothingToAdopt
            | AdoptError::Several(_) => 2,
            AdoptError::Db(_) | AdoptError::Lock(_) => 3,
        }
    }
}

/// The one tool's history that `status` names as not adopted, and its
/// table: what `adopt` without `--from` takes over.
pub fn the_unadopted(
    client: &mut Client,
    migrations: &[Migration],
) -> Result<(Layout, HistoryTable), AdoptError> {
    let refs: Vec<&Migration> = migrations.iter().collect();
    let found = unadopted(client, &refs)?;
    match found.as_slice() {
        [] => Err(AdoptError::NothingToAdopt),
        [one] => {
            let table = HistoryTable::parse(&one.table).ok_or(AdoptError::NothingToAdopt)?;
            Ok((one.tool, table))
        }
        many => Err(AdoptError::Several(
            many.iter().map(|u| format!("{} ({})", u.table, u.tool.name())).collect(),
        )),
    }
}

/// A version of the other tool's history that cannot be adopted as it is.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// The version as the tool records it.
    pub version: String,
    /// `missing_file`, `checksum`, `failed`, `already_applied_differently`.
    pub kind: &'static str,
    pub message: String,
}

/// One migration to record as applied.
#[derive(Debug, Clone, Serialize)]
pub struct Adoption {
    pub version: String,
    pub name: String,
    pub tool_version: String,
    pub applied_at: Option<chrono::DateTime<chrono::Utc>>,
    pub applied_by: Option<String>,
    pub duration_ms: Option<i64>,
    #[serde(skip)]
    checksum: String,
    #[serde(skip)]
    no_transaction: bool,
}

/// What adopting would do.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub tool: Layout,
    /// The history table read, `schema.name`.
    pub table: String,
    /// Migrations to record as applied, in folder order.
    pub adopt: Vec<Adoption>,
    /// Versions Backstop's own history already has.
    pub already: Vec<String>,
    /// What stops the adoption.
    pub findings: Vec<Finding>,
    /// Migrations of the folder the tool never applied: pending afterwards.
    pub pending: Vec<String>,
}

impl Plan {
    pub fn ok(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Whether the checksum the other tool recorded is the one of the
/// migration's up file now, computed the tool's way.
fn checksum_matches(m: &Migration, recorded: &ToolChecksum) -> bool {
    use sha2::Digest as _;
    if let ToolChecksum::Statements(digest) = recorded {
        if !m.runnable(crate::source::Part::Up) {
            return false;
        }
        return *digest
            == history::statements_digest(m.up.statements.iter().map(|s| s.sql.as_str()));
    }
    let Ok(bytes) = std::fs::read(&m.up.path) else {
        return false;
    };
    match recorded {
        ToolChecksum::Sha384(sum) => *sum == hex(&sha2::Sha384::digest(&bytes)),
        ToolChecksum::Sha1(sum) => *sum == hex(&sha1::Sha1::digest(&bytes)),
        ToolChecksum::Crc32(sum) => *sum == flyway_crc32(&bytes),
        // Prisma accepts the script with its line endings changed either
        // way (git may have converted them); drizzle hashes the text as is.
        ToolChecksum::Sha256(sum) if m.layout == Layout::Prisma => {
            line_ending_variants(&bytes).iter().any(|b| *sum == hex(&sha2::Sha256::digest(b)))
        }
        ToolChecksum::Sha256(sum) => *sum == hex(&sha2::Sha256::digest(&bytes)),
        ToolChecksum::Graphile(sum) => {
            use crate::source::graphile;
            let text = String::from_utf8_lossy(&bytes);
            graphile::headers(&text)
                .is_ok_and(|h| *sum == graphile::hash(&h.body, h.previous.as_deref()))
        }
        ToolChecksum::AtlasSum(sum) => {
            crate::source::atlas::sum_of(&m.up.path).as_ref() == Some(sum)
        }
        ToolChecksum::Statements(_) => unreachable!("compared above"),
    }
}

/// The bytes as they are, with CRLF made LF, and with LF made CRLF.
fn line_ending_variants(bytes: &[u8]) -> [Vec<u8>; 3] {
    let mut lf = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        lf.push(bytes[i]);
        i += 1;
    }
    let mut crlf = Vec::with_capacity(lf.len() + lf.len() / 16);
    for &b in &lf {
        if b == b'\n' {
            crlf.push(b'\r');
        }
        crlf.push(b);
    }
    [bytes.to_vec(), lf, crlf]
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Flyway's checksum: CRC-32 over the script's lines, each without its line
/// ending (`\n`, `\r\n` or `\r`), a leading byte-order mark dropped, as a
/// signed 32-bit integer.
pub fn flyway_crc32(bytes: &[u8]) -> i32 {
    let text = String::from_utf8_lossy(bytes);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut crc = crc32fast::Hasher::new();
    for line in text.split('\n') {
        for part in line.split('\r') {
            crc.update(part.as_bytes());
        }
    }
    crc.finalize() as i32
}

/// Whether `row` (as `tool` records it) is migration `m`.
pub(super) fn same_version(tool: Layout, row: &ToolRow, m: &Migration) -> bool {
    if row.repeatable != m.repeatable {
        return false;
    }
    let digits = |v: &str| v.trim_start_matches('0').to_string();
    match tool {
        Layout::Diesel => row.version == m.version.replace('-', ""),
        Layout::Hasura => digits(&row.version) == digits(&m.tool_version),
        Layout::Sqlx | Layout::GolangMigrate | Layout::Goose | Layout::Dbmate => {
            digits(&row.version) == digits(&m.tool_version)
        }
        // Flyway: the normalized version; sqitch: the change; Supabase:
        // the digits as text; Prisma: the folder's name; Drizzle: the
        // journal entry's `when`.
        Layout::Flyway
        | Layout::Sqitch
        | Layout::Supabase
        | Layout::Prisma
        | Layout::Drizzle
        | Layout::GraphileMigrate
        | Layout::Atlas => row.version == m.tool_version,
        // node-pg-migrate: the file's name without its extension.
        Layout::NodePgMigrate => row.version == m.tool_version,
    }
}

/// Works out what adopting `rows` of `tool` into Backstop's history means
/// for `migrations`, given the versions Backstop already has (with their
/// checksums).
pub fn plan(
    tool: Layout,
    table: &HistoryTable,
    migrations: &[Migration],
    rows: &[ToolRow],
    backstop: &HashMap<String, String>,
) -> Plan {
    let mut plan = Plan {
        tool,
        table: table.to_string(),
        adopt: Vec::new(),
        already: Vec::new(),
        findings: Vec::new(),
        pending: Vec::new(),
    };
    let mut taken: HashSet<usize> = HashSet::new();
    for row in rows {
        // A reworked sqitch change appears once per instance: match them in order.
        let found = migrations
            .iter()
            .enumerate()
            .filter(|(i, m)| !taken.contains(i) && same_version(tool, row, m))
            .map(|(i, _)| i)
            .next();
        if let RowState::Failed { why } = &row.state {
            let name = found.map_or(row.version.clone(), |i| migrations[i].label());
            plan.findings.push(Finding {
                version: row.version.clone(),
                kind: "failed",
                message: format!(
                    "{name}: {why}; finish or undo it with {tool} and check the database, then adopt"
                ),
            });
            continue;
        }
        if row.up_to {
            // golang-migrate's current version, or a Flyway baseline.
            let Some(last) = found else {
                plan.findings.push(missing(tool, row));
                continue;
            };
            for (i, m) in migrations.iter().enumerate().take(last + 1) {
                if !m.repeatable && taken.insert(i) {
                    plan.take(m, row, backstop);
                }
            }
            continue;
        }
        let Some(i) = found else {
            plan.findings.push(missing(tool, row));
            continue;
        };
        taken.insert(i);
        let m = &migrations[i];
        if let Some(recorded) = &row.checksum {
            if !checksum_matches(m, recorded) {
                let what = match recorded {
                    ToolChecksum::Statements(_) => "other statements",
                    _ => "another checksum",
                };
                plan.findings.push(Finding {
                    version: row.version.clone(),
                    kind: "checksum",
                    message: format!(
                        "{}: {tool} recorded {what} for {} than the file has now, so the file \
                         changed after it was applied; restore the applied version of the \
                         file, then adopt",
                        m.label(),
                        m.up.path.display()
                    ),
                });
                continue;
            }
        }
        plan.take(m, row, backstop);
    }
    plan.pending = migrations
        .iter()
        .enumerate()
        .filter(|(i, m)| !taken.contains(i) && !backstop.contains_key(&m.version))
        .map(|(_, m)| m.version.clone())
        .collect();
    plan
}

impl Plan {
    /// Adopts `m` as the tool's `row`, unless Backstop has it already.
    fn take(&mut self, m: &Migration, row: &ToolRow, backstop: &HashMap<String, String>) {
        match backstop.get(&m.version) {
            Some(sum) if *sum != m.checksum => self.findings.push(Finding {
                version: row.version.clone(),
                kind: "already_applied_differently",
                message: format!(
                    "{} is in Backstop's history already, with another checksum; \
                     `backstop status` shows it as drifted",
                    m.label()
                ),
            }),
            Some(_) => self.already.push(m.version.clone()),
            None => self.adopt.push(Adoption {
                version: m.version.clone(),
                name: m.name.clone(),
                tool_version: row.version.clone(),
                applied_at: row.applied_at,
                applied_by: row.applied_by.clone(),
                duration_ms: row.duration_ms,
                checksum: m.checksum.clone(),
                no_transaction: m.no_transaction,
            }),
        }
    }
}

fn missing(tool: Layout, row: &ToolRow) -> Finding {
    Finding {
        version: row.version.clone(),
        kind: "missing_file",
        message: format!(
            "{tool} recorded version {} as applied, but no migration of the folder has that \
             version; restore its file (from version control) or point [migrations] dir at the \
             folder {tool} ran",
            row.version
        ),
    }
}

/// Reads both histories and plans the adoption (changes nothing): the
/// tool's from `table` when given (`adopt --table`), else from the table
/// [`history::locate`] finds.
pub fn prepare(
    client: &mut Client,
    tool: Layout,
    migrations: &[Migration],
    project: Option<&str>,
    table: Option<&HistoryTable>,
) -> Result<Plan, AdoptError> {
    let all: Vec<&Migration> = migrations.iter().collect();
    let table = history::locate(client, tool, table, &all)?;
    let rows = history::read(client, tool, &table, project)?;
    let backstop: HashMap<String, String> = schema::applied::all(client)
        .map_err(|source| {
            AdoptError::Db(crate::pg::DbError::new("reading or writing backstop.applied", source))
        })?
        .into_iter()
        .map(|r| (r.version, r.checksum))
        .collect();
    Ok(plan(tool, &table, migrations, &rows, &backstop))
}

/// Records the plan's migrations as applied, with the audit event, in one
/// transaction under the migration lock. The plan is made again under the
/// lock, so what is recorded is what the database says now.
pub fn apply(
    client: &mut Client,
    tool: Layout,
    migrations: &[Migration],
    project: Option<&str>,
    table: Option<&HistoryTable>,
    lock_wait: Duration,
) -> Result<Plan, AdoptError> {
    let mut lock = MigrationLock::acquire(client, lock_wait, |_| {})?;
    let client: &mut Client = &mut lock;
    let db = |context| move |source| AdoptError::Db(crate::pg::DbError::new(context, source));
    let plan = prepare(client, tool, migrations, project, table)?;
    if !plan.ok() {
        return Ok(plan);
    }
    schema::ensure(client).map_err(db("the backstop schema"))?;
    let mut tx = client.transaction().map_err(db("a transaction"))?;
    for a in &plan.adopt {
        let by = match &a.applied_by {
            Some(who) => format!("{who} (adopted from {tool} by {})", crate::schema::actor()),
            None => format!("adopted from {tool} by {}", crate::schema::actor()),
        };
        let row = schema::applied::Adopted {
            version: &a.version,
            name: &a.name,
            checksum: &a.checksum,
            applied_at: a.applied_at,
            duration_ms: a.duration_ms.unwrap_or(0),
            applied_by: &by,
            no_transaction: a.no_transaction,
        };
        schema::applied::adopt(&mut tx, &row).map_err(db("backstop.applied"))?;
    }
    let event = events::Event {
        kind: "adopt",
        outcome: "ok",
        versions: plan.adopt.iter().map(|a| a.version.clone()).collect(),
        details: json!({
            "from": tool.name(),
            "table": plan.table,
            "tool_versions": plan.adopt.iter().map(|a| &a.tool_version).collect::<Vec<_>>(),
            "already": plan.already,
            "pending": plan.pending,
        }),
    };
    events::record(&mut tx, &event).map_err(db("backstop.events"))?;
    tx.commit().map_err(db("the adoption"))?;
    Ok(plan)
}

/// The sqitch project named in the plan (`%project=`), to read only its changes.
/// What names the history of the folder `dir` of `tool` among others
/// kept in the same place: sqitch's project, the Hasura database; `None`
/// for the other tools.
pub fn scope(tool: Layout, dir: &Path) -> Option<String> {
    match tool {
        Layout::Sqitch => sqitch_project(dir),
        Layout::Hasura => crate::source::hasura::database(dir),
        _ => None,
    }
}

pub fn sqitch_project(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("sqitch.plan")).ok()?;
    text.lines().find_map(|l| l.trim().strip_prefix("%project=").map(|p| p.trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flyway_checksums_ignore_line_endings_and_the_byte_order_mark() {
        let lf = flyway_crc32(b"CREATE TABLE a (id int);\nINSERT INTO a VALUES (1);\n");
        let crlf =
            flyway_crc32(b"\xef\xbb\xbfCREATE TABLE a (id int);\r\nINSERT INTO a VALUES (1);\r\n");
        assert_eq!(lf, crlf);
        // The CRC-32 of the lines' bytes joined without their endings.
        let joined = crc32fast::hash(b"CREATE TABLE a (id int);INSERT INTO a VALUES (1);") as i32;
        assert_eq!(lf, joined);
    }
}
