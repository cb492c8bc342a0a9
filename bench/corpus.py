"""Generates a corpus of realistic migrations for the check benchmark.

Each migration is a folder VERSION_name/ with up.sql (and most with
down.sql), in the shapes real projects write: tables with foreign keys,
indexes and RLS, views, functions with dollar quoting, triggers, enums, DO
blocks, backfills, and the risky statements of every rule family. Seeded,
so every run writes the same files.
"""

import os
import random
import sys

TABLES = ["orders", "invoices", "payments", "shipments", "products", "carts", "reviews",
          "tickets", "messages", "sessions", "events", "subscriptions", "coupons", "addresses"]


def t(rng):
    return rng.choice(TABLES)


def new_table(rng, i):
    name = f"{t(rng)}_{i}"
    owner = rng.choice(["user_id", "tenant_id", "account_id"])
    rls = rng.random() < 0.6
    index_fk = rng.random() < 0.7
    sql = f"""-- A new table for feature #{i}.
CREATE TABLE IF NOT EXISTS {name} (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  {owner} bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  status text NOT NULL DEFAULT 'new',
  payload jsonb NOT NULL DEFAULT '{{}}'::jsonb,
  created_at timestamptz NOT NULL DEFAULT now()
);
"""
    if index_fk:
        sql += f"CREATE INDEX IF NOT EXISTS {name}_{owner}_idx ON {name} ({owner});\n"
    sql += f"CREATE INDEX IF NOT EXISTS {name}_created_idx ON {name} (created_at DESC) WHERE status <> 'done';\n"
    if rls:
        sql += f"""ALTER TABLE {name} ENABLE ROW LEVEL SECURITY;
CREATE POLICY {name}_select_own ON {name} FOR SELECT
  USING ({owner} = (SELECT id FROM users WHERE clerk_id = current_setting('request.jwt.claims', true)::jsonb ->> 'sub'));
"""
    return sql, f"DROP TABLE IF EXISTS {name};\n"


def view(rng, i):
    a = t(rng)
    return (f"""CREATE OR REPLACE VIEW {a}_summary_{i} AS
SELECT date_trunc('day', created_at) AS day, count(*) AS n, sum(CASE WHEN status = 'paid' THEN 1 ELSE 0 END) AS paid
  FROM {a}
 GROUP BY 1;
CREATE MATERIALIZED VIEW IF NOT EXISTS {a}_daily_{i} AS SELECT * FROM {a}_summary_{i} WITH NO DATA;
""", f"DROP MATERIALIZED VIEW IF EXISTS {a}_daily_{i};\nDROP VIEW IF EXISTS {a}_summary_{i};\n")


def function(rng, i):
    a = t(rng)
    definer = rng.random() < 0.4
    sec = "SECURITY DEFINER" if definer else "SECURITY INVOKER"
    path = "" if (definer and rng.random() < 0.5) else "SET search_path = pg_catalog, public"
    return (f"""CREATE OR REPLACE FUNCTION touch_{a}_{i}() RETURNS trigger
  LANGUAGE plpgsql {sec} {path}
AS $body$
BEGIN
  -- semicolons; 'quotes' and $$ inside the body are fine
  NEW.updated_at := now();
  IF NEW.status = 'cancelled' THEN
    RAISE NOTICE 'order % cancelled; keeping it', NEW.id;
  END IF;
  RETURN NEW;
END;
$body$;
CREATE TRIGGER touch_{a}_{i} BEFORE UPDATE ON {a}
  FOR EACH ROW EXECUTE FUNCTION touch_{a}_{i}();
""", f"DROP TRIGGER IF EXISTS touch_{a}_{i} ON {a};\nDROP FUNCTION IF EXISTS touch_{a}_{i}();\n")


