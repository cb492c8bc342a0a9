"""Writes the migration history of a product grown over a few years, for the
check benchmark: the kind of folder `backstop check --offline` meets in a
real project, not a list of risky statements.

It starts from a pulled schema: one long file in pg_dump's style (120
tables with their functions, triggers, keys, grants and comments), as
projects that adopted migrations late do. After it most migrations are
ordinary: tables with an owner column and foreign keys
(their indexes often in a later migration), columns added, indexes, enums
and values added to them, `updated_at` triggers, views, backfills with a
WHERE, a rename now and then, an obsolete table dropped, a concurrent index
in a no-transaction migration. Row level security is used by none of it
(`--rls` makes a project that enables it on its owner tables). Seeded, so
every run writes the same files.

    python3 bench/app_history.py OUT_DIR [COUNT] [--rls] [--folders]

The files are up files in the Supabase CLI's layout
(`supabase/migrations/<timestamp>_name.sql`), as the projects this
benchmark stands for keep them; `--folders` writes Backstop's own
`migrations/<version>_name/up.sql` instead.
"""

import os
import random
import sys

ENTITIES = ["project", "task", "comment", "invoice", "payment", "document", "meeting",
            "note", "label", "webhook", "api_key", "audit_entry", "subscription", "team",
            "invitation", "attachment", "notification", "report", "export", "integration"]


