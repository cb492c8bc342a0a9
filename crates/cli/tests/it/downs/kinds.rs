//! The catalog test: every kind of object `pg_dump -s` writes gets a down
//! that is proved (up, down, the schema equal by the semantic picture),
//! both for a migration that makes one and for one that changes or drops
//! it; and the list of what the picture makes of each catalog is the
//! server's own list of catalogs, so a catalog a new major brings fails
//! here until it is placed.

use backstop_core::pg::fingerprint::Schema;
use backstop_core::pg::kinds::{Held, CATALOGS};
use serde_json::Value;

use crate::common::{Project, CLUSTER};

/// The base every migration below builds on.
const BASE: &str = "
    CREATE TYPE kind AS ENUM ('a', 'b');
    CREATE TABLE t (id int PRIMARY KEY, kind kind, n int, body text);
    CREATE FUNCTION kind_eq_text(kind, text) RETURNS bool LANGUAGE sql IMMUTABLE AS $$ SELECT $1::text = $2 $$;
    CREATE FUNCTION kind_of(int) RETURNS kind LANGUAGE sql IMMUTABLE AS $$ SELECT 'a'::kind $$;
    CREATE FUNCTION quiet() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN END $$;";

/// One migration per kind the picture holds (by the start of its keys),
/// making one of each.
const MAKE: &[(&[&str], &str)] = &[
    (&["relation", "sequence"], "CREATE TABLE made (id serial PRIMARY KEY, at timestamptz DEFAULT now())"),
    (&["constraint"], "ALTER TABLE t ADD CONSTRAINT n_positive CHECK (n > 0)"),
    (&["policy"], "ALTER TABLE t ENABLE ROW LEVEL SECURITY; CREATE POLICY only_a ON t USING (kind = 'a')"),
    (&["function"], "CREATE FUNCTION twice(int) RETURNS int LANGUAGE sql AS $$ SELECT $1 * 2 $$"),
    (&["type"], "CREATE TYPE pair AS (l int, r int); CREATE DOMAIN positive AS int CHECK (VALUE > 0)"),
    (&["schema"], "CREATE SCHEMA made_schema"),
    (
        &["trigger"],
        "CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
         CREATE TRIGGER t_touch BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION touch()",
    ),
    (&["rule"], "CREATE RULE keep_rows AS ON DELETE TO t DO INSTEAD NOTHING"),
    (
        &["foreign data wrapper", "server", "user mapping", "foreign table"],
        "CREATE FOREIGN DATA WRAPPER made_fdw;
         CREATE SERVER made_server FOREIGN DATA WRAPPER made_fdw OPTIONS (host 'a');
         CREATE USER MAPPING FOR PUBLIC SERVER made_server OPTIONS (user 'u');
         CREATE FOREIGN TABLE remote (id int) SERVER made_server OPTIONS (table_name 'r')",
    ),
    (&["cast"], "CREATE CAST (int AS kind) WITH FUNCTION kind_of(int)"),
    (
        &["operator", "operator family", "operator class"],
        "CREATE OPERATOR === (LEFTARG = kind, RIGHTARG = text, FUNCTION = kind_eq_text);
         CREATE OPERATOR FAMILY made_family USING btree;
         CREATE OPERATOR CLASS made_ops FOR TYPE int USING hash AS OPERATOR 1 =, FUNCTION 1 hashint4(int)",
    ),
    (
        &[
            "text search parser",
            "text search template",
            "text search dictionary",
            "text search configuration",
        ],
        "CREATE TEXT SEARCH PARSER made_parser (START = prsd_start, GETTOKEN = prsd_nexttoken, END = prsd_end, LEXTYPES = prsd_lextype);
         CREATE TEXT SEARCH TEMPLATE made_template (LEXIZE = dsimple_lexize);
         CREATE TEXT SEARCH DICTIONARY made_dict (TEMPLATE = simple, STOPWORDS = english);
         CREATE TEXT SEARCH CONFIGURATION made_config (COPY = simple)",
    ),
    (&["collation"], "CREATE COLLATION made_collation (provider = libc, locale = 'C')"),
    (&["conversion"], "CREATE CONVERSION made_conversion FOR 'LATIN1' TO 'UTF8' FROM iso8859_1_to_utf8"),
    (&["event trigger"], "CREATE EVENT TRIGGER made_event ON ddl_command_end EXECUTE FUNCTION quiet()"),
    (
        &["publication", "publication table"],
        "CREATE PUBLICATION made_pub FOR TABLE t WITH (publish = 'insert');
         CREATE PUBLICATION schema_pub FOR TABLES IN SCHEMA public",
    ),
    (&["statistics"], "CREATE STATISTICS made_stats ON id, n FROM t"),
    (&["default privileges"], "ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO PUBLIC"),
    (&["language"], "CREATE LANGUAGE made_language HANDLER plpgsql_call_handler"),
    (&["access method"], "CREATE ACCESS METHOD made_am TYPE TABLE HANDLER heap_tableam_handler"),
    (
        &["transform"],
        "CREATE TRANSFORM FOR int LANGUAGE made_language (FROM SQL WITH FUNCTION prsd_lextype(internal), TO SQL WITH FUNCTION int4recv(internal))",
    ),
];

