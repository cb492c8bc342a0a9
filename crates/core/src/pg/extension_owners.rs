//! Who owns what an extension made, carried into a throwaway copy.
//!
//! `pg_dump` writes an extension as `CREATE EXTENSION`, with no owner, so
//! a restore makes it as the role that restores: the copy's own superuser.
//! What the extension's script made (pg_cron's `cron.job`, pgcrypto's
//! functions, Vault's secrets) then belongs to that role, where on a
//! hosted platform it belongs to the platform's superuser, another role;
//! the grants the dump gives back are made in the wrong owner's name, and
//! no fingerprint of the copy agrees with the source's. A copy is armed
//! before its restore with an event trigger that gives each extension's
//! objects, the moment the extension is made, to the role owning them on
//! the source; the grants that follow are then made as they were there.
//! The trigger goes when the restore is done.

use std::collections::BTreeMap;

use backstop_sql::rewrite::literal;
use postgres::GenericClient;

use crate::pg::quote_ident;

/// The role owning most of what each extension made, by extension name
/// (an extension that made nothing with an owner is left out).
pub type Owners = BTreeMap<String, String>;

/// What `pg_identify_object` calls a kind with an owner, and the words
/// that alter it.
const KINDS: [(&str, &str); 18] = [
    ("table", "TABLE"),
    ("sequence", "SEQUENCE"),
    ("view", "VIEW"),
    ("materialized view", "MATERIALIZED VIEW"),
    ("foreign table", "FOREIGN TABLE"),
    ("function", "FUNCTION"),
    ("procedure", "PROCEDURE"),
    ("aggregate", "AGGREGATE"),
    ("type", "TYPE"),
    ("domain", "DOMAIN"),
    ("schema", "SCHEMA"),
    ("collation", "COLLATION"),
    ("conversion", "CONVERSION"),
    ("operator", "OPERATOR"),
    ("operator class", "OPERATOR CLASS"),
    ("operator family", "OPERATOR FAMILY"),
    ("text search configuration", "TEXT SEARCH CONFIGURATION"),
    ("text search dictionary", "TEXT SEARCH DICTIONARY"),
];

/// The schema the trigger and its function live in while a copy is
/// restored; gone with them.
const ROOM: &str = "backstop_extension_owners";

