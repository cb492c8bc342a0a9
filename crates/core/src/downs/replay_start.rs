//! Where a replay starts: a throwaway cluster of the target's major, so
//! that nothing a history does (create a role, `ALTER ROLE … SET`, `ALTER
//! SYSTEM`) reaches the target's server, holding the target's roles and
//! its database's own settings, and then, by itself, the target's
//! platform: the schemas the history uses and does not create, and those
//! on the target's `search_path` (the definitions, never the rows), the
//! extensions it did not create, the
//! publications it names. Objects the history attaches to the platform (a
//! trigger on `auth.users`, a policy on `storage.objects`, a table added
//! to `supabase_realtime`) are left out: the history makes them. The
//! database's default privileges come too (on Supabase every table made in
//! `public` is granted to `anon`, `authenticated` and `service_role`), so
//! a `GRANT` they already made is no change in the replay either. `--start`
//! names a database on the target's server or a schema dump file instead.

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Stdio};

use postgres::Client;

use backstop_sql::refs::{Reach, Refs};

use super::toc::{self, Entry};
use super::DownsError;
use crate::copies::{globals, CopyDb, Workspace};
use crate::pg::bins::Match;
use crate::pg::cluster::{Cluster, PgBin};
use crate::pg::preload::Preload;
use crate::pg::quote_ident;
use crate::source::{Migration, Part};

/// The database of the throwaway cluster the replay's copies are made from.
pub(super) const BASE: &str = "replay_start";

fn db(context: &'static str) -> impl Fn(postgres::Error) -> DownsError {
    move |source| DownsError::Db(crate::pg::DbError::new(context, source))
}

/// Refuses a history with a statement that cannot be replayed without
/// reaching outside the copy, before anything runs.
pub(super) fn refuse_outside(migrations: &[Migration]) -> Result<(), DownsError> {
    for m in migrations {
        for (part, file) in [(Part::Up, Some(&m.up)), (Part::Down, m.down.as_ref())] {
            let Some(file) = file else { continue };
            for s in &file.statements {
                if let Some(Reach::Outside(why)) = backstop_sql::refs::reach(&s.sql) {
                    return Err(DownsError::Unsafe {
                        place: format!("{}:{}", file.path.display(), s.position.line),
                        part: part.to_string(),
                        why,
                    });
                }
            }
        }
    }
    Ok(())
}

/// The replay's start, what it says of what it holds, and (for a start
/// from the target) what a copy shares with the target, to keep the copy
/// under (`downs::kept`).
/// The last: the role the downs are proved as (`None`: a superuser).
pub(super) type Opened = (Workspace, Vec<String>, Option<String>, Option<String>);

