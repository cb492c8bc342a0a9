//! The failure scenarios, played on fresh copies and timed: A, a
//! statement fails mid-migration and the automatic rollback must leave the
//! copy as it was; B, the pre-migration backup is restored over a migrated
//! copy that took late writes; C, the full rollback after damage: detect
//! the loss, export what the migration created, run the downs, restore.
//! A and B share a copy: B's migrate goes on from where A left it.

use std::time::{Duration, Instant};

use postgres::Client;

use super::injected::APlan;
use super::ms;
use super::outcome::{Difference, Scenario};
use super::scenario_backup::BackedUp;
use super::snapshot::{compare, first_of, listed, snapshot, Snapshot};
use super::RehearseError;
use crate::copies::clone::{CopyDb, Workspace};
use crate::migrate::{self, MigrateOptions, Progress, RollbackTarget, Settings};
use crate::pg::checksum::TableChecksum;
use crate::source::Migration;

/// Scenarios A and B on one copy, so that one apply of the pending
/// migrations serves both: B's backup of the start, then A (which applies
/// the batch up to its last transaction and injects a failure there),
/// then the rest of B from where A left the copy: the last transaction
/// applied for real, the late writes and the restore. A's time is its
/// injected run; B's is the rest, its backup and the apply included.
pub(super) fn scenarios_a_b(
    copy: &CopyDb,
    workspace: &Workspace,
    migrations: &[Migration],
    settings: &Settings,
    todo: &[Migration],
    progress: &mut dyn Progress,
) -> Result<[Scenario; 2], RehearseError> {
    let t = Instant::now();
    let conninfo = copy.conninfo()?;
    let mut client = copy.connect()?;
    let start = snapshot(&mut client)?;
    let backed = BackedUp::take(&conninfo, settings)?;
    let a = scenario_a(&mut client, migrations, settings, todo, &start, progress)?;
    // B's clock leaves out A's injected run.
    let b_started = t.checked_add(Duration::from_millis(a.duration_ms)).unwrap_or(t);
    let b = match backed {
        Err(why) => Scenario::played("B", false, ms(b_started.elapsed()), why),
        Ok(backed) => {
            let on = (copy, workspace);
            let run = (migrations, settings, todo);
            scenario_b(client, on, run, (start, backed), b_started, progress)?
        }
    };
    Ok([a, b])
}

/// Scenario A: a statement fails at the end of the last migration; the
/// automatic rollback must leave the copy exactly as it was. Where the
/// batch cannot run as one transaction, the transactions before the last
/// are applied first and the copy must be as they left it; each split is
/// named with the statement that forces it, and one the project can avoid
/// fails the scenario with its fix. `start`: the copy as it is now, at
/// the start of the pending migrations. The copy is left as the
/// transactions before the last left it.
fn scenario_a(
    client: &mut Client,
    migrations: &[Migration],
    settings: &Settings,
    todo: &[Migration],
    start: &Snapshot,
    progress: &mut dyn Progress,
) -> Result<Scenario, RehearseError> {
    let plan = APlan::of(todo);
    let Some(before_last) = plan.before_last() else { return Ok(plan.no_transaction()) };
    // A failure in the last transaction cannot undo the ones before it.
    if let Some(to) = before_last {
        let to = Some(to.to_string());
        let options = MigrateOptions { to, allow_out_of_order: true, ..Default::default() };
        let report = migrate::migrate(client, migrations, settings, &options, &mut [], progress)?;
        if let Some(f) = report.failure {
            let detail = format!("the transactions before the last one failed: {}", f.message);
            return Ok(plan.scenario(false, 0, detail));
        }
    }
    let before = if before_last.is_some() { snapshot(client)? } else { start.clone() };
    Ok(plan.injected(client, migrations, settings, before, progress)?.0)
}

/// A table no migration uses: the "writes that arrive after the migration"
/// of scenario B.
const LATE_WRITES: &str = "backstop_rehearsal_late_writes";

