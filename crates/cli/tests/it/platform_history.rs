//! Issue 33 on a Supabase-shaped database: a project's history of a few
//! hundred migrations in each tool's layout at the project's root
//! (`bench/supabase_history.rs`), on a database that already holds the
//! platform (`fixtures/platform/supabase_full.sql`: the platform's roles
//! and schemas, auth.users with rows, storage under RLS, the realtime
//! publication, pgvector in `extensions` on the database's search_path).
//! With no backstop.toml and no option, `status` finds the folder,
//! `migrate` applies it, `downs` computes and proves every down from the
//! target's platform (`irreversible` exactly for the UPDATE backfills),
//! `downs --write` keeps them, and `rollback` to before the first
//! migration leaves the database as the platform alone: the same catalog
//! fingerprint, the platform's rows untouched, the project's rows
//! exported first.
//!
//! The platform's roles belong to the whole cluster, and pgvector is in
//! the PostgreSQL 16 that `.ci/tools/postgresql.sh` installs (Debian's 15
//! lacks it): these tests run on a PostgreSQL 16 cluster of their own, and
//! point `backstop` at 16's programs (`BACKSTOP_PG_BIN`) so its throwaway
//! clusters are 16 too.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};

use backstop_core::pg::bins::{Kit, Origin, Search};
use backstop_core::pg::cluster::{Cluster, PgBin};
use backstop_core::pg::fingerprint::Schema;

use crate::common::{find_file, missing_tool, tools_dir, DbExt, Project, Run};

#[path = "../../../../bench/supabase_history.rs"]
pub(crate) mod history;
use history::{Layout, Platform};

/// Migrations in each history.
const MIGRATIONS: usize = 300;

/// PostgreSQL 16's programs, where `.ci/tools/postgresql.sh` puts them.
fn pg16() -> Option<PathBuf> {
    let dir = tools_dir().join("pg/16/bin");
    if dir.join("pg_ctl").is_file() {
        return Some(dir);
    }
    missing_tool("PostgreSQL 16 (with pgvector)", ".ci/tools/postgresql.sh");
    None
}

/// The PostgreSQL 16 cluster of this module: no other test gives its
/// roles to it or takes them away.
static OWN: LazyLock<Cluster> = LazyLock::new(|| {
    let dir = tools_dir().join("pg/16/bin");
    let bin = Search::of(vec![(dir, Origin::Env)]).first(Kit::Server).expect("PostgreSQL 16");
    Cluster::start_with(PgBin::from(bin)).expect("a PostgreSQL 16 cluster starts")
});

/// The platform's statements change roles the whole cluster shares: one
/// database at a time is given them.
static PLATFORM_LOCK: Mutex<()> = Mutex::new(());

/// A cluster of the machine's own PostgreSQL for this module alone, where
/// `uuid-ossp` and `pgcrypto` are (Debian's 15 has both, 16's wheel not).
static LOCAL: LazyLock<Cluster> =
    LazyLock::new(|| Cluster::start().expect("a cluster of the local PostgreSQL starts"));

/// Which server the platform runs on.
#[derive(Clone, Copy)]
pub enum Server {
    /// PostgreSQL 16 with pgvector.
    Pg16,
    /// The machine's own PostgreSQL, with uuid-ossp and pgcrypto.
    Local,
}

/// A project on the Supabase-shaped database: no backstop.toml, no
/// `migrations/`, and its database given the platform.
pub struct OnPlatform {
    pub p: Project,
    pub cluster: &'static Cluster,
    pub bin: PathBuf,
    pub platform: Platform,
}

impl OnPlatform {
    /// On PostgreSQL 16; `None` when it is not installed (the test skipped).
    pub fn new(label: &str) -> Option<OnPlatform> {
        OnPlatform::on(Server::Pg16, label)
    }