/// The replay's start for `migrations` against the target `url`; from a
/// copy a previous run kept of the target (`downs::kept`) where `kept`
/// allows it and there is one.
pub(super) fn open(
    url: &str,
    migrations: &[Migration],
    options: &super::Options,
    pg_dump: &Path,
    kept: bool,
) -> Result<Opened, DownsError> {
    let start = options.start.as_deref();
    refuse_outside(migrations)?;
    let mut target = crate::pg::connect(url, "backstop downs").map_err(DownsError::Connect)?;
    let dbname: String = target
        .query_one("select current_database()::text", &[])
        .map_err(db("reading the database"))?
        .get(0);
    let major = crate::pg::server_version_num(&mut target)
        .map(crate::pg::bins::major_of_num)
        .map_err(db("reading the server version"))?;
    let bin = PgBin::for_major(major, Match::Exact).map_err(cluster_err)?;
    // What the target's server loads at its start, the replay's does:
    // `create extension pg_cron` works nowhere else.
    let preload = Preload::read(&mut target).map_err(db("reading what the server preloads"))?;
    // The role the target's migrations run as, where no superuser: the
    // replay works as that role (`rehearse::RunsAs`), on a copy made now.
    let runs_as = crate::copies::RunsAs::of(&mut target)?;
    // A start from the target: the copy a previous run kept of it as it is
    // now, when there is one.
    let env = if options.from_target && runs_as.is_none() && kept {
        Some(super::kept::env(&mut target, &bin, &preload, &dbname)?)
    } else {
        None
    };
    if let Some(env) = &env {
        let fingerprint = match &options.target_fingerprint {
            Some(f) => f.clone(),
            None => super::kept::fingerprint(&mut target, migrations)?,
        };
        let key = super::kept::key(env, &fingerprint, &mut target)?;
        if let Some(cluster) = super::kept::start(&mut target, (&bin, &preload), BASE, &key)? {
            let w = Workspace::in_cluster(cluster, BASE, &dbname, "the target's schema".into());
            let note = "the downs were proved on the copy of the target a previous run kept \
                        (its schema and history are the target's now): no schema was restored";
            return Ok((w, vec![note.into()], Some(env.clone()), None));
        }
    }
    // The replay holds a schema and the rows its migrations insert.
    let mut cluster =
        Cluster::start_preloaded(bin, 64 << 20, &preload, BASE).map_err(cluster_err)?;
    if let Some(runs_as) = &runs_as {
        runs_as.free_name(&mut cluster)?;
    }
    let mut admin = cluster.connect("postgres").map_err(cluster_err)?;
    globals::copy_roles(&mut target, &mut admin).map_err(db("copying the target's roles"))?;
    if options.from_target {
        crate::copies::dump_into(url, &cluster, BASE, (true, options.lock_wait))?;
        let mut w = Workspace::in_cluster(cluster, BASE, &dbname, "the target's schema".into());
        let role = runs_as.as_ref().map(|r| r.role.clone());
        w.work_as(runs_as)?;
        return Ok((w, Vec::new(), env, role));
    }
    // A schema dump file is restored without its owners: its objects are
    // the cluster's superuser's, and the replay works as that.
    let from_file = start.is_some_and(|f| Path::new(f).is_file());
    let (notes, source) = match start {
        Some(file) if from_file => {
            cluster.create_database(BASE, None).map_err(cluster_err)?;
            carry_settings(&mut target, &mut admin, &dbname)?;
            restore_file(&cluster, Path::new(file))?;
            (Vec::new(), format!("the schema dump {file}"))
        }
        Some(database) => {
            let copy =
                CopyDb { server_url: url.to_string(), dbname: database.to_string(), role: None };
            crate::copies::dump_into(&copy.conninfo()?, &cluster, BASE, (false, None))?;
            (Vec::new(), format!("database {database}"))
        }
        None => {
            cluster.create_database(BASE, None).map_err(cluster_err)?;
            carry_settings(&mut target, &mut admin, &dbname)?;
            let notes = platform(&mut target, url, &dbname, &cluster, migrations, pg_dump)?;
            (notes, "the target's platform".to_string())
        }
    };
    let mut w = Workspace::in_cluster(cluster, BASE, &dbname, source);
    let runs_as = runs_as.filter(|_| !from_file);
    let role = runs_as.as_ref().map(|r| r.role.clone());
    w.work_as(runs_as)?;
    Ok((w, notes, None, role))
}

fn cluster_err(e: crate::pg::cluster::ClusterError) -> DownsError {
    DownsError::from(crate::copies::CopyError::Cluster(e))
}

fn carry_settings(target: &mut Client, admin: &mut Client, dbname: &str) -> Result<(), DownsError> {
    let settings = globals::database_settings(target, dbname)
        .map_err(db("reading the database's settings"))?;
    let _ = globals::apply_database_settings(admin, BASE, &settings);
    Ok(())
}

