//! Downs whose order and shape matter: a type made again before the
//! column of it is added back, a function whose result type changed made
//! again with `DROP` and `CREATE` around its dependents, an added enum
//! label and Prisma's enum swap undone with every index, check, policy,
//! default and view that compares the column dropped and made again
//! around the new type, storage parameters put back, and a type change's
//! `USING` undone by its inverse. Each is proved, written, and run.

use backstop_core::pg::fingerprint::Schema;
use serde_json::Value;

use crate::common::Project;

const BASE: &str = "
    CREATE TYPE kind AS ENUM ('x', 'y');
    CREATE TYPE status AS ENUM ('draft', 'done');
    CREATE TYPE \"Role\" AS ENUM ('USER', 'ADMIN');
    CREATE TABLE t (id int PRIMARY KEY, kind kind DEFAULT 'x', st status NOT NULL DEFAULT 'draft', n int CHECK (n > 0), body text);
    CREATE TABLE u (id int PRIMARY KEY, st status);
    CREATE TABLE users (id int PRIMARY KEY, role \"Role\" NOT NULL DEFAULT 'USER');
    CREATE INDEX t_x ON t (id) WHERE kind = 'x';
    ALTER TABLE t ADD CONSTRAINT not_y CHECK (kind <> 'y');
    ALTER TABLE t ENABLE ROW LEVEL SECURITY;
    CREATE POLICY only_x ON t USING (kind = 'x');
    CREATE VIEW xs AS SELECT id FROM t WHERE kind = 'x';
    CREATE FUNCTION total() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;
    CREATE VIEW totals AS SELECT total() AS n;
    CREATE TABLE w (id int, v int DEFAULT total());
    CREATE TABLE files (id int PRIMARY KEY, body text, created bigint, at timestamptz, payload text);
    INSERT INTO t (id, n, body) VALUES (1, 1, 'one');
    INSERT INTO u VALUES (1, 'done');
    INSERT INTO users VALUES (1, 'ADMIN');
    INSERT INTO files VALUES (1, 'héllo', 1700000000, '2024-01-02 03:04:05+00', '{\"b\": 1,  \"a\": 2}');";

const STEPS: &[(&str, &str)] = &[
    ("add_value", "ALTER TYPE kind ADD VALUE 'z'"),
    (
        "drop_enum_column",
        "ALTER TABLE u DROP COLUMN st; ALTER TABLE t DROP COLUMN st; DROP TYPE status",
    ),
    (
        "result_type",
        "DROP FUNCTION total() CASCADE;
         CREATE FUNCTION total() RETURNS bigint LANGUAGE sql AS $$ SELECT 2::bigint $$;
         CREATE VIEW totals AS SELECT total() AS n",
    ),
    (
        "prisma_swap",
        "ALTER TYPE \"Role\" RENAME TO \"Role_old\";
         CREATE TYPE \"Role\" AS ENUM ('USER', 'ADMIN', 'OWNER');
         ALTER TABLE \"users\" ALTER COLUMN \"role\" DROP DEFAULT;
         ALTER TABLE \"users\" ALTER COLUMN \"role\" TYPE \"Role\" USING (\"role\"::text::\"Role\");
         ALTER TABLE \"users\" ALTER COLUMN \"role\" SET DEFAULT 'USER';
         DROP TYPE \"Role_old\"",
    ),
    (
        "storage",
        "ALTER TABLE t SET (autovacuum_vacuum_scale_factor = 0.01, fillfactor = 80);
         ALTER TABLE t SET (toast.autovacuum_enabled = false);
         ALTER INDEX t_pkey SET (fillfactor = 60);
         ALTER TABLE t ALTER COLUMN n SET STATISTICS 500",
    ),
    (
        "using",
        "ALTER TABLE files ALTER COLUMN body TYPE bytea USING convert_to(body, 'UTF8');
         ALTER TABLE files ALTER COLUMN created TYPE timestamptz USING to_timestamp(created);
         ALTER TABLE files ALTER COLUMN at TYPE bigint USING extract(epoch from at)::bigint;
         ALTER TABLE files ALTER COLUMN payload TYPE jsonb USING payload::text::jsonb",
    ),
];

/// Migrates to `base`, then all the way, and rolls back to `base`: the
/// schema is the one `base` had. A session after, to look further.
fn round_trip(p: &Project, base: &str) -> postgres::Client {
    p.run(&["migrate", "--to", base]).expect_code(0);
    let before = Schema::read(&mut p.client()).unwrap();
    p.run(&["migrate"]).expect_code(0);
    p.run(&["rollback", "--to", base]).expect_code(0);
    let mut db = p.client();
    let back = Schema::read(&mut db).unwrap();
    assert!(before.differences(&back).is_empty(), "{:#?}", before.differences(&back));
    db
}

fn down_of(downs: &Value, step: usize) -> &Value {
    let version = format!("2024-06-01-{:06}", step + 2);
    downs.as_array().unwrap().iter().find(|d| d["version"] == version.as_str()).unwrap()
}

#[test]
fn downs_make_again_in_dependency_order_and_around_what_they_change() {
    let p = Project::new("downs_order");
    p.migration("2024-06-01-000001_base", BASE, None);
    for (i, (name, sql)) in STEPS.iter().enumerate() {
        p.migration(&format!("2024-06-01-{:06}_{name}", i + 2), sql, None);
    }
    let downs: Value = p.run(&["downs", "--format", "json"]).expect_code(0).json();
    for d in downs.as_array().unwrap() {
        assert_eq!(d["proved"], true, "{d:#}");
        assert_eq!(d["status"], "computed", "{d:#}");
    }
    let sql = |step: usize| down_of(&downs, step)["sql"].as_str().unwrap().to_string();
    // The added label: what compares the column goes around the new type.
    let add_value = sql(0);
    for around in
        ["DROP POLICY IF EXISTS only_x", "DROP INDEX IF EXISTS public.t_x", "DROP CONSTRAINT not_y"]
    {
        let at = add_value.find(around).expect(&add_value);
        assert!(at < add_value.find("RENAME TO kind__backstop_old").unwrap(), "{add_value}");
    }
    // The type before the column of it.
    let enum_column = sql(1);
    let made = enum_column.find("CREATE TYPE public.status").expect(&enum_column);
    assert!(made < enum_column.find("ADD COLUMN st").unwrap(), "{enum_column}");
    // DROP and CREATE, not CREATE OR REPLACE, with the view around it.
    let result = sql(2);
    assert!(!result.contains("CREATE OR REPLACE FUNCTION"), "{result}");
    let drop_view = result.find("DROP VIEW IF EXISTS public.totals").expect(&result);
    let drop_fn = result.find("DROP FUNCTION IF EXISTS public.total()").expect(&result);
    let create_fn = result.find("CREATE FUNCTION public.total()").expect(&result);
    let create_view = result.find("CREATE VIEW public.totals").expect(&result);
    assert!(drop_view < drop_fn && drop_fn < create_fn && create_fn < create_view, "{result}");
    // Storage parameters put back in place.
    let storage = sql(4);
    assert!(storage.contains("ALTER INDEX public.t_pkey RESET (fillfactor)"), "{storage}");
    assert!(
        storage.contains(
            "RESET (autovacuum_vacuum_scale_factor, fillfactor, toast.autovacuum_enabled)"
        ),
        "{storage}"
    );
    // USING undone by its inverse; what it cannot restore is named.
    let using = down_of(&downs, 5);
    let text = using["sql"].as_str().unwrap();
    for inverse in ["convert_from(body, 'UTF8')", "extract(epoch FROM created)", "to_timestamp(at)"]
    {
        assert!(text.contains(inverse), "{text}");
    }
    assert!(using["loses"].to_string().contains("jsonb keeps no whitespace"), "{using:#}");

    p.run(&["downs", "--write"]).expect_code(0);
    let mut db = round_trip(&p, "2024-06-01-000001");
    let row = db
        .query_one("select body, created, at = '2024-01-02 03:04:05+00', payload from files", &[])
        .unwrap();
    let (body, created, at, payload): (String, i64, bool, String) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!((body.as_str(), created, at), ("héllo", 1700000000, true), "values come back");
    assert_eq!(payload, r#"{"a": 2, "b": 1}"#, "as jsonb wrote it, as `loses` says");
    let role: String = db.query_one("select role::text from users", &[]).unwrap().get(0);
    assert_eq!(role, "ADMIN");
}

/// What a partitioned table's partitions have from it (an index attached
/// to its index, a column) goes and comes back with the parent's: dropped
/// alone, PostgreSQL refuses ("cannot drop index … because index …
/// requires it"); added alone to a partition, it refuses too. A
/// partition the up detached gets the column back before it is attached.
#[test]
fn a_partitioned_tables_members_go_and_come_back_with_the_parents() {
    let p = Project::new("downs_partitions");
    p.migration(
        "2024-06-01-000001_events",
        "CREATE TABLE events (id bigint NOT NULL, at date NOT NULL, kind text) PARTITION BY RANGE (at);
         CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
         CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
         INSERT INTO events VALUES (1, '2024-05-01', 'a'), (2, '2025-05-01', 'b');",
        None,
    );
    p.migration(
        "2024-06-01-000002_members",
        "CREATE INDEX events_kind ON events (kind);
         ALTER TABLE events ADD COLUMN source text;
         ALTER TABLE events ADD CONSTRAINT events_pk PRIMARY KEY (id, at);",
        None,
    );
    p.migration(
        "2024-06-01-000003_members_gone",
        "DROP INDEX events_kind;
         ALTER TABLE events DROP CONSTRAINT events_pk;
         ALTER TABLE events DROP COLUMN source;
         ALTER TABLE events DETACH PARTITION events_2024;",
        None,
    );
    let downs: Value = p.run(&["downs", "--format", "json"]).expect_code(0).json();
    for d in downs.as_array().unwrap() {
        assert_eq!((&d["proved"], &d["status"]), (&Value::Bool(true), &"computed".into()), "{d:#}");
    }
    let members = down_of(&downs, 0)["sql"].as_str().unwrap();
    for alone in ["events_2024_kind_idx", "events_2025_pkey", "events_2024 DROP COLUMN"] {
        assert!(!members.contains(alone), "{members}");
    }
    let gone = down_of(&downs, 1)["sql"].as_str().unwrap();
    assert!(!gone.contains("events_2025 ADD COLUMN"), "{gone}");
    let detached = gone.find("events_2024 ADD COLUMN source").expect(gone);
    assert!(detached < gone.find("ATTACH PARTITION public.events_2024").unwrap(), "{gone}");

    p.run(&["downs", "--write"]).expect_code(0);
    round_trip(&p, "2024-06-01-000001");
}

/// A table moved to another schema and made again by its old name: the
/// check sees the name freed (no "created again"), and the down steps the
/// new table aside with its index, key and sequence of the same names
/// before the old one comes back, its rows as they were.
#[test]
fn a_table_moved_away_and_made_again_comes_back_over_the_new_one() {
    let p = Project::new("downs_moved_away");
    p.migration(
        "2024-06-01-000001_items",
        "CREATE TABLE items (id serial PRIMARY KEY, name text);
         CREATE INDEX items_name ON items (name);
         INSERT INTO items (name) VALUES ('a'), ('b');",
        None,
    );
    p.migration(
        "2024-06-01-000002_archive",
        "CREATE SCHEMA archive;
         ALTER TABLE items SET SCHEMA archive;
         CREATE TABLE items (id serial PRIMARY KEY, name text, at timestamptz);
         CREATE INDEX items_name ON items (name);
         INSERT INTO items (id, name) SELECT id, name FROM archive.items;",
        None,
    );
    let check = p.run(&["check"]);
    check.expect_output("verdict: GO");
    assert!(!check.all().contains("BS405"), "{}", check.all());
    let mut db = round_trip(&p, "2024-06-01-000001");
    let names: String =
        db.query_one("select string_agg(name, ',' order by id) from items", &[]).unwrap().get(0);
    assert_eq!(names, "a,b");
}

/// A table and a function dropped after the team set default privileges
/// come back with the privileges they had, not with what the defaults
/// give whatever is made now; a grant they had of their own stays.
#[test]
fn an_object_made_again_gets_its_own_privileges_not_the_defaults_of_today() {
    let p = Project::new("downs_default_privileges");
    p.migration(
        "2024-06-01-000001_base",
        "DO $$ BEGIN
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'downs_reader') THEN CREATE ROLE downs_reader; END IF;
         END $$;
         CREATE TABLE t (id int PRIMARY KEY, name text);
         GRANT INSERT ON t TO downs_reader;
         CREATE FUNCTION f(a integer) RETURNS int LANGUAGE sql AS $$ SELECT a $$;",
        None,
    );
    p.migration(
        "2024-06-01-000002_defaults",
        "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO downs_reader;
         ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;",
        None,
    );
    p.migration("2024-06-01-000003_drop", "DROP TABLE t; DROP FUNCTION f(integer);", None);
    let downs: Value = p.run(&["downs", "--format", "json"]).expect_code(0).json();
    let dropped = down_of(&downs, 1);
    assert_eq!(dropped["proved"], true, "{dropped:#}");
    let sql = dropped["sql"].as_str().unwrap();
    assert!(sql.contains("REVOKE select ON public.t FROM downs_reader"), "{sql}");
    assert!(sql.contains("ON FUNCTION public.f(int) TO public"), "{sql}");

    p.run(&["downs", "--write"]).expect_code(0);
    let mut db = round_trip(&p, "2024-06-01-000002");
    let acl: String =
        db.query_one("select relacl::text from pg_class where relname = 't'", &[]).unwrap().get(0);
    assert!(acl.contains("downs_reader=a/") && !acl.contains("downs_reader=ar"), "{acl}");
}
