//! Backstop's own schema, `backstop`, in the target database: the only
//! code that creates, upgrades, reads or writes its tables. Domains call
//! these functions; no other module holds SQL that names `backstop.*`.
//!
//! | table | what it holds |
//! |---|---|
//! | `applied` | the migrations applied, with checksum, who, when, backup and rehearsal ([`applied`]) |
//! | `events` | the append-only audit log ([`events`]) |
//! | `rehearsals` | rehearsal passes keyed by the migrations' checksums ([`rehearsals`]) |
//! | `flags` | the release flags ([`flags`]) |
//! | `freeze`, `role_freeze` | the write freeze of the database and of roles ([`freeze`]) |
//! | `snapshots` | row counts and checksums taken by `verify --snapshot` ([`snapshots`]) |
//! | `watching` | the heartbeat of each running `watch` ([`watching`]) |
//! | `ramps` | each release ramp: its steps, the step it is at and when the next is due, how it ended ([`ramps`]) |
//! | `incidents` | each incident: opened, closed, by what ([`incidents`]); events carry its id |
//! | `drills` | each rollback drill: when, on what backup and release, its steps timed, its outcome and report ([`drills`]) |
//! | `rollouts`, `rollout_waves`, `rollout_targets` | a rollout's plan and each database's state, in the control database ([`rollouts`]) |
//! | `expands` | each expand: its schema of views, what it added and renames, whether it is open ([`expands`]) |
//! | `meta` | the version of this schema |
//!
//! The schema is created by the first command that writes, after it holds
//! the migration lock; commands that only read never create it. It is left
//! out of fingerprints, checksums and round-trip comparisons.

pub mod applied;
pub mod drills;
pub mod events;
pub mod expands;
pub mod flags;
pub mod freeze;
pub mod incidents;
pub mod ramps;
pub mod rehearsals;
pub mod rollouts;
pub mod snapshots;
pub mod watching;

use postgres::GenericClient;

/// The schema's name, for the comparisons that leave it out.
pub const NAME: &str = "backstop";

/// Backstop's schema and tables. PostgreSQL asks for `CREATE` on the
/// database before it looks whether a schema exists, so a role that may
/// not create schemas (an application's role on a managed server, its
/// schema made for it by the database's owner) makes it only where it is
/// missing, and is told how to get it where it may not.
const SCHEMA_SQL: &str = r#"
DO $backstop$
BEGIN
  IF to_regnamespace('backstop') IS NULL THEN
    IF NOT has_database_privilege(current_database(), 'CREATE') THEN
      RAISE EXCEPTION USING
        ERRCODE = 'insufficient_privilege',
        MESSAGE = format('role %s may not create the schema backstop in database %s',
                         current_user, current_database()),
        HINT = format('have the database''s owner (or a superuser) run CREATE SCHEMA backstop '
                      'AUTHORIZATION %I, or GRANT CREATE ON DATABASE %I TO %I, and run again',
                      current_user, current_database(), current_user);
    END IF;
    CREATE SCHEMA backstop;
  END IF;
END
$backstop$;
CREATE TABLE IF NOT EXISTS backstop.applied (
    version        text PRIMARY KEY,
    name           text NOT NULL,
    checksum       text NOT NULL,
    applied_at     timestamptz NOT NULL DEFAULT now(),
    duration_ms    bigint NOT NULL,
    applied_by     text NOT NULL,
    no_transaction boolean NOT NULL DEFAULT false,
    backup_id      text,
    rehearsal_id   text
);
CREATE TABLE IF NOT EXISTS backstop.events (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    kind     text NOT NULL,
    actor    text NOT NULL,
    outcome  text NOT NULL,
    versions text[] NOT NULL DEFAULT '{}',
    details  jsonb NOT NULL DEFAULT '{}'
);
CREATE OR REPLACE FUNCTION backstop.events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'backstop.events is an append-only audit log';
END
$$;
DROP TRIGGER IF EXISTS events_append_only ON backstop.events;
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON backstop.events
    FOR EACH ROW EXECUTE FUNCTION backstop.events_append_only();