    /// On `server`; `None` when what it needs is not installed.
    pub fn on(server: Server, label: &str) -> Option<OnPlatform> {
        let (cluster, bin): (&'static Cluster, PathBuf) = match server {
            Server::Pg16 => {
                let bin = pg16()?;
                (&OWN, bin)
            }
            Server::Local => (&LOCAL, LOCAL.bin().dir.clone()),
        };
        let p = Project::on(cluster, label);
        std::fs::remove_file(p.path().join("backstop.toml")).unwrap();
        std::fs::remove_dir_all(p.path().join("migrations")).unwrap();
        let mut db = cluster.connect(&p.db).unwrap();
        {
            let _one = PLATFORM_LOCK.lock().unwrap_or_else(|e| e.into_inner());
            db.batch_execute(history::PLATFORM).expect("the platform fixture is made");
        }
        let platform = Platform::of(&mut db);
        match server {
            Server::Pg16 => {
                assert!(platform.vector, "PostgreSQL 16 of .ci/tools/postgresql.sh ships pgvector")
            }
            Server::Local if !platform.uuid_ossp => {
                missing_tool(
                    "uuid-ossp of the local PostgreSQL",
                    ".ci/prereqs (postgresql-contrib)",
                );
                return None;
            }
            Server::Local => {}
        }
        Some(OnPlatform { p, cluster, bin, platform })
    }

    /// A direct connection to the project's database.
    pub fn db(&self) -> postgres::Client {
        self.cluster.connect(&self.p.db).unwrap()
    }

    /// `backstop ARGS` from the project's root, its throwaway clusters of
    /// the server's major.
    pub fn run(&self, args: &[&str]) -> Run {
        self.p.run_env(&[("BACKSTOP_PG_BIN", &self.bin)], args)
    }
}

/// What must come back after a rollback to before the first migration.
#[derive(Debug, PartialEq)]
pub struct PlatformState {
    pub fingerprint: String,
    /// The platform's rows, schema by schema.
    pub rows: Vec<String>,
    /// What the fingerprint leaves to others: publications, default
    /// privileges, schemas' owners and grants, the database's settings.
    pub around: Vec<String>,
}

const PLATFORM_ROWS: [&str; 7] = [
    "auth.users",
    "auth.identities",
    "auth.schema_migrations",
    "storage.buckets",
    "storage.objects",
    "storage.migrations",
    "realtime.schema_migrations",
];

/// The state of the database, and its schema picture for the message of
/// a failed comparison.
/// The tool's own history, kept in step by Backstop, must list nothing
/// applied once everything is rolled back; it is the tool's bookkeeping,
/// not the platform's, and is dropped before the platform is compared.
pub fn platform_state(db: &mut postgres::Client) -> (PlatformState, Schema) {
    if db.exists("supabase_migrations.schema_migrations") {
        let left = db.count("supabase_migrations.schema_migrations");
        assert_eq!(left, 0, "the CLI's history lists reverted migrations");
    }
    if db.exists("drizzle.__drizzle_migrations") {
        assert_eq!(db.count("drizzle.__drizzle_migrations"), 0, "drizzle's history lists them");
    }
    if db.exists("public._prisma_migrations") {
        let live = db.count("public._prisma_migrations where rolled_back_at is null");
        assert_eq!(live, 0, "Prisma's history lists reverted migrations as applied");
    }
    db.batch_execute(
        "drop schema if exists supabase_migrations cascade; drop schema if exists drizzle cascade;
         drop table if exists public._prisma_migrations",
    )
    .unwrap();
    let schema = Schema::read(db).unwrap();
    let mut rows = Vec::new();
    for t in PLATFORM_ROWS {
        rows.push(format!("{t}:"));
        rows.extend(db.texts(&format!("select t::text from {t} t order by 1")));
    }
    let around = [
        "select pubname || ' ' || schemaname || '.' || tablename from pg_publication_tables order by 1",
        "select coalesce(defaclrole::regrole::text, '') || ' ' || coalesce(defaclnamespace::regnamespace::text, '') || ' '
                || defaclobjtype::text || ' ' || defaclacl::text from pg_default_acl order by 1",
        "select nspname || ' ' || nspowner::regrole::text || ' ' || coalesce(nspacl::text, '') from pg_namespace
          where nspname !~ '^pg_' and nspname <> 'backstop' order by 1",
        "select coalesce(setrole::regrole::text, '*') || ' ' || array_to_string(setconfig, ';') from pg_db_role_setting
          where setdatabase in (0, (select oid from pg_database where datname = current_database())) order by 1",
        "select extname || ' ' || extnamespace::regnamespace::text from pg_extension order by 1",
    ];
    let around = around.iter().flat_map(|q| db.texts(q)).collect();
    (PlatformState { fingerprint: schema.fingerprint(), rows, around }, schema)
}