/// Migrations that change or drop what [`MAKE`] made.
const CHANGE: &[&str] = &[
    "ALTER SERVER made_server OPTIONS (SET host 'b', ADD port '5432')",
    "ALTER USER MAPPING FOR PUBLIC SERVER made_server OPTIONS (SET user 'v')",
    "ALTER FOREIGN TABLE remote OPTIONS (SET table_name 's')",
    "ALTER SERVER made_server RENAME TO renamed_server",
    "ALTER TEXT SEARCH CONFIGURATION made_config ALTER MAPPING FOR asciiword WITH made_dict",
    "ALTER PUBLICATION made_pub SET (publish = 'insert, update')",
    "ALTER PUBLICATION made_pub ADD TABLE made",
    "ALTER STATISTICS made_stats SET STATISTICS 50",
    "ALTER EVENT TRIGGER made_event DISABLE",
    "ALTER DEFAULT PRIVILEGES REVOKE SELECT ON TABLES FROM PUBLIC",
    "ALTER COLLATION made_collation RENAME TO renamed_collation",
    "ALTER TABLE t SET (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.01); ALTER TABLE t SET (toast.autovacuum_enabled = false)",
    "ALTER INDEX t_pkey SET (fillfactor = 60)",
    "ALTER TABLE t ALTER COLUMN n SET STATISTICS 500; ALTER TABLE t ALTER COLUMN body SET STORAGE EXTERNAL; ALTER TABLE t REPLICA IDENTITY FULL",
    "DROP CAST (int AS kind)",
    "DROP OPERATOR CLASS made_ops USING hash; DROP OPERATOR === (kind, text)",
    "DROP STATISTICS made_stats; DROP RULE keep_rows ON t",
    "DROP TRANSFORM FOR int LANGUAGE made_language; DROP ACCESS METHOD made_am",
    "DROP USER MAPPING FOR PUBLIC SERVER renamed_server; DROP FOREIGN TABLE remote; DROP SERVER renamed_server; DROP FOREIGN DATA WRAPPER made_fdw",
    "DROP TEXT SEARCH CONFIGURATION made_config; DROP TEXT SEARCH DICTIONARY made_dict; DROP TEXT SEARCH PARSER made_parser",
    "DROP PUBLICATION made_pub, schema_pub; DROP EVENT TRIGGER made_event; DROP CONVERSION made_conversion",
];

