//! The restore in place, for a database that cannot be swapped (the one
//! the URL connects to, a hosted platform's `postgres`, an owner that may
//! not create or rename databases): the current state is dumped first (a
//! backup labelled `pre-restore`, its checksums read back), then the
//! project's schemas are dropped and restored from the backup in one
//! transaction, so a failure changes nothing. The platform's schemas (the
//! ones other roles own, and those a hosted platform keeps: `auth`,
//! `storage`, `extensions`, …) and their rows stay as they are; what the
//! project attached to them (a trigger on `auth.users` calling a function
//! of `public`, a policy on `storage.objects`) goes with the project's
//! schema and comes back from the backup. `[backup] restore_schemas`
//! names the schemas instead. `backstop` itself stays (its events and
//! freeze); only `backstop.applied` is replaced by the backup's.

use std::io::Write;
use std::process::Stdio;

use postgres::Client;

use super::journal::{Journal, Step};
use super::toc::{Entry, Toc};
use super::{on_platform, platform_rows};
use super::{Failure, Run};
use crate::backup::create::{create, CreateOptions};
use crate::backup::manifest::Manifest;
use crate::backup::tools::{self, tail};
use crate::backup::verify::{compare_schemas, verify_checksums};
use crate::backup::{BackupError, Note};
use crate::pg::quote_ident;

/// The schemas a hosted platform keeps for itself (Supabase's, which the
/// seeds' runbooks are written for), whoever owns them.
const PLATFORM: &[&str] = &[
    "auth",
    "storage",
    "realtime",
    "_realtime",
    "extensions",
    "graphql",
    "graphql_public",
    "vault",
    "pgsodium",
    "pgsodium_masks",
    "supabase_functions",
    "net",
    "cron",
    "pgbouncer",
    "_analytics",
    "pgtle",
];