/// Reads, on the source `client` is connected to, who owns what each
/// extension made.
pub fn read(client: &mut impl GenericClient) -> Result<Owners, postgres::Error> {
    let rows = client.query(
        "select x.extname::text, pg_get_userbyid(o.owner)::text
           from pg_extension x
           cross join lateral (
             select coalesce(c.relowner, p.proowner, t.typowner, n.nspowner) as owner
               from pg_depend d
               left join pg_class c on d.classid = 'pg_class'::regclass and c.oid = d.objid
               left join pg_proc p on d.classid = 'pg_proc'::regclass and p.oid = d.objid
               left join pg_type t on d.classid = 'pg_type'::regclass and t.oid = d.objid
               left join pg_namespace n on d.classid = 'pg_namespace'::regclass and n.oid = d.objid
              where d.refclassid = 'pg_extension'::regclass and d.refobjid = x.oid
                and d.deptype = 'e'
                and coalesce(c.relowner, p.proowner, t.typowner, n.nspowner) is not null
              group by 1 order by count(*) desc, 1 limit 1) o
          order by 1",
        &[],
    )?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Arms the copy's database `client` is connected to (as its superuser):
/// from now on, an extension made there gives what it made to its owner
/// in `owners`. Owners the copy has no role for are passed by. Nothing is
/// armed where every owner is the restoring role already.
pub fn arm(client: &mut impl GenericClient, owners: &Owners) -> Result<(), postgres::Error> {
    let wanted: Vec<&String> = owners.values().collect();
    let others: Vec<String> = client
        .query(
            "select rolname::text from pg_roles where rolname = any($1) and rolname <> current_user",
            &[&wanted],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut cases = String::new();
    for (extension, owner) in owners.iter().filter(|(_, o)| others.contains(o)) {
        cases.push_str(&format!(
            " when {} then {}",
            literal(extension),
            literal(&quote_ident(owner))
        ));
    }
    if cases.is_empty() {
        return Ok(());
    }
    let kinds: String = KINDS
        .iter()
        .map(|(kind, words)| format!(" when {} then {}", literal(kind), literal(words)))
        .collect();
    client.batch_execute(&format!(
        "CREATE SCHEMA {ROOM};
         CREATE FUNCTION {ROOM}.give() RETURNS event_trigger LANGUAGE plpgsql AS $give$
         DECLARE
           made record;
           member record;
           owner text;
           words text;
         BEGIN
           FOR made IN SELECT objid FROM pg_event_trigger_ddl_commands()
                        WHERE command_tag = 'CREATE EXTENSION' AND object_type = 'extension' LOOP
             SELECT CASE extname{cases} END INTO owner FROM pg_extension WHERE oid = made.objid;
             CONTINUE WHEN owner IS NULL;
             -- An array or multirange type follows its element or range
             -- type (PostgreSQL 18 lists it as a member, and refuses it an
             -- owner of its own).
             FOR member IN SELECT (pg_identify_object(classid, objid, objsubid)).*
                             FROM pg_depend
                            WHERE refclassid = 'pg_extension'::regclass
                              AND refobjid = made.objid AND deptype = 'e'
                              AND NOT EXISTS (SELECT FROM pg_type t
                                               WHERE classid = 'pg_type'::regclass AND t.oid = objid
                                                 AND (t.typtype = 'm'
                                                      OR t.typsubscript = 'array_subscript_handler'::regproc)) LOOP
               words := CASE member.type{kinds} END;
               CONTINUE WHEN words IS NULL;
               EXECUTE format('ALTER %s %s OWNER TO %s', words, member.identity, owner);
             END LOOP;
           END LOOP;
         END $give$;
         CREATE EVENT TRIGGER {ROOM} ON ddl_command_end WHEN TAG IN ('CREATE EXTENSION')
           EXECUTE FUNCTION {ROOM}.give();"
    ))
}

/// Takes away what [`arm`] made, where it made anything.
pub fn disarm(client: &mut impl GenericClient) -> Result<(), postgres::Error> {
    client.batch_execute(&format!(
        "DROP EVENT TRIGGER IF EXISTS {ROOM}; DROP SCHEMA IF EXISTS {ROOM} CASCADE;"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::cluster::Cluster;

    /// An extension with functions that this server's install has: the
    /// builds of the test matrix ship different contrib sets (one has
    /// only pgvector beside plpgsql).
    fn some_extension(c: &mut postgres::Client) -> String {
        c.query_one(
            "select name from pg_available_extensions
              where name in ('pgcrypto', 'pg_trgm', 'citext', 'vector')
              order by name = 'pgcrypto' desc, name limit 1",
            &[],
        )
        .expect("the server has one of pgcrypto, pg_trgm, citext or vector")
        .get(0)
    }

    /// One function of the extension (the first by signature), its
    /// owner and the grant on it.
    fn a_function(c: &mut postgres::Client, ext: &str) -> (String, String, String) {
        let row = c
            .query_one(
                "select p.oid::regprocedure::text, pg_get_userbyid(p.proowner)::text,
                        coalesce(p.proacl::text, '')
                   from pg_depend d join pg_proc p on p.oid = d.objid
                   join pg_extension e on e.oid = d.refobjid
                  where d.classid = 'pg_proc'::regclass and d.deptype = 'e' and e.extname = $1
                  order by 1 limit 1",
                &[&ext],
            )
            .unwrap();
        (row.get(0), row.get(1), row.get(2))
    }

    #[test]
    fn an_extension_made_in_an_armed_copy_is_given_to_its_owner_on_the_source() {
        let cluster = Cluster::start().unwrap();
        cluster.create_database("source", None).unwrap();
        cluster.create_database("copy", None).unwrap();
        let mut source = cluster.connect("source").unwrap();
        let ext = some_extension(&mut source);
        source
            .batch_execute(&format!(
                "CREATE ROLE platform_admin SUPERUSER; CREATE ROLE app;
                 SET ROLE platform_admin; CREATE EXTENSION {ext}; RESET ROLE;"
            ))
            .unwrap();
        let function = a_function(&mut source, &ext).0;
        let grant = format!("GRANT EXECUTE ON FUNCTION {function} TO app");
        source.batch_execute(&format!("SET ROLE platform_admin; {grant}; RESET ROLE;")).unwrap();
        let owners = read(&mut source).unwrap();
        assert_eq!(owners.get(&ext).map(String::as_str), Some("platform_admin"));
        let (_, owner, acl) = a_function(&mut source, &ext);
        assert_eq!(owner, "platform_admin");
        assert!(acl.contains("app=X/platform_admin"), "{acl}");

        // The copy made as its superuser, its grant replayed after, as a
        // restore does; a role the copy lacks is passed by.
        let mut copy = cluster.connect("copy").unwrap();
        let mut wanted = owners.clone();
        wanted.insert("plpgsql".into(), "no_such_role".into());
        arm(&mut copy, &wanted).unwrap();
        copy.batch_execute(&format!("CREATE EXTENSION {ext}; {grant};")).unwrap();
        disarm(&mut copy).unwrap();
        assert_eq!(a_function(&mut copy, &ext), (function, "platform_admin".to_string(), acl));
        let left: i64 = copy
            .query_one(
                "select count(*) from pg_event_trigger where evtname = 'backstop_extension_owners'",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(left, 0, "the trigger is gone after the restore");

        // Unarmed, the copy's superuser stands in: what the arming mends.
        copy.batch_execute(&format!("DROP EXTENSION {ext}; CREATE EXTENSION {ext};")).unwrap();
        assert_eq!(a_function(&mut copy, &ext).1, "postgres");
    }
}