/// A schema dump file (plain SQL as `pg_dump -s` or `supabase db dump`
/// write it, or pg_dump's custom or directory format) restored as the start.
fn restore_file(cluster: &Cluster, file: &Path) -> Result<(), DownsError> {
    let url = cluster.url(BASE);
    let target = crate::pg::conn::LibpqTarget::from_url(&url, None).map_err(DownsError::Connect)?;
    let custom = std::fs::read(file).map(|b| b.starts_with(b"PGDMP")).unwrap_or(false);
    let mut cmd = if custom || file.is_dir() {
        let mut c = Command::new(cluster.bin().tool("pg_restore"));
        c.args(["--no-password", "--exit-on-error", "--no-owner"])
            .arg(format!("--dbname={}", target.conninfo));
        c.arg(file);
        c
    } else {
        let mut c = Command::new(cluster.bin().tool("psql"));
        c.args(["--no-password", "-X", "-q", "-v", "ON_ERROR_STOP=1"])
            .arg(format!("--dbname={}", target.conninfo));
        c.arg("-f").arg(file);
        c
    };
    target.apply(&mut cmd);
    crate::shell::die_with_parent(&mut cmd);
    let out =
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).output().map_err(
            |e| DownsError::StartFile { path: file.to_path_buf(), output: e.to_string() },
        )?;
    if !out.status.success() {
        let output =
            String::from_utf8_lossy(&out.stderr).lines().take(5).collect::<Vec<_>>().join("\n");
        return Err(DownsError::StartFile { path: file.to_path_buf(), output });
    }
    Ok(())
}

/// Puts into the start what the history is written on and the target
/// has: extensions, the schemas it uses with their definitions (less what
/// it attaches itself), the publications it names. What could not be put
/// there is said, entry by entry.
fn platform(
    target: &mut Client,
    url: &str,
    dbname: &str,
    cluster: &Cluster,
    migrations: &[Migration],
    pg_dump: &Path,
) -> Result<Vec<String>, DownsError> {
    let mut refs = Refs::default();
    for m in migrations {
        for s in &m.up.statements {
            refs.add(&s.sql);
        }
    }
    let mut base = cluster.connect(BASE).map_err(cluster_err)?;
    base.batch_execute("SET check_function_bodies = off").map_err(db("preparing the start"))?;
    let mut notes = Vec::new();
    // The tools' history tables their own settings name (drizzle's
    // `migrations.table`), beside the defaults; no schema: any.
    let named: Vec<(String, String)> = migrations
        .iter()
        .filter_map(|m| m.history.as_deref())
        .map(|t| (t.schema.clone().unwrap_or_default(), t.name.clone()))
        .collect();
    let extensions = extensions(target, &mut base, &refs, &named, &mut notes)?;
    let on_path = search_path_schemas(target)?;
    let schemas: Vec<String> = target
        .query(
            "select nspname::text from pg_namespace
              where nspname !~ '^pg_' and nspname not in ('information_schema', 'public', 'backstop')
              order by 1",
            &[],
        )
        .map_err(db("listing the target's schemas"))?
        .iter()
        .map(|r| r.get::<_, String>(0))
        .filter(|n| refs.names.contains(n) || on_path.contains(n))
        .filter(|n| !refs.created_schemas.contains(n))
        .collect();
    let mut copied = 0;
    let mut left_out: Vec<String> = Vec::new();
    if !schemas.is_empty() {
        // What the role may not read, nor change, pg_dump cannot lock and
        // no migration can use; a schema the role may not use stops the
        // dump, which then says what to grant.
        let mut unreadable = crate::pg::unreadable::left_out_of_schema(target)
            .map_err(db("reading which tables the role may read"))?;
        unreadable.retain(|t| t.usable);
        let mut args: Vec<String> = schemas.iter().map(|s| format!("--schema={s}")).collect();
        args.extend(crate::pg::unreadable::exclude_args(&unreadable));
        let dump =
            toc::dump_with(pg_dump, url, dbname, &args).map_err(|e| start_copy(e, &schemas))?;
        let mut skipped: HashSet<u32> = HashSet::new();
        for e in &dump.entries {
            if history_makes(&refs, e) || e.deps.iter().any(|d| skipped.contains(d)) {
                skipped.insert(e.id);
                continue;
            }
            let sql = if e.kind == "SCHEMA" {
                e.sql.replacen("CREATE SCHEMA ", "CREATE SCHEMA IF NOT EXISTS ", 1)
            } else {
                e.sql.clone()
            };
            match base.batch_execute(&sql) {
                Ok(()) => copied += 1,
                Err(err) => {
                    skipped.insert(e.id);
                    left_out.push(format!(
                        "{} {}{}: {}",
                        e.kind,
                        if e.schema.is_empty() { String::new() } else { format!("{}.", e.schema) },
                        e.name,
                        crate::pg::conn::error_chain(&err)
                    ));
                }
            }
        }
    }
    default_privileges(target, &mut base, &mut left_out)?;
    let publications = publications(target, &mut base, &refs, &schemas)?;
    let own = cluster.own_roles();
    let roles: i64 = base
        .query_one(
            "select count(*) from pg_roles where rolname !~ '^pg_' and rolname <> all($1)",
            &[&own],
        )
        .map_err(db("counting roles"))?
        .get(0);
    notes.insert(
        0,
        format!(
            "the replay starts from the target's platform, in a throwaway cluster: {roles} role(s), \
             schemas [{}] ({copied} definitions, no rows), extensions [{}], publications [{}]",
            schemas.join(", "),
            extensions.join(", "),
            publications.join(", ")
        ),
    );
    notes.extend(left_out.into_iter().map(|l| format!("left out of the start: {l}")));
    Ok(notes)
}

