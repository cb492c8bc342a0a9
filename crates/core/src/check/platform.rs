//! What the live check asks the database of a platform object a
//! migration uses (BS702): whether the target has it. A project's own
//! object never reaches here; the rule leaves those out.

use backstop_lint::{Finding, Impact, Probability};
use postgres::GenericClient;

use super::CheckError;
use crate::pg::db;

/// Whether the database has the platform's role, schema, table, type,
/// function or publication a migration uses. Where it does not, the
/// finding becomes NO-GO ([`missing`]): the statement is certain to fail,
/// and the reason is the platform, not the SQL.
pub(super) fn present(
    client: &mut impl GenericClient,
    kind: &str,
    name: &str,
) -> Result<bool, CheckError> {
    let (schema, base) = name.split_once('.').unwrap_or(("", name));
    let sql = match kind {
        "role" => "select $1::text is null or exists (select from pg_roles where rolname = $2)",
        "schema" => {
            "select $1::text is null or exists (select from pg_namespace where nspname = $2)"
        }
        "publication" => {
            "select $1::text is null or exists (select from pg_publication where pubname = $2)"
        }
        "table" => {
            "select exists (select from pg_class c join pg_namespace n on n.oid = c.relnamespace
                             where n.nspname = $1 and c.relname = $2)"
        }
        "type" => {
            "select exists (select from pg_type t join pg_namespace n on n.oid = t.typnamespace
                             where n.nspname = $1 and t.typname = $2)"
        }
        _ => {
            "select exists (select from pg_proc p join pg_namespace n on n.oid = p.pronamespace
                             where n.nspname = $1 and p.proname = $2)"
        }
    };
    Ok(client
        .query_one(sql, &[&schema, &base])
        .map_err(db("reading the catalogs for the platform's objects"))?
        .get(0))
}

/// The finding of a platform object the database lacks: certain to fail.
pub(super) fn missing(f: &mut Finding, kind: &str, name: &str) {
    f.rate(Probability::Certain, Impact::High);
    let what = backstop_lint::rules::platform_dependency::describe(kind, name);
    f.message = format!(
        "uses the Supabase platform's {what}, which this database does not have: the statement fails"
    );
    f.facts.push(format!(
        "this database has no {what}; the Supabase platform creates it before any migration"
    ));
    f.help = "run the migration against the Supabase project's database; to run it elsewhere (a \
              rehearsal copy, an empty or CI database), create the platform's roles (NOLOGIN), \
              the auth schema with auth.uid() and the extensions schema there first"
        .into();
}