/// How many late writes scenario B makes, and must find kept.
const LATE_ROWS: i64 = 25;

/// The schema the late writes go to: the first of the session's search
/// path the role may create a table in, else the first other user schema
/// it may (an application's own schema, where `public` is closed to it as
/// on PostgreSQL 15 and later, or the role's path is another database's).
const LATE_SCHEMA: &str = "select n.nspname::text from pg_namespace n
     where has_schema_privilege(n.oid, 'CREATE')
       and n.nspname not in ('backstop', 'information_schema') and n.nspname !~ '^pg_'
     order by array_position(current_schemas(false), n.nspname::name) nulls last, n.nspname
     limit 1";

/// Scenario B, from its backup of the start on: migrate (from where
/// scenario A left the copy), let writes arrive, restore the backup. The
/// copy must equal the start and the late writes must survive in the
/// pre-restore snapshot. `started`: when its clock started (scenario A's
/// time left out).
fn scenario_b(
    mut client: Client,
    (copy, workspace): (&CopyDb, &Workspace),
    (migrations, settings, todo): (&[Migration], &Settings, &[Migration]),
    (before, backed): (Snapshot, BackedUp),
    started: Instant,
    progress: &mut dyn Progress,
) -> Result<Scenario, RehearseError> {
    let report =
        migrate::migrate(&mut client, migrations, settings, &up_to(todo), &mut [], progress)?;
    if let Some(f) = report.failure {
        let detail = format!("the migration failed: {}", f.message);
        return Ok(Scenario::played("B", false, ms(started.elapsed()), detail));
    }
    restored_b(client, (copy, workspace), settings, (before, backed), started)
}

/// The end of scenario B on a migrated copy: the late writes, the restore
/// of the backup of its start (`before`, its snapshot), the comparison
/// with the start and the late writes found in the pre-restore snapshot.
pub(super) fn restored_b(
    mut client: Client,
    (copy, workspace): (&CopyDb, &Workspace),
    settings: &Settings,
    (before, backed): (Snapshot, BackedUp),
    started: Instant,
) -> Result<Scenario, RehearseError> {
    let fail = |detail: String| Scenario::played("B", false, ms(started.elapsed()), detail);
    let conninfo = copy.conninfo()?;
    let written =
        |source| RehearseError::Db(crate::pg::DbError::new("writing after the migration", source));
    let Some(schema) = client.query_opt(LATE_SCHEMA, &[]).map_err(written)? else {
        let why = "the role may create a table in no schema of the copy, so no write could \
                   arrive after the migration; grant it CREATE on one";
        return Ok(fail(why.into()));
    };
    let late = crate::pg::quote_qualified(Some(schema.get(0)), LATE_WRITES);
    client
        .batch_execute(&format!(
            "CREATE TABLE {late} (id int, note text);
             INSERT INTO {late} SELECT g, 'written after the migration' FROM generate_series(1, {LATE_ROWS}) g;"
        ))
        .map_err(written)?;
    drop(client);
    let restore_started = Instant::now();
    let restored = match backed.restore(&conninfo, settings) {
        Ok(r) => r,
        Err(why) => return Ok(fail(why)),
    };
    let restore_ms = ms(restore_started.elapsed());
    if let Some(db) = &restored.snapshot_database {
        workspace.adopt(db);
    }
    let mut client = copy.connect()?;
    let (diffs, left_in_place) = judge_b(&before, &snapshot(&mut client)?, &restored.schemas);
    if !diffs.is_empty() {
        return Ok(fail(format!("the restored copy differs from the start: {}", listed(&diffs))));
    }
    let kept = late_writes_kept(copy, &restored, &late)?;
    if kept != LATE_ROWS {
        return Ok(fail(format!(
            "the pre-restore snapshot {} holds {kept} of the {LATE_ROWS} late writes",
            restored.snapshot_id
        )));
    }
    Ok(Scenario {
        name: "B".into(),
        ok: true,
        skipped: false,
        duration_ms: ms(started.elapsed()),
        detail: format!(
            "restored backup {} in {} ({:?}); {}; {LATE_ROWS} late writes kept in pre-restore snapshot {}",
            backed.manifest.id,
            restore_time(restore_ms),
            restored.strategy,
            identical_b(&restored.schemas, left_in_place.len()),
            restored.snapshot_id
        ),
        splits: Vec::new(),
        left_in_place: left_in_place.iter().map(|d| d.message.clone()).collect(),
    })
}