impl Run<'_> {
    /// In place: the steps after the journal's last finished one. Until
    /// the restore's one transaction commits nothing of the target
    /// changed: a failure there leaves it as it was.
    pub(super) fn in_place(
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

    /// Step `restoring`: the current state, dumped first and its
    /// checksums read back, as the backup a person goes back to.
    /// Recorded with its id only once it is complete.
    fn take_pre_restore_backup(&mut self, j: &mut Journal) -> Result<(), BackupError> {
        self.progress
            .note(Note::Step(format!("taking a pre-restore backup of the current {}", j.database)));
        let options = CreateOptions {
            label: Some("pre-restore".into()),
            jobs: self.options.jobs,
            lock_wait: self.options.lock_wait,
        };
        let mut snapshot = create(self.url, self.store, self.tools, &options, self.progress)?;
        verify_checksums(self.store, self.tools, &mut snapshot)?;
        self.progress.note(Note::Info(format!(
            "pre-restore backup {} taken and verified ({} table(s), {} row(s))",
            snapshot.id,
            snapshot.row_counts.len(),
            snapshot.row_counts.values().sum::<i64>()
        )));
        j.snapshot_id = Some(snapshot.id);
        j.record(Step::Restoring, self.store)
    }

    /// Step `restored`: the project's schemas dropped and restored in one
    /// transaction, `backstop.applied` beside, then compared with the
    /// manifest.
    fn restore_in_place(
        &mut self,
        j: &mut Journal,
        m: &Manifest,
        client: &mut Client,
    ) -> Result<(), Failure> {
        let toc = Toc::read(self.tools, &self.store.dump_dir(&m.id), &m.id)?;
        let schemas = self.project_schemas(client, &toc)?;
        let in_restored = |t: &&String| schemas.iter().any(|s| t.starts_with(&format!("{s}.")));
        if let Some(t) = m.left_out.iter().find(in_restored) {
            return Err(Failure::Abandoned(BackupError::Refused(format!(
                "backup {} leaves out {t} (the role that took it may not read it), and a restore \
                 in place drops and puts back its schema: it would be lost; name the schemas to \
                 restore without it in [backup] restore_schemas",
                m.id
            ))));
        }
        let platform = platform_schemas(client, &schemas)?;
        let mut keep = extensions_in(client, &schemas)?;
        let attached = attached(client, &schemas)?;
        let attached_keys: Vec<String> =
            attached.iter().map(|(k, s, n)| Entry::key(k, s, n)).collect();
        for ((kind, schema, name), key) in attached.iter().zip(&attached_keys) {
            if toc.has(kind, schema, name) {
                keep.push(key.clone());
            } else {
                self.note_warning(format!(
                    "{kind} {name} on {schema} depends on the project's schemas and is not in \
                     backup {}: it goes with them",
                    m.id
                ));
            }
        }
        let rules = on_platform::plan(client, &toc, m, &schemas, &attached_keys)?;
        keep.extend(rules.keep.iter().cloned());
        let dump = self.store.dump_dir(&m.id);
        let rows = platform_rows::plan(client, self.tools, &dump, &toc, m)?;
        let in_backup = toc.schemas();
        let (back, since): (Vec<String>, Vec<String>) =
            schemas.iter().cloned().partition(|s| in_backup.contains(s) || s == "public");
        self.progress.note(Note::Step(format!(
            "restoring {} of backup {} in place in one transaction{}{}",
            listed("schema", &back),
            m.id,
            if since.is_empty() {
                String::new()
            } else {
                format!(", dropping {}, made since it", listed("schema", &since))
            },
            if platform.is_empty() {
                String::new()
            } else {
                format!("; the platform's {} stay as they are", listed("schema", &platform))
            }
        )));
        let list = toc.selected(&schemas, &keep, &existing_schemas(client, &schemas)?)?;
        let mut drops = rules.drops.clone();
        drops.push_str(&drop_script(client, &schemas, &in_backup, &mut self.warnings)?);
        let (pause, mut after) = default_privileges_paused(client, &since)?;
        drops.push_str(&pause);
        after.push_str(&rows.after);
        self.restore_in_one_transaction((&drops, &after), &list, m)?;
        self.progress.note(Note::Step(format!("checking {} against backup {}", j.database, m.id)));
        let mut differences = compare_schemas(client, m, &schemas).map_err(Failure::Stuck)?;
        differences.extend(rules.differences(client).map_err(Failure::Stuck)?);
        differences.extend(rows.differences(client).map_err(Failure::Stuck)?);
        if !differences.is_empty() {
            return Err(Failure::Stuck(BackupError::Mismatch { id: m.id.clone(), differences }));
        }
        let done: Vec<String> = rules.done.into_iter().chain(rows.done).collect();
        for line in &done {
            self.progress.note(Note::Info(line.clone()));
        }
        self.on_platform = done;
        for left in rules.left.into_iter().chain(rows.left) {
            self.note_warning(left);
        }
        j.record(Step::Restored, self.store)?;
        self.restored = schemas;
        Ok(())
    }

    /// The schemas to restore: `[backup] restore_schemas`, or every schema
    /// of the backup that is not the platform's (one another role owns
    /// now, or one a hosted platform keeps).
    fn project_schemas(&mut self, client: &mut Client, toc: &Toc) -> Result<Vec<String>, Failure> {
        if !self.options.schemas.is_empty() {
            return Ok(self.options.schemas.clone());
        }
        let mut out = Vec::new();
        for schema in toc.schemas() {
            if schema == "backstop" || PLATFORM.contains(&schema.as_str()) {
                continue;
            }
            let theirs: Option<bool> = client
                .query_opt(
                    "select not pg_has_role(nspowner, 'USAGE') from pg_namespace where nspname = $1",
                    &[&schema],
                )
                .map_err(BackupError::db("reading the schemas' owners"))?
                .map(|r| r.get(0));
            if theirs != Some(true) {
                out.push(schema);
            }
        }
        // The schemas the project made since the backup (a migration's
        // `CREATE SCHEMA`, a tool's history made by its first run): the
        // backup's state has none of them, so they go, as a swap would
        // take them; the pre-restore backup holds them.
        let since = client
            .query(
                "select n.nspname::text from pg_namespace n
                  where n.nspname <> all($1) and pg_has_role(n.nspowner, 'USAGE')
                    and n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast', 'backstop')
                    and n.nspname not like 'pg_temp%' and n.nspname not like 'pg_toast_temp%'
                    and not exists (select from pg_depend d
                                     where d.classid = 'pg_namespace'::regclass
                                       and d.objid = n.oid and d.deptype = 'e')
                  order by 1",
                &[&toc.schemas()],
            )
            .map_err(BackupError::db("listing the schemas made since the backup"))?;
        out.extend(
            since.iter().map(|r| r.get::<_, String>(0)).filter(|s| !PLATFORM.contains(&s.as_str())),
        );
        Ok(out)
    }

    /// `pg_restore --file=-` of the selected entries, after the drops and
    /// before the statements `after`, into one `psql
    /// --single-transaction`: all of it or nothing.
    fn restore_in_one_transaction(
        &mut self,
        (drops, after): (&str, &str),
        list: &tempfile::NamedTempFile,
        m: &Manifest,
    ) -> Result<(), Failure> {
        let target = tools::target(self.url, None)?;
        let mut script = self.tools.command("pg_restore", &target);
        script
            .arg("--file=-")
            .arg(format!("--use-list={}", list.path().display()))
            .arg(self.store.dump_dir(&m.id))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        crate::shell::die_with_parent(&mut script);
        let mut psql = self.tools.command("psql", &target);
        psql.args(["-X", "-q", "--single-transaction", "-v", "ON_ERROR_STOP=1", "-f", "-"])
            .arg(format!("--dbname={}", target.conninfo))
            // Backstop's own session: exempt from the freeze it holds.
            .env("PGOPTIONS", "-c default_transaction_read_only=off")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        crate::shell::die_with_parent(&mut psql);
        let spawn = |tool: &str, e| BackupError::Spawn { tool: tool.into(), source: e };
        let mut writer = script.spawn().map_err(|e| spawn("pg_restore", e))?;
        let mut reader = psql.spawn().map_err(|e| spawn("psql", e))?;
        let mut input = reader.stdin.take().expect("stdin is piped");
        let mut output = writer.stdout.take().expect("stdout is piped");
        let (drops, after) = (drops.to_string(), after.to_string());
        let feeder = std::thread::spawn(move || -> std::io::Result<()> {
            input.write_all(drops.as_bytes())?;
            std::io::copy(&mut output, &mut input)?;
            input.write_all(after.as_bytes())?;
            Ok(())
        });
        let restore_out = writer.wait_with_output();
        let psql_out = reader.wait_with_output();
        let _ = feeder.join();
        let failed = |output: String| {
            // One transaction: the target is as it was.
            Failure::Abandoned(BackupError::RestoreFailed { id: m.id.clone(), output })
        };
        let restore_out = restore_out.map_err(|e| spawn("pg_restore", e))?;
        if !restore_out.status.success() {
            return Err(failed(tail(&String::from_utf8_lossy(&restore_out.stderr))));
        }
        let psql_out = psql_out.map_err(|e| spawn("psql", e))?;
        if !psql_out.status.success() {
            return Err(failed(tail(&String::from_utf8_lossy(&psql_out.stderr))));
        }
        Ok(())
    }
}