def enum(rng, i):
    if rng.random() < 0.5:
        return (f"CREATE TYPE ticket_state_{i} AS ENUM ('open', 'pending', 'closed');\n",
                f"DROP TYPE IF EXISTS ticket_state_{i};\n")
    where = rng.choice(["", " BEFORE 'closed'"])
    return (f"ALTER TYPE order_status ADD VALUE IF NOT EXISTS 'on_hold_{i}'{where};\n", None)


def do_block(rng, i):
    a = t(rng)
    return (f"""DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_tables WHERE tablename = '{a}') THEN
    RAISE EXCEPTION 'ABORT: {a} table not found';
  END IF;
END $$;
ALTER TABLE {a} ADD COLUMN IF NOT EXISTS note_{i} text;
""", f"ALTER TABLE {a} DROP COLUMN IF EXISTS note_{i};\n")


def add_column(rng, i):
    a = t(rng)
    kind = rng.choice(["volatile", "constant", "not_null", "serial", "plain"])
    col = f"c{i}"
    stmt = {
        "volatile": f"ALTER TABLE {a} ADD COLUMN {col} uuid DEFAULT gen_random_uuid();",
        "constant": f"ALTER TABLE {a} ADD COLUMN {col} text NOT NULL DEFAULT 'x';",
        "not_null": f"ALTER TABLE {a} ADD COLUMN {col} integer NOT NULL;",
        "serial": f"ALTER TABLE {a} ADD COLUMN {col} bigserial;",
        "plain": f"ALTER TABLE {a} ADD COLUMN {col} timestamptz;",
    }[kind]
    return stmt + "\n", f"ALTER TABLE {a} DROP COLUMN {col};\n"


def index(rng, i):
    a = t(rng)
    kind = rng.choice(["plain", "concurrent", "concurrent_no_marker", "unique"])
    name = f"{a}_col{i}_idx"
    if kind == "plain":
        return f"CREATE INDEX {name} ON {a} (created_at);\n", f"DROP INDEX {name};\n"
    if kind == "unique":
        return f"CREATE UNIQUE INDEX IF NOT EXISTS {name} ON {a} (lower(email));\n", f"DROP INDEX IF EXISTS {name};\n"
    marker = "-- backstop:no-transaction\n" if kind == "concurrent" else ""
    return (f"{marker}CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {a} (status, created_at);\n",
            f"{marker}DROP INDEX CONCURRENTLY IF EXISTS {name};\n")


def constraint(rng, i):
    a, b = t(rng), t(rng)
    kind = rng.choice(["fk", "fk_not_valid", "check", "unique", "set_not_null", "validate"])
    up = {
        "fk": f"ALTER TABLE {a} ADD CONSTRAINT {a}_{b}_{i}_fk FOREIGN KEY ({b}_id) REFERENCES {b} (id);",
        "fk_not_valid": f"ALTER TABLE {a} ADD CONSTRAINT {a}_{b}_{i}_fk FOREIGN KEY ({b}_id) REFERENCES {b} (id) NOT VALID;",
        "check": f"ALTER TABLE {a} ADD CONSTRAINT {a}_amount_{i}_check CHECK (amount >= 0);",
        "unique": f"ALTER TABLE {a} ADD CONSTRAINT {a}_ref_{i}_key UNIQUE (reference);",
        "set_not_null": f"ALTER TABLE {a} ALTER COLUMN reference SET NOT NULL;",
        "validate": f"ALTER TABLE {a} VALIDATE CONSTRAINT {a}_{b}_fk;",
    }[kind]
    return up + "\n", None if kind == "validate" else f"ALTER TABLE {a} DROP CONSTRAINT IF EXISTS {a}_{b}_{i}_fk;\n"


def type_change(rng, i):
    a = t(rng)
    new = rng.choice(["bigint", "varchar(64)", "text", "numeric(12,2)", "integer"])
    return f"ALTER TABLE {a} ALTER COLUMN amount TYPE {new};\n", f"ALTER TABLE {a} ALTER COLUMN amount TYPE numeric;\n"


