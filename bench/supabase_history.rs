//! A Supabase project's history, generated in the layout of each tool a
//! Supabase project migrates with (the Supabase CLI, Prisma, Drizzle) at
//! the project's root, written on the platform of
//! `crates/cli/tests/fixtures/platform/supabase_full.sql` ([`PLATFORM`]),
//! which it uses and never creates: profiles that reference `auth.users`,
//! a `security definer` trigger function on `auth.users`, buckets inserted
//! with `on conflict do nothing` and policies on `storage.objects` using
//! `storage.foldername`, tables added to `supabase_realtime`, grants to
//! `anon` and `authenticated`, policies on `auth.uid()`, unqualified
//! `uuid_generate_v4()` and `vector(3)` found through the database's
//! search_path, enums and `ALTER TYPE … ADD VALUE` used by a later
//! migration, renames, views on views, plpgsql, seed rows with their keys
//! and `UPDATE` backfills. Deterministic: every run writes the same SQL.
//! Shared by the platform tests and the `downs` benchmark.

use std::fmt::Write as _;
use std::path::Path;

/// The platform the history is written on (see the file's own header).
pub const PLATFORM: &str = include_str!("../crates/cli/tests/fixtures/platform/supabase_full.sql");

/// Migrations before the repeated blocks: the project's first features.
const PROLOGUE: usize = 10;

/// The tool whose layout the history is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `supabase/migrations/<timestamp>_<name>.sql`.
    Supabase,
    /// `prisma/migrations/<timestamp>_<name>/migration.sql`.
    Prisma,
    /// `drizzle/<idx>_<name>.sql` with `drizzle/meta/_journal.json`.
    Drizzle,
}

impl Layout {
    /// The name `backstop status` gives the layout.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Supabase => "supabase",
            Layout::Prisma => "prisma",
            Layout::Drizzle => "drizzle",
        }
    }
}

/// What the platform's database offers beyond stock PostgreSQL.
#[derive(Debug, Clone, Copy)]
pub struct Platform {
    /// `uuid-ossp` in `extensions`: `uuid_generate_v4()` for keys
    /// (otherwise PostgreSQL's own `gen_random_uuid()`).
    pub uuid_ossp: bool,
    /// pgvector in `extensions`: `vector(3)` columns and an HNSW index.
    pub vector: bool,
}

impl Platform {
    /// What the connected database has, as the fixture made it.
    pub fn of(db: &mut postgres::Client) -> Platform {
        let has = |db: &mut postgres::Client, name: &str| -> bool {
            db.query_one("select exists (select from pg_extension where extname = $1)", &[&name])
                .map(|r| r.get(0))
                .unwrap_or(false)
        };
        Platform { uuid_ossp: has(db, "uuid-ossp"), vector: has(db, "vector") }
    }

    fn uuid(self) -> &'static str {
        if self.uuid_ossp {
            "uuid_generate_v4()"
        } else {
            "gen_random_uuid()"
        }
    }
}

/// One migration of the history.
#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    pub statements: Vec<String>,
    /// An `UPDATE` of rows that were there: no SQL puts them back.
    pub backfill: bool,
}

fn step(name: &str, statements: Vec<String>) -> Step {
    Step { name: name.to_string(), statements, backfill: false }
}

/// Migration `i` of the history.
pub fn migration(i: usize, platform: Platform) -> Step {
    if i < PROLOGUE {
        return prologue(i, platform);
    }
    let j = i - PROLOGUE;
    block(j / 10, j % 10, platform)
}