/// The statements that set aside, for the restore's transaction, the
/// default privileges of the role it runs as (`ALTER DEFAULT PRIVILEGES`),
/// and those that put them back before it commits. `pg_restore` makes each
/// object as that role, so its default privileges would add grants the
/// backup's object never had (a platform's `GRANT ALL ON TABLES TO anon`
/// in `public` given back to a table a migration had taken them from):
/// `pg_dump` writes an object's grants against the built-in defaults, not
/// against these. Only what they add to the built-in defaults is set
/// aside; those of a schema the restore drops (`dropped`) go with it.
fn default_privileges_paused(
    client: &mut Client,
    dropped: &[String],
) -> Result<(String, String), BackupError> {
    let rows = client
        .query(
            "select format('ALTER DEFAULT PRIVILEGES FOR ROLE %I%s', pg_get_userbyid(d.defaclrole),
                           case when d.defaclnamespace = 0 then ''
                                else ' IN SCHEMA ' || quote_ident(n.nspname) end),
                    a.privilege_type,
                    case d.defaclobjtype when 'r' then 'TABLES' when 'S' then 'SEQUENCES'
                         when 'f' then 'FUNCTIONS' when 'T' then 'TYPES' else 'SCHEMAS' end,
                    case when a.grantee = 0 then 'PUBLIC'
                         else quote_ident(pg_get_userbyid(a.grantee)) end,
                    a.is_grantable
               from pg_default_acl d
               left join pg_namespace n on n.oid = d.defaclnamespace
              cross join lateral aclexplode(d.defaclacl) a
              where d.defaclrole = (select oid from pg_roles where rolname = current_user)
                and a.grantee <> d.defaclrole
                and (d.defaclnamespace = 0 or n.nspname <> all($1))
                and not (d.defaclnamespace = 0 and exists (
                      select from aclexplode(acldefault(
                                    case d.defaclobjtype when 'S' then 's' else d.defaclobjtype end,
                                    d.defaclrole)) b
                       where b.grantee = a.grantee and b.privilege_type = a.privilege_type))
              order by 1, 3, 4, 2",
            &[&dropped],
        )
        .map_err(BackupError::db("reading the role's default privileges"))?;
    let (mut pause, mut resume) = (String::new(), String::new());
    for r in rows {
        let (head, privilege, objects, grantee, option): (String, String, String, String, bool) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
        pause.push_str(&format!("{head} REVOKE {privilege} ON {objects} FROM {grantee};\n"));
        let option = if option { " WITH GRANT OPTION" } else { "" };
        resume.push_str(&format!("{head} GRANT {privilege} ON {objects} TO {grantee}{option};\n"));
    }
    Ok((pause, resume))
}