/// What two lists of lines do not share: `-` only in `before`, `+` only in `after`.
fn changed(before: &[String], after: &[String]) -> Vec<String> {
    let gone = before.iter().filter(|l| !after.contains(l)).map(|l| format!("- {l}"));
    gone.chain(after.iter().filter(|l| !before.contains(l)).map(|l| format!("+ {l}"))).collect()
}

/// The versions of the folder as `status` lists them, in order.
fn pending(run: &Run) -> Vec<String> {
    run.json()["pending"]
        .as_array()
        .unwrap_or_else(|| panic!("no pending list\n{}", run.all()))
        .iter()
        .map(|e| e["version"].as_str().unwrap().to_string())
        .collect()
}

/// Every file under `dir` whose name ends with `suffix`.
fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            out.extend(files_ending(&path, suffix));
        } else if path.to_string_lossy().ends_with(suffix) {
            out.push(path);
        }
    }
    out
}

/// Rows the project's users wrote after the release: a profile for a user
/// of the platform, a subscription, a document with its embedding.
fn app_rows(db: &mut postgres::Client, platform: Platform) {
    let embedding = if platform.vector { "[1,2,3]" } else { "{1,2,3}" };
    let sql = format!(
        "insert into public.profiles (id, username, full_name)
           values ('9c1a6f0e-3f7e-4a55-9a4e-0d1b2c3d4e01', 'ada', 'Ada Lovelace');
         insert into public.subscriptions (user_id, plan_id)
           values ('9c1a6f0e-3f7e-4a55-9a4e-0d1b2c3d4e01', 'pro');
         insert into public.documents (owner_id, content, embedding)
           values ('9c1a6f0e-3f7e-4a55-9a4e-0d1b2c3d4e02', 'notes on the engine', '{embedding}');
",
    );
    db.batch_execute(&sql).expect("the app's rows are written");
}