/// The project's first features, each on the platform.
fn prologue(i: usize, platform: Platform) -> Step {
    let uuid = platform.uuid();
    match i {
        0 => step("profiles", vec![
            "create table public.profiles (\n  id uuid not null references auth.users (id) on delete cascade,\n  \
             updated_at timestamp with time zone,\n  username text unique,\n  full_name text,\n  \
             avatar_url text,\n  website text,\n\n  primary key (id),\n  \
             constraint username_length check (char_length(username) >= 3)\n)".into(),
            "alter table public.profiles enable row level security".into(),
            "create policy \"Public profiles are viewable by everyone.\" on profiles\n  for select using (true)".into(),
            "create policy \"Users can insert their own profile.\" on profiles\n  for insert with check ((select auth.uid()) = id)".into(),
            "create policy \"Users can update own profile.\" on profiles\n  for update using ((select auth.uid()) = id)".into(),
        ]),
        1 => step("handle_new_user", vec![
            "create function public.handle_new_user()\nreturns trigger\nset search_path = ''\nas $$\nbegin\n  \
             insert into public.profiles (id, full_name, avatar_url)\n  \
             values (new.id, new.raw_user_meta_data->>'full_name', new.raw_user_meta_data->>'avatar_url');\n  \
             return new;\nend;\n$$ language plpgsql security definer".into(),
            "create trigger on_auth_user_created\n  after insert on auth.users\n  \
             for each row execute procedure public.handle_new_user()".into(),
        ]),
        2 => step("avatars_bucket", vec![
            "insert into storage.buckets (id, name, public)\n  values ('avatars', 'avatars', true)\n  on conflict do nothing".into(),
            "create policy \"Avatar images are publicly accessible.\" on storage.objects\n  \
             for select using (bucket_id = 'avatars')".into(),
            "create policy \"Anyone can upload an avatar.\" on storage.objects\n  \
             for insert with check (bucket_id = 'avatars')".into(),
            "create policy \"Users update their own avatar folder\" on storage.objects\n  \
             for update to authenticated\n  \
             using (bucket_id = 'avatars' and (select auth.uid()::text) = (storage.foldername(name))[1])".into(),
        ]),
        3 => step("plans", vec![
            "create table public.plans (\n  id text primary key,\n  name text not null,\n  \
             price_cents integer not null default 0,\n  features jsonb not null default '{}'\n)".into(),
            "alter table public.plans enable row level security".into(),
            "create policy \"Plans are public\" on public.plans for select to anon, authenticated using (true)".into(),
        ]),
        4 => step("seed_plans", vec![
            "insert into plans values ('free', 'Free', 0, '{}'), ('pro', 'Pro', 1900, '{\"seats\": 5}')".into(),
        ]),
        5 => step("subscriptions", vec![
            format!(
                "create table public.subscriptions (\n  id uuid primary key default {uuid},\n  \
                 user_id uuid not null references auth.users on delete cascade,\n  \
                 plan_id text not null default 'free' references public.plans (id),\n  \
                 status text not null default 'active',\n  created_at timestamptz not null default now()\n)"
            ),
            "alter table public.subscriptions enable row level security".into(),
            "create policy \"Users see their subscription\" on public.subscriptions\n  \
             for select to authenticated using ((select auth.uid()) = user_id)".into(),
            "alter publication supabase_realtime add table public.subscriptions".into(),
        ]),
        6 => step("user_roles", vec![
            "create type public.app_role as enum ('admin', 'moderator')".into(),
            "create table public.user_roles (\n  id bigint generated by default as identity primary key,\n  \
             user_id uuid references auth.users on delete cascade not null,\n  \
             role app_role not null,\n  unique (user_id, role)\n)".into(),
            "create function public.custom_access_token_hook(event jsonb)\nreturns jsonb\nlanguage plpgsql\n\
             stable\nas $$\n  declare\n    claims jsonb;\n    user_role public.app_role;\n  begin\n    \
             select role into user_role from public.user_roles where user_id = (event->>'user_id')::uuid;\n    \
             claims := event->'claims';\n    if user_role is not null then\n      \
             claims := jsonb_set(claims, '{user_role}', to_jsonb(user_role));\n    else\n      \
             claims := jsonb_set(claims, '{user_role}', 'null');\n    end if;\n    \
             event := jsonb_set(event, '{claims}', claims);\n    return event;\n  end;\n$$".into(),
            "grant usage on schema public to supabase_auth_admin".into(),
            "grant execute on function public.custom_access_token_hook to supabase_auth_admin".into(),
            "revoke execute on function public.custom_access_token_hook from authenticated, anon, public".into(),
            "grant all on table public.user_roles to supabase_auth_admin".into(),
            "revoke all on table public.user_roles from authenticated, anon, public".into(),
        ]),
        7 => documents(platform),
        8 => step("app_role_editor", vec!["alter type public.app_role add value 'editor'".into()]),
        _ => Step {
            name: "profiles_bio".into(),
            statements: vec![
                "alter table public.profiles add column bio text not null default ''".into(),
                "update public.profiles set website = 'https://' || website where website not like 'http%'".into(),
            ],
            backfill: true,
        },
    }
}

