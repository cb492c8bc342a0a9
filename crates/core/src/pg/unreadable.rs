//! Tables and sequences the session's role may not read. `pg_dump` locks
//! every table whose definition or rows it dumps and reads every
//! sequence's value, each of which needs `SELECT`: one such relation (a
//! platform's `supabase_functions.hooks` and its id sequence,
//! `pgsodium.key`, a geocoder's tables, another team's table) stops the
//! whole dump. What the role may not read it may not change either, as
//! long as it neither owns it, nor may write or advance it, nor owns its
//! schema (a schema's owner may drop everything in it): such a relation is
//! left out of dumps and row counts, and named. Any other is one a
//! migration could change and a dump cannot hold.
//!
//! A table the role may read but whose rows row level security filters
//! for it (the policies apply: the role neither bypasses them, as a
//! superuser or with `BYPASSRLS` does, nor owns a table that does not
//! force them) is one it may not read whole: `pg_dump` turns row security
//! off and stops on it rather than dump part of it, and a count or a
//! checksum would see only the rows the policies let through. It is told
//! apart (`policies`), and treated as the others are.

use postgres::GenericClient;

use super::parts::SKIPPED;

/// A table or sequence the role may not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    pub schema: String,
    pub name: String,
    pub owner: String,
    /// How a migration run as the role could still change it, if it can:
    /// a dump that leaves it out would not hold what the migration did.
    pub changeable: Option<String>,
    /// The role may use its schema (`USAGE`).
    pub usable: bool,
    /// A sequence, not a table.
    pub sequence: bool,
    /// The role may read it, but row level security shows it only the
    /// rows its policies let through.
    pub policies: bool,
    /// `schema.name` as PostgreSQL shows it in a definition (each part
    /// quoted only where it must be: `public.t`, `"My".t`).
    pub shown: String,
}

impl Unreadable {
    /// `schema.name`, as row counts name tables.
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    /// `pg_dump`'s option leaving it out (its table patterns match
    /// sequences too): a pattern in double
    /// quotes is matched literally (a double quote in it written twice).
    pub fn exclude_arg(&self) -> String {
        let lit = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
        format!("--exclude-table={}.{}", lit(&self.schema), lit(&self.name))
    }
}

/// Of `pg_class c`, a table whose rows row level security filters for the
/// session's role: as PostgreSQL decides it (`check_enable_rls`), the
/// policies apply unless the role is a superuser, has `BYPASSRLS`, or has
/// the owner's privileges on a table that does not force them. A
/// partitioned table holds no row of its own: its partitions are read.
pub const FILTERED: &str = "(c.relkind = 'r' and c.relrowsecurity
      and not exists (select from pg_roles
                       where rolname = current_user and (rolsuper or rolbypassrls))
      and (c.relforcerowsecurity or not pg_has_role(c.relowner, 'USAGE')))";