/// The schemas on the target's `search_path`, as its server, its
/// database and its roles set it (`ALTER DATABASE … SET search_path`,
/// `pg_db_role_setting`): a function there that the history calls
/// unqualified (`uuid_generate_v4()` in `extensions`) is found through
/// it, though the history never names the schema.
fn search_path_schemas(target: &mut Client) -> Result<HashSet<String>, DownsError> {
    let rows = target
        .query(
            "select substr(c.setting, length('search_path=') + 1)
               from pg_db_role_setting s cross join lateral unnest(s.setconfig) c(setting)
              where s.setdatabase in (0, (select oid from pg_database where datname = current_database()))
                and c.setting like 'search_path=%'
             union all
             select reset_val from pg_settings where name = 'search_path'",
            &[],
        )
        .map_err(db("reading the target's search_path"))?;
    Ok(rows
        .iter()
        .flat_map(|r| {
            let path: String = r.get(0);
            path.split(',')
                .map(|s| s.trim().trim_matches('"').to_string())
                .filter(|s| !s.is_empty() && s != "$user")
                .collect::<Vec<_>>()
        })
        .collect())
}

/// Whether the history makes `e` itself: a trigger, policy, rule or index
/// it attaches, a relation, type or function it creates.
fn history_makes(refs: &Refs, e: &Entry) -> bool {
    match e.kind.as_str() {
        "TRIGGER" | "POLICY" | "RULE" => e.table_and_member().is_some_and(|(t, m)| {
            refs.attached.contains(&(t.to_string(), m.trim_matches('"').to_string()))
        }),
        "INDEX" => refs.attached.contains(&(String::new(), e.name.clone())),
        "TABLE" | "VIEW" | "MATERIALIZED VIEW" | "SEQUENCE" | "TYPE" | "DOMAIN" | "FUNCTION"
        | "PROCEDURE" => {
            let name = e.name.split('(').next().unwrap_or(&e.name);
            refs.creates(&e.schema, name)
        }
        _ => false,
    }
}

/// Why the start could not copy the platform, with what to grant.
fn start_copy(e: DownsError, schemas: &[String]) -> DownsError {
    match e {
        DownsError::Dump(toc::DumpError::Failed { output }) => {
            DownsError::StartCopy { schemas: schemas.join(", "), output }
        }
        other => other,
    }
}

/// When the target's migration history began, as the object id of the
/// oldest history table there (Backstop's own, one of the migration
/// tools' under its default name, or one their settings `named`):
/// objects with a greater id were made after it. `None` when the target
/// keeps no history.
fn history_began(
    target: &mut Client,
    named: &[(String, String)],
) -> Result<Option<u32>, DownsError> {
    let (schemas, names): (Vec<&str>, Vec<&str>) =
        named.iter().map(|(s, n)| (s.as_str(), n.as_str())).unzip();
    let row = target
        .query_one(
            "select min(c.oid) from pg_class c join pg_namespace n on n.oid = c.relnamespace
              where c.relkind in ('r', 'p')
                and ((n.nspname = 'backstop' and c.relname = 'applied')
                  or (n.nspname = 'sqitch' and c.relname = 'changes')
                  or c.relname in ('_prisma_migrations', '__drizzle_migrations', 'schema_migrations',
                                   '_sqlx_migrations', 'flyway_schema_history', 'goose_db_version',
                                   '__diesel_schema_migrations')
                  or exists (select from unnest($1::text[], $2::text[]) u(s, r)
                              where r = c.relname and (s = '' or s = n.nspname)))",
            &[&schemas, &names],
        )
        .map_err(db("reading when the target's history began"))?;
    Ok(row.get::<_, Option<u32>>(0))
}