/// Scenario B's (and C's) comparison of the copy after the restore with its start:
/// the differences that fail it, and those a restore in place leaves by
/// design. A restore of the whole database (`restored` empty) must give
/// back all of it; a restore in place must give back the schemas it put
/// back, and what differs elsewhere (the platform's schemas, an extension
/// kept in `pg_catalog`, a policy on a platform's table) is only noted.
fn judge_b(
    before: &Snapshot,
    after: &Snapshot,
    restored: &[String],
) -> (Vec<Difference>, Vec<Difference>) {
    if restored.is_empty() {
        return (compare(before, after, None), Vec::new());
    }
    let (before_in, before_out) = before.split(restored);
    let (after_in, after_out) = after.split(restored);
    (compare(&before_in, &after_in, None), compare(&before_out, &after_out, None))
}

/// What scenario B's detail says of the copy once it passed.
fn identical_b(restored: &[String], left: usize) -> String {
    match (restored, left) {
        ([], _) => "copy identical to the start".into(),
        (schemas, 0) => format!(
            "restored schema(s) {} identical to the start; nothing else differs",
            schemas.join(", ")
        ),
        (schemas, n) => format!(
            "restored schema(s) {} identical to the start; {n} difference(s) outside them left \
             as a restore in place leaves them (noted, not errors)",
            schemas.join(", ")
        ),
    }
}

/// How many late writes the pre-restore snapshot of scenario B holds.
fn late_writes_kept(
    copy: &CopyDb,
    restored: &crate::backup::restore::RestoreReport,
    late: &str,
) -> Result<i64, RehearseError> {
    Ok(match &restored.snapshot_database {
        Some(db) => {
            let snap = CopyDb {
                server_url: copy.server_url.clone(),
                dbname: db.clone(),
                role: copy.role.clone(),
            };
            let mut c = snap.connect()?;
            c.query_one(&format!("select count(*) from {late}"), &[])
                .map(|r| r.get::<_, i64>(0))
                .unwrap_or(0)
        }
        // The clean strategy keeps the snapshot as a dump; it was taken and
        // verified by the restore itself.
        None => LATE_ROWS,
    })
}

/// A restore's time in scenario B's detail: seconds with a tenth from one
/// second on, milliseconds below.
fn restore_time(restore_ms: u64) -> String {
    if restore_ms >= 1000 {
        format!("{:.1}s", restore_ms as f64 / 1000.0)
    } else {
        format!("{restore_ms}ms")
    }
}