/// The catalogs of `pg_catalog` on the server under test.
fn server_catalogs() -> Vec<String> {
    let mut c = CLUSTER.connect("postgres").unwrap();
    c.query(
        "select c.relname::text from pg_class c join pg_namespace n on n.oid = c.relnamespace
          where n.nspname = 'pg_catalog' and c.relkind = 'r' order by 1",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

#[test]
fn every_catalog_of_the_server_is_placed_in_the_picture() {
    let server = server_catalogs();
    let listed: Vec<String> = CATALOGS.iter().map(|(c, _)| c.to_string()).collect();
    let unplaced: Vec<&String> = server.iter().filter(|c| !listed.contains(c)).collect();
    assert!(
        unplaced.is_empty(),
        "catalogs of PostgreSQL {} the schema picture does not place yet: {unplaced:?}; say in \
         pg::kinds::CATALOGS what each holds, make the picture and the downs hold it, and add a \
         migration of it to this test",
        CLUSTER.bin().major
    );
    let gone: Vec<&String> = listed.iter().filter(|c| !server.contains(c)).collect();
    assert!(gone.is_empty(), "catalogs listed but not on this server: {gone:?}");
    // Every kind the picture holds has a migration below.
    for (catalog, held) in CATALOGS {
        if let Held::Kind(kind) = held {
            let tested = MAKE.iter().any(|(k, _)| k.contains(kind)) || *kind == "extension";
            assert!(tested, "{catalog} ({kind}) has no migration in MAKE");
        }
    }
}

/// An extension this server can make, for the extension kind.
fn an_extension(p: &Project) -> Option<String> {
    p.client()
        .query_opt(
            "select name::text from pg_available_extensions
              where name in ('citext', 'hstore', 'pg_trgm', 'vector') order by name limit 1",
            &[],
        )
        .unwrap()
        .map(|r| r.get(0))
}

/// Whether this server has postgres_fdw (PostgreSQL 16 of .ci's wheels has not).
fn has_postgres_fdw(p: &Project) -> bool {
    p.client()
        .query_opt("select 1 from pg_available_extensions where name = 'postgres_fdw'", &[])
        .unwrap()
        .is_some()
}

#[test]
fn a_down_is_proved_for_every_kind_made_changed_and_dropped() {
    let p = Project::new("downs_kinds");
    let mut n = 0;
    let mut add = |sql: &str| {
        n += 1;
        p.migration(&format!("2024-05-01-{n:06}_step"), sql, None);
    };
    add(BASE);
    for (_, sql) in MAKE {
        add(sql);
    }
    if let Some(ext) = an_extension(&p) {
        add(&format!("CREATE EXTENSION \"{ext}\""));
    }
    if has_postgres_fdw(&p) {
        // Dropping the extension must not fail on the server that uses it.
        add("CREATE EXTENSION postgres_fdw;
             CREATE SERVER pg_remote FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host 'localhost', dbname 'x');
             CREATE USER MAPPING FOR CURRENT_USER SERVER pg_remote OPTIONS (user 'u', password 'p')");
    }
    for sql in CHANGE {
        add(sql);
    }
    let total = n;
    let run = p.run(&["downs", "--format", "json"]);
    let downs: Value = run.json();
    for d in downs.as_array().unwrap() {
        assert_eq!(
            (d["status"].as_str(), d["proved"].as_bool()),
            (Some("computed"), Some(true)),
            "{d:#}"
        );
        let notes = d["notes"].to_string();
        assert!(!notes.contains("by hand"), "{d:#}");
    }
    assert_eq!(downs.as_array().unwrap().len(), total, "{downs:#}");
    run.expect_code(0);

    // The picture holds every kind: each is there after the ups.
    p.run(&["downs", "--write"]).expect_code(0);
    p.run(&["migrate", "--to", "2024-05-01-000001"]).expect_code(0);
    let base = Schema::read(&mut p.client()).unwrap();
    let made = format!("2024-05-01-{:06}", MAKE.len() + 1);
    p.run(&["migrate", "--to", &made]).expect_code(0);
    let full = Schema::read(&mut p.client()).unwrap();
    for kind in MAKE.iter().flat_map(|(k, _)| k.iter()) {
        let key = format!("{kind} ");
        assert!(full.objects.iter().any(|o| o.key.starts_with(&key)), "no {kind} in the picture");
    }
    // And every down takes it back: to the base, by the same picture.
    p.run(&["migrate"]).expect_code(0);
    p.run(&["rollback", "--to", "2024-05-01-000001"]).expect_code(0);
    let back = Schema::read(&mut p.client()).unwrap();
    assert!(base.differences(&back).is_empty(), "{:#?}", base.differences(&back));
}