/// The target's extensions the history did not create, made in the start
/// (in their schemas). One this machine's PostgreSQL lacks is an error
/// when the history uses a name of it, a note otherwise.
fn extensions(
    target: &mut Client,
    base: &mut Client,
    refs: &Refs,
    named: &[(String, String)],
    notes: &mut Vec<String>,
) -> Result<Vec<String>, DownsError> {
    let rows = target
        .query(
            "select e.extname::text, n.nspname::text,
                    array(select coalesce(p.proname, t.typname)::text
                            from pg_depend d
                            left join pg_proc p on d.classid = 'pg_proc'::regclass and p.oid = d.objid
                            left join pg_type t on d.classid = 'pg_type'::regclass and t.oid = d.objid
                           where d.refobjid = e.oid and d.deptype = 'e'
                             and coalesce(p.proname, t.typname) is not null),
                    e.oid
               from pg_extension e join pg_namespace n on n.oid = e.extnamespace
              where e.extname <> 'plpgsql' order by e.oid",
            &[],
        )
        .map_err(db("listing the target's extensions"))?;
    let major: i32 = base
        .query_one("select current_setting('server_version_num')::int / 10000", &[])
        .map_err(db("reading the version"))?
        .get(0);
    let began = history_began(target, named)?;
    let mut made = Vec::new();
    for r in rows {
        let (name, schema, members): (String, String, Vec<String>) = (r.get(0), r.get(1), r.get(2));
        let oid: u32 = r.get(3);
        if refs.created_extensions.contains(&name) {
            continue;
        }
        // `CREATE EXTENSION IF NOT EXISTS` of one made after the history
        // began: the history made it, so its down may drop it.
        if refs.maybe_created_extensions.contains(&name) && began.is_some_and(|b| oid > b) {
            continue;
        }
        let available = base
            .query_opt("select 1 from pg_available_extensions where name = $1", &[&name])
            .map_err(db("listing the available extensions"))?
            .is_some();
        if !available {
            let used: Vec<&String> =
                members.iter().filter(|m| refs.names.contains(*m)).take(3).collect();
            if let Some(first) = used.first() {
                return Err(DownsError::MissingExtension { name, major, used: first.to_string() });
            }
            notes.push(format!(
                "extension {name} of the target is not installed on this machine's PostgreSQL {major}; the history uses nothing of it, so the start goes without"
            ));
            continue;
        }
        let sql = format!(
            "CREATE SCHEMA IF NOT EXISTS {s}; CREATE EXTENSION IF NOT EXISTS {} WITH SCHEMA {s} CASCADE",
            quote_ident(&name),
            s = quote_ident(&schema)
        );
        match base.batch_execute(&sql) {
            Ok(()) => made.push(name),
            Err(e) => notes.push(format!(
                "extension {name} could not be made in the start: {}",
                crate::pg::conn::error_chain(&e)
            )),
        }
    }
    Ok(made)
}

