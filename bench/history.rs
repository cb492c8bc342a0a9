//! A generated migration history of the shapes real projects write
//! (tables, views and views on views, plpgsql functions and triggers,
//! enums, indexes, constraints, renames, data backfills), shared by the
//! benchmarks that read, check or rehearse long histories. Deterministic:
//! every run writes the same SQL.
//!
//! [`planted`] gives the same history with broken and cosmetic downs
//! planted in it: in every block of 40 migrations one down that does not
//! restore, one that fails, one after which the up fails, and three whose
//! differences are only cosmetic (a function body written differently, a
//! view that froze the time it was made, a column and a `SELECT *` view in
//! another order).

/// What a planted down does, and how a rehearsal must judge it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plant {
    /// The down does not restore the schema: must be found.
    Defect,
    /// The down errors: must be found.
    DownFails,
    /// The down restores what snapshots see, but the up fails after it:
    /// must be found.
    ReUpFails,
    /// Only cosmetic differences remain: must not be called an error.
    Cosmetic,
}

/// Up and down SQL of migration `i`; table `t{k}` of an earlier migration
/// is the target of the shapes that alter something.
pub fn migration(i: usize) -> (String, String) {
    let base = i / 10 * 10; // the table created at the start of each block of ten
    let t = format!("t{base}");
    match i % 10 {
        0 => (
            format!(
                "CREATE TABLE {t} (\n  id bigserial PRIMARY KEY,\n  name text NOT NULL,\n  \
                 created_at timestamptz NOT NULL DEFAULT now(),\n  payload jsonb\n);\n\
                 INSERT INTO {t} (name, payload) SELECT 'row ' || g, jsonb_build_object('n', g, 'tag', md5(g::text))\n  \
                 FROM generate_series(1, 200) g;"
            ),
            format!("DROP TABLE {t};"),
        ),
        1 => (
            format!("ALTER TABLE {t} ADD COLUMN score{i} integer NOT NULL DEFAULT 0;"),
            format!("ALTER TABLE {t} DROP COLUMN score{i};"),
        ),
        2 => (
            format!("CREATE INDEX {t}_name_idx{i} ON {t} (name);"),
            format!("DROP INDEX {t}_name_idx{i};"),
        ),
        3 => (
            // A view that freezes the time it was made, and a view on it.
            format!(
                "CREATE VIEW v{i} AS\n  SELECT id, name, payload ->> 'tag' AS tag FROM {t} WHERE created_at > 'now'::timestamptz - interval '30 days';\n\
                 CREATE VIEW vv{i} AS SELECT id, tag FROM v{i} WHERE tag IS NOT NULL;"
            ),
            format!("DROP VIEW vv{i};\nDROP VIEW v{i};"),
        ),
        4 => (
            format!(
                "CREATE FUNCTION f{i}(x integer) RETURNS integer LANGUAGE plpgsql IMMUTABLE AS $$\n\
                 BEGIN\n  -- a body with ; and quotes ' inside\n  RETURN x * {i} + length('a;b');\nEND\n$$;"
            ),
            format!("DROP FUNCTION f{i}(integer);"),
        ),
        5 => (
            format!(
                "CREATE FUNCTION touch{i}() RETURNS trigger LANGUAGE plpgsql AS $$\n\
                 BEGIN NEW.created_at := now(); RETURN NEW; END\n$$;\n\
                 CREATE TRIGGER touch{i} BEFORE UPDATE ON {t} FOR EACH ROW EXECUTE FUNCTION touch{i}();"
            ),
            format!("DROP TRIGGER touch{i} ON {t};\nDROP FUNCTION touch{i}();"),
        ),
        6 => (
            format!(
                "CREATE TYPE status{i} AS ENUM ('new', 'active', 'closed');\n\
                 ALTER TABLE {t} ADD COLUMN status{i} status{i} NOT NULL DEFAULT 'new';"
            ),
            format!("ALTER TABLE {t} DROP COLUMN status{i};\nDROP TYPE status{i};"),
        ),
        7 => (
            format!(
                "INSERT INTO {t} (name, payload)\n  SELECT 'backfill{i} ' || g, jsonb_build_object('batch', {i})\n  FROM generate_series(1, 100) g;\n\
                 UPDATE {t} SET payload = payload || '{{\"seen\": true}}' WHERE name LIKE 'backfill{i} %';\n\
                 CREATE VIEW vall{base} AS SELECT * FROM {t};"
            ),
            format!("DROP VIEW vall{base};\nDELETE FROM {t} WHERE name LIKE 'backfill{i} %';"),
        ),
        8 => (
            format!("ALTER TABLE {t} ADD CONSTRAINT {t}_name_len{i} CHECK (length(name) < 500);"),
            format!("ALTER TABLE {t} DROP CONSTRAINT {t}_name_len{i};"),
        ),
        _ => (
            format!(
                "DO $$\nBEGIN\n  IF NOT EXISTS (SELECT 1 FROM pg_class WHERE relname = '{t}') THEN\n    \
                 RAISE EXCEPTION 'missing {t}';\n  END IF;\nEND\n$$;\nCOMMENT ON TABLE {t} IS 'block {base}';\n\
                 ALTER TABLE {t} RENAME COLUMN name TO title;"
            ),
            format!("ALTER TABLE {t} RENAME COLUMN title TO name;\nCOMMENT ON TABLE {t} IS NULL;"),
        ),
    }
}