CREATE TABLE IF NOT EXISTS backstop.rehearsals (
    id          text PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    key         text NOT NULL,
    ok          boolean NOT NULL,
    full_data   boolean NOT NULL,
    migrations  jsonb NOT NULL,
    duration_ms bigint NOT NULL,
    report      text,
    by          text NOT NULL
);
CREATE INDEX IF NOT EXISTS rehearsals_key_idx ON backstop.rehearsals (key, at DESC);
CREATE TABLE IF NOT EXISTS backstop.meta (
    schema_version integer NOT NULL
);
CREATE TABLE IF NOT EXISTS backstop.flags (
    key             text PRIMARY KEY,
    state           text NOT NULL CHECK (state IN ('ENABLED', 'DISABLED')),
    variants        jsonb NOT NULL,
    default_variant text NOT NULL,
    targeting       jsonb,
    description     text NOT NULL DEFAULT '',
    owner           text,
    release         text NOT NULL,
    code_default    jsonb,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    updated_by      text NOT NULL
);
CREATE INDEX IF NOT EXISTS flags_release_idx ON backstop.flags (release);
CREATE TABLE IF NOT EXISTS backstop.freeze (
    database         text PRIMARY KEY,
    since            timestamptz NOT NULL DEFAULT now(),
    actor            text NOT NULL,
    reason           text NOT NULL,
    read_only_set    boolean NOT NULL,
    previous_setting text
);
CREATE TABLE IF NOT EXISTS backstop.role_freeze (
    role     text NOT NULL,
    since    timestamptz NOT NULL DEFAULT now(),
    actor    text NOT NULL,
    reason   text NOT NULL,
    grants   jsonb NOT NULL
);
-- A frozen role is kept by identity: renamed during its freeze, it is
-- still the one frozen. Its OID means it only in the cluster the freeze
-- was set in (`cluster`: its system identifier, null where hidden).
ALTER TABLE backstop.role_freeze ADD COLUMN IF NOT EXISTS role_oid oid;
ALTER TABLE backstop.role_freeze ADD COLUMN IF NOT EXISTS cluster text;
UPDATE backstop.role_freeze f SET role_oid = r.oid
  FROM pg_roles r WHERE f.role_oid IS NULL AND r.rolname = f.role;
ALTER TABLE backstop.role_freeze DROP CONSTRAINT IF EXISTS role_freeze_pkey;
CREATE UNIQUE INDEX IF NOT EXISTS role_freeze_role_oid ON backstop.role_freeze (role_oid);
CREATE TABLE IF NOT EXISTS backstop.incidents (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    opened_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    opened_by  text NOT NULL,
    closed_at  timestamptz,
    closed_by  text,
    close_note text
);
CREATE UNIQUE INDEX IF NOT EXISTS incidents_one_open ON backstop.incidents ((true))
    WHERE closed_at IS NULL;
ALTER TABLE backstop.events ADD COLUMN IF NOT EXISTS incident bigint;
CREATE INDEX IF NOT EXISTS events_incident_idx ON backstop.events (incident)
    WHERE incident IS NOT NULL;
