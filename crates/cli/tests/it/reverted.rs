//! A "reverted" the database backs: a down file that holds only comments
//! is no down, and a rollback never says it reverted what is still there.

use serde_json::{json, Value};

use crate::common::{find_file, DbExt, Project, DEFAULT_CONFIG};

/// The new user's path: `init`, `new`, an up that creates a table, the
/// down left as `new` wrote it (one comment line). Before: `check` said
/// GO with no finding and `rollback` printed `✓ reverted` while the table
/// stayed, so the next `migrate` failed on "relation already exists".
#[test]
fn a_down_left_as_new_wrote_it_is_no_down_and_never_reverts_by_saying_so() {
    let p = Project::bare("reverted_template");
    p.run(&["init"]).expect_code(0);
    p.run(&["new", "add_t"]).expect_code(0);
    let up = find_file(&p.path().join("migrations"), "up.sql").expect("new wrote up.sql");
    std::fs::write(&up, "create table t (id bigint primary key, note text);\n").unwrap();
    let down = up.with_file_name("down.sql");
    assert!(std::fs::read_to_string(&down).unwrap().trim_start().starts_with("--"));
    let check = p.run(&["check", "--format", "json"]);
    let json = check.json();
    let empty: Vec<&serde_json::Value> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "BS403" && f["file"].as_str().unwrap().ends_with("down.sql"))
        .collect();
    assert_eq!(empty.len(), 1, "{json:#}");
    assert!(empty[0]["message"].as_str().unwrap().contains("is empty"), "{json:#}");
    // The empty file counts as no down: migrate works one out and proves
    // it on a copy (the check runs the up alone there).
    p.run(&["migrate"]).expect_code(0).expect_output("proved 1 down(s) now");
    let rollback = p.run(&["rollback", "--yes"]);
    rollback.expect_code(0).expect_output("✓ the schema is the one before");
    assert!(!p.client().exists("public.t"), "{}", rollback.all());
    // So the next migrate applies it again instead of failing on "already exists".
    p.run(&["migrate"]).expect_code(0);
    assert!(p.client().exists("public.t"));
}

const USERS: &str = "create table users (id bigint primary key, email text not null);\n";