/// What `migrate` built on the platform, read from the catalogs.
fn assert_built(db: &mut postgres::Client, realtime: i64, platform: Platform) {
    let one =
        |db: &mut postgres::Client, sql: &str| -> i64 { db.query_one(sql, &[]).unwrap().get(0) };
    assert_eq!(
        one(db, "select count(*) from pg_trigger where tgrelid = 'auth.users'::regclass and tgname = 'on_auth_user_created'"),
        1
    );
    assert_eq!(one(db, "select count(*) from pg_policies where schemaname = 'storage' and tablename = 'objects'"), 3);
    assert_eq!(
        one(db, "select count(*) from pg_publication_tables where pubname = 'supabase_realtime'"),
        realtime,
        "subscriptions and every block's table are in supabase_realtime"
    );
    let (embedding, key) = match platform {
        Platform { vector: true, .. } => ("vector(3)", "gen_random_uuid()"),
        _ => ("real[]", "uuid_generate_v4()"),
    };
    let column = |db: &mut postgres::Client, name: &str| -> (String, String) {
        let r = db
            .query_one(
                "select format_type(a.atttypid, a.atttypmod), coalesce(pg_get_expr(d.adbin, d.adrelid), '')
                   from pg_attribute a left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
                  where a.attrelid = 'public.documents'::regclass and a.attname = $1",
                &[&name],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(column(db, "embedding").0, embedding);
    // Unqualified: found through the database's search_path.
    assert_eq!(column(db, "id").1, if platform.uuid_ossp { "uuid_generate_v4()" } else { key });
    assert_eq!(one(db, "select count(*) from storage.buckets where id = 'avatars'"), 1);
    assert_eq!(one(db, "select count(*) from public.plans"), 2);
}

/// The whole issue on one layout.
fn round_trip(layout: Layout, server: Server, n: usize) {
    let label = format!("platform_{}", layout.name());
    let Some(t) = OnPlatform::on(server, &label) else { return };
    let (before, before_schema) = platform_state(&mut t.db());
    let steps = history::write(t.p.path(), layout, n, t.platform);

    let status = t.run(&["status", "--format", "json"]);
    status.expect_code(0);
    let json = status.json();
    assert_eq!(json["layout"], layout.name(), "{}", status.stdout);
    assert!(json["problems"].as_array().unwrap().is_empty(), "{}", status.stdout);
    let versions = pending(&status);
    assert_eq!(versions.len(), n);

    t.run(&["migrate"]).expect_code(0);
    let mut db = t.db();
    assert_eq!(db.applied().len(), n);
    let realtime = 1 + steps.iter().filter(|s| s.name.starts_with("rls_")).count();
    assert_built(&mut db, realtime as i64, t.platform);
    app_rows(&mut db, t.platform);

    let downs = t.run(&["downs", "--format", "json"]);
    let list = downs.json().as_array().unwrap_or_else(|| panic!("{}", downs.all())).clone();
    let status_of: Vec<(String, String)> = list
        .iter()
        .map(|d| {
            (d["version"].as_str().unwrap().to_string(), d["status"].as_str().unwrap().to_string())
        })
        .collect();
    let unproved: Vec<&serde_json::Value> =
        list.iter().filter(|d| d["proved"] != true || d["status"] == "unprovable").collect();
    assert!(unproved.is_empty(), "downs not proved: {unproved:#?}");
    downs.expect_code(0);
    assert_eq!(list.len(), n, "one down per migration");
    let irreversible: BTreeSet<&str> =
        status_of.iter().filter(|(_, s)| s == "irreversible").map(|(v, _)| v.as_str()).collect();
    let backfills: BTreeSet<&str> =
        steps.iter().zip(&versions).filter(|(s, _)| s.backfill).map(|(_, v)| v.as_str()).collect();
    assert_eq!(irreversible, backfills, "irreversible exactly for the UPDATE backfills");
    let computed = status_of.iter().filter(|(_, s)| s == "computed").count();
    assert_eq!(computed, n - backfills.len(), "{status_of:?}");
    let seed = list.iter().find(|d| d["version"] == versions[4].as_str()).unwrap();
    assert!(
        seed["sql"].as_str().unwrap().contains("DELETE FROM plans WHERE (id = 'free')"),
        "{seed:#}"
    );

    t.run(&["downs", "--write"]).expect_code(0);
    assert_eq!(files_ending(t.p.path(), ".down.sql").len(), n);

    let steps_arg = n.to_string();
    let rollback = t.run(&["rollback", "--steps", &steps_arg]);
    rollback.expect_code(0);
    let (after, schema) = platform_state(&mut db);
    assert_eq!(db.applied(), Vec::<String>::new(), "{}", rollback.all());
    assert!(
        after.rows == before.rows,
        "the platform's rows changed: {:#?}",
        changed(&before.rows, &after.rows)
    );
    assert!(after.around == before.around, "{:#?}", changed(&before.around, &after.around));
    assert_eq!(after.fingerprint, before.fingerprint, "{:#?}", before_schema.differences(&schema));
    let exports = t.p.path().join(".backstop/exports");
    let profile = find_file(&exports, "profiles")
        .unwrap_or_else(|| panic!("no export of profiles\n{}", rollback.all()));
    assert!(
        std::fs::read_to_string(&profile).unwrap().contains("Ada Lovelace"),
        "{}",
        profile.display()
    );
    assert!(find_file(&exports, "documents").is_some(), "no export of documents");
}

#[test]
fn a_supabase_cli_history_on_the_platform_rolls_back_to_the_platform_alone() {
    round_trip(Layout::Supabase, Server::Pg16, MIGRATIONS);
}

#[test]
fn a_prisma_history_on_the_platform_rolls_back_to_the_platform_alone() {
    round_trip(Layout::Prisma, Server::Pg16, MIGRATIONS);
}

#[test]
fn a_supabase_cli_history_keyed_by_uuid_ossp_rolls_back_to_the_platform_alone() {
    // Shorter: the same shapes, on the machine's own PostgreSQL, with
    // unqualified uuid_generate_v4() and no pgvector.
    round_trip(Layout::Supabase, Server::Local, 100);
}

#[test]
fn a_drizzle_history_on_the_platform_rolls_back_to_the_platform_alone() {
    round_trip(Layout::Drizzle, Server::Pg16, MIGRATIONS);
}

/// A short Supabase CLI history of `files` (name, SQL) on the platform,
/// migrated, its downs computed and written; and the state before it.
fn short_history(label: &str, files: &[(&str, &str)]) -> Option<(OnPlatform, PlatformState)> {
    let t = OnPlatform::new(label)?;
    let (before, _) = platform_state(&mut t.db());
    for (i, (name, sql)) in files.iter().enumerate() {
        t.p.write(&format!("supabase/migrations/{}_{name}.sql", history::stamp(i)), sql);
    }
    t.run(&["migrate"]).expect_code(0);
    t.run(&["downs", "--write"]).expect_code(0);
    Some((t, before))
}

/// The same, rolled back whole: the state before and after, and the
/// rollback's run.
fn short_round_trip(
    label: &str,
    files: &[(&str, &str)],
) -> Option<(PlatformState, PlatformState, Run)> {
    let (t, before) = short_history(label, files)?;
    let rollback = t.run(&["rollback", "--steps", &files.len().to_string()]);
    let (after, _) = platform_state(&mut t.db());
    Some((before, after, rollback))
}

#[test]
fn a_bucket_the_dashboard_made_stays_when_the_insert_that_found_it_is_rolled_back() {
    // `docs` was made in the dashboard; the project's migration makes sure
    // it is there, as migrations do on every environment.
    let Some((before, after, rollback)) = short_round_trip(
        "platform_bucket_kept",
        &[("docs_bucket", "insert into storage.buckets (id, name, public)\n  values ('docs', 'docs', false)\n  on conflict do nothing;\n")],
    ) else {
        return;
    };
    rollback.expect_code(0);
    assert!(
        after.rows == before.rows,
        "the platform's bucket was deleted: {:#?}\n{}",
        changed(&before.rows, &after.rows),
        rollback.all()
    );
}

#[test]
fn an_extension_the_platform_had_stays_when_create_extension_if_not_exists_is_rolled_back() {
    // `supabase db pull` writes the platform's extensions into the first
    // migration: on the platform they are there already.
    let Some((before, after, rollback)) = short_round_trip(
        "platform_extension_kept",
        &[
            (
                "remote_schema",
                "create extension if not exists \"vector\" with schema \"extensions\";\n",
            ),
            ("notes", "create table public.notes (id bigint primary key, embedding vector(3));\n"),
        ],
    ) else {
        return;
    };
    rollback.expect_code(0);
    assert!(
        after.around == before.around,
        "the platform's extension was dropped: {:#?}\n{}",
        changed(&before.around, &after.around),
        rollback.all()
    );
    assert_eq!(after.fingerprint, before.fingerprint);
}

/// Regression: the replay's start lacked the target's default privileges,
/// so a GRANT they had made a no-op got a down that revoked what they gave.
#[test]
fn a_grant_the_platforms_default_privileges_already_gave_is_kept_by_its_down() {
    // On Supabase every table made in public is granted to anon,
    // authenticated and service_role; projects grant explicitly anyway.
    let acl = "select relacl::text from pg_class where oid = 'public.notes'::regclass";
    let Some((t, _)) = short_history(
        "platform_default_acl",
        &[
            ("notes", "create table public.notes (id bigint primary key, body text);\n"),
            ("notes_grants", "grant select, insert on public.notes to authenticated;\n"),
        ],
    ) else {
        return;
    };
    let granted = t.db().texts(acl);
    assert!(granted[0].contains("authenticated=arwdDxt"), "{granted:?}");
    t.run(&["rollback"]).expect_code(0);
    assert_eq!(t.db().texts(acl), granted, "the down revoked what the default privileges gave");
}

#[test]
fn rows_inserted_into_a_table_the_up_renamed_are_deleted_by_its_down() {
    let Some((t, _)) = short_history(
        "platform_renamed_insert",
        &[
            ("tags", "create table public.tags (id int primary key, name text not null);\n"),
            (
                "labels",
                "alter table public.tags rename to labels;\n\
                 insert into public.labels (id, name) values (1, 'urgent');\n",
            ),
        ],
    ) else {
        return;
    };
    t.run(&["rollback"]).expect_code(0);
    assert_eq!(t.db().count("public.tags"), 0, "the up's row stayed after its down");
    t.run(&["migrate"]).expect_code(0);
    assert_eq!(t.db().count("public.labels"), 1);
}