/// The statements that take the grants on each schema of `schemas` back
/// to where `pg_dump` takes them to start (for `public`, its owner's
/// `USAGE` and `CREATE` and everyone's `USAGE`, whoever owns it now: not
/// `pg_init_privs`, which still names `pg_database_owner` once the schema
/// was given to another role; `pg_init_privs` or the owner's alone for any
/// other), so that the backup's own grants on it, replayed after, leave it
/// as the backup had it: a migration's `GRANT
/// USAGE ON SCHEMA public TO supabase_auth_admin` goes, the platform's
/// grants from before the backup come back.
fn grants_reset(client: &mut Client, schemas: &[String]) -> Result<String, BackupError> {
    let rows = client
        .query(
            "with s as (
               select n.nspname, n.nspowner,
                      coalesce(n.nspacl, acldefault('n', n.nspowner)) as now,
                      case when n.nspname = 'public'
                           then array[makeaclitem(n.nspowner, n.nspowner, 'USAGE', false),
                                      makeaclitem(n.nspowner, n.nspowner, 'CREATE', false),
                                      makeaclitem(0, n.nspowner, 'USAGE', false)]
                           else coalesce((select i.initprivs from pg_init_privs i
                                           where i.objoid = n.oid
                                             and i.classoid = 'pg_namespace'::regclass
                                             and i.objsubid = 0),
                                         acldefault('n', n.nspowner)) end as start
                 from pg_namespace n where n.nspname = any($1)),
             now as (select nspname, nspowner, (aclexplode(now)).* from s),
             start as (select nspname, nspowner, (aclexplode(start)).* from s)
             select 'REVOKE', nspname::text, privilege_type, grantee::regrole::text, grantee = 0
               from (select nspname, nspowner, grantee, privilege_type from now
                     except select nspname, nspowner, grantee, privilege_type from start) x
              where grantee <> nspowner
             union all
             select 'GRANT', nspname::text, privilege_type, grantee::regrole::text, grantee = 0
               from (select nspname, nspowner, grantee, privilege_type from start
                     except select nspname, nspowner, grantee, privilege_type from now) x
              where grantee <> nspowner
             order by 1 desc, 2, 4, 3",
            &[&schemas],
        )
        .map_err(BackupError::db("reading the grants on the project's schemas"))?;
    let mut sql = String::new();
    for r in rows {
        let (verb, schema, privilege, grantee, public): (String, String, String, String, bool) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
        // regrole's text is already a quoted identifier.
        let who = if public { "PUBLIC".to_string() } else { grantee };
        let (to, tail) = if verb == "REVOKE" { ("FROM", " CASCADE") } else { ("TO", "") };
        sql.push_str(&format!(
            "{verb} {privilege} ON SCHEMA {} {to} {who}{tail};\n",
            quote_ident(&schema)
        ));
    }
    Ok(sql)
}

