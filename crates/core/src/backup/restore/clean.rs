//! The clean restore, where the role may not create databases: dump the
//! current state first (a backup labelled `pre-restore`), then drop the
//! user schemas and `pg_restore` into them. `backstop` itself stays (its
//! events and freeze); only `backstop.applied` is replaced by the backup's.

use std::io::Write;

use postgres::Client;

use super::databases::literal;
use super::journal::{Journal, Step};
use super::{Failure, Run};
use crate::backup::create::{create, CreateOptions};
use crate::backup::manifest::Manifest;
use crate::backup::tools::{self, run_verbose, tail, Target};
use crate::backup::verify::compare;
use crate::backup::{BackupError, Note};
use crate::pg::quote_ident;

impl Run<'_> {
    /// Clean: the steps after the journal's last finished one. Until the
    /// pre-restore backup is taken nothing of the target changed; from
    /// then on a failure leaves it half-way, and the run is stuck.
    pub(super) fn clean(
        &mut self,
        j: &mut Journal,
        m: &Manifest,
        client: &mut Client,
    ) -> Result<(), Failure> {
        loop {
            match j.step {
                Step::Started | Step::Frozen => self.take_pre_restore_backup(j)?,
                // The restore in place is done whole on every run that
                // gets here, also when the journal already says `restored`
                // (the run stopped before the journal went away).
                Step::Restoring | Step::Restored | Step::Swapped => {
                    return self.restore_in_place(j, m, client)
                }
            }
        }
    }

    /// Step `restoring`: the current state, dumped first, as the backup a
    /// person goes back to (the clean restore drops it from the database).
    /// Recorded with its id only once it is complete.
    fn take_pre_restore_backup(&mut self, j: &mut Journal) -> Result<(), BackupError> {
        self.progress
            .note(Note::Step(format!("taking a pre-restore backup of the current {}", j.database)));
        let options = CreateOptions {
            label: Some("pre-restore".into()),
            jobs: self.options.jobs,
            lock_wait: self.options.lock_wait,
        };
        let snapshot = create(self.url, self.store, self.tools, &options, self.progress)?;
        self.progress.note(Note::Info(format!(
            "pre-restore backup {} taken ({} table(s), {} row(s))",
            snapshot.id,
            snapshot.row_counts.len(),
            snapshot.row_counts.values().sum::<i64>()
        )));
        j.snapshot_id = Some(snapshot.id);
        j.record(Step::Restoring, self.store)
    }

    /// Step `restored`: drop the user schemas, restore the backup into
    /// them and `backstop.applied` beside, then compare with the manifest.
    fn restore_in_place(
        &mut self,
        j: &mut Journal,
        m: &Manifest,
        client: &mut Client,
    ) -> Result<(), Failure> {
        let stuck = Failure::Stuck;
        self.progress.note(Note::Step(format!("dropping the user schemas of {}", j.database)));
        drop_user_schemas(client, &mut self.warnings).map_err(stuck)?;
        self.progress.note(Note::Step(format!(
            "restoring backup {} into {} with {} job(s)",
            m.id, j.database, self.options.jobs
        )));
        let target = tools::target(self.url, None)?;
        self.restore_user_schemas(&target, m).map_err(stuck)?;
        // backstop.applied as the backup has it: it matches the restored schema.
        self.restore_applied(client, &target, m).map_err(stuck)?;
        self.progress.note(Note::Step(format!("checking {} against backup {}", j.database, m.id)));
        let differences = compare(client, m).map_err(stuck)?;
        if !differences.is_empty() {
            return Err(Failure::Stuck(BackupError::Mismatch { id: m.id.clone(), differences }));
        }
        j.record(Step::Restored, self.store)?;
        Ok(())
    }

    /// pg_restore of everything in the backup but the `backstop` schema,
    /// which the clean restore keeps as it is.
    fn restore_user_schemas(&mut self, target: &Target, m: &Manifest) -> Result<(), BackupError> {
        let list = self.without_backstop_schema(m)?;
        let mut cmd = self.tools.command("pg_restore", target);
        cmd.args(["--verbose", "--exit-on-error", "--exclude-schema=backstop"])
            .arg(format!("--use-list={}", list.path().display()))
            .arg(format!("--jobs={}", self.options.jobs.max(1)))
            .arg(format!("--dbname={}", target.conninfo))
            .arg(self.store.dump_dir(&m.id));
        let (ok, stderr) =
            run_verbose(cmd, "pg_restore", m.row_counts.len() as u64, self.progress)?;
        self.progress.note(Note::Finished);
        if !ok {
            return Err(BackupError::RestoreFailed { id: m.id.clone(), output: tail(&stderr) });
        }
        Ok(())
    }

    /// Replaces `backstop.applied` by the backup's rows, so that the history
    /// matches the restored schema (the rest of `backstop` stays).
    fn restore_applied(
        &mut self,
        client: &mut Client,
        target: &Target,
        m: &Manifest,
    ) -> Result<(), BackupError> {
        if !crate::schema::exists(client).map_err(BackupError::db("reading the backstop schema"))? {
            return Ok(());
        }
        crate::schema::applied::clear(client)
            .map_err(BackupError::db("replacing backstop.applied"))?;
        let Some(list) = self.applied_list(m)? else {
            return Ok(());
        };
        let mut cmd = self.tools.command("pg_restore", target);
        cmd.arg("--data-only")
            .arg(format!("--use-list={}", list.path().display()))
            .arg(format!("--dbname={}", target.conninfo))
            .arg(self.store.dump_dir(&m.id));
        let (ok, stderr) = run_verbose(cmd, "pg_restore", 1, self.progress)?;
        if !ok {
            return Err(BackupError::RestoreFailed { id: m.id.clone(), output: tail(&stderr) });
        }
        Ok(())
    }

    /// The archive's table of contents without the `backstop` schema's
    /// own entries (`--exclude-schema` leaves out what is in it, not the
    /// schema itself, which the clean restore keeps).
    fn without_backstop_schema(
        &self,
        m: &Manifest,
    ) -> Result<tempfile::NamedTempFile, BackupError> {
        let toc = match crate::backup::verify::toc(self.tools, &self.store.dump_dir(&m.id))? {
            Ok(toc) => toc,
            Err(output) => return Err(BackupError::RestoreFailed { id: m.id.clone(), output }),
        };
        let mut file =
            tempfile::NamedTempFile::new().map_err(BackupError::io(std::env::temp_dir()))?;
        for line in toc.lines() {
            let own = line.contains(" SCHEMA - backstop ") || line.contains(" - SCHEMA backstop ");
            if !own {
                writeln!(file, "{line}").map_err(BackupError::io(file.path()))?;
            }
        }
        Ok(file)
    }

    /// A `pg_restore --use-list` file with only `backstop.applied`'s data,
    /// or `None` when the backup has no such table.
    fn applied_list(&self, m: &Manifest) -> Result<Option<tempfile::NamedTempFile>, BackupError> {
        let toc = match crate::backup::verify::toc(self.tools, &self.store.dump_dir(&m.id))? {
            Ok(toc) => toc,
            Err(output) => return Err(BackupError::RestoreFailed { id: m.id.clone(), output }),
        };
        let Some(line) = toc.lines().find(|l| l.contains(" TABLE DATA backstop applied ")) else {
            return Ok(None);
        };
        let mut file =
            tempfile::NamedTempFile::new().map_err(BackupError::io(std::env::temp_dir()))?;
        writeln!(file, "{line}").map_err(BackupError::io(file.path()))?;
        Ok(Some(file))
    }
}

