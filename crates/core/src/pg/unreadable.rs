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

/// The tables and sequences the session's role may not read, in name
/// order. One catalog query; none for a superuser.
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
                    has_schema_privilege(n.oid, 'USAGE'), c.relkind = 'S'
               from pg_class c join pg_namespace n on n.oid = c.relnamespace
              where c.relkind in ('r', 'p', 'S') and n.nspname not in {SKIPPED}
                and not has_table_privilege(c.oid, 'SELECT')
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
        })
        .collect())
}

/// Of [`tables`], those a dump may leave out: none a migration run as the
/// role could change (a dump that stops on one of those says which).
pub fn left_out(client: &mut impl GenericClient) -> Result<Vec<Unreadable>, postgres::Error> {
    Ok(tables(client)?.into_iter().filter(|t| t.changeable.is_none()).collect())
}

/// `pg_dump`'s options leaving `tables` out.
pub fn exclude_args(tables: &[Unreadable]) -> Vec<String> {
    tables.iter().map(Unreadable::exclude_arg).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each way a role may not read a relation, told apart on a real
    /// server, as the role itself sees it.
    #[test]
    fn what_the_role_could_still_change_is_told_from_what_it_may_leave_out() {
        let cluster = crate::pg::cluster::Cluster::start().unwrap();
        let mut c = cluster.connect("postgres").unwrap();
        c.batch_execute(
            "CREATE ROLE app; CREATE ROLE other;
             CREATE SCHEMA plat AUTHORIZATION other; GRANT USAGE ON SCHEMA plat TO app;
             CREATE SCHEMA mine AUTHORIZATION app;
             SET ROLE other;
             CREATE TABLE plat.hidden (id bigserial); CREATE TABLE plat.inbox (id int);
             CREATE TABLE plat.hooked (id int); CREATE TABLE plat.seen (id int);
             CREATE SEQUENCE plat.ticket;
             RESET ROLE;
             CREATE TABLE mine.stray (id int); ALTER TABLE mine.stray OWNER TO other;
             GRANT INSERT ON plat.inbox TO app; GRANT TRIGGER ON plat.hooked TO app;
             GRANT SELECT ON plat.seen TO app; GRANT USAGE ON SEQUENCE plat.ticket TO app;
             CREATE TABLE mine.own (id int); ALTER TABLE mine.own OWNER TO app;
             REVOKE SELECT ON mine.own FROM app;
             SET ROLE app;",
        )
        .unwrap();
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

    #[test]
    fn a_table_is_left_out_by_a_literal_pattern() {
        let t = Unreadable {
            schema: "Vault".into(),
            name: "se\"cr.ets*".into(),
            owner: "x".into(),
            changeable: None,
            usable: true,
            sequence: false,
        };
        assert_eq!(t.exclude_arg(), r#"--exclude-table="Vault"."se""cr.ets*""#);
        assert_eq!(t.qualified(), "Vault.se\"cr.ets*");
    }
}