/// An author's down that leaves a column behind is proved at the deploy
/// onto a database with history and refused, named with what it leaves;
/// the proved down that does hold is offered, and kept in its place where
/// the project says so.
#[test]
fn a_defective_down_is_named_at_the_deploy_and_its_proved_fix_offered() {
    let p = Project::new("reverted_defective");
    p.migration("1_users", USERS, Some("drop table users;"));
    p.run(&["migrate"]).expect_code(0);
    p.migration(
        "2_nick",
        "alter table users add column nick text;\ncreate index users_nick on users (nick);\n",
        Some("drop index users_nick;\n"),
    );
    let refused = p.run(&["migrate"]);
    refused.expect_code(1);
    refused.expect_output("the down of 2_nick (");
    refused.expect_output("column public.users.nick");
    refused.expect_output("backstop downs --write --force 2");
    assert_eq!(p.client().applied(), ["1"], "nothing ran: {}", refused.all());
    p.config(
        "[database]\nurl = \"${DATABASE_URL}\"\n\n[migrations]\ndir = \"migrations\"\n\
         defective_downs = \"keep_proved\"\n",
    );
    let migrate = p.run(&["migrate"]);
    migrate.expect_code(0).expect_output("warning: the down of 2_nick");
    // The proof made by the refused run serves this one.
    migrate.expect_output("reused the kept proof of 1 down(s)");
    p.run(&["rollback", "--yes"]).expect_code(0).expect_output("✓ the schema is the one before 2");
    let mut db = p.client();
    let nick: i64 = db
        .query_one(
            "select count(*) from information_schema.columns where table_name = 'users' and column_name = 'nick'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(nick, 0, "the kept down ran, not the file's");
    assert_eq!(db.applied(), ["1"]);
}

/// A bootstrap (nothing of the project applied yet: a laptop, CI, a new
/// tenant) is not stopped by old authored downs that do not hold: the
/// history runs, the defective files are named once with the fix, and
/// the proved down of each is kept for `rollback`. A project that wants
/// the refusal there too says `defective_downs = "refuse"`.
#[test]
fn a_bootstrap_is_not_refused_for_old_downs_nobody_runs() {
    let p = Project::new("reverted_bootstrap");
    p.migration("1_users", USERS, Some("drop table users;"));
    p.migration(
        "2_nick",
        "alter table users add column nick text;\ncreate index users_nick on users (nick);\n",
        Some("drop index users_nick;\n"),
    );
    p.migration("3_age", "alter table users add column age int;\n", Some("select 1;\n"));
    p.config(
        "[database]\nurl = \"${DATABASE_URL}\"\n\n[migrations]\ndir = \"migrations\"\n\
         defective_downs = \"refuse\"\n",
    );
    let refused = p.run(&["migrate"]);
    refused.expect_code(1).expect_output("backstop downs --write --force 2 3");
    assert!(p.client().applied().is_empty(), "nothing ran: {}", refused.all());
    p.config("[database]\nurl = \"${DATABASE_URL}\"\n\n[migrations]\ndir = \"migrations\"\n");
    let migrate = p.run(&["migrate"]);
    migrate.expect_code(0);
    migrate.expect_output("warning: 2 authored down(s) do not bring the schema back:");
    migrate.expect_output("2_nick/down.sql, ");
    migrate.expect_output("this is a bootstrap");
    assert!(
        !migrate.all().contains("warning: the down of"),
        "each file is named once, not again one by one: {}",
        migrate.all()
    );
    assert_eq!(p.client().applied(), ["1", "2", "3"]);
    p.run(&["rollback", "--steps", "2", "--yes"])
        .expect_code(0)
        .expect_output("✓ the schema is the one before 2");
    let mut db = p.client();
    let left: i64 = db
        .query_one(
            "select count(*) from information_schema.columns where table_name = 'users' and column_name in ('nick', 'age')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "the proved downs ran, not the files'");
}

/// The last line of defence: a down changed after its proof (or any down
/// that leaves the schema other than before its up) is caught by the
/// rollback's own check before COMMIT: exit 1, every difference named,
/// nothing changed. Something else changed since the migrate (drift) is
/// said apart and does not stop it.
#[test]
fn a_rollback_that_does_not_bring_the_schema_back_changes_nothing() {
    let p = Project::new("reverted_check");
    p.migration("1_users", USERS, Some("drop table users;"));
    p.migration(
        "2_posts",
        "create table posts (id int primary key, body text);\n",
        Some("drop table posts;"),
    );
    p.run(&["migrate"]).expect_code(0).expect_output("proved 2 down(s) now");
    // Edited after its proof: it forgets the table, and drops one nobody touched.
    p.write("migrations/2_posts/down.sql", "drop table if exists scratch;\n");
    p.client().batch_execute("create table scratch (id int)").unwrap();
    let rollback = p.run(&["rollback", "--yes"]);
    rollback.expect_code(1);
    rollback.expect_output("relation public.posts: still there (the up made it, the down left it)");
    rollback.expect_output(
        "relation public.scratch: removed by the downs, though none of the reverted ups made it: it was made since the migrate by hand",
    );
    assert!(!rollback.all().contains("✓ reverted"), "{}", rollback.all());
    let mut db = p.client();
    assert!(db.exists("public.posts") && db.exists("public.scratch"), "nothing changed");
    assert_eq!(db.applied(), ["1", "2"]);
    // Put right, with a table made by hand since (drift): compared where
    // the migrations touched, the rest said.
    p.write("migrations/2_posts/down.sql", "drop table posts;\n");
    let rollback = p.run(&["rollback", "--yes"]);
    rollback.expect_code(0).expect_output("changed since the migrate by something else (drift)");
    assert!(!p.client().exists("public.posts"));
}

/// A down that forgets a comment the up wrote, and one that adds back a
/// dropped column at the end of its table: the schema is the one before in
/// all that changes behaviour, so the rollback commits, and its ✓ line
/// names both cosmetic differences apart. Before: ✓ and no word.
#[test]
fn cosmetic_differences_a_down_leaves_are_said_on_the_rollbacks_line() {
    let p = Project::new("reverted_cosmetic");
    p.migration("1_notes", "create table notes (id int primary key, a text, c text);\n", None);
    p.migration(
        "2_commented",
        "comment on table notes is 'free text';\nalter table notes drop column a;\n",
        Some("alter table notes add column a text;\n"),
    );
    p.run(&["migrate"]).expect_code(0);
    let rollback = p.run(&["rollback", "--yes"]);
    rollback.expect_code(0).expect_output("✓ the schema is the one before 2");
    rollback.expect_output("cosmetic, said apart");
    rollback.expect_output("comment on relation public.notes: still there");
    rollback.expect_output("column order public.notes: not as it was before the up");
    assert_eq!(p.client().applied(), ["1"]);
}

/// A database's own settings are part of what a down brings back: `ALTER
/// DATABASE <its own name> SET …` and `ALTER ROLE … IN DATABASE <its own
/// name> SET …` run on the copy under the copy's name, their down is
/// worked out, and the rollback's check sees them. Before: the down was
/// proved empty (the picture held no setting), rollback said ✓ and the
/// setting stayed; the role's failed on the copy ("database does not
/// exist").
#[test]
fn settings_of_the_database_and_its_roles_are_put_back() {
    let p = Project::new("reverted_settings");
    let role = format!("{}_app", p.db);
    p.client().batch_execute(&format!("CREATE ROLE \"{role}\" NOLOGIN")).unwrap();
    p.migration(
        "1_settings",
        &format!(
            "ALTER DATABASE \"{db}\" SET work_mem = '8MB';\n\
             ALTER ROLE \"{role}\" IN DATABASE \"{db}\" SET search_path = app, public;\n",
            db = p.db
        ),
        None,
    );
    p.run(&["migrate"]).expect_code(0).expect_output("kept a proved down for 1 migration(s)");
    let settings = |p: &Project| -> i64 {
        p.client()
            .query_one(
                "select count(*) from pg_db_role_setting
                  where setdatabase = (select oid from pg_database where datname = current_database())",
                &[],
            )
            .unwrap()
            .get(0)
    };
    assert_eq!(settings(&p), 2);
    p.run(&["rollback", "--yes"]).expect_code(0).expect_output("✓ the schema is the one before 1");
    assert_eq!(settings(&p), 0, "the settings went with the rollback");
    // A setting made by hand since the migrate is drift: said apart, and
    // left as it is.
    p.run(&["migrate"]).expect_code(0);
    p.client()
        .batch_execute(&format!("ALTER DATABASE \"{}\" SET statement_timeout = '5s'", p.db))
        .unwrap();
    p.run(&["rollback", "--yes"]).expect_code(0).expect_output("(drift)");
    assert_eq!(settings(&p), 1);
}

/// The picture sees inheritance: a parent drops a column its child
/// inherits and the child adds its own. Putting the parent's column back
/// left the child's local where it was inherited (`attislocal`), which
/// the picture did not compare: a down proved but wrong. The down now
/// drops the child's own first, so the parent's comes back inherited.
#[test]
fn a_column_an_inheriting_child_took_over_comes_back_inherited() {
    let p = Project::new("reverted_inherits");
    p.migration(
        "1_tables",
        "CREATE TABLE parent (id int, e int);\nCREATE TABLE child (x int) INHERITS (parent);\n",
        Some("DROP TABLE child;\nDROP TABLE parent;\n"),
    );
    p.migration(
        "2_move_e",
        "ALTER TABLE parent DROP COLUMN e;\nALTER TABLE child ADD COLUMN e int;\n",
        None,
    );
    p.run(&["migrate"]).expect_code(0).expect_output("kept a proved down for 1 migration(s)");
    p.run(&["rollback", "--yes"]).expect_code(0).expect_output("✓ the schema is the one before 2");
    let (local, inherited): (bool, i32) = p
        .client()
        .query_one(
            "select attislocal, attinhcount::int from pg_attribute
              where attrelid = 'child'::regclass and attname = 'e'",
            &[],
        )
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!((local, inherited), (false, 1), "the child's e is the parent's again");
}

/// Downs proved one at a time can fail together: 3 seeds a row the
/// down of 2 cannot take (NULL where it sets NOT NULL). The deploy proves
/// the run's downs as the chain a rollback of them all runs, and says so.
#[test]
fn downs_proved_alone_that_fail_together_are_named_at_the_deploy() {
    let p = Project::new("reverted_chain");
    p.migration("1_t", "CREATE TABLE t (x int NOT NULL);\n", Some("DROP TABLE t;\n"));
    p.migration(
        "2_nullable",
        "ALTER TABLE t ALTER COLUMN x DROP NOT NULL;\n",
        Some("ALTER TABLE t ALTER COLUMN x SET NOT NULL;\n"),
    );
    p.migration("3_seed", "INSERT INTO t VALUES (NULL);\n", Some("SELECT 1;\n"));
    p.run(&["migrate"])
        .expect_code(0)
        .expect_output("warning: the downs of 1, 2, 3, each proved alone, do not bring the schema back together: the down of 2 fails after the ones before it");
    p.run(&["rollback", "--steps", "1", "--yes"]).expect_code(0);
    p.run(&["migrate"]).expect_code(0);
    // A run whose downs hold together says that too.
    let q = Project::new("reverted_chain_ok");
    q.migration("1_t", "CREATE TABLE t (x int);\n", Some("DROP TABLE t;\n"));
    q.migration("2_i", "CREATE INDEX t_x ON t (x);\n", Some("DROP INDEX t_x;\n"));
    q.run(&["migrate"]).expect_code(0).expect_output("proved the downs of 1, 2 together");
    // Its dry run says the deploy proved them as the rollback runs them;
    // once 2 is applied again by a run of its own, that proof is not its.
    q.run(&["rollback", "--steps", "2", "--dry-run"])
        .expect_code(0)
        .expect_output("the downs of 1, 2 were proved together at the deploy of");
    q.run(&["rollback", "--steps", "1", "--yes"]).expect_code(0);
    q.run(&["migrate"]).expect_code(0);
    q.run(&["rollback", "--steps", "2", "--dry-run"])
        .expect_code(0)
        .expect_output("no deploy's record proves the downs of 1, 2 together as one chain");
}

/// The chain a rollback runs across deploys: 2 drops an enum value by
/// making the type again (it fails while a row holds the value), 3 is a
/// deploy of its own, and 4, deployed alone, seeds such a row that its
/// own down leaves. Each down holds alone; a rollback of the last three
/// deploys fails at 2's. The deploy of 4 proves its down with the downs
/// of the newest migrations before it (before, only those of the deploy
/// just before it, 3, and the failure was not foreseen), and the dry run
/// of that rollback says where it would stop.
#[test]
fn downs_of_several_deploys_that_fail_together_are_named_at_the_last() {
    let p = Project::new("reverted_chain_across");
    p.migration(
        "1_mood",
        "CREATE TYPE mood AS ENUM ('happy');\nCREATE TABLE feelings (m mood);\n",
        Some("DROP TABLE feelings;\nDROP TYPE mood;\n"),
    );
    p.migration(
        "2_sad",
        "ALTER TYPE mood ADD VALUE 'sad';\n",
        Some(
            "ALTER TYPE mood RENAME TO mood_old;\nCREATE TYPE mood AS ENUM ('happy');\n\
             ALTER TABLE feelings ALTER COLUMN m TYPE mood USING m::text::mood;\n\
             DROP TYPE mood_old;\n",
        ),
    );
    p.run(&["migrate"]).expect_code(0).expect_output("proved the downs of 1, 2 together");
    p.migration("3_tags", "CREATE TABLE tags (id int);\n", Some("DROP TABLE tags;\n"));
    p.run(&["migrate"]).expect_code(0).expect_output("proved the downs of 1, 2, 3 together");
    p.migration("4_seed", "INSERT INTO feelings VALUES ('sad');\n", Some("SELECT 1;\n"));
    p.run(&["migrate"]).expect_code(0).expect_output(
        "warning: the downs of 1, 2, 3, 4, each proved alone, do not bring the schema back \
         together: the down of 2 fails after the ones before it",
    );
    p.run(&["rollback", "--steps", "3", "--dry-run"])
        .expect_code(0)
        .expect_output("warning: this rollback would stop at the down of 2, refused with nothing committed: at the deploy of");
    // Within the last two deploys, the downs hold: the dry run says they
    // are the newest of a chain that failed further back.
    p.run(&["rollback", "--steps", "2", "--dry-run"])
        .expect_code(0)
        .expect_output("these are the newest of them, not proved as a chain of their own");
    p.run(&["rollback", "--steps", "2", "--yes"]).expect_code(0);
}

/// Migrations applied with no record of what their downs must bring back
/// (deployed with `keep_downs = false`, or adopted) are not run in a later
/// deploy's chain: their downs were never proved, and a chain failing on
/// one said "each proved alone" of a down nobody proved, at every deploy.
#[test]
fn a_deploys_chain_goes_back_only_through_downs_that_were_proved() {
    let p = Project::new("reverted_chain_proved_only");
    p.config(&format!("{DEFAULT_CONFIG}keep_downs = false\n"));
    p.migration("1_a", "CREATE TABLE a (id int);\n", Some("DROP TABLE nothing_here;\n"));
    p.run(&["migrate"]).expect_code(0);
    p.config(DEFAULT_CONFIG);
    p.migration("2_b", "CREATE TABLE b (id int);\n", Some("DROP TABLE b;\n"));
    let second = p.run(&["migrate"]);
    assert!(!second.expect_code(0).all().contains("together"), "{}", second.all());
    p.migration("3_c", "CREATE TABLE c (id int);\n", Some("DROP TABLE c;\n"));
    let third = p.run(&["migrate"]);
    third.expect_code(0).expect_output("proved the downs of 2, 3 together");
    assert!(!third.all().contains("do not bring the schema back together"), "{}", third.all());
}

/// A table swapped for a new one under its name (the old renamed away):
/// before, the check called the new CREATE TABLE a certain failure
/// ("created again", NO-GO) and working out its down stopped every copy
/// ("relation already exists" while renaming the old one back). The new
/// table steps aside first, the old one gets its name back, the new one
/// goes.
#[test]
fn a_table_swapped_for_a_new_one_deploys_and_rolls_back() {
    let p = Project::new("reverted_swap");
    p.migration("1_a", "CREATE TABLE a (id int PRIMARY KEY, v text);\n", None);
    p.migration(
        "2_swap",
        "ALTER TABLE a RENAME TO a_old;\nCREATE TABLE a (id int PRIMARY KEY, v text, w int);\n",
        None,
    );
    let run = p.run(&["migrate"]);
    run.expect_code(0).expect_output("proved 2 down(s) now");
    assert!(!run.all().contains("BS405"), "{}", run.all());
    let mut db = p.client();
    db.batch_execute("INSERT INTO a_old VALUES (1, 'old'); INSERT INTO a VALUES (2, 'new', 3);")
        .unwrap();
    let back = p.run(&["rollback", "--steps", "1", "--yes"]);
    back.expect_code(0).expect_output("ALTER TABLE public.a RENAME TO a__backstop_aside");
    back.expect_output("✓ the schema is the one before 2");
    let v: String = db.query_one("SELECT v FROM a", &[]).unwrap().get(0);
    assert_eq!(v, "old", "the old table has its name and rows back");
    assert!(!db.exists("public.a_old") && !db.exists("public.a__backstop_aside"));
}

/// A table moved to another schema with its index and its serial
/// column's sequence, and the schema it left renamed: the down gave the
/// index a `SET SCHEMA` (which `ALTER INDEX` has not), the owned sequence
/// one PostgreSQL refuses, and moved the renamed schema's objects from a
/// schema that was no longer there; no down could be proved. The schema
/// gets its name back first, what is in it goes with it, the index and
/// the sequence with their table.
#[test]
fn a_schema_renamed_and_a_table_moved_out_of_it_are_put_back() {
    let p = Project::new("reverted_schemas");
    p.migration(
        "1_app",
        "CREATE SCHEMA app;\nCREATE TABLE app.users (id int PRIMARY KEY);\n\
         CREATE TABLE app.things (id serial);\nCREATE INDEX things_id ON app.things (id);\n",
        None,
    );
    p.migration(
        "2_move",
        "ALTER TABLE app.things SET SCHEMA public;\nALTER SCHEMA app RENAME TO core;\n",
        None,
    );
    p.run(&["migrate"]).expect_code(0).expect_output("proved 2 down(s) now");
    let back = p.run(&["rollback", "--steps", "1", "--yes"]);
    back.expect_code(0).expect_output("✓ the schema is the one before 2");
    let mut db = p.client();
    assert!(db.exists("app.users") && db.exists("app.things"), "{}", back.all());
}

/// A function whose EXECUTE the up takes from PUBLIC: its down gives it
/// back, and PostgreSQL then lists the owner's privilege first where its
/// default lists PUBLIC's first. Before, that order alone made the down
/// unprovable; it is said apart as cosmetic, and the rollback's check
/// takes it as put back.
#[test]
fn privileges_given_back_in_another_order_are_put_back() {
    let p = Project::new("reverted_acl_order");
    p.migration("1_f", "CREATE FUNCTION f(x int) RETURNS int LANGUAGE sql AS 'SELECT x';\n", None);
    p.migration("2_revoke", "REVOKE ALL ON FUNCTION f(int) FROM PUBLIC;\n", None);
    p.run(&["migrate"]).expect_code(0).expect_output("proved 2 down(s) now");
    let back = p.run(&["rollback", "--steps", "1", "--yes"]);
    back.expect_code(0).expect_output("privileges listed in another order");
    let public: bool = p
        .client()
        .query_one("SELECT has_function_privilege('public', 'f(int)', 'EXECUTE')", &[])
        .unwrap()
        .get(0);
    assert!(public, "PUBLIC may run it again: {}", back.all());
}

/// A column widened by the up (`varchar(5)` to `varchar(10)`), then a
/// longer value written: its down cast the column back with an explicit
/// cast, which cuts the value to 5 characters without a word, and the
/// rollback committed. The down now casts as PostgreSQL assigns, which
/// refuses the value: the rollback changes nothing and says why.
#[test]
fn a_widened_column_is_never_cut_back_silently() {
    let p = Project::new("reverted_widened");
    p.migration("1_n", "CREATE TABLE n (id int PRIMARY KEY, note varchar(5));\n", None);
    p.migration("2_wide", "ALTER TABLE n ALTER COLUMN note TYPE varchar(10);\n", None);
    p.run(&["migrate"]).expect_code(0).expect_output("proved 2 down(s) now");
    let mut db = p.client();
    db.batch_execute("INSERT INTO n VALUES (1, 'abcdefghij')").unwrap();
    let back = p.run(&["rollback", "--steps", "1", "--yes"]);
    back.expect_code(1).expect_output("value too long for type character varying(5)");
    let note: String = db.query_one("SELECT note FROM n", &[]).unwrap().get(0);
    assert_eq!(note, "abcdefghij", "the value is whole: {}", back.all());

    // The same where the down is worked out from the schema, not read
    // from the statements (a foreign key made again beside it).
    let q = Project::new("reverted_widened_full");
    q.migration(
        "1_items",
        "CREATE TABLE o (id int PRIMARY KEY);\n\
         CREATE TABLE i (id int PRIMARY KEY, o_id int REFERENCES o (id), note varchar(5));\n",
        None,
    );
    q.migration(
        "2_wide",
        "ALTER TABLE i ALTER COLUMN note TYPE varchar(10);\nALTER TABLE i DROP CONSTRAINT i_o_id_fkey;\n\
         ALTER TABLE i ADD CONSTRAINT i_o_fk FOREIGN KEY (o_id) REFERENCES o (id) DEFERRABLE;\n",
        None,
    );
    q.run(&["migrate"]).expect_code(0).expect_output("proved 2 down(s) now");
    let mut db = q.client();
    db.batch_execute("INSERT INTO i VALUES (1, NULL, 'abcdefghij')").unwrap();
    let back = q.run(&["rollback", "--steps", "1", "--yes"]);
    back.expect_code(1).expect_output("value too long for type character varying(5)");
    let note: String = db.query_one("SELECT note FROM i", &[]).unwrap().get(0);
    assert_eq!(note, "abcdefghij", "the value is whole: {}", back.all());
}

/// A domain changed in place (a check added, NOT NULL, a default), a
/// composite type given an attribute, and a table made unlogged: their
/// downs were "changed in a way Backstop does not put back" and "not
/// proved", and no down could be proved. `ALTER DOMAIN` and `ALTER TYPE`
/// take each part back; `ALTER TABLE … SET LOGGED` the table.
#[test]
fn a_domain_a_type_and_a_table_changed_in_place_are_put_back() {
    let p = Project::new("reverted_domain");
    p.migration(
        "1_pos",
        "CREATE DOMAIN pos AS int CHECK (VALUE > 0);\nCREATE TABLE hits (id bigint);\n\
         CREATE TYPE pair AS (a int, b int);\n",
        None,
    );
    p.migration(
        "2_small",
        "ALTER DOMAIN pos ADD CONSTRAINT pos_small CHECK (VALUE < 1000);\n\
         ALTER DOMAIN pos SET NOT NULL;\nALTER DOMAIN pos SET DEFAULT 1;\n\
         ALTER TABLE hits SET UNLOGGED;\nALTER TYPE pair ADD ATTRIBUTE c text;\n",
        None,
    );
    p.run(&["migrate"]).expect_code(0).expect_output("proved 2 down(s) now");
    let back = p.run(&["rollback", "--steps", "1", "--yes"]);
    back.expect_code(0).expect_output("ALTER DOMAIN public.pos DROP CONSTRAINT pos_small");
    back.expect_output("ALTER TYPE public.pair DROP ATTRIBUTE c");
    back.expect_output("ALTER TABLE public.hits SET LOGGED");
    back.expect_output("✓ the schema is the one before 2");
    let mut db = p.client();
    let ok: bool = db.query_one("SELECT 5000::pos IS NULL", &[]).unwrap().get(0);
    assert!(!ok, "a value the check had refused is a pos again");
    let logged: String = db
        .query_one("SELECT relpersistence::text FROM pg_class WHERE relname = 'hits'", &[])
        .unwrap()
        .get(0);
    assert_eq!(logged, "p");
}

/// Computed downs in the order PostgreSQL needs: a function whose SQL body
/// reads a view the up made goes before the view; a view the down makes
/// again takes with it, and makes again, the function that reads it.
/// Before, both downs failed on the copy ("cannot drop view v1 because
/// other objects depend on it") and were unprovable.
#[test]
fn what_reads_a_view_goes_before_it_and_comes_back_after() {
    let p = Project::new("reverted_order");
    p.migration("1_t", "CREATE TABLE a (id int);\n", Some("DROP TABLE a;\n"));
    p.migration(
        "2_fn",
        "CREATE VIEW v1 AS SELECT id FROM a;\n\
         CREATE FUNCTION f() RETURNS bigint LANGUAGE sql BEGIN ATOMIC SELECT count(*) FROM v1; END;\n",
        None,
    );
    p.migration(
        "3_v",
        "CREATE OR REPLACE VIEW v1 AS SELECT id, id + 1 AS next FROM a;\n\
         CREATE VIEW v2 AS SELECT * FROM v1;\n",
        None,
    );
    p.run(&["migrate"]).expect_code(0).expect_output("kept a proved down for 2 migration(s)");
    p.run(&["rollback", "--yes"]).expect_code(0).expect_output("✓ the schema is the one before 3");
    let next: i64 = p
        .client()
        .query_one("select count(*) from pg_attribute where attrelid = 'v1'::regclass and attname = 'next'", &[])
        .unwrap()
        .get(0);
    assert_eq!(next, 0);
    p.run(&["rollback", "--yes"]).expect_code(0).expect_output("✓ the schema is the one before 2");
    assert!(!p.client().exists("public.v1"));
}

/// Two forms PostgreSQL 15 has no direct statement for, put back another
/// way: an identity dropped and added again (its kind set back, its
/// sequence's options put back on the sequence, not a second identity:
/// before, "relation t_id_seq already exists"), and a stored generated
/// column's expression changed by dropping and adding it (the column made
/// again with the old expression: before, no down at all).
#[test]
fn an_identity_made_again_and_a_changed_generated_column_come_back() {
    let p = Project::new("reverted_pg15_forms");
    p.migration(
        "1_t",
        "CREATE TABLE t (id int GENERATED ALWAYS AS IDENTITY, x int, g int GENERATED ALWAYS AS (x * 2) STORED);\n",
        Some("DROP TABLE t;\n"),
    );
    p.migration(
        "2_ident",
        "ALTER TABLE t ALTER COLUMN id DROP IDENTITY;\n\
         ALTER TABLE t ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY;\n",
        None,
    );
    p.migration(
        "3_gen",
        "ALTER TABLE t DROP COLUMN g;\nALTER TABLE t ADD COLUMN g int GENERATED ALWAYS AS (x * 3) STORED;\n",
        None,
    );
    p.run(&["migrate"]).expect_code(0).expect_output("kept a proved down for 2 migration(s)");
    p.run(&["rollback", "--steps", "2", "--yes"])
        .expect_code(0)
        .expect_output("✓ the schema is the one before 2");
    let (identity, generated): (String, String) = p
        .client()
        .query_one(
            "select (select attidentity::text from pg_attribute where attrelid = 't'::regclass and attname = 'id'),
                    (select pg_get_expr(adbin, adrelid) from pg_attrdef d join pg_attribute a
                        on a.attrelid = d.adrelid and a.attnum = d.adnum
                      where d.adrelid = 't'::regclass and a.attname = 'g')",
            &[],
        )
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!((identity.as_str(), generated.as_str()), ("a", "(x * 2)"));
}

/// An extension the up updated goes back to its version: by its own
/// scripts where they lead there, else dropped and made again at that
/// version (pg_trgm ships no script from 1.6 down). Before: no down.
#[test]
fn an_extension_updated_by_the_up_goes_back_to_its_version() {
    let p = Project::new("reverted_extension");
    p.migration(
        "1_ext",
        "CREATE EXTENSION pg_trgm VERSION '1.5';\n",
        Some("DROP EXTENSION pg_trgm;\n"),
    );
    p.migration("2_update", "ALTER EXTENSION pg_trgm UPDATE TO '1.6';\n", None);
    p.run(&["migrate"]).expect_code(0).expect_output("kept a proved down for 1 migration(s)");
    p.run(&["rollback", "--yes"]).expect_code(0).expect_output("✓ the schema is the one before 2");
    let version: String = p
        .client()
        .query_one("select extversion from pg_extension where extname = 'pg_trgm'", &[])
        .unwrap()
        .get(0);
    assert_eq!(version, "1.5");
}

/// One vocabulary: a migration that drops a populated column is "proved,
/// losing named values" in `rehearse`, `downs` and at the deploy, whether
/// its down was computed or written by its author; rows the up rewrote
/// are "irreversible". Before, rehearse called the computed one plain
/// "proved" and the authored one "losing values only the backup holds".
#[test]
fn dropping_populated_columns_is_named_alike_everywhere() {
    let p = Project::new("reverted_words");
    p.migration(
        "1_t",
        "CREATE TABLE t (id int PRIMARY KEY, a text, b text);\nINSERT INTO t VALUES (1, 'x', 'y');\n",
        Some("DROP TABLE t;\n"),
    );
    p.run(&["migrate"]).expect_code(0);
    p.migration("2_drop_a", "ALTER TABLE t DROP COLUMN a;\n", None);
    p.migration(
        "3_drop_b",
        "ALTER TABLE t DROP COLUMN b;\n",
        Some("ALTER TABLE t ADD COLUMN b text;\n"),
    );
    let rehearse = p.run(&["rehearse", "--format", "json"]);
    rehearse.expect_code(0);
    let json = rehearse.json();
    for (trip, column) in
        json["round_trip"]["migrations"].as_array().unwrap().iter().zip(["a", "b"])
    {
        assert_eq!(trip["class"], "proved_losing", "{trip:#}");
        // One verdict for a down: the word `downs` gives it too.
        assert_eq!(trip["verdict"], "proved_losing", "{trip:#}");
        let detail = trip["detail"].as_str().unwrap();
        assert!(detail.contains(&format!("values of column t.{column}")), "{trip:#}");
    }
    p.run(&["downs", "2"])
        .expect_code(0)
        .expect_output("✓ 2_drop_a: proved, losing named values: a down computed");
    p.run(&["downs", "3"]).expect_code(0).expect_output(
        "✓ 3_drop_b: proved, losing named values: its own down puts the schema back",
    );
    let downs = p.run(&["downs", "2", "3", "--format", "json"]).expect_code(0).json();
    let verdicts: Vec<&Value> = downs.as_array().unwrap().iter().map(|d| &d["verdict"]).collect();
    assert_eq!(verdicts, [&json!("proved_losing"), &json!("proved_losing")], "{downs:#}");
    let deploy = p.run(&["migrate"]);
    deploy.expect_code(0);
    for column in ["a", "b"] {
        deploy.expect_output(&format!(
            "loses values only the backup holds: values of column t.{column}"
        ));
    }
}

/// `rehearse` proves the downs of its migrations together, as a rollback
/// of them all runs them: each down holds alone, but the rows the third
/// up made NULL stop the second's `SET NOT NULL`. Before, the rehearsal
/// passed and `rollback --steps 3` failed at that down.
#[test]
fn rehearse_proves_the_downs_together_as_a_rollback_of_them_all_runs_them() {
    let p = Project::new("reverted_rehearsed_chain");
    p.migration(
        "1_t",
        "CREATE TABLE t (x int NOT NULL, y text);\nINSERT INTO t VALUES (1, 'a');\n",
        None,
    );
    p.migration("2_nullable", "ALTER TABLE t ALTER COLUMN x DROP NOT NULL;\n", None);
    p.migration("3_blank", "UPDATE t SET x = NULL;\n", None);
    let run = p.run(&["rehearse", "--format", "json"]);
    run.expect_code(1);
    let json = run.json();
    let step = |json: &serde_json::Value| {
        json["steps"].as_array().unwrap().iter().find(|s| s["name"] == "downs together").cloned()
    };
    let together = step(&json).expect("a step for the downs together");
    assert_eq!(together["ok"], false, "{json:#}");
    let detail = together["detail"].as_str().unwrap();
    assert!(detail.contains("the down of 2 fails after the ones before it"), "{detail}");
    let trips = json["round_trip"]["migrations"].as_array().unwrap();
    assert!(trips.iter().all(|t| t["class"] != "defect" && t["class"] != "down_fails"), "{json:#}");
    // Without the third, each down gives back every row too: their round
    // trips prove the chain, and the step says so.
    std::fs::remove_dir_all(p.path().join("migrations/3_blank")).unwrap();
    let json = p.run(&["rehearse", "--format", "json"]).expect_code(0).json();
    let together = step(&json).expect("a step for the downs together");
    assert_eq!(together["ok"], true, "{json:#}");
    let detail = together["detail"].as_str().unwrap();
    assert!(detail.contains("so run in reverse they do too"), "{json:#}");
    // A down that loses values (a column dropped with its values) makes the
    // chain run, and where it holds, the step says that.
    p.migration(
        "3_drop",
        "ALTER TABLE t DROP COLUMN y;\n",
        Some("ALTER TABLE t ADD COLUMN y text;\n"),
    );
    let json = p.run(&["rehearse", "--format", "json"]).expect_code(0).json();
    let together = step(&json).expect("a step for the downs together");
    let detail = together["detail"].as_str().unwrap();
    assert!(detail.contains("run in reverse in one transaction"), "{json:#}");
}

/// The ownership an up gives a sequence (`ALTER SEQUENCE … OWNED BY`,
/// which decides whether dropping the column drops the sequence) is part
/// of the picture: a down that forgets to take it back does not hold, and
/// the deploy says so. Before, the deploy's proof, `rehearse` and `downs`
/// passed it, and `rollback` printed ✓ with the ownership left.
#[test]
fn a_sequence_ownership_the_down_forgets_is_a_difference() {
    let p = Project::new("reverted_owned_by");
    p.migration(
        "1_t",
        "create table t (id int);\ncreate sequence s;\n",
        Some("drop sequence s;\ndrop table t;\n"),
    );
    p.run(&["migrate"]).expect_code(0);
    p.migration("2_own", "alter sequence s owned by t.id;\n", Some("select 1;\n"));
    let refused = p.run(&["migrate"]);
    refused.expect_code(1).expect_output("the down of 2_own (").expect_output("sequence public.s");
    assert_eq!(p.client().applied(), ["1"], "nothing ran: {}", refused.all());
    // Its down put right, the deploy and the rollback hold.
    p.migration(
        "2_own",
        "alter sequence s owned by t.id;\n",
        Some("alter sequence s owned by none;\n"),
    );
    p.run(&["migrate"]).expect_code(0);
    p.run(&["rollback", "--yes"]).expect_code(0).expect_output("✓ the schema is the one before 2");
}

/// A column and a check added to an inheritance parent whose children
/// inherit them get a computed down that drops them on the parent alone.
/// Before, the down dropped the child's inherited column first, which
/// PostgreSQL refuses: no down could be proved.
#[test]
fn a_column_added_to_a_parent_with_children_gets_a_proved_down() {
    let p = Project::new("reverted_inherited");
    p.migration(
        "1_tables",
        "create table parent (id int primary key);\n\
         create table child (note text) inherits (parent);\n",
        Some("drop table child;\ndrop table parent;\n"),
    );
    p.migration(
        "2_x",
        "alter table parent add column x int not null default 0;\n\
         alter table parent add constraint x_pos check (x >= 0);\n",
        None,
    );
    p.run(&["migrate"]).expect_code(0).expect_output("kept a proved down for 1 migration(s)");
    p.run(&["rollback", "--yes"]).expect_code(0).expect_output("✓ the schema is the one before 2");
    let left = p.client().texts(
        "select attrelid::regclass::text from pg_attribute where attname = 'x' and not attisdropped",
    );
    assert!(left.is_empty(), "{left:?}");
}