/// The tables and sequences the session's role may not read, or not
/// whole ([`FILTERED`]), in name order. One catalog query; none for a
/// superuser.
pub fn tables(client: &mut impl GenericClient) -> Result<Vec<Unreadable>, postgres::Error> {
    let rows = client.query(
        &format!(
            "select n.nspname::text, c.relname::text, pg_get_userbyid(c.relowner)::text,
                    case when exists (select 1 from pg_depend d
                                       where d.classid = 'pg_class'::regclass and d.objid = c.oid
                                         and d.deptype = 'e') then null
                         when pg_has_role(c.relowner, 'USAGE') then 'the role owns it'
                         when c.relkind = 'S' and has_sequence_privilege(c.oid, 'USAGE, UPDATE')
                           then 'the role may advance it'
                         when c.relkind <> 'S'
                          and has_table_privilege(c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')
                           then 'the role may write its rows'
                         when c.relkind <> 'S' and has_table_privilege(c.oid, 'REFERENCES, TRIGGER')
                           then 'the role may hang a foreign key or a trigger on it'
                         when pg_has_role(n.nspowner, 'USAGE')
                           then 'the role owns its schema ' || quote_ident(n.nspname)
                    end,
                    has_schema_privilege(n.oid, 'USAGE'), c.relkind = 'S',
                    has_table_privilege(c.oid, 'SELECT'),
                    quote_ident(n.nspname) || '.' || quote_ident(c.relname)
               from pg_class c join pg_namespace n on n.oid = c.relnamespace
              where c.relkind in ('r', 'p', 'S') and n.nspname not in {SKIPPED}
                and (not has_table_privilege(c.oid, 'SELECT') or {FILTERED})
              order by 1, 2"
        ),
        &[],
    )?;
    Ok(rows
        .iter()
        .map(|r| Unreadable {
            schema: r.get(0),
            name: r.get(1),
            owner: r.get(2),
            changeable: r.get(3),
            usable: r.get(4),
            sequence: r.get(5),
            policies: r.get(6),
            shown: r.get(7),
        })
        .collect())
}

/// Of [`tables`], those a dump may leave out: none a migration run as the
/// role could change (a dump that stops on one of those says which).
pub fn left_out(client: &mut impl GenericClient) -> Result<Vec<Unreadable>, postgres::Error> {
    Ok(tables(client)?.into_iter().filter(|t| t.changeable.is_none()).collect())
}

/// Of [`left_out`], those a dump of the schema alone must leave out: it
/// reads no row, so row level security stops none of it; only what the
/// role may not read at all, whose lock it may not take.
pub fn left_out_of_schema(
    client: &mut impl GenericClient,
) -> Result<Vec<Unreadable>, postgres::Error> {
    Ok(left_out(client)?.into_iter().filter(|t| !t.policies).collect())
}

/// What a dump of the rows leaves out ([`left_out`]), or why it cannot be
/// taken as the session's role, with what fixes it: a table the role may
/// not read (or not whole) that a migration run as it could change.
pub fn for_dump(
    client: &mut impl GenericClient,
) -> Result<Result<Vec<Unreadable>, String>, postgres::Error> {
    let tables = tables(client)?;
    let blocking: Vec<&Unreadable> = tables.iter().filter(|t| t.changeable.is_some()).collect();
    if blocking.is_empty() {
        return Ok(Ok(tables));
    }
    let role: String = client.query_one("select current_user::text", &[])?.get(0);
    let listed = |policies: bool| -> Vec<String> {
        let of = blocking.iter().filter(|t| t.policies == policies);
        of.map(|t| {
            let why = t.changeable.as_deref().unwrap_or_default();
            format!("{} (owner {}; {why})", t.qualified(), t.owner)
        })
        .collect()
    };
    let role_ident = super::quote_ident(&role);
    let mut said = Vec::new();
    if let Some(first) = blocking.iter().find(|t| !t.policies) {
        said.push(format!(
            "role {role} may not read {}, which a migration run as {role} could change: pg_dump \
             cannot dump it; grant the role SELECT on it (GRANT SELECT ON {} TO {role_ident})",
            listed(false).join(", "),
            super::quote_qualified(Some(&first.schema), &first.name),
        ));
    }
    if blocking.iter().any(|t| t.policies) {
        said.push(format!(
            "row level security shows role {role} only the rows its policies let through in {}, \
             which a migration run as {role} could change: pg_dump stops rather than dump part \
             of it; let the role bypass the policies (ALTER ROLE {role_ident} BYPASSRLS, \
             as a superuser or the platform's admin role)",
            listed(true).join(", "),
        ));
    }
    Ok(Err(format!("{} and run again", said.join("; "))))
}

/// `pg_dump`'s options leaving `tables` out.
pub fn exclude_args(tables: &[Unreadable]) -> Vec<String> {
    tables.iter().map(Unreadable::exclude_arg).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cluster where `setup` ran after the roles `app` and `other` and
    /// `other`'s schema `plat`, which `app` may use, were made; the
    /// session is then `app`'s.
    fn as_app(setup: &str) -> (crate::pg::cluster::Cluster, postgres::Client) {
        let cluster = crate::pg::cluster::Cluster::start().unwrap();
        let mut c = cluster.connect("postgres").unwrap();
        c.batch_execute(&format!(
            "CREATE ROLE app; CREATE ROLE other;
             CREATE SCHEMA plat AUTHORIZATION other; GRANT USAGE ON SCHEMA plat TO app;
             {setup}
             RESET ROLE; SET ROLE app;"
        ))
        .unwrap();
        (cluster, c)
    }

    /// Each way a role may not read a relation, told apart on a real
    /// server, as the role itself sees it.
    #[test]
    fn what_the_role_could_still_change_is_told_from_what_it_may_leave_out() {
        let (_cluster, mut c) = as_app(
            "CREATE SCHEMA mine AUTHORIZATION app;
             SET ROLE other;
             CREATE TABLE plat.hidden (id bigserial); CREATE TABLE plat.inbox (id int);
             CREATE TABLE plat.hooked (id int); CREATE TABLE plat.seen (id int);
             CREATE SEQUENCE plat.ticket;
             RESET ROLE;
             CREATE TABLE mine.stray (id int); ALTER TABLE mine.stray OWNER TO other;
             GRANT INSERT ON plat.inbox TO app; GRANT TRIGGER ON plat.hooked TO app;
             GRANT SELECT ON plat.seen TO app; GRANT USAGE ON SEQUENCE plat.ticket TO app;
             CREATE TABLE mine.own (id int); ALTER TABLE mine.own OWNER TO app;
             REVOKE SELECT ON mine.own FROM app;",
        );
        let found: Vec<(String, Option<String>)> =
            tables(&mut c).unwrap().into_iter().map(|t| (t.qualified(), t.changeable)).collect();
        let left: Vec<String> = left_out(&mut c).unwrap().iter().map(|t| t.qualified()).collect();
        assert_eq!(left, ["plat.hidden", "plat.hidden_id_seq"]);
        let why = |s: &str| Some(s.to_string());
        assert_eq!(
            found,
            [
                ("mine.own".into(), why("the role owns it")),
                ("mine.stray".into(), why("the role owns its schema mine")),
                ("plat.hidden".into(), None),
                ("plat.hidden_id_seq".into(), None),
                ("plat.hooked".into(), why("the role may hang a foreign key or a trigger on it")),
                ("plat.inbox".into(), why("the role may write its rows")),
                ("plat.ticket".into(), why("the role may advance it")),
            ]
        );
        c.batch_execute("RESET ROLE").unwrap();
        assert!(tables(&mut c).unwrap().is_empty(), "a superuser reads everything");
    }

    /// A table whose rows row level security filters for the role is one
    /// it may not read whole, and only there: not where it owns a table
    /// that does not force the policies, nor once it bypasses them.
    #[test]
    fn rows_the_policies_hide_make_a_table_the_role_may_not_read_whole() {
        let (_cluster, mut c) = as_app(
            "CREATE TABLE public.forced (id int); ALTER TABLE public.forced OWNER TO app;
             ALTER TABLE public.forced ENABLE ROW LEVEL SECURITY;
             ALTER TABLE public.forced FORCE ROW LEVEL SECURITY;
             CREATE TABLE public.owned (id int); ALTER TABLE public.owned OWNER TO app;
             ALTER TABLE public.owned ENABLE ROW LEVEL SECURITY;
             SET ROLE other;
             CREATE TABLE plat.shared (id int); ALTER TABLE plat.shared ENABLE ROW LEVEL SECURITY;
             CREATE TABLE plat.open (id int);
             GRANT SELECT ON plat.shared, plat.open TO app;",
        );
        let found = |c: &mut postgres::Client| -> Vec<(String, Option<String>, bool)> {
            let all = tables(c).unwrap().into_iter();
            all.map(|t| (t.qualified(), t.changeable, t.policies)).collect()
        };
        assert_eq!(
            found(&mut c),
            [
                ("plat.shared".into(), None, true),
                ("public.forced".into(), Some("the role owns it".into()), true),
            ]
        );
        let left: Vec<String> = left_out(&mut c).unwrap().iter().map(|t| t.qualified()).collect();
        assert_eq!(left, ["plat.shared"]);
        assert!(left_out_of_schema(&mut c).unwrap().is_empty(), "a schema's dump reads no row");
        c.batch_execute("RESET ROLE; ALTER ROLE app BYPASSRLS; SET ROLE app").unwrap();
        assert_eq!(found(&mut c), [], "a role that bypasses the policies reads every row");
    }

    #[test]
    fn a_table_is_left_out_by_a_literal_pattern() {
        let t = Unreadable {
            schema: "Vault".into(),
            name: "se\"cr.ets*".into(),
            owner: "x".into(),
            changeable: None,
            usable: true,
            sequence: false,
            policies: false,
            shown: String::new(),
        };
        assert_eq!(t.exclude_arg(), r#"--exclude-table="Vault"."se""cr.ets*""#);
        assert_eq!(t.qualified(), "Vault.se\"cr.ets*");
    }
}
