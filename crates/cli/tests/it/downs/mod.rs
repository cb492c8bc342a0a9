//! `backstop downs`: computed downs for histories without them, fixes for
//! hand-written downs that miss something, each proved on a replayed copy;
//! `--write` saves them where the layout keeps downs, and `rollback` runs
//! them. Histories shaped like real ones: renames, views on views,
//! plpgsql and triggers, enums, RLS, grants, identity, data migrations.

use serde_json::{json, Value};

mod calls;
mod enums;
mod kinds;
mod order;
mod quick;

use crate::common::{DbExt, Project};

/// A history of `rounds` × 12 up-only migrations covering the kinds of
/// change real histories make, each round in its own schema-qualified
/// names so rounds do not collide.
fn history(p: &Project, rounds: usize, role: &str) {
    let mut n = 0;
    let mut add = |p: &Project, name: &str, up: String| {
        n += 1;
        p.migration(&format!("2024-01-01-{n:06}_{name}"), &up, None);
    };
    for r in 0..rounds {
        add(
            p,
            "types",
            format!(
                "CREATE TYPE mood{r} AS ENUM ('ok', 'meh');
             CREATE DOMAIN email{r} AS text CHECK (VALUE LIKE '%@%');"
            ),
        );
        add(
            p,
            "users",
            format!(
                "CREATE TABLE users{r} (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                email email{r} NOT NULL UNIQUE,
                plan text DEFAULT 'free' CHECK (plan IN ('free', 'pro', 'team')),
                mood mood{r} DEFAULT 'ok',
                created_at timestamptz NOT NULL DEFAULT now());
             COMMENT ON TABLE users{r} IS 'people who sign in';
             CREATE INDEX users{r}_plan_idx ON users{r} (plan);
             INSERT INTO users{r} (email, plan) VALUES ('a@x', 'pro'), ('b@x', 'free');"
            ),
        );
        add(p, "orders", format!(
            "CREATE TABLE orders{r} (id serial PRIMARY KEY, user_id bigint REFERENCES users{r}(id) ON DELETE CASCADE,
                                     total numeric(10,2) NOT NULL DEFAULT 0, legacy_code text);
             CREATE SEQUENCE invoice_no{r} START 1000;
             SELECT setval('invoice_no{r}', 1234);"
        ));
        add(p, "views", format!(
            "CREATE VIEW pro_users{r} AS SELECT id, email FROM users{r} WHERE plan = 'pro';
             CREATE VIEW pro_emails{r} AS SELECT email FROM pro_users{r};
             CREATE MATERIALIZED VIEW order_totals{r} AS SELECT user_id, sum(total) AS total FROM orders{r} GROUP BY user_id;
             CREATE UNIQUE INDEX order_totals{r}_user ON order_totals{r} (user_id);"
        ));
        add(p, "audit", format!(
            "CREATE TABLE audit{r} (id bigserial PRIMARY KEY, at timestamptz DEFAULT now(), what text);
             CREATE FUNCTION audit{r}() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
               -- one row per change
               INSERT INTO audit{r} (what) VALUES (TG_OP || ' ' || NEW.id);
               RETURN NEW;
             END $$;
             CREATE TRIGGER users{r}_audit AFTER INSERT OR UPDATE ON users{r} FOR EACH ROW EXECUTE FUNCTION audit{r}();"
        ));
        add(p, "rls", format!(
            "ALTER TABLE orders{r} ENABLE ROW LEVEL SECURITY;
             CREATE POLICY own_orders{r} ON orders{r} USING (user_id = current_setting('app.user_id', true)::bigint);
             GRANT SELECT ON orders{r}, pro_users{r} TO {role};
             GRANT UPDATE (plan) ON users{r} TO {role};"
        ));
        add(
            p,
            "rename",
            format!(
                "ALTER TABLE orders{r} RENAME TO purchases{r};
             ALTER TABLE purchases{r} RENAME COLUMN total TO amount;
             ALTER INDEX users{r}_plan_idx RENAME TO users{r}_by_plan;"
            ),
        );
        add(
            p,
            "columns",
            format!(
                "ALTER TABLE purchases{r} DROP COLUMN legacy_code;
             ALTER TABLE purchases{r} ADD COLUMN note text DEFAULT '';
             ALTER TABLE users{r} ALTER COLUMN plan SET DEFAULT 'trial';
             ALTER TABLE audit{r} ALTER COLUMN what TYPE varchar(200);
             ALTER TABLE purchases{r} ADD CONSTRAINT amount_positive{r} CHECK (amount >= 0);"
            ),
        );
        add(p, "enum", format!("ALTER TYPE mood{r} ADD VALUE 'great';"));
        add(p, "view_change", format!(
            "CREATE OR REPLACE VIEW pro_users{r} AS SELECT id, email, plan FROM users{r} WHERE plan IN ('pro', 'team');
             CREATE OR REPLACE FUNCTION audit{r}() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
               INSERT INTO audit{r} (what) VALUES (TG_OP || ' ' || NEW.id || ' ' || NEW.email);
               RETURN NEW;
             END $$;"
        ));
        add(
            p,
            "data",
            format!(
                "UPDATE users{r} SET plan = 'team' WHERE plan = 'pro';
             ALTER TABLE users{r} ALTER COLUMN created_at DROP NOT NULL;"
            ),
        );
        add(
            p,
            "drops",
            format!(
                "DROP VIEW pro_emails{r};
             DROP INDEX users{r}_by_plan;
             REVOKE UPDATE (plan) ON users{r} FROM {role};
             COMMENT ON TABLE users{r} IS 'accounts';
             ALTER TABLE users{r} DROP CONSTRAINT users{r}_plan_check;"
            ),
        );
    }
}