/// Scenario C, the full rollback: after the migration, rows vanish from a
/// protected table; the loss must show against the backup's row counts;
/// the tables the migration created are exported to CSV for forensics;
/// the downs run; the backup is restored; the copy must equal the start.
/// `copy`: none where no protected table is named. `downs`: where the
/// downs it runs come from.
pub(super) fn scenario_c(
    copy: Option<&CopyDb>,
    workspace: &Workspace,
    (migrations, downs): (&[Migration], Downs<'_>),
    settings: &Settings,
    todo: &[Migration],
    progress: &mut dyn Progress,
) -> Result<Scenario, RehearseError> {
    let t = Instant::now();
    let done = |ok: bool, detail: String| Scenario::played("C", ok, ms(t.elapsed()), detail);
    let skipped = || {
        let detail = "no protected table holds rows to damage; list one in [migrations] \
                      protected_tables to rehearse the full rollback"
            .to_string();
        Scenario { skipped: true, ..done(true, detail) }
    };
    // No protected table named: no copy was made for nothing to damage.
    let Some(copy) = copy else { return Ok(skipped()) };
    let conninfo = copy.conninfo()?;
    let mut client = copy.connect()?;
    let before = snapshot(&mut client)?;
    let Some(victim) = victim(&before.tables, &settings.protected_tables).cloned() else {
        return Ok(skipped());
    };
    let backed = match BackedUp::take(&conninfo, settings)? {
        Ok(b) => b,
        Err(why) => return Ok(done(false, why)),
    };
    let report =
        migrate::migrate(&mut client, migrations, settings, &up_to(todo), &mut [], progress)?;
    if let Some(f) = report.failure {
        return Ok(done(false, format!("the migration failed: {}", f.message)));
    }
    let migrated = snapshot(&mut client)?;
    let now = damage(&mut client, &victim)?;
    let expected = backed.manifest.row_counts.get(&victim.table).copied().unwrap_or(victim.rows);
    if now >= expected {
        return Ok(done(false, format!("the deleted rows of {} went unnoticed", victim.table)));
    }
    // Forensic export of what the migration created, before it is undone.
    let (new_tables, exported) = export_new_tables(&mut client, &before, &migrated)?;
    let with_downs = match downs.take(migrations, todo) {
        Ok(with_downs) => with_downs,
        Err(why) => return Ok(done(false, why)),
    };
    let down = migrate::rollback(
        &mut client,
        &with_downs,
        settings,
        &RollbackTarget::Steps(todo.len()),
        false,
        progress,
    )?;
    if let Some(f) = down.failure {
        return Ok(done(false, format!("the down migrations failed: {}", f.message)));
    }
    drop(client);
    let restored = match backed.restore(&conninfo, settings) {
        Ok(r) => r,
        Err(why) => return Ok(done(false, why)),
    };
    if let Some(db) = &restored.snapshot_database {
        workspace.adopt(db);
    }
    let mut client = copy.connect()?;
    let (diffs, left) = judge_b(&before, &snapshot(&mut client)?, &restored.schemas);
    if !diffs.is_empty() {
        return Ok(done(
            false,
            format!("after the full rollback the copy differs from the start: {}", listed(&diffs)),
        ));
    }
    Ok(Scenario {
        left_in_place: left.iter().map(|d| d.message.clone()).collect(),
        ..done(
            true,
            format!(
                "{} of {expected} rows deleted from {} detected against backup {}; {new_tables} new table(s) exported ({exported} rows); downs ran; backup restored; {}",
                expected - now,
                victim.table,
                backed.manifest.id,
                identical_b(&restored.schemas, left.len()),
            ),
        )
    })
}

/// Where the downs scenario C runs come from.
pub(super) enum Downs<'a> {
    /// Each migration's own, as given.
    Own,
    /// The migrations with the downs made for those without one, given
    /// once the round trips that make them are done (nothing: they did
    /// not end).
    Later(std::sync::mpsc::Receiver<Vec<Migration>>),
    /// The migrations with the downs made for them, already known.
    Made(&'a [Migration]),
}

impl<'a> Downs<'a> {
    /// The migrations whose downs run (`migrations`, the scenario's own,
    /// where each has its own down), or why they cannot: one of `todo`
    /// without a down stops the method, as `rollback` would refuse it.
    fn take(
        self,
        migrations: &'a [Migration],
        todo: &[Migration],
    ) -> Result<std::borrow::Cow<'a, [Migration]>, String> {
        use std::borrow::Cow;
        let with_downs = match self {
            Downs::Own => Cow::Borrowed(migrations),
            Downs::Made(made) => Cow::Borrowed(made),
            Downs::Later(given) => Cow::Owned(given.recv().map_err(|_| {
                "the round trips that prove its downs did not end: nothing to run".to_string()
            })?),
        };
        let undone =
            |t: &Migration| with_downs.iter().any(|m| m.version == t.version && m.down.is_some());
        let missing: Vec<String> =
            todo.iter().filter(|t| !undone(t)).map(Migration::label).collect();
        if missing.is_empty() {
            return Ok(with_downs);
        }
        Err(format!(
            "the downs cannot run: no proved down for {} of the {} migration(s) ({}); write one, \
             or see why with `backstop downs VERSION`",
            missing.len(),
            todo.len(),
            first_of(&missing)
        ))
    }
}