/// Drops every user schema this role may drop, except `backstop`; `public`
/// is recreated with its owner, grants and comment. Schemas of other
/// owners are left, with a warning.
fn drop_user_schemas(client: &mut Client, warnings: &mut Vec<String>) -> Result<(), BackupError> {
    let rows = client
        .query(
            "select n.nspname::text, pg_has_role(n.nspowner, 'USAGE'),
                    pg_get_userbyid(n.nspowner)::text, obj_description(n.oid, 'pg_namespace'),
                    coalesce((select array_agg(format('%s %s %s', coalesce(pg_get_userbyid(nullif(a.grantee, 0))::text, ''),
                                                      a.privilege_type, a.is_grantable))
                                from aclexplode(n.nspacl) a), '{}')
               from pg_namespace n
              where n.nspname not in ('pg_catalog', 'information_schema', 'backstop', 'pg_toast')
                and n.nspname not like 'pg_temp%' and n.nspname not like 'pg_toast_temp%'
              order by 1",
            &[],
        )
        .map_err(BackupError::db("listing schemas"))?;
    let mut sql = String::new();
    for row in rows {
        let (name, mine, owner, comment, grants): (
            String,
            bool,
            String,
            Option<String>,
            Vec<String>,
        ) = (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
        if !mine {
            warnings.push(format!(
                "schema {name} belongs to {owner} and was not dropped; pg_restore restores into it"
            ));
            continue;
        }
        let q = quote_ident(&name);
        sql.push_str(&format!("DROP SCHEMA {q} CASCADE;\n"));
        if name == "public" {
            sql.push_str(&format!(
                "CREATE SCHEMA {q};\nALTER SCHEMA {q} OWNER TO {};\n",
                quote_ident(&owner)
            ));
            for g in grants {
                let parts: Vec<&str> = g.rsplitn(3, ' ').collect();
                let [grantable, privilege, grantee] = parts[..] else { continue };
                if grantee == owner {
                    continue;
                }
                let grantee =
                    if grantee.is_empty() { "PUBLIC".to_string() } else { quote_ident(grantee) };
                let with = if grantable == "true" { " WITH GRANT OPTION" } else { "" };
                sql.push_str(&format!("GRANT {privilege} ON SCHEMA {q} TO {grantee}{with};\n"));
            }
            if let Some(c) = comment {
                sql.push_str(&format!("COMMENT ON SCHEMA {q} IS {};\n", literal(&c)));
            }
        }
    }
    let mut tx = client.transaction().map_err(BackupError::db("dropping the user schemas"))?;
    tx.batch_execute(&sql).map_err(BackupError::db("dropping the user schemas"))?;
    tx.commit().map_err(BackupError::db("dropping the user schemas"))
}
