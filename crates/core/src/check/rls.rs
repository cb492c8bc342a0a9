//! Live facts for the row level security rules (BS505 to BS509): who owns
//! the table, whether its row level security is on and forced, which
//! policies it keeps, which columns it has, and whether its owner is a
//! role the application connects as and is held to policies at all.
//! Read-only.

use backstop_lint::{Code, Finding, Impact, Probability, RelationName};
use postgres::GenericClient;

use super::{CheckError, Settings};
use crate::pg::{db, quote_qualified};

fn name(t: &RelationName) -> String {
    backstop_sql::stmt::display_table(t)
}

/// What the catalog says about a table's row level security.
struct Facts {
    on: bool,
    forced: bool,
    owner: String,
    policies: Vec<String>,
}

/// The facts of `table`, where it exists.
fn facts(
    client: &mut impl GenericClient,
    table: &RelationName,
) -> Result<Option<Facts>, CheckError> {
    let row = client
        .query_opt(
            "select c.relrowsecurity, c.relforcerowsecurity, pg_get_userbyid(c.relowner)::text,
                    array(select p.polname::text from pg_policy p
                           where p.polrelid = c.oid order by p.polname)
               from pg_class c where c.oid = to_regclass($1)",
            &[&quote_qualified(table.schema.as_deref(), &table.name)],
        )
        .map_err(db("reading the table's row level security"))?;
    Ok(row.map(|r| Facts { on: r.get(0), forced: r.get(1), owner: r.get(2), policies: r.get(3) }))
}

/// A finding about `table`'s policies or row level security, with what
/// the database says: whether it is kept.
pub(super) fn finding(
    client: &mut impl GenericClient,
    f: &mut Finding,
    table: &RelationName,
) -> Result<bool, CheckError> {
    let Some(live) = facts(client, table)? else { return Ok(true) };
    let t = name(table);
    match f.code {
        Code::BS505 if !live.policies.is_empty() => Ok(false),
        Code::BS505 => {
            f.facts.push(format!("{t} has no policy on the server either (owner {})", live.owner));
            Ok(true)
        }
        Code::BS508 if !live.on => Ok(false),
        Code::BS508 => {
            f.facts.push(format!(
                "{t} has row level security on today, with {} polic(ies)",
                live.policies.len()
            ));
            Ok(true)
        }
        _ => Ok(true),
    }
}

/// A dropped policy (BS507), judged by what its table keeps: whether the
/// finding is kept.
pub(super) fn dropped(
    client: &mut impl GenericClient,
    f: &mut Finding,
    table: &RelationName,
    policy: &str,
) -> Result<bool, CheckError> {
    let Some(live) = facts(client, table)? else { return Ok(true) };
    let t = name(table);
    if !live.policies.iter().any(|q| q == policy) {
        // Not on the server: the drop does nothing (IF EXISTS) or fails.
        return Ok(false);
    }
    let others: Vec<&String> = live.policies.iter().filter(|p| *p != policy).collect();
    if !live.on {
        f.rate(Probability::Low, Impact::Low);
        f.facts.push(format!("row level security is off on {t}: its policies apply to no one"));
    } else if others.is_empty() {
        f.rate(Probability::High, Impact::High);
        f.facts.push(format!(
            "{t} keeps no other policy: every role but its owner ({}) and those with BYPASSRLS \
             reads no row of it",
            live.owner
        ));
    } else {
        let names: Vec<&str> = others.iter().map(|s| s.as_str()).collect();
        f.facts.push(format!("{t} keeps {} other polic(ies): {}", others.len(), names.join(", ")));
    }
    Ok(true)
}

/// A policy that admits every row, on a table the run did not create:
/// confirmed where the server's table has an owner column.
pub(super) fn owner_columns(
    client: &mut impl GenericClient,
    f: &mut Finding,
    table: &RelationName,
    columns: &[String],
) -> Result<bool, CheckError> {
    let found: Option<String> = client
        .query_opt(
            "select attname::text from pg_attribute
              where attrelid = to_regclass($1) and attnum > 0 and not attisdropped
                and attname = any($2) order by attnum limit 1",
            &[&quote_qualified(table.schema.as_deref(), &table.name), &columns],
        )
        .map_err(db("reading the table's columns"))?
        .map(|r| r.get(0));
    let Some(column) = found else { return Ok(false) };
    f.message = f.message.replace("an owner column", &format!("owner column {column}"));
    f.facts.push(format!("{} has owner column {column} on the server", name(table)));
    Ok(true)
}

/// Row level security without FORCE: confirmed where the table's owner
/// (the role the migrations run as, for a table not there yet) is one of
/// `[check] application_roles` and is held to policies at all.
pub(super) fn not_forced(
    client: &mut impl GenericClient,
    f: &mut Finding,
    table: &RelationName,
    settings: &Settings,
) -> Result<bool, CheckError> {
    if settings.application_roles.is_empty() {
        return Ok(false);
    }
    let owner = match facts(client, table)? {
        Some(live) if live.forced => return Ok(false),
        Some(live) => live.owner,
        None => client
            .query_one("select current_user::text", &[])
            .map_err(db("reading the current role"))?
            .get(0),
    };
    if !settings.application_roles.contains(&owner) {
        return Ok(false);
    }
    let exempt: bool = client
        .query_opt("select rolsuper or rolbypassrls from pg_roles where rolname = $1", &[&owner])
        .map_err(db("reading the owner's role"))?
        .is_some_and(|r| r.get(0));
    if exempt {
        // Superusers and BYPASSRLS roles skip policies, FORCE or not.
        return Ok(false);
    }
    f.facts.push(format!(
        "{} is owned by {owner}, which [check] application_roles names as a role the application \
         connects as",
        name(table)
    ));
    Ok(true)
}
