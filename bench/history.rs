//! A generated migration history of the shapes real projects write
//! (tables, views, functions, triggers, enums, indexes, constraints, data
//! backfills), shared by the benchmarks that read, check or rehearse long
//! histories. Deterministic: every run writes the same SQL.

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
            format!(
                "CREATE VIEW v{i} AS\n  SELECT id, name, payload ->> 'tag' AS tag FROM {t} WHERE created_at > now() - interval '30 days';"
            ),
            format!("DROP VIEW v{i};"),
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
                 UPDATE {t} SET payload = payload || '{{\"seen\": true}}' WHERE name LIKE 'backfill{i} %';"
            ),
            format!("DELETE FROM {t} WHERE name LIKE 'backfill{i} %';"),
        ),
        8 => (
            format!("ALTER TABLE {t} ADD CONSTRAINT {t}_name_len{i} CHECK (length(name) < 500);"),
            format!("ALTER TABLE {t} DROP CONSTRAINT {t}_name_len{i};"),
        ),
        _ => (
            format!(
                "DO $$\nBEGIN\n  IF NOT EXISTS (SELECT 1 FROM pg_class WHERE relname = '{t}') THEN\n    \
                 RAISE EXCEPTION 'missing {t}';\n  END IF;\nEND\n$$;\nCOMMENT ON TABLE {t} IS 'block {base}';"
            ),
            format!("COMMENT ON TABLE {t} IS NULL;"),
        ),
    }
}
