//! Calls of volatile functions in an up (`select cron.schedule(…)`): data
//! changes no schema picture shows. Known pairs get their inverse: pg_cron's
//! `schedule` of a named job is undone by `unschedule` of the name,
//! Supabase Vault's `create_secret` of a named secret by deleting it from
//! `vault.secrets`; the proof compares those tables' rows with the rows
//! before the up. A call that reaches outside the database (pg_net's
//! `net.http_*`, dblink) is never replayed: the replay runs the migration
//! without that statement (`rehearse::outside`), and the down says that
//! what it sent stays sent.
//! Any other call of a volatile function outside `pg_catalog` is named as
//! a change the down cannot put back.

use backstop_sql::calls::{calls, may_call, Call};
use backstop_sql::rewrite::literal;
use postgres::GenericClient;

use super::catalog::Catalog;
use crate::source::Migration;

/// What a call does, as far as a down is concerned.
enum Effect {
    /// Undone by `sql`; the rows of `table` show it.
    Undone { sql: String, table: &'static str },
    /// It reaches outside the database: why.
    Outside(&'static str),
    /// A known function whose call cannot be told apart: why.
    Unknown(String),
    /// Any other function: its volatility decides.
    Other,
}

fn schema_is(c: &Call, schema: &str) -> bool {
    c.schema.as_deref() == Some(schema)
}

fn effect(c: &Call) -> Effect {
    let name = c.name.as_str();
    if let Some(why) = c.reaches_outside() {
        return Effect::Outside(why);
    }
    if schema_is(c, "cron") && matches!(name, "schedule" | "schedule_in_database") {
        // schedule(job_name, schedule, command); schedule(schedule, command) has no name.
        let named = name == "schedule_in_database" || c.args.len() >= 3;
        return match c.arg(0, "job_name").filter(|_| named) {
            Some(job) => Effect::Undone {
                sql: format!("SELECT cron.unschedule({})", literal(job)),
                table: "cron.job",
            },
            None => Effect::Unknown(
                "a job scheduled without a name cannot be told apart: unschedule it by hand".into(),
            ),
        };
    }
    if schema_is(c, "vault") && name == "create_secret" {
        return match c.arg(1, "new_name") {
            Some(secret) => Effect::Undone {
                sql: format!("DELETE FROM vault.secrets WHERE name = {}", literal(secret)),
                table: "vault.secrets",
            },
            None => Effect::Unknown(
                "a secret stored without a name cannot be told apart: delete it by hand".into(),
            ),
        };
    }
    Effect::Other
}

/// The tables whose rows show what the up's known calls did, where the
/// start has them (`cron.job`, `vault.secrets`), as SQL names.
pub(super) fn shown_in(m: &Migration, before: &Catalog) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in m.up.statements.iter().filter(|s| may_call(&s.sql)) {
        for c in calls(&s.sql) {
            if let Effect::Undone { table, .. } = effect(&c) {
                let (schema, name) = table.split_once('.').unwrap_or(("public", table));
                if before.table_named(schema, name).is_some() && !out.iter().any(|t| t == table) {
                    out.push(table.to_string());
                }
            }
        }
    }
    out
}

/// What the down does about the up's calls.
#[derive(Debug, Default)]
pub(super) struct CallsDown {
    /// The inverses, the up's last call first.
    pub statements: Vec<String>,
    /// The tables whose rows the proof compares.
    pub tables: Vec<String>,
    /// What no down puts back: the call and why.
    pub irreversible: Vec<String>,
}

/// Works out what the down does about the calls of `m`'s up, on the copy
/// after the up (which says which functions are volatile).
pub(super) fn plan(
    client: &mut impl GenericClient,
    m: &Migration,
) -> Result<CallsDown, postgres::Error> {
    let mut out = CallsDown::default();
    for s in m.up.statements.iter().filter(|s| may_call(&s.sql)) {
        let place = format!("{}:{}", m.up.path.display(), s.position.line);
        for c in calls(&s.sql) {
            let shown = c.shown();
            match effect(&c) {
                Effect::Undone { sql, table } => {
                    out.statements.push(sql);
                    if !out.tables.iter().any(|t| t == table) {
                        out.tables.push(table.to_string());
                    }
                }
                Effect::Outside(why) => out.irreversible.push(format!(
                    "the call of {shown} ({place}) reaches outside the database ({why}): the \
                     replay did not run it, and no down takes back what it sent"
                )),
                Effect::Unknown(why) => {
                    out.irreversible.push(format!("the call of {shown} ({place}): {why}"))
                }
                Effect::Other => {
                    if volatile(client, &c)? {
                        out.irreversible.push(format!(
                            "the call of {shown} ({place}) runs a volatile function: what it \
                             changed cannot be put back by SQL"
                        ));
                    }
                }
            }
        }
    }
    out.statements.reverse();
    Ok(out)
}

/// Whether `c` calls a volatile function of the user's or an extension's
/// (PostgreSQL's own, in `pg_catalog`, change nothing a down must undo:
/// `set_config`, `now()`; `setval` of a sequence is in the schema picture's
/// care).
fn volatile(client: &mut impl GenericClient, c: &Call) -> Result<bool, postgres::Error> {
    let row = client.query_one(
        "select coalesce(bool_or(n.nspname = 'pg_catalog'), false),
                coalesce(bool_or(p.provolatile = 'v'), false)
           from pg_proc p join pg_namespace n on n.oid = p.pronamespace
          where p.proname = $1
            and case when $2::text is null then n.nspname = any(current_schemas(true))
                     else n.nspname = $2 end",
        &[&c.name, &c.schema],
    )?;
    let (builtin, volatile): (bool, bool) = (row.get(0), row.get(1));
    Ok(volatile && !builtin)
}