CREATE TABLE IF NOT EXISTS backstop.watching (
    by       text PRIMARY KEY,
    at       timestamptz NOT NULL,
    triggers integer NOT NULL
);
-- The down Backstop computed and proved for a migration of a layout
-- without downs, kept with its record so a rollback can run it.
ALTER TABLE backstop.applied ADD COLUMN IF NOT EXISTS kept_down text;
-- The transaction that applied it: a down deletes only the rows that
-- transaction inserted where the up skipped conflicts (rows already
-- there stay). Rows recorded before this column have none.
ALTER TABLE backstop.applied ADD COLUMN IF NOT EXISTS xid bigint;
ALTER TABLE backstop.applied ALTER COLUMN xid SET DEFAULT txid_current();
-- What a rollback of it must bring back (JSON, `migrate::expect`): the
-- fingerprint of the schema before and after its up, and what the up
-- touched, read on the copy its down was proved on.
ALTER TABLE backstop.applied ADD COLUMN IF NOT EXISTS undo_to text;
CREATE TABLE IF NOT EXISTS backstop.snapshots (
    name     text PRIMARY KEY,
    taken_at timestamptz NOT NULL,
    taken_by text NOT NULL,
    method   text NOT NULL,
    tables   jsonb NOT NULL
);
-- Rollback drills: the only rows a drill writes to the database it drills.
CREATE TABLE IF NOT EXISTS backstop.drills (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz,
    outcome     text NOT NULL CHECK (outcome IN ('running', 'passed', 'failed', 'interrupted')),
    by          text NOT NULL,
    backup_id   text,
    release     text,
    step        text,
    steps       jsonb NOT NULL DEFAULT '[]',
    duration_ms bigint,
    report      text,
    work_dirs   text[] NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS drills_passed_idx ON backstop.drills (finished_at DESC)
    WHERE outcome = 'passed';
-- Release ramps: one running at most per release. `step` indexes `steps`.
CREATE TABLE IF NOT EXISTS backstop.ramps (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    release    text NOT NULL,
    steps      integer[] NOT NULL CHECK (cardinality(steps) > 0),
    every_ms   bigint NOT NULL CHECK (every_ms > 0),
    step       integer NOT NULL,
    step_at    timestamptz NOT NULL,
    next_at    timestamptz,
    state      text NOT NULL CHECK (state IN ('running', 'done', 'killed', 'aborted')),
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    started_by text NOT NULL,
    reason     text NOT NULL,
    ended_at   timestamptz,
    ended_by   text,
    end_note   text,
    driven_by  text,
    judged_at  timestamptz,
    judgement  jsonb
);
CREATE UNIQUE INDEX IF NOT EXISTS ramps_one_running ON backstop.ramps (release)
    WHERE state = 'running';
-- A rollout of the migrations over many databases, in the control
-- database: its plan (waves, the databases of each) and every database's
-- state, written before and after each step so a killed run resumes.
CREATE TABLE IF NOT EXISTS backstop.rollouts (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    started_by  text NOT NULL,
    state       text NOT NULL
                CHECK (state IN ('running', 'halted', 'done', 'undoing', 'undone')),
    release     jsonb NOT NULL,
    to_version  text,
    reason      text,
    updated_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz
);
CREATE TABLE IF NOT EXISTS backstop.rollout_waves (
    rollout     bigint NOT NULL REFERENCES backstop.rollouts (id),
    idx         integer NOT NULL,
    name        text NOT NULL,
    parallel    integer NOT NULL,
    halt_after  integer NOT NULL,
    bake_ms     bigint NOT NULL,
    state       text NOT NULL
                CHECK (state IN ('pending', 'running', 'baking', 'done', 'halted', 'undone')),
    started_at  timestamptz,
    finished_at timestamptz,
    evidence    jsonb,
    PRIMARY KEY (rollout, idx)
);
CREATE TABLE IF NOT EXISTS backstop.rollout_targets (
    rollout     bigint NOT NULL REFERENCES backstop.rollouts (id),
    name        text NOT NULL,
    wave        integer NOT NULL,
    position    integer NOT NULL,
    kind        text NOT NULL,
    url         text NOT NULL,
    state       text NOT NULL
                CHECK (state IN ('pending', 'running', 'done', 'failed', 'undoing', 'undone')),
    positioned  boolean NOT NULL DEFAULT false,
    before_version text,
    after_version  text,
    applied     text[] NOT NULL DEFAULT '{}',
    error       text,
    undo_error  text,
    attempts    integer NOT NULL DEFAULT 0,
    started_at  timestamptz,
    finished_at timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (rollout, name)
);
CREATE INDEX IF NOT EXISTS rollout_targets_wave_idx ON backstop.rollout_targets (rollout, wave, position);
-- A rollout that expands every database, bakes, then contracts: the schema
-- whose tables the expands serve.
ALTER TABLE backstop.rollouts ADD COLUMN IF NOT EXISTS expand text;
-- An expand: the pending migrations served as a new shape (a schema of
-- views) beside the old one until contract or rollback. One open at most.
CREATE TABLE IF NOT EXISTS backstop.expands (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    schema      text NOT NULL,
    version     text NOT NULL,
    new_schema  text NOT NULL,
    plan        jsonb NOT NULL,
    state       text NOT NULL CHECK (state IN ('expanded', 'contracted', 'rolled_back')),
    started_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    started_by  text NOT NULL,
    ended_at    timestamptz,
    ended_by    text
);
CREATE UNIQUE INDEX IF NOT EXISTS expands_one_open ON backstop.expands ((true))
    WHERE state = 'expanded';
"#;

/// The transaction-level advisory lock that serialises creating the
/// schema (not the migration lock: a freeze during a long migration must
/// not wait for it).
const SCHEMA_LOCK: i64 = 0x6261_636b_7374_6f71; // "backstoq"

/// Bumped whenever the scripts gain something; databases with an older
/// version get the (idempotent) scripts again.
const SCHEMA_VERSION: i32 = 13;

/// Why the schema could not be read or written.
pub type Error = postgres::Error;

/// Creates or upgrades the `backstop` schema; cheap when it is current.
/// Two sessions creating it at once take turns.
pub fn ensure(client: &mut postgres::Client) -> Result<(), Error> {
    if version(client)? >= SCHEMA_VERSION {
        return Ok(());
    }
    let mut tx = client.transaction()?;
    tx.execute("select pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])?;
    if version(&mut tx)? >= SCHEMA_VERSION {
        return Ok(());
    }
    // Made or upgraded as the role that keeps it (the schema's owner, or
    // the database's where there is none yet), whoever runs first: a
    // superuser's `rehearse` must not leave the owner's `migrate` without
    // rights on its own history.
    if let Some(keeper) = keeper_to_become(&mut tx)? {
        tx.batch_execute(&format!("SET LOCAL ROLE {}", crate::pg::quote_ident(&keeper)))?;
    }
    tx.batch_execute(SCHEMA_SQL)?;
    tx.execute("delete from backstop.meta", &[])?;
    tx.execute("insert into backstop.meta (schema_version) values ($1)", &[&SCHEMA_VERSION])?;
    tx.commit()
}

/// The role Backstop's schema belongs to (its owner, or the database's
/// owner before it exists), where the session runs as a superuser other
/// than it; `None` otherwise (a role that is the keeper, or may not become
/// it).
fn keeper_to_become(client: &mut impl GenericClient) -> Result<Option<String>, Error> {
    let row = client.query_one(
        "select k.keeper, k.keeper <> current_user
                and (select rolsuper from pg_roles where rolname = current_user)
           from (select coalesce(
                          (select pg_get_userbyid(nspowner) from pg_namespace where nspname = 'backstop'),
                          (select pg_get_userbyid(datdba) from pg_database
                            where datname = current_database()))::text as keeper) k",
        &[],
    )?;
    let (keeper, become_it): (Option<String>, Option<bool>) = (row.get(0), row.get(1));
    Ok(keeper.filter(|_| become_it == Some(true)))
}

fn version(client: &mut impl GenericClient) -> Result<i32, Error> {
    if !has(client, "backstop.meta")? {
        return Ok(0);
    }
    let sql = "select coalesce(max(schema_version), 0) from backstop.meta";
    Ok(client.query_typed_one(sql, &[])?.get(0))
}

/// Whether the history tables exist (read-only commands do not create them).
pub fn exists(client: &mut impl GenericClient) -> Result<bool, Error> {
    let row = client.query_one(
        "select to_regclass('backstop.applied') is not null and to_regclass('backstop.events') is not null",
        &[],
    )?;
    Ok(row.get(0))
}

/// Whether `table` (schema-qualified) exists.
pub(crate) fn has(client: &mut impl GenericClient, table: &str) -> Result<bool, Error> {
    let sql = "select to_regclass($1) is not null";
    Ok(client.query_typed_one(sql, &[(&table, postgres::types::Type::TEXT)])?.get(0))
}

/// Lets `role` use Backstop's schema and write its tables: on a copy
/// worked on as the source's role (`rehearse::RunsAs`), which the
/// superuser made them on.
pub fn grant_to(client: &mut impl GenericClient, role: &str) -> Result<(), Error> {
    let role = crate::pg::quote_ident(role);
    client.batch_execute(&format!(
        "GRANT USAGE, CREATE ON SCHEMA backstop TO {role};
         GRANT ALL ON ALL TABLES IN SCHEMA backstop TO {role};
         GRANT ALL ON ALL SEQUENCES IN SCHEMA backstop TO {role};"
    ))
}

/// Makes this session exempt from a write freeze: Backstop's own sessions
/// write their history and events while the application's may not.
pub fn exempt(client: &mut impl GenericClient) -> Result<(), Error> {
    client.batch_execute("SET default_transaction_read_only = off")
}

/// Who is running Backstop, as recorded in history and events: the OS
/// user and host, or the name a caller gives (a server's named token).
pub fn actor() -> String {
    let uid = nix::unistd::Uid::current();
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .or_else(|| nix::unistd::User::from_uid(uid).ok().flatten().map(|u| u.name))
        .unwrap_or_else(|| format!("uid {uid}"));
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown-host".into());
    format!("{user}@{host}")
}