def data_loss(rng, i):
    a = t(rng)
    kind = rng.choice(["drop_table", "drop_column", "truncate", "delete_all", "update_all", "delete_some", "protected"])
    up = {
        "drop_table": f"DROP TABLE IF EXISTS legacy_{a}_{i} CASCADE;",
        "drop_column": f"ALTER TABLE {a} DROP COLUMN legacy_{i};",
        "truncate": f"TRUNCATE {a} CASCADE;",
        "delete_all": f"DELETE FROM {a};",
        "update_all": f"UPDATE {a} SET status = 'archived';",
        "delete_some": f"DELETE FROM {a} WHERE created_at < now() - interval '2 years';",
        "protected": "DELETE FROM users WHERE email LIKE '%@test.invalid';",
    }[kind]
    return up + "\n", None


def compat(rng, i):
    a = t(rng)
    kind = rng.choice(["rename_table", "rename_column", "drop_not_null", "rename_with_view"])
    up = {
        "rename_table": f"ALTER TABLE {a} RENAME TO {a}_v{i};",
        "rename_column": f"ALTER TABLE {a} RENAME COLUMN status TO state_{i};",
        "drop_not_null": f"ALTER TABLE {a} ALTER COLUMN status DROP NOT NULL;",
        "rename_with_view": f"ALTER TABLE {a} RENAME TO {a}_v{i};\nCREATE VIEW {a} AS SELECT * FROM {a}_v{i};",
    }[kind]
    return up + "\n", None


def misc(rng, i):
    a = t(rng)
    kind = rng.choice(["grant_public", "grant_role", "extension", "tx", "vacuum", "backfill"])
    up = {
        "grant_public": f"GRANT SELECT ON {a} TO PUBLIC;",
        "grant_role": f"GRANT SELECT, INSERT ON {a} TO app_writer;",
        "extension": f"CREATE EXTENSION IF NOT EXISTS {rng.choice(['vector', 'pg_trgm', 'citext', 'postgis'])};",
        "tx": f"BEGIN;\nALTER TABLE {a} ADD COLUMN IF NOT EXISTS flag_{i} boolean;\nCOMMIT;",
        "vacuum": f"-- backstop:no-transaction\nVACUUM FULL {a};",
        "backfill": f"UPDATE {a} SET status = 'new' WHERE status IS NULL AND id BETWEEN {i * 1000} AND {i * 1000 + 999};",
    }[kind]
    return up + "\n", None


SHAPES = [new_table, new_table, view, function, enum, do_block, add_column, index, constraint,
          type_change, data_loss, compat, misc]


def main():
    out, count = sys.argv[1], int(sys.argv[2])
    rng = random.Random(42)
    migrations = os.path.join(out, "migrations")
    os.makedirs(migrations, exist_ok=True)
    with open(os.path.join(out, "backstop.toml"), "w") as f:
        f.write('[migrations]\ndir = "migrations"\nprotected_tables = ["users"]\n')
    statements = 0
    for i in range(1, count + 1):
        parts, downs = [], []
        for _ in range(rng.randint(1, 3)):
            up, down = rng.choice(SHAPES)(rng, i * 10 + len(parts))
            parts.append(up)
            if down:
                downs.append(down)
        # A no-transaction marker must be the first line of the file.
        marked = [p for p in parts if p.startswith("-- backstop:no-transaction")]
        if marked:
            parts = marked[:1]
        up = "".join(parts)
        statements += up.count(";")
        folder = os.path.join(migrations, f"{20250101000000 + i:014d}_change_{i}")
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "up.sql"), "w") as f:
            f.write(up)
        if downs and rng.random() < 0.85:
            with open(os.path.join(folder, "down.sql"), "w") as f:
                f.write("".join(reversed(downs)))
    print(f"corpus: {count} migrations, about {statements} statements, in {out}")


if __name__ == "__main__":
    main()