fn role(p: &Project) -> String {
    let role = format!("reader_{}", p.db);
    p.client().batch_execute(&format!("CREATE ROLE {role} NOLOGIN")).unwrap();
    role
}

/// Objects of the user's schema, the way a person would list them.
fn schema_objects(p: &Project) -> Vec<String> {
    p.client()
        .query(
            "select kind || ' ' || name from (
               select 'relation' as kind, n.nspname || '.' || c.relname as name from pg_class c
                 join pg_namespace n on n.oid = c.relnamespace
                where n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast', 'backstop')
               union all
               select 'type', t.typname from pg_type t join pg_namespace n on n.oid = t.typnamespace
                where n.nspname = 'public' and t.typtype in ('e', 'd')
               union all
               select 'function', p.proname from pg_proc p join pg_namespace n on n.oid = p.pronamespace
                where n.nspname = 'public') o order by 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[test]
fn an_up_only_history_gets_proved_downs_that_take_it_back_to_an_empty_schema() {
    let p = Project::new("downs_history");
    let role = role(&p);
    history(&p, 2, &role);
    let run = p.run(&["downs", "--format", "json"]);
    run.expect_code(0);
    let downs: Value = run.json();
    let downs = downs.as_array().unwrap();
    assert_eq!(downs.len(), 24, "{downs:#?}");
    for d in downs {
        // The data migration's UPDATE of rows that were there cannot be
        // put back by SQL: said so, never "computed" as if it could.
        let data = d["version"].as_str().unwrap().ends_with("000011")
            || d["version"].as_str().unwrap().ends_with("000023");
        let status = if data { "irreversible" } else { "computed" };
        assert_eq!(d["status"], status, "{d:#}");
        assert_eq!(d["proved"], true, "{d:#}");
    }
    // What DDL cannot bring back is said, object by object.
    let loses = |v: &str| {
        downs.iter().find(|d| d["version"].as_str().unwrap().ends_with(v)).unwrap()["loses"]
            .to_string()
    };
    assert!(loses("000008").contains("purchases0.legacy_code"), "{}", loses("000008"));
    assert!(loses("000011").contains("UPDATE users0"), "{}", loses("000011"));

    p.run(&["downs", "--write"]).expect_code(0);
    assert!(p.path().join("migrations/2024-01-01-000007_rename/down.sql").is_file());
    p.run(&["migrate"]).expect_code(0);
    let applied = schema_objects(&p);
    assert!(applied.contains(&"relation public.purchases1".to_string()), "{applied:?}");
    p.run(&["rollback", "--steps", "24"]).expect_code(0);
    assert_eq!(schema_objects(&p), Vec::<String>::new(), "the whole history rolled back");
    // Forward again: the downs left nothing behind that the ups trip over.
    p.run(&["migrate"]).expect_code(0);
    assert_eq!(schema_objects(&p), applied);
}

#[test]
fn a_long_replay_cut_in_two_proves_every_down_and_stops_as_one_replay_would() {
    let p = Project::new("downs_halves");
    let role = role(&p);
    history(&p, 4, &role);
    let data = |v: &str| ["000011", "000023", "000035", "000047"].iter().any(|d| v.ends_with(d));
    if std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2 {
        p.run_long(&["downs"])
            .expect_code(0)
            .expect_output("the replay ran in two halves side by side");
    }
    let downs = p.run_long(&["downs", "--format", "json"]).json();
    let downs = downs.as_array().unwrap();
    assert_eq!(downs.len(), 48);
    for d in downs {
        let want = if data(d["version"].as_str().unwrap()) { "irreversible" } else { "computed" };
        assert_eq!(
            (d["status"].as_str(), d["proved"].as_bool()),
            (Some(want), Some(true)),
            "{d:#}"
        );
    }

    // An up of the first half that fails: nothing after it is proved,
    // in either half.
    p.migration("2024-01-01-000005a_broken", "ALTER TABLE nowhere ADD COLUMN x int;", None);
    let downs = p.run_long(&["downs", "--format", "json"]).json();
    let downs = downs.as_array().unwrap();
    assert_eq!(downs.len(), 49);
    for d in downs {
        let version = d["version"].as_str().unwrap();
        if version < "2024-01-01-000005a" {
            assert_eq!(d["proved"], true, "{d:#}");
        } else {
            assert_eq!(d["status"], "unprovable", "{d:#}");
            let notes = d["notes"].to_string();
            assert!(notes.contains("not reached") || notes.contains("nowhere"), "{d:#}");
        }
    }
}

#[test]
fn defective_hand_written_downs_get_proved_fixes() {
    let p = Project::new("downs_fixes");
    p.migration(
        "2024-02-01-000001_base",
        "CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL, price int DEFAULT 0);
         CREATE VIEW cheap AS SELECT id, name FROM items WHERE price < 10;
         CREATE FUNCTION label(i items) RETURNS text LANGUAGE sql AS $$ SELECT i.name $$;",
        Some("DROP FUNCTION label(items); DROP VIEW cheap; DROP TABLE items;"),
    );
    // A lost default, a constraint not restored, a view rebuilt from
    // SELECT * gaining columns, a function left at the newer body.
    p.migration(
        "2024-02-02-000001_change",
        "ALTER TABLE items ALTER COLUMN price SET DEFAULT 5;
         ALTER TABLE items ADD CONSTRAINT price_positive CHECK (price >= 0);
         ALTER TABLE items ADD COLUMN sku text;
         CREATE OR REPLACE VIEW cheap AS SELECT id, name, sku FROM items WHERE price < 10;
         CREATE OR REPLACE FUNCTION label(i items) RETURNS text LANGUAGE sql AS $$ SELECT upper(i.name) $$;",
        Some(
            "DROP VIEW cheap;
             ALTER TABLE items DROP CONSTRAINT price_positive;
             ALTER TABLE items DROP COLUMN sku;
             CREATE VIEW cheap AS SELECT * FROM items WHERE price < 10;",
        ),
    );
    // A deliberate no-op down that leaves the up's relations behind.
    p.migration(
        "2024-02-03-000001_more",
        "CREATE TABLE tags (id int PRIMARY KEY, name text);
         CREATE TABLE item_tags (item int REFERENCES items, tag int REFERENCES tags);",
        Some("-- irreversible\nSELECT 1;"),
    );
    let rehearsal = p.run(&["rehearse", "--schema-only"]);
    rehearsal.expect_code(1);
    assert!(
        rehearsal
            .stdout
            .contains("`backstop downs 2024-02-02-000001 2024-02-03-000001` computes a proved fix"),
        "rehearse names the fix: {}",
        rehearsal.stdout
    );
    let run = p.run(&["downs", "--format", "json"]);
    run.expect_code(0);
    let downs: Value = run.json();
    let by = |v: &str| downs.as_array().unwrap().iter().find(|d| d["version"] == v).cloned();
    assert!(by("2024-02-01-000001").is_none(), "a down that holds is not listed: {downs:#}");
    let change = by("2024-02-02-000001").unwrap();
    assert_eq!(
        (change["status"].as_str(), change["proved"].as_bool()),
        (Some("fixed"), Some(true)),
        "{change:#}"
    );
    let sql = change["sql"].as_str().unwrap();
    for needed in [
        "SET DEFAULT 0",
        "DROP VIEW",
        "CREATE VIEW public.cheap",
        "CREATE OR REPLACE FUNCTION public.label",
    ] {
        assert!(sql.contains(needed), "the fix lacks {needed}:\n{sql}");
    }
    assert!(
        !sql.contains("price_positive"),
        "the constraint the down did drop is not touched:\n{sql}"
    );
    let more = by("2024-02-03-000001").unwrap();
    assert_eq!(more["status"], "fixed", "{more:#}");
    let sql = more["sql"].as_str().unwrap();
    // Both tables dropped (in one statement where the down is read from
    // the up's statements, the quick way).
    let drops = sql.lines().filter(|l| l.starts_with("DROP TABLE IF EXISTS "));
    let dropped: String = drops.collect();
    assert!(dropped.contains("public.item_tags") && dropped.contains("public.tags"), "{sql}");

    // Hand-written files are replaced only with --force, and kept beside.
    let refused = p.run(&["downs", "--write"]);
    refused.expect_code(1);
    assert!(refused.stdout.contains("pass --force"), "{}", refused.stdout);
    p.run(&["downs", "--write", "--force"]).expect_code(0);
    assert!(p.path().join("migrations/2024-02-02-000001_change/down.sql.orig").is_file());
    let again = p.run(&["downs", "--format", "json", "2024-02-02-000001", "2024-02-03-000001"]);
    again.expect_code(0);
    for d in again.json().as_array().unwrap() {
        assert_eq!(d["status"], "ok", "the fixed down now holds: {d:#}");
    }
    p.run(&["rehearse", "--schema-only"]).expect_code(0);
}

#[test]
fn an_up_only_layout_keeps_computed_downs_beside_the_folder_and_rollback_runs_them() {
    let p = Project::new("downs_sqlx");
    p.write(
        "migrations/20240301000001_users.sql",
        "CREATE TABLE users (id int PRIMARY KEY, email text);",
    );
    p.write(
        "migrations/20240301000002_email.sql",
        "ALTER TABLE users RENAME COLUMN email TO mail; CREATE INDEX users_mail ON users (mail);",
    );
    // The deploy proves a down for each and keeps it with the record.
    p.run(&["migrate"]).expect_code(0).expect_output("kept a proved down for 2 migration(s)");
    let columns = |c: &mut postgres::Client| -> Vec<String> {
        c.query("select attname::text from pg_attribute where attrelid = 'users'::regclass and attnum > 0 and not attisdropped order by attnum", &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    p.run(&["rollback"])
        .expect_code(0)
        .expect_output("✓ the schema is the one before 20240301000002");
    assert_eq!(columns(&mut p.client()), ["id", "email"]);
    p.run(&["migrate"]).expect_code(0);
    // Written beside the folder, for the team to read and keep.
    p.run(&["downs", "--write"]).expect_code(0);
    let kept = p.path().join("backstop/downs/20240301000002.down.sql");
    let text = std::fs::read_to_string(&kept).unwrap();
    assert!(text.contains("RENAME COLUMN mail TO email"), "{text}");
    p.run(&["rollback"]).expect_code(0);
    let mut c = p.client();
    assert_eq!(columns(&mut c), ["id", "email"]);
    assert!(!c.exists("users_mail"));
}

#[test]
fn bad_input_to_downs_is_refused_with_the_fix() {
    let p = Project::new("downs_bad");
    p.migration("2024-03-01-000001_a", "CREATE TABLE a (id int);", None);
    let run = p.run(&["downs", "2099-01-01-000001"]);
    run.expect_code(2);
    assert!(run.stderr.contains("backstop status"), "{}", run.stderr);
    p.run(&["downs", "--force"]).expect_code(2);
    let run = p.run(&["downs", "--start", "no_such_db"]);
    run.expect_code(3);
    assert!(run.stderr.contains("no_such_db"), "{}", run.stderr);
    assert!(!p.path().join("migrations/2024-03-01-000001_a/down.sql").exists());
}

/// A hand-written down that deletes rows an earlier migration put there
/// is defective in `downs` as in `rehearse` (before, `downs` compared the
/// schema alone, and `migrate` kept the down a rollback then ran: rows the
/// release never made were gone, under a ✓); one that cannot put back
/// values its up changed for good is no defect in either.
#[test]
fn a_down_that_deletes_rows_an_earlier_migration_made_is_defective_as_rehearse_says() {
    let p = Project::new("downs_rows");
    p.migration(
        "2024-04-01-000001_items",
        "CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items VALUES (1, 'a'), (2, 'b');\n\
         CREATE TABLE log (what text);",
        Some("DROP TABLE log; DROP TABLE items;"),
    );
    p.migration(
        "2024-04-01-000002_more",
        "INSERT INTO items VALUES (3, 'c'); CREATE INDEX items_name ON items (name);",
        Some("DROP INDEX items_name; DELETE FROM items;"),
    );
    p.migration(
        "2024-04-01-000003_upper",
        "UPDATE items SET name = upper(name);",
        Some("INSERT INTO log VALUES ('upper undone');"),
    );
    let rehearsal = p.run(&["rehearse"]);
    rehearsal.expect_code(1).expect_output("2024-04-01-000002_more: defect (the down: defective)");
    // The row its down adds to a table the up did not write is said
    // apart, as downs (below) does not judge it: the two give one answer.
    rehearsal.expect_output("2024-04-01-000003_upper: losing values only the backup holds");
    rehearsal.expect_output(
        "note: the down of 2024-04-01-000003 adds 1 row(s) to table public.log: rows a down adds \
         are said apart, not judged",
    );
    let downs: Value = p.run(&["downs", "--format", "json"]).expect_code(0).json();
    let listed: Vec<&str> =
        downs.as_array().unwrap().iter().map(|d| d["version"].as_str().unwrap()).collect();
    assert_eq!(listed, ["2024-04-01-000002"], "{downs:#}");
    let more = &downs[0];
    assert_eq!((&more["status"], &more["proved"]), (&json!("fixed"), &json!(true)), "{more:#}");
    assert_eq!(more["verdict"], "defective", "the word rehearse gives it: {more:#}");
    assert!(more["sql"].as_str().unwrap().contains("DELETE FROM items WHERE (id = 3)"), "{more:#}");
    assert!(more.to_string().contains("data of table public.items differs"), "{more:#}");

    // An up the quick way does not read (it changes a function that was
    // there): the down is worked out from where the up left the copy, not
    // added to the file's after it ran (which left no way back to the
    // rows, and stopped the replay: the next migration was "not reached").
    p.migration(
        "2024-04-01-000004_label",
        "CREATE FUNCTION label() RETURNS text LANGUAGE sql AS $$ SELECT 'one' $$;",
        Some("DROP FUNCTION label();"),
    );
    p.migration(
        "2024-04-01-000005_relabel",
        "CREATE OR REPLACE FUNCTION label() RETURNS text LANGUAGE sql AS $$ SELECT 'two' $$;\n\
         INSERT INTO items VALUES (4, 'd');",
        Some(
            "CREATE OR REPLACE FUNCTION label() RETURNS text LANGUAGE sql AS $$ SELECT 'one' $$;\n\
             DELETE FROM items;",
        ),
    );
    p.migration("2024-04-01-000006_tags", "CREATE TABLE tags (id int PRIMARY KEY);", None);
    let downs: Value = p.run(&["downs", "--format", "json"]).expect_code(0).json();
    let of = |v: &str| downs.as_array().unwrap().iter().find(|d| d["version"] == v).cloned();
    let relabel = of("2024-04-01-000005").unwrap_or_else(|| panic!("{downs:#}"));
    assert_eq!(relabel["proved"], true, "{relabel:#}");
    let sql = relabel["sql"].as_str().unwrap();
    assert!(sql.contains("DELETE FROM items WHERE (id = 4)"), "{sql}");
    assert!(relabel["notes"].to_string().contains("deletes rows that were there"), "{relabel:#}");
    let tags = of("2024-04-01-000006").unwrap_or_else(|| panic!("{downs:#}"));
    assert_eq!(tags["proved"], true, "the replay went on: {tags:#}");
}

#[test]
fn a_down_no_fix_can_mend_is_worked_out_whole_and_the_replay_goes_on() {
    let p = Project::new("downs_regain");
    p.migration(
        "2024-05-01-000001_t",
        "CREATE TABLE t (id int, c int CHECK (c > 0));\n\
         CREATE FUNCTION label() RETURNS text LANGUAGE sql AS $$ SELECT 'one' $$;",
        Some("DROP FUNCTION label(); DROP TABLE t;"),
    );
    // Its down forgets the check, and the row it writes breaks it: no
    // statement added after it can put the check back. (The function
    // keeps the up from the quick way, which would replace it at once.)
    p.migration(
        "2024-05-01-000002_drop_c",
        "ALTER TABLE t DROP COLUMN c;\n\
         CREATE OR REPLACE FUNCTION label() RETURNS text LANGUAGE sql AS $$ SELECT 'two' $$;",
        Some(
            "CREATE OR REPLACE FUNCTION label() RETURNS text LANGUAGE sql AS $$ SELECT 'one' $$;\n\
             ALTER TABLE t ADD COLUMN c int;\nINSERT INTO t VALUES (1, -1);",
        ),
    );
    p.migration("2024-05-01-000003_tags", "CREATE TABLE tags (id int PRIMARY KEY);", None);
    let downs: Value = p.run(&["downs", "--format", "json"]).expect_code(0).json();
    let of = |v: &str| downs.as_array().unwrap().iter().find(|d| d["version"] == v).cloned();
    let dropped = of("2024-05-01-000002").unwrap_or_else(|| panic!("{downs:#}"));
    assert_eq!(
        dropped["proved"], true,
        "worked out whole from where the up left the copy: {dropped:#}"
    );
    assert!(
        dropped["notes"].to_string().contains("no statements added after it did"),
        "{dropped:#}"
    );
    let sql = dropped["sql"].as_str().unwrap();
    assert!(sql.contains("CHECK ((c > 0))"), "{sql}");
    let tags = of("2024-05-01-000003").unwrap_or_else(|| panic!("{downs:#}"));
    assert_eq!(tags["proved"], true, "the replay went on: {tags:#}");
}

#[test]
fn a_data_migration_gets_a_down_that_deletes_exactly_its_rows_and_other_data_changes_say_so() {
    let p = Project::new("downs_data");
    p.migration(
        "2024-03-01-000001_plans",
        "CREATE TABLE plans (id text PRIMARY KEY, price int NOT NULL, note text);
         CREATE TABLE events (at timestamptz DEFAULT now(), what text);
         INSERT INTO plans VALUES ('legacy', 5, 'kept');",
        None,
    );
    p.migration(
        "2024-03-01-000002_seed",
        "INSERT INTO plans VALUES ('free', 0, NULL), ('pro', 20, 'monthly');
         INSERT INTO plans (id, price) VALUES ('team', 50) ON CONFLICT DO NOTHING;",
        None,
    );
    p.migration(
        "2024-03-01-000003_backfill",
        "DO $$ BEGIN UPDATE plans SET note = 'old' WHERE note IS NULL; END $$;
         INSERT INTO events (what) VALUES ('backfilled');",
        None,
    );
    // Issue 43: a column the up adds and fills held nothing before it.
    p.migration(
        "2024-03-01-000004_slug",
        "ALTER TABLE plans ADD COLUMN slug text;\nUPDATE plans SET slug = lower(id);",
        None,
    );
    // The same read the full way (a no-transaction up).
    p.migration(
        "2024-03-01-000005_code",
        "-- backstop:no-transaction\nALTER TABLE plans ADD COLUMN code text;\nUPDATE plans SET code = upper(id);\n\
         CREATE INDEX CONCURRENTLY plans_code ON plans (code);",
        None,
    );
    let downs: Value = p.run(&["downs", "--format", "json"]).expect_code(0).json();
    let of =
        |v: &str| downs.as_array().unwrap().iter().find(|d| d["version"] == v).unwrap().clone();
    let seed = of("2024-03-01-000002");
    assert_eq!(seed["status"], "computed", "{seed:#}");
    let sql = seed["sql"].as_str().unwrap();
    assert!(sql.contains("DELETE FROM plans WHERE ((id = 'team'"), "{sql}");
    assert!(sql.contains("AND xmin::text::bigint"), "{sql}");
    assert!(sql.contains("(id = 'free')"), "{sql}");
    let backfill = of("2024-03-01-000003");
    assert_eq!(backfill["status"], "irreversible", "{backfill:#}");
    let loses = backfill["loses"].to_string();
    assert!(loses.contains("UPDATE plans in a DO block"), "{loses}");
    assert!(loses.contains("inserted into events"), "{loses}");
    let slug = of("2024-03-01-000004");
    assert_eq!((&slug["status"], &slug["proved"]), (&json!("computed"), &json!(true)), "{slug:#}");
    let code = of("2024-03-01-000005");
    assert_eq!((&code["status"], &code["proved"]), (&json!("computed"), &json!(true)), "{code:#}");

    p.run(&["downs", "--write"]).expect_code(0);
    p.run(&["migrate"]).expect_code(0);
    // A row someone added since, and the conflict row made different: kept.
    p.client()
        .batch_execute("INSERT INTO plans VALUES ('enterprise', 99, NULL); UPDATE plans SET price = 55 WHERE id = 'team'")
        .unwrap();
    p.run(&["rollback", "--to", "2024-03-01-000001"]).expect_code(0);
    let mut ids = p.client().texts("select id from plans order by id");
    ids.sort();
    assert_eq!(ids, ["enterprise", "legacy", "team"]);
}

#[test]
fn a_type_restored_under_a_foreign_key_and_tables_whose_policies_read_each_other_get_proved_downs()
{
    let p = Project::new("downs_fk_policies");
    p.migration(
        "2024-04-01-000001_base",
        "CREATE TABLE a (id int PRIMARY KEY, name text);
         CREATE TABLE b (id int PRIMARY KEY, a_id int REFERENCES a (id));
         CREATE VIEW a_names AS SELECT id, name FROM a;
         INSERT INTO a VALUES (1, 'one'); INSERT INTO b VALUES (1, 1);",
        None,
    );
    // Prisma's way of turning an int key into text.
    p.migration(
        "2024-04-01-000002_text_ids",
        "ALTER TABLE \"b\" DROP CONSTRAINT \"b_a_id_fkey\";
         DROP VIEW a_names;
         ALTER TABLE \"a\" DROP CONSTRAINT \"a_pkey\", ALTER COLUMN \"id\" SET DATA TYPE TEXT, ADD CONSTRAINT \"a_pkey\" PRIMARY KEY (\"id\");
         ALTER TABLE \"b\" ALTER COLUMN \"a_id\" SET DATA TYPE TEXT;
         ALTER TABLE \"b\" ADD CONSTRAINT \"b_a_id_fkey\" FOREIGN KEY (\"a_id\") REFERENCES \"a\"(\"id\");
         CREATE VIEW a_names AS SELECT id, name FROM a;",
        None,
    );
    p.migration(
        "2024-04-01-000003_teams",
        "CREATE TABLE teams (id int PRIMARY KEY);
         CREATE TABLE members (team_id int REFERENCES teams (id), user_id int);
         ALTER TABLE teams ENABLE ROW LEVEL SECURITY;
         ALTER TABLE members ENABLE ROW LEVEL SECURITY;
         CREATE POLICY team_read ON teams USING (EXISTS (SELECT 1 FROM members m WHERE m.team_id = teams.id));
         CREATE POLICY member_read ON members USING (EXISTS (SELECT 1 FROM teams t WHERE t.id = members.team_id));",
        None,
    );
    let downs: Value = p.run(&["downs", "--format", "json"]).expect_code(0).json();
    for d in downs.as_array().unwrap() {
        assert_eq!(d["status"], "computed", "{d:#}");
    }
    let retype = downs[1]["sql"].as_str().unwrap();
    let drop_fk = retype.find("DROP CONSTRAINT IF EXISTS b_a_id_fkey").expect(retype);
    let cast = retype.find("ALTER COLUMN id TYPE integer").expect(retype);
    let add_fk = retype.find("ADD CONSTRAINT b_a_id_fkey").expect(retype);
    assert!(drop_fk < cast && cast < add_fk, "{retype}");
    p.run(&["downs", "--write"]).expect_code(0);
    p.run(&["migrate"]).expect_code(0);
    p.run(&["rollback", "--to", "2024-04-01-000001"]).expect_code(0);
    let mut db = p.client();
    let key: String = db
        .query_one("select format_type(atttypid, atttypmod) from pg_attribute where attrelid = 'a'::regclass and attname = 'id'", &[])
        .unwrap()
        .get(0);
    assert_eq!(key, "integer");
    assert!(!db.exists("public.teams") && !db.exists("public.members"));
    assert_eq!(db.count("b"), 1, "the rows stay, their keys cast back");
}
