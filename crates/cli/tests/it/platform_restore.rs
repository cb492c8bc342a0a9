//! Method B where the database cannot be swapped: a Supabase-shaped
//! database named `postgres` (`fixtures/platform/supabase_full.sql`: the
//! platform's roles and schemas, auth.users with rows, storage under row
//! level security), owned by a role that is no superuser but may create
//! databases and roles, as a hosted project's owner is. `restore` puts
//! the project's schemas back in place in one transaction: rows the
//! platform took after the backup stay, the project's rows are the
//! backup's, what the project hung on the platform's tables (a trigger on
//! `auth.users`) is there again, and the state before is a verified
//! backup.

use std::sync::LazyLock;

use backstop_core::pg::cluster::Cluster;
use serde_json::Value;

use crate::common::{DbExt, Project, Run};

/// A cluster of this module alone: its `postgres` database is the target.
static OWN: LazyLock<Cluster> =
    LazyLock::new(|| Cluster::start().expect("a throwaway cluster starts"));

/// The hosted project's owner: no superuser.
const OWNER: &str = "project_owner";

const PROFILES: &str = "create table public.profiles (\n\
    id uuid primary key references auth.users (id) on delete cascade,\n\
    email text);\n\
create function public.handle_new_user() returns trigger language plpgsql security definer\n\
  set search_path = public as $$\n\
begin\n\
  insert into public.profiles (id, email) values (new.id, new.email);\n\
  return new;\n\
end $$;\n\
create trigger on_auth_user_created after insert on auth.users\n\
  for each row execute function public.handle_new_user();\n";

const NOTES: &str = "create table public.notes (id bigint primary key, profile uuid references public.profiles (id), body text);\n";

/// The platform on `OWN`'s `postgres` database, given to [`OWNER`]; the
/// project folder and the owner's URL to it.
fn platform() -> (Project, String) {
    let mut admin = OWN.connect("postgres").unwrap();
    admin
        .batch_execute(&format!(
            "CREATE ROLE {OWNER} LOGIN PASSWORD 'owner-pw' NOSUPERUSER CREATEDB CREATEROLE;
             ALTER DATABASE postgres OWNER TO {OWNER};"
        ))
        .unwrap();
    let fixture =
        std::fs::read_to_string(crate::common::fixture_path("platform/supabase_full.sql")).unwrap();
    admin.batch_execute(&fixture).expect("the platform is made");
    // What a hosted platform gives the project's owner: its API roles and
    // services' roles, and reading every table (so its dumps are whole).
    admin
        .batch_execute(&format!(
            "GRANT anon, authenticated, service_role, supabase_auth_admin, supabase_storage_admin TO {OWNER};
             GRANT SELECT, REFERENCES, TRIGGER ON auth.users TO {OWNER};
             DO $$ DECLARE s text; BEGIN
               FOR s IN SELECT nspname FROM pg_namespace WHERE left(nspname, 3) <> 'pg_' AND nspname <> 'information_schema' LOOP
                 EXECUTE format('GRANT USAGE ON SCHEMA %I TO {OWNER}', s);
                 EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO {OWNER}', s);
                 EXECUTE format('GRANT SELECT ON ALL SEQUENCES IN SCHEMA %I TO {OWNER}', s);
               END LOOP;
             END $$;"
        ))
        .unwrap();
    let p = Project::on(&OWN, "platform_restore");
    std::fs::remove_file(p.path().join("backstop.toml")).unwrap();
    std::fs::remove_dir_all(p.path().join("migrations")).unwrap();
    let url = format!("postgres://{OWNER}:owner-pw@127.0.0.1:{}/postgres", OWN.port());
    (p, url)
}

fn users(db: &mut postgres::Client) -> i64 {
    db.count("auth.users")
}

#[test]
fn method_b_restores_the_projects_schemas_in_place_and_leaves_the_platforms_rows() {
    let (p, url) = platform();
    p.write("supabase/migrations/20240101000000_profiles.sql", PROFILES);
    p.run_with_url(&url, &["migrate"]).expect_code(0);
    let mut db = OWN.connect("postgres").unwrap();
    let signup = "insert into auth.users (id, email) values (gen_random_uuid(), $1)";
    db.execute(signup, &[&"before@example.com"]).unwrap();
    assert_eq!(db.count("public.profiles"), 1, "the project's trigger made a profile");

    p.write("supabase/migrations/20240102000000_notes.sql", NOTES);
    p.run_with_url(&url, &["migrate"]).expect_code(0);
    let backup: String = db
        .query_one("select backup_id from backstop.applied where version = '20240102000000'", &[])
        .unwrap()
        .get(0);
    // After the backup: the platform signs a user up (its row in auth,
    // the project's profile by the trigger) and the project writes notes.
    let platform_before = users(&mut db);
    db.execute(signup, &[&"after@example.com"]).unwrap();
    db.batch_execute("insert into public.notes select 1, id, 'late' from public.profiles limit 1")
        .unwrap();

    let run = p.run_with_url(&url, &["restore", &backup, "--yes", "--format", "json"]);
    let report: Value = run.expect_code(0).json();
    run.expect_output(
        "restoring in place, since a swap cannot work here: it is the database named postgres",
    );
    assert_eq!(report["strategy"], "in_place", "{report:#}");
    assert!(!run.all().contains("owner-pw"), "the password was printed");

    let mut db = OWN.connect("postgres").unwrap();
    assert_eq!(users(&mut db), platform_before + 1, "the platform's late row stays");
    assert_eq!(db.count("public.profiles"), 1, "the project's rows are the backup's");
    assert!(!db.exists("public.notes"), "the backup predates notes");
    assert_eq!(db.applied(), ["20240101000000"]);
    let trigger: i64 = db
        .query_one("select count(*) from pg_trigger where tgname = 'on_auth_user_created'", &[])
        .unwrap()
        .get(0);
    assert_eq!(trigger, 1, "the project's trigger on auth.users is back");
    db.execute(signup, &[&"again@example.com"]).unwrap();
    assert_eq!(db.count("public.profiles"), 2, "and it runs");
    assert_eq!(db.count("storage.buckets"), 2, "the platform's storage is untouched");

    // The state before the restore is a verified backup holding the late rows.
    let pre = report["snapshot_id"].as_str().unwrap();
    let list: Value = p.run_with_url(&url, &["backup", "list", "--format", "json"]).json();
    let entry = list.as_array().unwrap().iter().find(|b| b["id"] == pre).unwrap().clone();
    assert_eq!(entry["label"], "pre-restore", "{entry:#}");
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(
            p.path().join(".backstop/backups").join(pre).join("manifest.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["row_counts"]["public.notes"], 1);
    assert_eq!(manifest["verification"]["checksums"]["ok"], true);
    // Writes are open again, for the platform and the project.
    db.batch_execute("insert into public.profiles (id, email) select id, 'x' from auth.users where email = 'after@example.com'")
        .unwrap();
    let status =
        Run::from_output(p.cmd().env("DATABASE_URL", &url).args(["status"]).output().unwrap());
    status.expect_code(0);
    assert!(!status.stdout.contains("frozen"), "{}", status.stdout);
}
