//! Prove once, deploy fast: `rehearse` works out and proves the down of
//! every migration that has none and keeps the proof; `migrate` reuses a
//! proof where it still holds (the same file, the same starting schema,
//! the same major) and proves the rest, saying which and why; a store it
//! cannot trust is set aside, never used.

use serde_json::Value;

use crate::common::{DbExt, Project, CLUSTER};

const USERS: &str = "create table users (id bigint primary key, email text not null);\n\
                     insert into users values (1, 'a@example.com'), (2, 'b@example.com');\n";
const POSTS: &str = "create table posts (id bigint primary key, user_id bigint references users (id), body text);\n\
                     create index posts_user on posts (user_id);\n\
                     create view user_posts as select u.email, p.body from users u join posts p on p.user_id = u.id;\n";
const PLANS: &str = "create table plans (id text primary key, price int);\n\
                     insert into plans values ('free', 0), ('pro', 10);\n";
/// Fills the column it adds (no loss) and lowers the emails that were
/// there (which only a backup holds as they were).
const BACKFILL: &str = "alter table users add column domain text;\n\
                        update users set domain = split_part(email, '@', 2), email = lower(email);\n";

fn write_history(p: &Project) {
    p.write("supabase/migrations/20240101000000_users.sql", USERS);
    p.write("supabase/migrations/20240102000000_posts.sql", POSTS);
    p.write("supabase/migrations/20240103000000_plans.sql", PLANS);
}