/// Migration `i` of the history with its planted down, if it has one.
pub fn planted(i: usize) -> (String, String, Option<Plant>) {
    let base = i / 10 * 10;
    let t = format!("t{base}");
    let (up, down) = migration(i);
    match i % 40 {
        // The down forgets the column its up added.
        1 => (up, "SELECT 1;".to_string(), Some(Plant::Defect)),
        // A typo in the name of the index the down drops.
        12 => (up, format!("DROP INDEX {t}_name_idx_{i};"), Some(Plant::DownFails)),
        // The down removes the rows but not the large object the up made.
        17 => (
            format!("SELECT lo_create({});\n{up}", 1_000_000 + i),
            down,
            Some(Plant::ReUpFails),
        ),
        // The up rewrites an earlier function; the down puts the old body
        // back, written differently.
        24 => {
            let f = format!("f{}", i - 10);
            (
                format!(
                    "CREATE OR REPLACE FUNCTION {f}(x integer) RETURNS integer LANGUAGE plpgsql IMMUTABLE AS $$\n\
                     BEGIN\n  RETURN x * {i};\nEND\n$$;"
                ),
                format!(
                    "CREATE OR REPLACE FUNCTION {f}(x integer) RETURNS integer LANGUAGE plpgsql IMMUTABLE AS $$ begin return x * {} + length('a;b'); end $$;",
                    i - 10
                ),
                Some(Plant::Cosmetic),
            )
        }
        // The up changes an earlier view (its table's `name` is `title`
        // since the end of that block); the down makes it again, which
        // freezes another time into it.
        33 => {
            let (v, vv) = (format!("v{}", i - 10), format!("vv{}", i - 10));
            let t_before = format!("t{}", base - 10);
            let view = |extra: &str| {
                format!(
                    "CREATE VIEW {v} AS\n  SELECT id, title AS name, payload ->> 'tag' AS tag{extra} FROM {t_before} WHERE created_at > 'now'::timestamptz - interval '30 days';\n\
                     CREATE VIEW {vv} AS SELECT id, tag FROM {v} WHERE tag IS NOT NULL;"
                )
            };
            (
                format!("DROP VIEW {vv};\nDROP VIEW {v};\n{}", view(", created_at")),
                format!("DROP VIEW {vv};\nDROP VIEW {v};\n{}", view("")),
                Some(Plant::Cosmetic),
            )
        }
        // The up drops a column (its values are all the default) and the
        // SELECT * view on the table; the down adds the column back, now
        // last, and makes the view again, its columns in the new order.
        38 => (
            format!("DROP VIEW vall{base};\nALTER TABLE {t} DROP COLUMN score{};", base + 1),
            format!(
                "ALTER TABLE {t} ADD COLUMN score{} integer NOT NULL DEFAULT 0;\nCREATE VIEW vall{base} AS SELECT * FROM {t};",
                base + 1
            ),
            Some(Plant::Cosmetic),
        ),
        _ => (up, down, None),
    }
}

/// Migration `i` of the planted history in a project whose schema keeps
/// growing: each up also adds a plpgsql function and every second one a
/// table with an identity key, an index, a foreign key to the table before
/// and a view over it, which its down drops again. After 280 migrations the
/// schema holds over 800 relations and 300 functions. The plants are
/// those of [`planted`]. (Not every bench that includes this file uses it.)
#[allow(dead_code)]
pub fn grown(i: usize) -> (String, String, Option<Plant>) {
    let (up, down, plant) = planted(i);
    let mut more_up = format!(
        "CREATE FUNCTION grown_f{i}(x bigint) RETURNS bigint LANGUAGE plpgsql STABLE AS $$\n\
         BEGIN\n  RETURN x + {i};\nEND\n$$;"
    );
    let mut more_down = format!("DROP FUNCTION grown_f{i}(bigint);");
    if i.is_multiple_of(2) {
        let parent = if i >= 2 {
            format!(",\n  parent_id bigint REFERENCES grown_t{}", i - 2)
        } else {
            String::new()
        };
        more_up = format!(
            "{more_up}\nCREATE TABLE grown_t{i} (\n  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n  \
             owner_id bigint NOT NULL,\n  note text,\n  created_at timestamptz NOT NULL DEFAULT now(){parent}\n);\n\
             CREATE INDEX grown_t{i}_owner_idx ON grown_t{i} (owner_id);\n\
             CREATE VIEW grown_v{i} AS SELECT id, owner_id, grown_f{i}(owner_id) AS score FROM grown_t{i};"
        );
        more_down = format!("DROP VIEW grown_v{i};\nDROP TABLE grown_t{i};\n{more_down}");
    }
    (format!("{up}\n{more_up}"), format!("{more_down}\n{down}"), plant)
}