/// The first protected table that holds rows is the one damaged.
fn victim<'t>(tables: &'t [TableChecksum], protected: &[String]) -> Option<&'t TableChecksum> {
    tables.iter().find(|t| {
        t.rows > 0 && protected.iter().any(|p| t.table == *p || t.table == format!("public.{p}"))
    })
}

/// How many rows scenario C deletes from a table of `rows`: a tenth, and
/// at least one.
fn doomed(rows: i64) -> i64 {
    (rows / 10).max(1)
}

/// Deletes rows of `victim`; returns how many it holds after.
fn damage(client: &mut Client, victim: &TableChecksum) -> Result<i64, RehearseError> {
    let db = |context: &'static str| {
        move |source| RehearseError::Db(crate::pg::DbError::new(context, source))
    };
    let (schema, name) = victim.table.split_once('.').unwrap_or(("public", &victim.table));
    let qualified = crate::pg::quote_qualified(Some(schema), name);
    let doomed = doomed(victim.rows);
    // Damage as an incident would do it, past the guards and the FKs.
    let _ = client.batch_execute("SET session_replication_role = replica");
    client
        .batch_execute(&format!(
            "DELETE FROM {qualified} WHERE ctid IN (SELECT ctid FROM {qualified} LIMIT {doomed})"
        ))
        .map_err(db("planting the damage"))?;
    let _ = client.batch_execute("RESET session_replication_role");
    Ok(client
        .query_one(&format!("select count(*) from {qualified}"), &[])
        .map_err(db("counting the damaged table"))?
        .get(0))
}

/// Exports to CSV every table in `migrated` that `before` did not have;
/// returns how many tables and how many rows.
fn export_new_tables(
    client: &mut Client,
    before: &Snapshot,
    migrated: &Snapshot,
) -> Result<(usize, u64), RehearseError> {
    let new_tables: Vec<&TableChecksum> = migrated
        .tables
        .iter()
        .filter(|m| !before.tables.iter().any(|b| b.table == m.table))
        .collect();
    let mut exported = 0u64;
    for table in &new_tables {
        let (s, n) = table.table.split_once('.').unwrap_or(("public", &table.table));
        let sql = format!(
            "COPY {} TO STDOUT WITH (FORMAT csv, HEADER)",
            crate::pg::quote_qualified(Some(s), n)
        );
        let mut reader = client.copy_out(sql.as_str()).map_err(|source| {
            RehearseError::Db(crate::pg::DbError::new("exporting a new table", source))
        })?;
        let mut csv = Vec::new();
        std::io::Read::read_to_end(&mut reader, &mut csv).map_err(|source| RehearseError::Io {
            action: "export",
            path: table.table.clone().into(),
            source,
        })?;
        exported += csv_rows(&csv);
    }
    Ok((new_tables.len(), exported))
}

/// The data rows of a CSV export with a header line.
fn csv_rows(csv: &[u8]) -> u64 {
    csv.iter().filter(|b| **b == b'\n').count().saturating_sub(1) as u64
}

