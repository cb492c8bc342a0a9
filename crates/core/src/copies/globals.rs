//! What a copy carries beyond the contents of its database: the source
//! server's roles (with their attributes, memberships and settings, never
//! a password or the right to log in) for a copy in a throwaway cluster,
//! and the database's own settings (`ALTER DATABASE … SET`, `ALTER ROLE …
//! IN DATABASE … SET`) for every copy, which neither `CREATE DATABASE …
//! TEMPLATE` nor `pg_dump` without `--create` carries. Supabase puts
//! `extensions` on the search path this way: a copy without it fails
//! every migration that calls `uuid_generate_v4()`.

use postgres::GenericClient;

use crate::pg::quote_ident;

/// One database's own settings: `(role or None for every role, name=value)`.
pub type DatabaseSettings = Vec<(Option<String>, String)>;

/// Reads the settings of database `dbname` on the server `client` is on.
pub fn database_settings(
    client: &mut impl GenericClient,
    dbname: &str,
) -> Result<DatabaseSettings, postgres::Error> {
    let rows = client.query(
        "select r.rolname::text, unnest(s.setconfig)
           from pg_db_role_setting s
           left join pg_roles r on r.oid = s.setrole
          where s.setdatabase = (select oid from pg_database where datname = $1)
          order by 1 nulls first, 2",
        &[&dbname],
    )?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Gives database `dbname` the settings `settings` (read from another).
/// A role the server lacks is passed by; a setting the server refuses is
/// returned, with why, for the caller to say.
pub fn apply_database_settings(
    client: &mut impl GenericClient,
    dbname: &str,
    settings: &DatabaseSettings,
) -> Vec<String> {
    let mut refused = Vec::new();
    for (role, setting) in settings {
        let Some(assignment) = assignment(setting) else { continue };
        let sql = match role {
            None => format!("ALTER DATABASE {} SET {assignment}", quote_ident(dbname)),
            Some(r) => format!(
                "ALTER ROLE {} IN DATABASE {} SET {assignment}",
                quote_ident(r),
                quote_ident(dbname)
            ),
        };
        if let Err(e) = client.batch_execute(&sql) {
            refused.push(format!("{sql}: {}", crate::pg::conn::error_chain(&e)));
        }
    }
    refused
}

/// `name = value` for a stored `name=value`: list settings as stored
/// (their elements keep their own quoting), the rest as one literal.
pub fn assignment(setting: &str) -> Option<String> {
    let (name, value) = setting.split_once('=')?;
    const LISTS: [&str; 5] = [
        "search_path",
        "temp_tablespaces",
        "session_preload_libraries",
        "local_preload_libraries",
        "shared_preload_libraries",
    ];
    let name_sql = name.split('.').map(backstop_sql::rewrite::ident).collect::<Vec<_>>().join(".");
    if LISTS.contains(&name.to_ascii_lowercase().as_str()) && !value.trim().is_empty() {
        Some(format!("{name_sql} TO {value}"))
    } else {
        Some(format!("{name_sql} TO '{}'", value.replace('\'', "''")))
    }
}

/// The roles of the server `source` is on, made again on the throwaway
/// server `target` (which must never be production): attributes but
/// `LOGIN` and passwords, memberships, and the settings each role has for
/// every database. Roles the target has already are left as they are.
pub fn copy_roles(
    source: &mut impl GenericClient,
    target: &mut impl GenericClient,
) -> Result<(), postgres::Error> {
    let roles = source.query(
        "select rolname::text, rolsuper, rolinherit, rolcreaterole, rolcreatedb,
                rolreplication, rolbypassrls
           from pg_roles where rolname !~ '^pg_' order by oid",
        &[],
    )?;
    for r in &roles {
        let name: String = r.get(0);
        let exists = target.query_opt("select 1 from pg_roles where rolname = $1", &[&name])?;
        if exists.is_some() {
            continue;
        }
        let flag = |i: usize, yes: &str, no: &str| -> String {
            if r.get::<_, bool>(i) {
                yes.to_string()
            } else {
                no.to_string()
            }
        };
        target.batch_execute(&format!(
            "CREATE ROLE {} NOLOGIN {} {} {} {} {} {}",
            quote_ident(&name),
            flag(1, "SUPERUSER", "NOSUPERUSER"),
            flag(2, "INHERIT", "NOINHERIT"),
            flag(3, "CREATEROLE", "NOCREATEROLE"),
            flag(4, "CREATEDB", "NOCREATEDB"),
            flag(5, "REPLICATION", "NOREPLICATION"),
            flag(6, "BYPASSRLS", "NOBYPASSRLS"),
        ))?;
    }
    let members = source.query(
        "select r.rolname::text, m.rolname::text, a.admin_option
           from pg_auth_members a
           join pg_roles r on r.oid = a.roleid
           join pg_roles m on m.oid = a.member
          where r.rolname !~ '^pg_' and m.rolname !~ '^pg_'",
        &[],
    )?;
    for m in &members {
        let (role, member, admin): (String, String, bool) = (m.get(0), m.get(1), m.get(2));
        let admin = if admin { " WITH ADMIN OPTION" } else { "" };
        // A membership the target refuses (a circle through its own
        // superuser) is one the copy can do without.
        let _ = target.batch_execute(&format!(
            "GRANT {} TO {}{admin}",
            quote_ident(&role),
            quote_ident(&member)
        ));
    }
    let settings = source.query(
        "select r.rolname::text, unnest(s.setconfig)
           from pg_db_role_setting s join pg_roles r on r.oid = s.setrole
          where s.setdatabase = 0",
        &[],
    )?;
    for s in &settings {
        let (role, setting): (String, String) = (s.get(0), s.get(1));
        if let Some(assignment) = assignment(&setting) {
            let _ = target
                .batch_execute(&format!("ALTER ROLE {} SET {assignment}", quote_ident(&role)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::assignment;

    #[test]
    fn settings_are_written_back_as_postgresql_stored_them() {
        assert_eq!(
            assignment("search_path=\"$user\", public, extensions").unwrap(),
            "search_path TO \"$user\", public, extensions"
        );
        assert_eq!(assignment("work_mem=64MB").unwrap(), "work_mem TO '64MB'");
        assert_eq!(
            assignment("request.jwt.claim.role=it's").unwrap(),
            "request.jwt.claim.role TO 'it''s'"
        );
    }
}