/// The planted history with the shapes that made the report of a long
/// rehearsal hard to read planted as well, in every block of 40: an up
/// that drops a table whose down is a deliberate no-op (a relation gone,
/// with its columns, indexes and sequence), a down that puts a view back
/// with another definition and one that puts a function back with another
/// body (diffs to show), an index built concurrently (a migration that must
/// run outside a transaction), an enum value a later migration uses (the
/// batch must commit in between), and a migration marked to run outside a
/// transaction that does not need to (a split that can be avoided).
// Read by the rehearse integration test, not by every bench that includes this file.
#[allow(dead_code)]
pub fn planted_more(i: usize) -> (String, String, Option<Plant>) {
    let base = i / 10 * 10;
    let t = format!("t{base}");
    let (up, down) = migration(i);
    match i % 40 {
        // Marked to run outside a transaction for no reason.
        2 => (format!("-- backstop:no-transaction\n{up}"), down, None),
        // The view on a view gets a column; the down makes it again with
        // another filter.
        15 => {
            let (v, vv) = (format!("v{}", i - 2), format!("vv{}", i - 2));
            (
                format!(
                    "DROP VIEW {vv};\nCREATE VIEW {vv} AS SELECT id, tag, name FROM {v} WHERE tag IS NOT NULL;"
                ),
                format!(
                    "DROP VIEW {vv};\nCREATE VIEW {vv} AS SELECT id, tag FROM {v} WHERE tag IS NOT NULL AND id > 0;"
                ),
                Some(Plant::Defect),
            )
        }
        // An index built concurrently: outside a transaction, both ways.
        22 => (
            format!("-- backstop:no-transaction\nCREATE INDEX CONCURRENTLY {t}_name_idx{i} ON {t} (name);"),
            format!("-- backstop:no-transaction\nDROP INDEX CONCURRENTLY {t}_name_idx{i};"),
            None,
        ),
        // The up rewrites an earlier function; the down puts back another
        // body than the one it had.
        34 => {
            let f = format!("f{}", i - 20);
            let body = |n: usize| {
                format!(
                    "CREATE OR REPLACE FUNCTION {f}(x integer) RETURNS integer LANGUAGE plpgsql IMMUTABLE AS $$\n\
                     BEGIN\n  RETURN x * {n};\nEND\n$$;"
                )
            };
            (body(i), body(i - 20), Some(Plant::Defect))
        }
        // A new value of an earlier enum, used by the next migration: the
        // batch must commit in between. The down swaps the type back (and
        // makes the table's `SELECT *` view again with the columns it had,
        // `name` being `title` since the end of that block).
        35 => {
            let (ty, table) = (format!("status{}", i - 9), format!("t{}", i - 15));
            (
                format!("ALTER TYPE {ty} ADD VALUE 'archived';"),
                format!(
                    "DROP VIEW vall{};\n\
                     ALTER TYPE {ty} RENAME TO {ty}_old;\n\
                     CREATE TYPE {ty} AS ENUM ('new', 'active', 'closed');\n\
                     ALTER TABLE {table} ALTER COLUMN {ty} DROP DEFAULT,\n  \
                     ALTER COLUMN {ty} TYPE {ty} USING {ty}::text::{ty},\n  \
                     ALTER COLUMN {ty} SET DEFAULT 'new';\n\
                     DROP TYPE {ty}_old;\n\
                     CREATE VIEW vall{} AS SELECT id, title AS name, created_at, payload, score{}, {ty} FROM {table};",
                    i - 15,
                    i - 15,
                    i - 14
                ),
                None,
            )
        }
        36 => (
            format!(
                "{up}\nUPDATE t{} SET status{} = 'archived' WHERE false;",
                i - 16,
                i - 10
            ),
            down,
            None,
        ),
        // The table goes; the down is a deliberate no-op.
        39 => (
            format!("DROP TABLE {t} CASCADE;"),
            "-- irreversible: the table is gone\nSELECT 1;".to_string(),
            Some(Plant::Defect),
        ),
        _ => planted(i),
    }
}