/// Applies the rehearsed migrations and no later ones.
fn up_to(todo: &[Migration]) -> MigrateOptions {
    MigrateOptions {
        to: todo.last().map(|m| m.version.clone()),
        allow_out_of_order: true,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str, rows: i64) -> TableChecksum {
        TableChecksum { table: name.into(), rows, checksum: String::new() }
    }

    #[test]
    fn the_victim_is_the_first_protected_table_with_rows() {
        let tables = [
            table("public.logs", 9),
            table("public.users", 0),
            table("billing.plans", 4),
            table("public.orgs", 3),
        ];
        let protected = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let pick = |names: &[&str]| victim(&tables, &protected(names)).map(|t| t.table.clone());
        assert_eq!(
            pick(&["users", "orgs"]),
            Some("public.orgs".into()),
            "an empty table is spared"
        );
        assert_eq!(pick(&["billing.plans", "orgs"]), Some("billing.plans".into()));
        assert_eq!(pick(&["plans"]), None, "a bare name means the public schema");
        assert_eq!(pick(&[]), None);
    }

    #[test]
    fn a_tenth_of_the_rows_and_at_least_one_is_deleted() {
        assert_eq!(doomed(1), 1);
        assert_eq!(doomed(9), 1);
        assert_eq!(doomed(250), 25);
    }

    #[test]
    fn an_export_counts_rows_without_its_header() {
        assert_eq!(csv_rows(b"id,note\n1,a\n2,b\n"), 2);
        assert_eq!(csv_rows(b"id,note\n"), 0);
        assert_eq!(csv_rows(b""), 0);
    }

    fn snap(objects: &[(&str, &str)], tables: &[(&str, i64)]) -> Snapshot {
        Snapshot {
            schema: crate::pg::fingerprint::Schema {
                objects: objects
                    .iter()
                    .map(|(k, d)| crate::pg::fingerprint::Object {
                        key: k.to_string(),
                        definition: d.to_string(),
                    })
                    .collect(),
                cosmetic: Vec::new(),
            },
            tables: tables.iter().map(|(t, rows)| table(t, *rows)).collect(),
        }
    }

    #[test]
    fn scenario_b_in_place_fails_on_the_restored_schemas_and_notes_the_rest() {
        let before = snap(
            &[("column public.t.a", "int"), ("schema public", "postgres")],
            &[("public.t", 3), ("storage.objects", 2)],
        );
        let after = snap(
            &[
                ("column public.t.a", "int"),
                ("extension pg_cron", "1.6 schema=pg_catalog"),
                ("policy storage.objects.own", "using (true)"),
                ("schema cron", "postgres"),
                ("schema public", "postgres"),
            ],
            &[("public.t", 3), ("storage.objects", 4), ("cron.job", 1)],
        );
        let public = ["public".to_string()];
        let (errors, left) = judge_b(&before, &after, &public);
        assert!(errors.is_empty(), "{}", listed(&errors));
        assert_eq!(
            listed(&left),
            "extension pg_cron is new; policy storage.objects.own is new; schema cron is new; \
             data of table storage.objects differs (2 rows before, 4 after)"
        );
        let (errors, _) = judge_b(&before, &after, &[]);
        assert_eq!(errors.len(), 4, "a whole-database restore must give back all of it");

        let broken = snap(
            &[("column public.t.a", "text"), ("schema public", "postgres")],
            &[("public.t", 2), ("storage.objects", 2)],
        );
        let (errors, left) = judge_b(&before, &broken, &public);
        assert_eq!(
            listed(&errors),
            "column public.t.a changed: int -> text; data of table public.t differs (3 rows before, 2 after)",
            "a real difference in a restored schema still fails"
        );
        assert!(left.is_empty());
        assert_eq!(
            identical_b(&public, 3),
            "restored schema(s) public identical to the start; 3 difference(s) outside them left \
             as a restore in place leaves them (noted, not errors)"
        );
        assert_eq!(identical_b(&[], 0), "copy identical to the start");
    }

    #[test]
    fn a_restore_time_reads_in_seconds_from_one_second() {
        assert_eq!(restore_time(999), "999ms");
        assert_eq!(restore_time(1000), "1.0s");
        assert_eq!(restore_time(12_345), "12.3s");
    }
}