fn classes(json: &Value) -> Vec<(String, String)> {
    json["round_trip"]["migrations"]
        .as_array()
        .unwrap_or_else(|| panic!("no round trips: {json:#}"))
        .iter()
        .map(|t| (t["version"].as_str().unwrap().into(), t["class"].as_str().unwrap().into()))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

#[test]
fn rehearse_proves_the_downs_of_an_up_only_history_and_migrate_reuses_them() {
    let p = Project::bare("proofs_reused");
    write_history(&p);
    let run = p.run(&["rehearse", "--format", "json"]);
    let json = run.expect_code(0).json();
    assert_eq!(
        classes(&json),
        pairs(&[
            ("20240101000000", "proved"),
            ("20240102000000", "proved"),
            ("20240103000000", "proved")
        ]),
        "{:#}",
        json["round_trip"]
    );
    let store: Value = serde_json::from_str(
        &std::fs::read_to_string(p.path().join(".backstop/proofs.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(store["proofs"].as_array().unwrap().len(), 3, "{store:#}");
    // The deploy proves nothing again: every down comes from the proofs.
    let migrate = p.run(&["migrate"]);
    migrate.expect_code(0).expect_output("reused the kept proof of 3 down(s)");
    assert!(!migrate.all().contains("proved 3 down(s) now"), "{}", migrate.all());
    let kept = p
        .client()
        .texts("select version from backstop.applied where kept_down is not null order by version");
    assert_eq!(kept, ["20240101000000", "20240102000000", "20240103000000"]);
    // And the reused downs undo what they claim to.
    p.run(&["rollback", "--to", "20240101000000", "--yes"]).expect_code(0);
    let mut db = p.client();
    assert!(db.exists("public.users") && !db.exists("public.posts") && !db.exists("public.plans"));
    assert_eq!(db.applied(), ["20240101000000"]);
    // A migration added after the rehearsal is the only one proved now.
    p.write("supabase/migrations/20240104000000_backfill.sql", BACKFILL);
    let again = p.run(&["migrate"]);
    again.expect_code(0).expect_output("reused the kept proof of 2 down(s)");
    again.expect_output("proved 1 down(s) now: 20240104000000 (no proof of it was kept)");
}

/// A layout with downs whose author left some migrations without one (an
/// sqlx-style simple migration, a Flyway `V` file): the deploy proves
/// nothing, but the downs a rehearsal proved and kept come with the
/// migrations, and `rollback` runs them. What no rehearsal covered, the
/// deploy proves itself.
#[test]
fn a_layout_with_downs_keeps_the_downs_a_rehearsal_proved_for_migrations_without_one() {
    let p = Project::new("proofs_with_downs");
    p.migration("1_users", USERS, None);
    p.migration("2_plans", PLANS, None);
    p.migration("3_posts", POSTS, None);
    p.run(&["rehearse"]).expect_code(0).expect_output("kept the proof of 3 computed down(s)");
    let migrate = p.run(&["migrate"]);
    migrate.expect_code(0).expect_output("reused the kept proof of 3 down(s): 1, 2, 3");
    assert!(!migrate.all().contains("now"), "{}", migrate.all());
    p.run(&["rollback", "--to", "1", "--yes"]).expect_code(0);
    let mut db = p.client();
    assert!(db.exists("public.users") && !db.exists("public.posts") && !db.exists("public.plans"));
    assert_eq!(db.applied(), ["1"]);
    // The rolled-back ones come back with their proofs; the new ones, one
    // with its author's down and one without, are proved at the deploy,
    // and the rollback runs the down kept for the one without.
    p.migration("4_more", "create table more (id int);", Some("drop table more;"));
    p.migration("5_less", "create table less (id int);", None);
    let again = p.run(&["migrate"]);
    again.expect_code(0).expect_output("reused the kept proof of 2 down(s): 2, 3");
    again.expect_output("proved 2 down(s) now: 4 (no proof of it was kept); 5 (a migration before it in this run was not covered)");
    p.run(&["rollback", "--yes"]).expect_code(0).expect_output("✓ the schema is the one before 5");
    assert!(!p.client().exists("public.less"));
}

/// Method C runs the downs of what was applied: on an up-only layout
/// those are the downs the rehearsal works out and proves, so C plays
/// once the round trips made them (the whole rehearsal stopped at C's
/// `rollback`, which found no down).
#[test]
fn scenario_c_of_an_up_only_history_runs_the_downs_the_rehearsal_proved() {
    let p = Project::bare("proofs_scenario_c");
    p.write("supabase/migrations/20240101000000_users.sql", USERS);
    p.run(&["migrate"]).expect_code(0);
    p.write("backstop.toml", "[migrations]\nprotected_tables = [\"users\"]\n");
    write_history(&p);
    let json = p.run(&["rehearse", "--format", "json"]).expect_code(0).json();
    let c = json["scenarios"].as_array().unwrap().iter().find(|s| s["name"] == "C").unwrap();
    assert_eq!((&c["ok"], &c["skipped"]), (&true.into(), &false.into()), "{c:#}");
    let detail = c["detail"].as_str().unwrap();
    assert!(detail.contains("1 of 2 rows deleted from public.users detected"), "{c:#}");
    assert!(detail.contains("2 new table(s) exported") && detail.contains("downs ran"), "{c:#}");
    let mut db = p.client();
    assert!(!db.exists("public.posts"), "a copy's migration reached the target");
    assert_eq!(db.applied(), ["20240101000000"]);
}

#[test]
fn a_proof_never_covers_another_file_another_schema_or_another_major() {
    let p = Project::bare("proofs_misses");
    p.write("supabase/migrations/20240101000000_users.sql", USERS);
    p.write("supabase/migrations/20240102000000_posts.sql", POSTS);
    p.run(&["rehearse"]).expect_code(0);
    // One byte more in the second file (a space, at its end).
    p.write("supabase/migrations/20240102000000_posts.sql", &format!("{POSTS} "));
    let run = p.run(&["migrate"]);
    run.expect_code(0).expect_output("reused the kept proof of 1 down(s): 20240101000000");
    run.expect_output(
        "proved 1 down(s) now: 20240102000000 (its file changed since its down was proved)",
    );
    run.expect_output("proving them took ").expect_output(
        "of it, reading the schema each proof compares, after each up and each down: ",
    );
    p.run(&["rollback", "--to", "20240101000000", "--yes"]).expect_code(0);
    p.run(&["rollback", "--yes"]).expect_code(0);
    // The schema changed by hand since the rehearsal.
    p.client().batch_execute("create table audit (id int)").unwrap();
    let run = p.run(&["migrate"]);
    run.expect_code(0)
        .expect_output("proved 2 down(s) now: 20240101000000 (the schema it starts from");
    assert!(!run.all().contains("reused the kept proof"), "{}", run.all());
    p.run(&["rollback", "--to", "20240101000000", "--yes"]).expect_code(0);
    p.run(&["rollback", "--yes"]).expect_code(0);
    p.client().batch_execute("drop table audit").unwrap();
    // A proof edited by hand (here: said to come from another major) no
    // longer matches its seal: the store is not trusted.
    let store = p.path().join(".backstop/proofs.json");
    let mut json: Value = serde_json::from_str(&std::fs::read_to_string(&store).unwrap()).unwrap();
    for proof in json["proofs"].as_array_mut().unwrap() {
        proof["major"] = 99.into();
    }
    std::fs::write(&store, serde_json::to_string(&json).unwrap()).unwrap();
    let run = p.run(&["migrate"]);
    run.expect_code(0).expect_output("do not match their seal");
    assert_eq!(run.all().matches("do not match their seal").count(), 1, "{}", run.all());
    run.expect_output("proved 2 down(s) now");
    p.run(&["rollback", "--to", "20240101000000", "--yes"]).expect_code(0);
    p.run(&["rollback", "--yes"]).expect_code(0);
    // A store that does not parse is set aside, never trusted.
    std::fs::write(&store, "{ \"backstop\": ").unwrap();
    let run = p.run(&["migrate"]);
    run.expect_code(0).expect_output("is not one Backstop wrote");
    run.expect_output("proved 2 down(s) now");
}

/// A major other than the shared cluster's, with its programs, as
/// `.ci/tools/postgresql.sh` installs them (`None`: skipped, or failed
/// where every tool is required).
fn other_major() -> Option<(u32, std::path::PathBuf)> {
    let other = if CLUSTER.bin().major == 17 { 18 } else { 17 };
    let dir = crate::common::tools_dir().join(format!("pg/{other}/bin"));
    if dir.join("pg_ctl").is_file() {
        return Some((other, dir));
    }
    crate::common::missing_tool(&format!("PostgreSQL {other}"), ".ci/tools/postgresql.sh");
    None
}

#[test]
fn a_proof_made_on_another_major_is_proved_again_and_says_so() {
    use backstop_core::pg::bins::{Kit, Origin, Search};
    use backstop_core::pg::cluster::{Cluster, PgBin};
    let Some((major, dir)) = other_major() else { return };
    let bin = Search::of(vec![(dir.clone(), Origin::Env)]).first(Kit::Server).unwrap();
    let staging = Cluster::start_with(PgBin::from(bin)).unwrap();
    let p = Project::bare("proofs_major");
    p.write("supabase/migrations/20240101000000_users.sql", USERS);
    // Rehearsed on a staging server of another major, with the same
    // (empty) schema: its proof names that major.
    let db = crate::common::unique_name("staging");
    staging.create_database(&db, None).unwrap();
    let mut cmd = p.cmd();
    cmd.env("DATABASE_URL", staging.url(&db)).env("BACKSTOP_PG_BIN", &dir);
    let run = crate::common::Run::from_output(cmd.arg("rehearse").output().unwrap());
    run.expect_code(0);
    let store: Value = serde_json::from_str(
        &std::fs::read_to_string(p.path().join(".backstop/proofs.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(store["proofs"][0]["major"], major, "{store:#}");
    let here = CLUSTER.bin().major;
    let run = p.run(&["migrate"]);
    run.expect_code(0).expect_output(&format!(
        "20240101000000 (its down was proved on PostgreSQL {major}, and this server is {here})"
    ));
}

#[test]
fn require_downs_fails_a_rehearsal_on_a_down_only_a_backup_can_undo() {
    let p = Project::bare("proofs_require");
    p.write("supabase/migrations/20240101000000_users.sql", USERS);
    p.run(&["migrate"]).expect_code(0);
    p.write("supabase/migrations/20240102000000_backfill.sql", BACKFILL);
    let json = p.run(&["rehearse", "--format", "json"]).expect_code(0).json();
    assert_eq!(classes(&json), pairs(&[("20240102000000", "irreversible")]));
    let trip = &json["round_trip"]["migrations"][0];
    assert!(trip["detail"].as_str().unwrap().contains("UPDATE"), "{trip:#}");
    p.run(&["rehearse", "--require-downs"]).expect_code(1);
    let accepted = p.run(&[
        "rehearse",
        "--require-downs",
        "--accept-irreversible",
        "20240102000000",
        "--reason",
        "the domain can be derived again from the email",
        "--format",
        "json",
    ]);
    assert_eq!(
        classes(&accepted.expect_code(0).json()),
        pairs(&[("20240102000000", "data_accepted")])
    );
}

#[test]
fn a_deploy_starts_from_the_copy_the_last_proof_kept_only_while_the_target_is_that_copy() {
    let p = Project::bare("proofs_kept_copy");
    // Clusters (and so the copies kept beside them) in a folder of this test's own.
    let clusters = tempfile::tempdir().unwrap();
    let env = [("BACKSTOP_CLUSTER_DIR", clusters.path())];
    // Enough relations to be worth keeping (`downs::kept`).
    let tables: String = (0..45).map(|i| format!("CREATE TABLE t{i} (id int);\n")).collect();
    p.write("supabase/migrations/20240101000000_tables.sql", &tables);
    let reused = "no schema was restored";
    let first = p.run_env(&env, &["migrate"]);
    first.expect_code(0);
    assert!(!first.stderr.contains(reused), "nothing was kept yet:\n{}", first.stderr);

    p.write(
        "supabase/migrations/20240102000000_more.sql",
        "ALTER TABLE t1 ADD COLUMN note text;\n",
    );
    let second = p.run_env(&env, &["migrate"]);
    second.expect_code(0).expect_output(reused).expect_output("proved 1 down(s) now");
    assert_eq!(p.client().applied(), ["20240101000000", "20240102000000"]);

    // Changed by hand since: the kept copy is not the target, a fresh one is made.
    p.client().batch_execute("CREATE TABLE by_hand (id int)").unwrap();
    p.write(
        "supabase/migrations/20240103000000_again.sql",
        "ALTER TABLE t2 ADD COLUMN note text;\n",
    );
    let third = p.run_env(&env, &["migrate"]);
    third.expect_code(0).expect_output("proved 1 down(s) now");
    assert!(!third.stderr.contains(reused), "a copy of another schema was used:\n{}", third.stderr);
    // The downs proved either way take the database back.
    p.run_env(&env, &["rollback", "--steps", "2"]).expect_code(0);
    assert_eq!(p.client().applied(), ["20240101000000"]);
}

/// An up that writes the catalogs itself (a column widened through
/// `pg_attribute`, as old how-tos do; no DDL command, so no event trigger
/// sees it) gets a computed down that narrows the column back, proved on
/// the rehearsal's copy.
#[test]
fn a_catalog_the_up_writes_itself_is_in_its_computed_down() {
    let p = Project::bare("proofs_catalog_write");
    p.write(
        "supabase/migrations/20240101000000_codes.sql",
        "create table codes (code varchar(10));\n",
    );
    p.write(
        "supabase/migrations/20240102000000_widen.sql",
        "update pg_attribute set atttypmod = 24 \
         where attrelid = 'public.codes'::regclass and attname = 'code';\n",
    );
    let json = p.run(&["rehearse", "--format", "json"]).json();
    // Narrowed back as PostgreSQL assigns: the widening changed no value,
    // so nothing is lost (a longer value written since makes the down
    // fail, changing nothing; `reverted::a_widened_column_…`).
    assert_eq!(
        classes(&json),
        pairs(&[("20240101000000", "proved"), ("20240102000000", "proved")]),
        "{:#}",
        json["round_trip"]
    );
    let store: Value = serde_json::from_str(
        &std::fs::read_to_string(p.path().join(".backstop/proofs.json")).unwrap(),
    )
    .unwrap();
    let widen = store["proofs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|proof| proof["version"] == "20240102000000")
        .unwrap_or_else(|| panic!("no proof of the widening: {store:#}"));
    let down = widen["down"].as_str().unwrap().to_lowercase();
    assert!(down.contains("varying(10)") || down.contains("varchar(10)"), "{down}");
    assert!(!down.contains("using"), "cast as assigned, never cut: {down}");
}

/// A protected table the history itself creates is not there yet on a
/// fresh database, nor on a replay from the platform, before the
/// migration that makes it: there is nothing to lose, and every command
/// that applies one migration at a time (rehearse's round trips, `downs`,
/// `migrate --to`) refused the ones before it ("protected table users does
/// not exist"), so a fresh database's rehearsal failed and no down of the
/// history was proved.
#[test]
fn a_protected_table_the_history_creates_is_not_missing_before_it() {
    let p = Project::bare("proofs_protected_later");
    p.write("backstop.toml", "[migrations]\nprotected_tables = [\"users\"]\n");
    p.write("supabase/migrations/20240101000000_plans.sql", PLANS);
    p.write("supabase/migrations/20240102000000_users.sql", USERS);
    p.write("supabase/migrations/20240103000000_posts.sql", POSTS);
    let json = p.run(&["rehearse", "--format", "json"]).expect_code(0).json();
    let proved = |v: &str| (v.to_string(), "proved".to_string());
    let all = ["20240101000000", "20240102000000", "20240103000000"].map(proved).to_vec();
    assert_eq!(classes(&json), all, "{:#}", json["round_trip"]);
    let downs = p.run(&["downs", "--format", "json"]).expect_code(0).json();
    let unproved: Vec<&Value> =
        downs.as_array().unwrap().iter().filter(|d| d["proved"] != true).collect();
    assert!(unproved.is_empty(), "downs not proved: {unproved:#?}");
    p.run(&["migrate", "--to", "20240101000000"]).expect_code(0);
    p.run(&["migrate"]).expect_code(0).expect_output("reused the kept proof of 2 down(s)");
    assert_eq!(p.client().texts("select email from users order by id").len(), 2);
}