/// The target's default privileges (`ALTER DEFAULT PRIVILEGES`), made in
/// the start: the grants a table, sequence, function, type or schema gets
/// when the history creates it there are then the target's. An entry for
/// every schema replaces the built-in defaults of its role and kind, so
/// they are revoked first; an entry of one schema only adds. What the
/// start refuses (a schema it does not hold) is said in `left_out`.
fn default_privileges(
    target: &mut Client,
    base: &mut Client,
    left_out: &mut Vec<String>,
) -> Result<(), DownsError> {
    let rows = target
        .query(
            "select quote_ident(pg_get_userbyid(d.defaclrole)), n.nspname::text,
                    case d.defaclobjtype when 'r' then 'TABLES' when 'S' then 'SEQUENCES'
                         when 'f' then 'FUNCTIONS' when 'T' then 'TYPES' else 'SCHEMAS' end,
                    coalesce(array_agg(a.privilege_type || ' TO ' ||
                               case when a.grantee = 0 then 'PUBLIC'
                                    else quote_ident(pg_get_userbyid(a.grantee)) end ||
                               case when a.is_grantable then ' WITH GRANT OPTION' else '' end)
                             filter (where a.privilege_type is not null), '{}')
               from pg_default_acl d
               left join pg_namespace n on n.oid = d.defaclnamespace
               left join lateral aclexplode(d.defaclacl) a on true
              group by d.oid, d.defaclrole, n.nspname, d.defaclobjtype
              order by 1, 2 nulls first, 3",
            &[],
        )
        .map_err(db("reading the target's default privileges"))?;
    for r in rows {
        let (role, schema, kind, grants): (String, Option<String>, String, Vec<String>) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        let head = match &schema {
            Some(s) => {
                format!("ALTER DEFAULT PRIVILEGES FOR ROLE {role} IN SCHEMA {}", quote_ident(s))
            }
            None => format!("ALTER DEFAULT PRIVILEGES FOR ROLE {role}"),
        };
        let mut sql = String::new();
        if schema.is_none() {
            sql.push_str(&format!(
                "{head} REVOKE ALL ON {kind} FROM PUBLIC; {head} REVOKE ALL ON {kind} FROM {role};"
            ));
        }
        for g in &grants {
            let (privilege, to) = g.split_once(" TO ").unwrap_or((g, ""));
            sql.push_str(&format!("{head} GRANT {privilege} ON {kind} TO {to};"));
        }
        if let Err(err) = base.batch_execute(&sql) {
            left_out.push(format!(
                "DEFAULT PRIVILEGES of {role}{} on {kind}: {}",
                schema.map(|s| format!(" in schema {s}")).unwrap_or_default(),
                crate::pg::conn::error_chain(&err)
            ));
        }
    }
    Ok(())
}

/// The publications the history names and does not create, with the
/// platform's own tables in them (never the project's: the history adds
/// those).
fn publications(
    target: &mut Client,
    base: &mut Client,
    refs: &Refs,
    schemas: &[String],
) -> Result<Vec<String>, DownsError> {
    let rows = target
        .query(
            "select pubname::text, puballtables, pubinsert, pubupdate, pubdelete, pubtruncate,
                    array(select quote_ident(schemaname) || '.' || quote_ident(tablename)
                            from pg_publication_tables t
                           where t.pubname = p.pubname and t.schemaname = any($1))
               from pg_publication p order by 1",
            &[&schemas],
        )
        .map_err(db("listing the target's publications"))?;
    let mut made = Vec::new();
    for r in rows {
        let name: String = r.get(0);
        if !refs.names.contains(&name) || refs.created_publications.contains(&name) {
            continue;
        }
        let actions: Vec<&str> = [(2, "insert"), (3, "update"), (4, "delete"), (5, "truncate")]
            .into_iter()
            .filter(|(i, _)| r.get::<_, bool>(*i))
            .map(|(_, a)| a)
            .collect();
        let all = if r.get::<_, bool>(1) { " FOR ALL TABLES" } else { "" };
        let tables: Vec<String> = r.get(6);
        let mut sql = format!(
            "CREATE PUBLICATION {}{all} WITH (publish = '{}')",
            quote_ident(&name),
            actions.join(", ")
        );
        if !all.is_empty() || tables.is_empty() {
            sql.push(';');
        } else {
            sql = format!(
                "{sql}; ALTER PUBLICATION {} ADD TABLE {}",
                quote_ident(&name),
                tables.join(", ")
            );
        }
        if base.batch_execute(&sql).is_ok() {
            made.push(name);
        }
    }
    Ok(made)
}