/// Documents with embeddings: pgvector's type and operators, unqualified.
fn documents(platform: Platform) -> Step {
    let uuid = platform.uuid();
    let mut s = Vec::new();
    if platform.vector {
        s.push(format!(
            "create table public.documents (\n  id uuid primary key default {uuid},\n  \
             owner_id uuid references auth.users (id) default auth.uid(),\n  content text,\n  \
             embedding vector(3)\n)"
        ));
        s.push("create index documents_embedding_idx on public.documents using hnsw (embedding vector_cosine_ops)".into());
        s.push(
            "create function public.match_documents(query_embedding vector(3), match_count int)\n\
             returns table (id uuid, content text, similarity float)\nlanguage sql stable\nas $$\n  \
             select documents.id, documents.content, 1 - (documents.embedding <=> query_embedding) as similarity\n  \
             from documents\n  order by documents.embedding <=> query_embedding\n  limit match_count;\n$$"
                .into(),
        );
    } else {
        s.push(format!(
            "create table public.documents (\n  id uuid primary key default {uuid},\n  \
             owner_id uuid references auth.users (id) default auth.uid(),\n  content text,\n  \
             embedding real[]\n)"
        ));
    }
    s.push("alter table public.documents enable row level security".into());
    s.push(
        "create policy \"Owners read their documents\" on public.documents\n  \
         for select to authenticated using (owner_id = (select auth.uid()))"
            .into(),
    );
    step("documents", s)
}

/// Migration `k` of block `b`: one table's life, ten migrations long.
fn block(b: usize, k: usize, platform: Platform) -> Step {
    let t = format!("items_{b}");
    let uuid = platform.uuid();
    let (kind, statements) = match k {
        0 => {
            let mut s = vec![format!(
                "create table public.{t} (\n  id uuid primary key default {uuid},\n  \
                 owner_id uuid default auth.uid() references auth.users (id) on delete cascade,\n  \
                 name text not null,\n  note text,\n  created_at timestamptz not null default now(),\n  \
                 updated_at timestamptz\n)"
            )];
            if b > 0 {
                s.push(format!(
                    "alter table public.{t} add column parent_id uuid references public.archive_{} (id) on delete set null",
                    b - 1
                ));
            }
            ("create", s)
        }
        1 => {
            let mut s = vec![format!("alter table public.{t} add column flagged boolean not null default false")];
            if b > 0 {
                s.push(format!("update public.archive_{} set flagged = true where title like 'first%'", b - 1));
            }
            ("flag", s)
        }
        2 => ("state", vec![
            format!("create type public.state_{b} as enum ('open', 'closed')"),
            format!("alter table public.{t} add column state state_{b} not null default 'open'"),
        ]),
        3 => ("archived_state", vec![format!("alter type public.state_{b} add value 'archived'")]),
        4 => ("views", vec![
            format!(
                "create view public.open_{t} with (security_invoker = on) as\n  \
                 select id, name, state from public.{t} where state in ('open', 'archived')"
            ),
            format!("create view public.open_{t}_names with (security_invoker = on) as select name from public.open_{t}"),
        ]),
        5 => ("touch", vec![
            format!(
                "create function public.touch_{b}() returns trigger language plpgsql as $$\nbegin\n  \
                 new.updated_at := now();\n  return new;\nend;\n$$"
            ),
            format!("create trigger {t}_touch before update on public.{t} for each row execute function public.touch_{b}()"),
        ]),
        6 => ("rename", vec![format!("alter table public.{t} rename column name to title")]),
        7 => {
            let mut s = vec![format!("alter table public.{t} drop column note")];
            if platform.vector && b.is_multiple_of(3) {
                s.push(format!("alter table public.{t} add column embedding vector(3)"));
            }
            ("drop_note", s)
        }
        8 => ("rls", vec![
            format!("alter table public.{t} enable row level security"),
            format!(
                "create policy \"{t} owners\" on public.{t} for all to authenticated\n  \
                 using ((select auth.uid()) = owner_id)\n  with check ((select auth.uid()) = owner_id)"
            ),
            format!("grant select, insert, update on public.{t} to authenticated"),
            format!("grant select on public.open_{t} to anon"),
            format!("alter publication supabase_realtime add table public.{t}"),
        ]),
        _ => ("archive", vec![
            format!("alter table public.{t} rename to archive_{b}"),
            format!("create index archive_{b}_created_at_idx on public.archive_{b} (created_at)"),
            format!(
                "insert into public.archive_{b} (id, title) values ('00000000-0000-4000-8000-{b:012}', 'first of block {b}')"
            ),
        ]),
    };
    Step { name: format!("{kind}_{b}"), statements, backfill: k == 1 && b > 0 }
}