class History:
    def __init__(self, rng, rls):
        self.rng = rng
        self.rls = rls
        self.tables = ["users", "organizations"]
        self.columns = {"users": ["email"], "organizations": ["name"]}
        self.unindexed_fks = []  # (table, column) waiting for their index
        self.enums = []
        self.functions = []
        self.n = 0

    def name(self, base):
        self.n += 1
        return f"{base}s" if f"{base}s" not in self.tables else f"{base}s_{self.n}"

    def pick(self):
        return self.rng.choice(self.tables)

    def create_table(self):
        table = self.name(self.rng.choice(ENTITIES))
        parent = self.rng.choice([t for t in self.tables if t != "users"] or ["organizations"])
        fk = f"{parent.rstrip('s')}_id"
        sql = f"""CREATE TABLE {table} (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  {fk} uuid REFERENCES {parent} (id) ON DELETE SET NULL,
  title text NOT NULL,
  body text,
  status text NOT NULL DEFAULT 'active',
  metadata jsonb NOT NULL DEFAULT '{{}}'::jsonb,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX {table}_user_id_idx ON {table} (user_id);
"""
        if self.rng.random() < 0.5:
            sql += f"CREATE INDEX {table}_{fk}_idx ON {table} ({fk});\n"
        else:
            self.unindexed_fks.append((table, fk))
        if self.rls:
            sql += f"""ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
CREATE POLICY {table}_own ON {table} USING (user_id = current_setting('app.user_id')::uuid);
"""
        self.tables.append(table)
        self.columns[table] = ["title", "body", "status", "metadata"]
        return sql

    def index_later(self):
        if not self.unindexed_fks:
            return self.add_index()
        table, column = self.unindexed_fks.pop(0)
        if table not in self.tables:
            return self.add_index()
        return f"CREATE INDEX {table}_{column}_idx ON {table} ({column});\n"

    def add_column(self):
        table = self.pick()
        col = self.rng.choice(["archived_at", "priority", "external_ref", "color", "position",
                               "due_at", "locale", "source", "score", "slug"]) + f"_{self.n}"
        self.n += 1
        kind = self.rng.choice(["timestamptz", "integer NOT NULL DEFAULT 0", "text",
                                "boolean NOT NULL DEFAULT false", "varchar(64)"])
        self.columns.setdefault(table, []).append(col)
        return f"ALTER TABLE {table} ADD COLUMN {col} {kind};\n"

    def add_index(self):
        table = self.pick()
        col = self.rng.choice(self.columns.get(table) or ["created_at"])
        self.n += 1
        return f"CREATE INDEX {table}_{col}_{self.n}_idx ON {table} ({col});\n"

    def concurrent_index(self):
        table = self.pick()
        self.n += 1
        return (f"-- backstop:no-transaction\n"
                f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {table}_created_{self.n}_idx ON {table} (created_at);\n")

    def enum(self):
        if self.enums and self.rng.random() < 0.6:
            name = self.rng.choice(self.enums)
            self.n += 1
            return f"ALTER TYPE {name} ADD VALUE 'state_{self.n}';\n"
        name = f"{self.rng.choice(ENTITIES)}_state_{self.n}"
        self.n += 1
        self.enums.append(name)
        return f"CREATE TYPE {name} AS ENUM ('draft', 'open', 'done');\n"

    def trigger(self):
        table = self.pick()
        fn = f"set_updated_at_{self.n}"
        self.n += 1
        self.functions.append(fn)
        return f"""CREATE OR REPLACE FUNCTION {fn}() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END;
$$;
CREATE TRIGGER {table}_updated_at_{self.n} BEFORE UPDATE ON {table}
  FOR EACH ROW EXECUTE FUNCTION {fn}();
"""

    def view(self):
        table = self.pick()
        self.n += 1
        return f"""CREATE OR REPLACE VIEW {table}_recent_{self.n} AS
SELECT id, created_at FROM {table} WHERE created_at > now() - interval '30 days';
"""

    def backfill(self):
        table = self.pick()
        return (f"UPDATE {table} SET updated_at = created_at WHERE updated_at IS NULL;\n"
                f"COMMENT ON TABLE {table} IS 'backfilled {self.n}';\n")

    def rename(self):
        table = self.pick()
        cols = self.columns.get(table) or []
        if not cols:
            return self.add_column()
        old = cols.pop()
        new = f"{old}_v{self.n}"
        self.n += 1
        cols.append(new)
        return f"ALTER TABLE {table} RENAME COLUMN {old} TO {new};\n"

    def drop_obsolete(self):
        candidates = [t for t in self.tables if t not in ("users", "organizations")]
        if len(candidates) < 8:
            return self.add_column()
        table = self.rng.choice(candidates[:-3])
        self.tables.remove(table)
        return f"DROP TABLE {table};\n"

    def grant(self):
        return f"GRANT SELECT ON {self.pick()} TO reporting;\n"


def schema_dump(rng, tables):
    """The first migration of a project that started from a pulled schema
    (`supabase db pull`, `pg_dump -s`): one long file in pg_dump's style,
    every table with its owner, keys, indexes, grants and comments."""
    out = ['SET statement_timeout = 0;\nSET lock_timeout = 0;\nSET client_encoding = \'UTF8\';\n'
           'SELECT pg_catalog.set_config(\'search_path\', \'\', false);\n'
           'CREATE EXTENSION IF NOT EXISTS "pgcrypto" WITH SCHEMA "extensions";\n'
           'COMMENT ON SCHEMA "public" IS \'standard public schema\';\n']
    for k in range(tables):
        name = f"{ENTITIES[k % len(ENTITIES)]}_{k}"
        out.append(f'''
CREATE OR REPLACE FUNCTION "public"."touch_{name}"() RETURNS "trigger"
    LANGUAGE "plpgsql"
    AS $$
begin
  new.updated_at = now();
  return new;
end;
$$;

ALTER FUNCTION "public"."touch_{name}"() OWNER TO "postgres";

CREATE TABLE IF NOT EXISTS "public"."{name}" (
    "id" "uuid" DEFAULT "gen_random_uuid"() NOT NULL,
    "user_id" "uuid" NOT NULL,
    "parent_id" "uuid",
    "title" "text" NOT NULL,
    "status" "text" DEFAULT 'active'::"text" NOT NULL,
    "position" integer DEFAULT 0 NOT NULL,
    "metadata" "jsonb" DEFAULT '{{}}'::"jsonb" NOT NULL,
    "created_at" timestamp with time zone DEFAULT "now"() NOT NULL,
    "updated_at" timestamp with time zone DEFAULT "now"() NOT NULL
);

ALTER TABLE "public"."{name}" OWNER TO "postgres";

COMMENT ON TABLE "public"."{name}" IS 'What the app keeps about {name}.';

ALTER TABLE ONLY "public"."{name}"
    ADD CONSTRAINT "{name}_pkey" PRIMARY KEY ("id");

CREATE INDEX "{name}_created_at_idx" ON "public"."{name}" USING "btree" ("created_at" DESC);

CREATE OR REPLACE TRIGGER "{name}_touch" BEFORE UPDATE ON "public"."{name}" FOR EACH ROW EXECUTE FUNCTION "public"."touch_{name}"();

ALTER TABLE ONLY "public"."{name}"
    ADD CONSTRAINT "{name}_user_id_fkey" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE CASCADE;

GRANT ALL ON TABLE "public"."{name}" TO "anon";
GRANT ALL ON TABLE "public"."{name}" TO "authenticated";
GRANT ALL ON TABLE "public"."{name}" TO "service_role";
GRANT ALL ON FUNCTION "public"."touch_{name}"() TO "anon";
GRANT ALL ON FUNCTION "public"."touch_{name}"() TO "authenticated";
GRANT ALL ON FUNCTION "public"."touch_{name}"() TO "service_role";
''')
        if rng.random() < 0.6:
            out.append(f'CREATE INDEX "{name}_user_id_idx" ON "public"."{name}" USING "btree" ("user_id");\n')
    out.append('RESET ALL;\n')
    return "".join(out)


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    rls = "--rls" in sys.argv
    out = args[0]
    count = int(args[1]) if len(args) > 1 else 280
    rng = random.Random(7)
    h = History(rng, rls)
    shapes = [(h.create_table, 22), (h.add_column, 18), (h.add_index, 10), (h.index_later, 8),
              (h.enum, 6), (h.trigger, 6), (h.view, 5), (h.backfill, 8), (h.rename, 3),
              (h.drop_obsolete, 2), (h.concurrent_index, 3), (h.grant, 2)]
    weights = [w for _, w in shapes]
    folders = "--folders" in sys.argv
    migrations = os.path.join(out, "migrations" if folders else "supabase/migrations")
    os.makedirs(migrations, exist_ok=True)
    with open(os.path.join(out, "backstop.toml"), "w") as f:
        f.write(f'[migrations]\ndir = "{os.path.relpath(migrations, out)}"\nprotected_tables = ["users"]\n')
    first = """CREATE TABLE users (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), email text NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE organizations (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), name text NOT NULL,
  owner_id uuid NOT NULL REFERENCES users (id), created_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX organizations_owner_id_idx ON organizations (owner_id);
"""
    statements = 0
    for i in range(1, count + 1):
        if i == 1:
            up = first + schema_dump(rng, 120)
        else:
            shape = rng.choices([s for s, _ in shapes], weights)[0]
            up = shape()
            if not up.startswith("-- backstop:no-transaction") and rng.random() < 0.35:
                extra = rng.choices([s for s, _ in shapes[:9]], weights[:9])[0]()
                if not extra.startswith("-- backstop:no-transaction"):
                    up += extra
        statements += up.count(";\n")
        stem = f"{20230101000000 + i * 100:014d}_change_{i}"
        if folders:
            os.makedirs(os.path.join(migrations, stem), exist_ok=True)
            path = os.path.join(migrations, stem, "up.sql")
        else:
            path = os.path.join(migrations, f"{stem}.sql")
        with open(path, "w") as f:
            f.write(up)
    print(f"history: {count} migrations, about {statements} statements, in {out}")


if __name__ == "__main__":
    main()