/// `schemas a, b` or `schema a`.
fn listed(what: &str, names: &[String]) -> String {
    match names {
        [one] => format!("{what} {one}"),
        many => format!("{what}s {}", many.join(", ")),
    }
}

/// Which of `schemas` exist now: their own entries (the schema, its
/// grants and default privileges) are not restored.
fn existing_schemas(client: &mut Client, schemas: &[String]) -> Result<Vec<String>, BackupError> {
    let rows = client
        .query("select nspname::text from pg_namespace where nspname = any($1)", &[&schemas])
        .map_err(BackupError::db("listing schemas"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The schemas of the database left as they are.
fn platform_schemas(client: &mut Client, project: &[String]) -> Result<Vec<String>, BackupError> {
    let rows = client
        .query(
            "select nspname::text from pg_namespace
              where nspname not in ('pg_catalog', 'information_schema', 'backstop', 'pg_toast')
                and nspname not like 'pg_temp%' and nspname not like 'pg_toast_temp%'
                and nspname <> all($1) order by 1",
            &[&project],
        )
        .map_err(BackupError::db("listing schemas"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The entries of the extensions that live in the project's schemas and
/// that the role may drop: dropped with them, so made again by the
/// restore. Another role's (a platform's pg_cron in `public`) stays as
/// it is, its comment too.
fn extensions_in(client: &mut Client, schemas: &[String]) -> Result<Vec<String>, BackupError> {
    let rows = client
        .query(
            "select x.extname::text from pg_extension x join pg_namespace n on n.oid = x.extnamespace
              where n.nspname = any($1) and pg_has_role(x.extowner, 'USAGE')",
            &[&schemas],
        )
        .map_err(BackupError::db("listing extensions"))?;
    Ok(rows
        .iter()
        .flat_map(|r| {
            let name: String = r.get(0);
            [
                Entry::key("EXTENSION", "-", &name),
                Entry::key("COMMENT", "-", &format!("EXTENSION {name}")),
            ]
        })
        .collect())
}

/// What the project attached to the platform's tables that depends on
/// the project's schemas, and so goes with them: triggers, policies and
/// foreign keys, as (kind, schema, name) the way pg_restore lists them.
fn attached(
    client: &mut Client,
    schemas: &[String],
) -> Result<Vec<(String, String, String)>, BackupError> {
    let rows = client
        .query(
            "with project as (
                 select oid from pg_namespace where nspname = any($1)),
             depends as (
                 select d.classid, d.objid from pg_depend d
                  where d.deptype = 'n' and (
                        (d.refclassid = 'pg_proc'::regclass and d.refobjid in (select oid from pg_proc where pronamespace in (select oid from project)))
                     or (d.refclassid = 'pg_class'::regclass and d.refobjid in (select oid from pg_class where relnamespace in (select oid from project)))
                     or (d.refclassid = 'pg_type'::regclass and d.refobjid in (select oid from pg_type where typnamespace in (select oid from project)))))
             select 'TRIGGER', n.nspname::text, c.relname || ' ' || t.tgname
               from pg_trigger t join pg_class c on c.oid = t.tgrelid join pg_namespace n on n.oid = c.relnamespace
              where not t.tgisinternal and n.oid not in (select oid from project)
                and t.oid in (select objid from depends where classid = 'pg_trigger'::regclass)
             union
             select 'POLICY', n.nspname::text, c.relname || ' ' || p.polname
               from pg_policy p join pg_class c on c.oid = p.polrelid join pg_namespace n on n.oid = c.relnamespace
              where n.oid not in (select oid from project)
                and p.oid in (select objid from depends where classid = 'pg_policy'::regclass)
             union
             select 'FK CONSTRAINT', n.nspname::text, c.relname || ' ' || k.conname
               from pg_constraint k join pg_class c on c.oid = k.conrelid join pg_namespace n on n.oid = c.relnamespace
              where k.contype = 'f' and n.oid not in (select oid from project)
                and k.confrelid in (select oid from pg_class where relnamespace in (select oid from project))
             order by 1, 2, 3",
            &[&schemas],
        )
        .map_err(BackupError::db("finding what the platform's tables hold of the project"))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
}

/// The statements that empty the project's schemas before the restore
/// fills them again: a schema the backup has keeps itself (its owner,
/// grants and default privileges, which a platform may have set: on
/// Supabase, what `anon` and `authenticated` get on every new table of
/// `public`) and loses every object this role may drop; a schema made
/// since the backup goes whole. Then `backstop.applied` is emptied for
/// the backup's rows. Objects of other roles stay, each named. What is
/// part of another object (an extension's members, an identity column's
/// sequence) goes with it: dropped alone, it fails the whole restore.
fn drop_script(
    client: &mut Client,
    schemas: &[String],
    in_backup: &[String],
    warnings: &mut Vec<String>,
) -> Result<String, BackupError> {
    let db = BackupError::db("reading the project's schemas");
    let existing: Vec<String> = client
        .query(
            "select nspname::text from pg_namespace where nspname = any($1) order by 1",
            &[&schemas],
        )
        .map_err(db)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let (kept, made_since): (Vec<String>, Vec<String>) =
        existing.into_iter().partition(|s| in_backup.contains(s) || s == "public");
    let mut sql = String::new();
    for s in &made_since {
        sql.push_str(&format!("DROP SCHEMA {} CASCADE;\n", quote_ident(s)));
    }
    let rows = client
        .query(
            "select x.what, x.name, pg_has_role(x.owner, 'USAGE'), pg_get_userbyid(x.owner)::text
               from (
                 select case c.relkind when 'v' then 'VIEW' when 'm' then 'MATERIALIZED VIEW'
                                       when 'S' then 'SEQUENCE' when 'f' then 'FOREIGN TABLE' else 'TABLE' end as what,
                        format('%I.%I', n.nspname, c.relname) as name, c.relowner as owner, c.oid as oid,
                        'pg_class'::regclass as class
                   from pg_class c join pg_namespace n on n.oid = c.relnamespace
                  where n.nspname = any($1) and c.relkind in ('r', 'p', 'v', 'm', 'S', 'f') and not c.relispartition
                 union all
                 select 'ROUTINE', format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)),
                        p.proowner, p.oid, 'pg_proc'::regclass
                   from pg_proc p join pg_namespace n on n.oid = p.pronamespace
                  where n.nspname = any($1)
                 union all
                 select case t.typtype when 'd' then 'DOMAIN' else 'TYPE' end, format('%I.%I', n.nspname, t.typname),
                        t.typowner, t.oid, 'pg_type'::regclass
                   from pg_type t join pg_namespace n on n.oid = t.typnamespace
                  where n.nspname = any($1) and t.typtype in ('e', 'd', 'r')
                     or (n.nspname = any($1) and t.typtype = 'c' and (select relkind from pg_class where oid = t.typrelid) = 'c')
                 union all
                 select 'EXTENSION', quote_ident(x.extname), x.extowner, x.oid, 'pg_extension'::regclass
                   from pg_extension x join pg_namespace n on n.oid = x.extnamespace
                  where n.nspname = any($1)
               ) x
              where not exists (select from pg_depend d where d.classid = x.class and d.objid = x.oid and d.deptype in ('e', 'i'))
              order by 1, 2",
            &[&kept],
        )
        .map_err(BackupError::db("listing what the project's schemas hold"))?;
    for r in rows {
        let (what, name, mine, owner): (String, String, bool, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        if mine {
            sql.push_str(&format!("DROP {what} IF EXISTS {name} CASCADE;\n"));
        } else {
            warnings.push(format!(
                "{} {name} belongs to {owner} and stays; the restore fails if the backup makes it too",
                what.to_lowercase()
            ));
        }
    }
    let in_both: Vec<String> = kept.iter().filter(|s| in_backup.contains(s)).cloned().collect();
    sql.push_str(&grants_reset(client, &in_both)?);
    if crate::schema::exists(client).map_err(BackupError::db("reading the backstop schema"))? {
        sql.push_str("TRUNCATE backstop.applied;\n");
    }
    Ok(sql)
}