/// A 14-digit timestamp for migration `i`, one minute apart from 2024-01-01.
pub fn stamp(i: usize) -> String {
    let (day, hour, minute) = (1 + i / 1440, (i / 60) % 24, i % 60);
    format!("2024{:02}{:02}{hour:02}{minute:02}00", 1 + (day - 1) / 28, 1 + (day - 1) % 28)
}

/// Writes migrations `0..n` at the project `root` in `layout`, with the
/// files the tool keeps beside them; returns the steps.
pub fn write(root: &Path, layout: Layout, n: usize, platform: Platform) -> Vec<Step> {
    let steps: Vec<Step> = (0..n).map(|i| migration(i, platform)).collect();
    let put = |rel: &str, text: &str| {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    let mut journal = String::new();
    for (i, s) in steps.iter().enumerate() {
        let name = &s.name;
        match layout {
            Layout::Supabase => put(
                &format!("supabase/migrations/{}_{name}.sql", stamp(i)),
                &format!("-- {name}\n{};\n", s.statements.join(";\n\n")),
            ),
            Layout::Prisma => put(
                &format!("prisma/migrations/{}_{name}/migration.sql", stamp(i)),
                &s.statements
                    .iter()
                    .map(|x| format!("-- Step\n{x};\n"))
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
            Layout::Drizzle => {
                put(
                    &format!("drizzle/{i:04}_{name}.sql"),
                    &format!("{};", s.statements.join(";--> statement-breakpoint\n")),
                );
                let comma = if i == 0 { "" } else { "," };
                let when = 1_704_067_200_000u64 + i as u64 * 60_000;
                let _ = write!(
                    journal,
                    "{comma}\n    {{\n      \"idx\": {i},\n      \"version\": \"7\",\n      \
                     \"when\": {when},\n      \"tag\": \"{i:04}_{name}\",\n      \"breakpoints\": true\n    }}"
                );
            }
        }
    }
    match layout {
        Layout::Supabase => {
            put("supabase/config.toml", "project_id = \"platform-history\"\n");
            put(
                "supabase/seed.sql",
                "insert into public.plans values ('team', 'Team', 4900, '{}');\n",
            );
        }
        Layout::Prisma => {
            put("prisma/migrations/migration_lock.toml", "provider = \"postgresql\"\n");
            put(
                "prisma/schema.prisma",
                "datasource db {\n  provider  = \"postgresql\"\n  url       = env(\"DATABASE_URL\")\n  \
                 directUrl = env(\"DIRECT_URL\")\n}\n",
            );
        }
        Layout::Drizzle => {
            put(
                "drizzle.config.ts",
                "import { defineConfig } from 'drizzle-kit';\n\nexport default defineConfig({\n  \
                 dialect: 'postgresql',\n  schema: './src/db/schema.ts',\n  out: './drizzle',\n  \
                 schemaFilter: ['public'],\n  dbCredentials: { url: process.env.DATABASE_URL! },\n});\n",
            );
            put(
                "drizzle/meta/_journal.json",
                &format!(
                    "{{\n  \"version\": \"7\",\n  \"dialect\": \"postgresql\",\n  \"entries\": [{journal}\n  ]\n}}\n"
                ),
            );
        }
    }
    steps
}
