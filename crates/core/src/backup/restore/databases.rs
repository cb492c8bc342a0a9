//! The server's other databases as restores use them: sessions on them,
//! the names a restore gives the databases it creates, the settings a new
//! database takes over from the target, and dropping what restores leave.

use std::time::{Duration, Instant};

use postgres::error::SqlState;
use postgres::Client;

use super::journal::journal;
use crate::backup::manifest::Manifest;
use crate::backup::{BackupError, Store};
use crate::freeze;
use crate::kit::duration::Backoff;
use crate::pg::conn::connect_db;
use crate::pg::quote_ident;

/// Databases that earlier restores of the connected database restored into
/// and left behind (a server crash, a kill), except the one an unfinished
/// restore still needs: found by their derived names and dropped. Returns
/// the names dropped. Best effort where the role may not drop them.
pub fn drop_leftovers(url: &str, store: &Store) -> Result<Vec<String>, BackupError> {
    let keep = journal(store)?.and_then(|j| j.temp_database);
    let mut client = crate::pg::connect(url, "backstop")?;
    let database: String = client
        .query_one("select current_database()::text", &[])
        .map_err(BackupError::db("reading the database's name"))?
        .get(0);
    drop(client);
    // `<db>_restoring_<18 characters of the restore id>`, the database's
    // name cut as derived_name cuts it.
    const ID_CHARS: usize = 18;
    let mut base = database;
    while base.len() + "_restoring_".len() + ID_CHARS > 63 {
        base.pop();
    }
    let prefix = format!("{base}_restoring_");
    let Ok(mut admin) = maintenance(url) else { return Ok(Vec::new()) };
    let names: Vec<String> = admin
        .query(
            "select datname::text from pg_database
              where starts_with(datname, $1) and length(datname) = length($1) + $2
                and substr(datname, length($1) + 1) ~ '^[0-9a-z]+$'",
            &[&prefix, &(ID_CHARS as i32)],
        )
        .map_err(BackupError::db("listing databases"))?
        .iter()
        .map(|r| r.get(0))
        .filter(|n: &String| Some(n) != keep.as_ref())
        .collect();
    let mut dropped = Vec::new();
    for name in names {
        if drop_database(&mut admin, &name).is_ok() {
            dropped.push(name);
        }
    }
    Ok(dropped)
}

/// Drops database `name` (if it exists) from a maintenance session. Plain
/// `DROP DATABASE` makes autovacuum workers leave by itself; sessions of
/// clients this role may end are ended and the drop tried again, for a few
/// seconds. Never `WITH (FORCE)`, which ends every session and fails for a
/// role that may not end an autovacuum worker's.
pub(super) fn drop_database(admin: &mut Client, name: &str) -> Result<(), postgres::Error> {
    let sql = format!("DROP DATABASE IF EXISTS {}", quote_ident(name));
    let mut attempts = 0;
    let mut backoff = Backoff::up_to(Duration::from_millis(200));
    loop {
        match admin.batch_execute(&sql) {
            Ok(()) => return Ok(()),
            Err(e) if e.code() == Some(&SqlState::OBJECT_IN_USE) && attempts < 30 => {
                attempts += 1;
                let _ = admin.execute(
                    "select pg_terminate_backend(pid) from pg_stat_activity
                      where datname = $1 and pid <> pg_backend_pid() and backend_type = 'client backend'
                        and pg_has_role(usesysid, 'USAGE')",
                    &[&name],
                );
                backoff.pause();
            }
            Err(e) => return Err(e),
        }
    }
}

/// Why a swap of `database` (the one `client` is on) cannot work, if it
/// cannot: the role may not create databases or does not own it, it is
/// the `postgres` database every tool and platform service connects to,
/// other roles own schemas in it (a platform's, whose rows a swap would
/// roll back too), or no other database can be reached to rename it from.
pub(super) fn swap_refusal(
    client: &mut Client,
    url: &str,
    database: &str,
) -> Result<Option<String>, BackupError> {
    let row = client
        .query_one(
            "select r.rolsuper, r.rolcreatedb, d.datdba = r.oid, current_user::text,
                    coalesce((select array_agg(n.nspname::text order by n.nspname) from pg_namespace n
                               where n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast', 'backstop')
                                 and n.nspname not like 'pg_temp%' and n.nspname not like 'pg_toast_temp%'
                                 and n.nspowner <> d.datdba and n.nspowner <> r.oid
                                 and pg_get_userbyid(n.nspowner) <> 'pg_database_owner'), '{}')
               from pg_roles r, pg_database d
              where r.rolname = current_user and d.datname = current_database()",
            &[],
        )
        .map_err(BackupError::db("reading the role's rights"))?;
    let (superuser, createdb, owns, role, theirs): (bool, bool, bool, String, Vec<String>) =
        (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
    if database == "postgres" {
        return Ok(Some(
            "it is the database named postgres, which the server's tools and a platform's \
             services connect to by name"
                .into(),
        ));
    }
    if !(superuser || createdb && owns) {
        return Ok(Some(format!(
            "role {role} {} (a swap creates a database and renames {database})",
            if createdb {
                format!("does not own {database}")
            } else {
                "may not create databases".into()
            }
        )));
    }
    if !theirs.is_empty() {
        return Ok(Some(format!(
            "schema(s) {} belong to other roles (a platform's), whose rows a swap would take back \
             to the backup's too",
            theirs.join(", ")
        )));
    }
    if maintenance_for(url, database).is_err() {
        return Ok(Some("no other database of the server can be reached to rename it from".into()));
    }
    Ok(None)
}

/// Why a swap cannot work where the backup holds an extension its server
/// lets one database hold only (pg_cron, in the database
/// `cron.database_name` names): its `CREATE EXTENSION` fails in the
/// database a swap restores into beside the target.
pub(super) fn bound_refusal(
    client: &mut Client,
    m: &Manifest,
    database: &str,
) -> Result<Option<String>, BackupError> {
    let preload = crate::pg::preload::Preload::read(client)
        .map_err(BackupError::db("reading what the server preloads"))?;
    let Some((extension, bound_to)) = preload.bound_extension() else { return Ok(None) };
    if !m.extensions.iter().any(|e| e.name == extension) {
        return Ok(None);
    }
    Ok(Some(format!(
        "the backup holds extension {extension}, which the server lets database {bound_to} hold \
         only (cron.database_name), so a database restored beside {database} could not make it"
    )))
}

/// A session on another database of the same server, exempt from freezes.
pub fn connect_to(url: &str, dbname: &str) -> Result<Client, BackupError> {
    let mut client = connect_db(url, Some(dbname), "backstop")?;
    freeze::exempt(&mut client).map_err(BackupError::db("exempting the session"))?;
    Ok(client)
}

/// A session on the server's `postgres` (or `template1`) database, for
/// creating, renaming and dropping databases.
pub(super) fn maintenance(url: &str) -> Result<Client, BackupError> {
    connect_to(url, "postgres").or_else(|_| connect_to(url, "template1"))
}

/// A maintenance session that is not on `database` itself.
fn maintenance_for(url: &str, database: &str) -> Result<Client, BackupError> {
    match database {
        "postgres" => connect_to(url, "template1"),
        _ => maintenance(url),
    }
}

/// Whether the server has a database called `name`.
pub(super) fn database_exists(admin: &mut Client, name: &str) -> Result<bool, BackupError> {
    Ok(admin
        .query_one("select exists (select from pg_database where datname = $1)", &[&name])
        .map_err(BackupError::db("listing databases"))?
        .get(0))
}

/// `<db>_<what>_<stamp>`, cut to PostgreSQL's 63-byte names.
pub(super) fn derived_name(db: &str, what: &str, restore_id: &str) -> String {
    let suffix = format!("_{what}_{}", restore_id.replace(['T', 'Z', '-'], "").to_lowercase());
    let mut base = db.to_string();
    while base.len() + suffix.len() > 63 {
        base.pop();
    }
    format!("{base}{suffix}")
}

/// `s` as an SQL string literal, for the few statements (`CREATE DATABASE`,
/// `ALTER ... SET`, `COMMENT`) that take no bind parameters.
pub(super) fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Gives `to` the database-level settings, grants and connection limit of
/// `from` (a restore without `--create` does not carry them), except the
/// freeze's `default_transaction_read_only`.
pub(super) fn copy_database_settings(
    admin: &mut Client,
    from: &str,
    to: &str,
) -> Result<(), BackupError> {
    let db = BackupError::db("copying the database's settings");
    let rows = admin
        .query(
            "select coalesce(pg_get_userbyid(nullif(s.setrole, 0))::text, ''), c.setting
               from pg_db_role_setting s cross join lateral unnest(s.setconfig) as c(setting)
              where s.setdatabase = (select oid from pg_database where datname = $1)",
            &[&from],
        )
        .map_err(db)?;
    let mut sql = String::new();
    for row in rows {
        let (role, setting): (String, String) = (row.get(0), row.get(1));
        let Some((name, value)) = setting.split_once('=') else { continue };
        if name == "default_transaction_read_only" && role.is_empty() {
            continue;
        }
        let value = guc_value(name, value);
        if role.is_empty() {
            sql.push_str(&format!(
                "ALTER DATABASE {} SET {} = {value};\n",
                quote_ident(to),
                quote_ident(name)
            ));
        } else {
            sql.push_str(&format!(
                "ALTER ROLE {} IN DATABASE {} SET {} = {value};\n",
                quote_ident(&role),
                quote_ident(to),
                quote_ident(name)
            ));
        }
    }
    let row = admin
        .query_one(
            "select datconnlimit, datacl is null,
                    coalesce((select array_agg(format('%s %s %s', coalesce(pg_get_userbyid(nullif(a.grantee, 0))::text, ''),
                                                      a.privilege_type, a.is_grantable))
                                from aclexplode(datacl) a), '{}')
               from pg_database where datname = $1",
            &[&from],
        )
        .map_err(BackupError::db("reading the database's grants"))?;
    let (limit, default_acl, grants): (i32, bool, Vec<String>) =
        (row.get(0), row.get(1), row.get(2));
    if limit != -1 {
        sql.push_str(&format!(
            "ALTER DATABASE {} WITH CONNECTION LIMIT {limit};\n",
            quote_ident(to)
        ));
    }
    if !default_acl {
        sql.push_str(&format!("REVOKE ALL ON DATABASE {} FROM PUBLIC;\n", quote_ident(to)));
        for g in grants {
            let parts: Vec<&str> = g.rsplitn(3, ' ').collect();
            let [grantable, privilege, grantee] = parts[..] else { continue };
            let grantee =
                if grantee.is_empty() { "PUBLIC".to_string() } else { quote_ident(grantee) };
            let with = if grantable == "true" { " WITH GRANT OPTION" } else { "" };
            sql.push_str(&format!(
                "GRANT {privilege} ON DATABASE {} TO {grantee}{with};\n",
                quote_ident(to)
            ));
        }
    }
    if !sql.is_empty() {
        admin.batch_execute(&sql).map_err(BackupError::db("copying the database's settings"))?;
    }
    Ok(())
}

/// A setting's value as SQL: list settings (`search_path` and the like)
/// element by element, everything else as one literal.
fn guc_value(name: &str, value: &str) -> String {
    const LISTS: [&str; 5] = [
        "search_path",
        "temp_tablespaces",
        "session_preload_libraries",
        "local_preload_libraries",
        "shared_preload_libraries",
    ];
    if !LISTS.contains(&name.to_ascii_lowercase().as_str()) {
        return literal(value);
    }
    let mut items = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                current.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => items.push(std::mem::take(&mut current).trim().to_string()),
            _ => current.push(c),
        }
    }
    items.push(current.trim().to_string());
    items.iter().map(|i| literal(i)).collect::<Vec<_>>().join(", ")
}

/// Drops the database of a pre-restore snapshot (for `backup prune`).
pub fn drop_snapshot(url: &str, m: &Manifest) -> Result<(), BackupError> {
    let Some(name) = &m.snapshot_database else {
        return Ok(());
    };
    let mut admin = maintenance(url)?;
    drop_database(&mut admin, name)
        .map_err(BackupError::db(format!("dropping the snapshot database {name}")))
}

/// `ALTER DATABASE name WITH ALLOW_CONNECTIONS true`, tried again where
/// another session changed the database's row at the same moment: a swap
/// that stopped leaves a watcher that opens its databases once the
/// process is gone (`swap::Reopener`), and `restore --resume` or
/// `--abandon` run right after opens the same ones; PostgreSQL fails the
/// second of two changes of one row with "tuple concurrently updated"
/// instead of waiting for the first. Opening is the same change whoever
/// makes it, so it is tried again, for up to two seconds.
pub(super) fn allow_connections(admin: &mut Client, name: &str) -> Result<(), postgres::Error> {
    let sql = format!("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true", quote_ident(name));
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut backoff = Backoff::up_to(Duration::from_millis(100));
    loop {
        match admin.batch_execute(&sql) {
            Err(e) if concurrently_updated(&e) && Instant::now() < deadline => backoff.pause(),
            done => return done,
        }
    }
}

/// PostgreSQL's error for a catalog row another transaction changed first.
fn concurrently_updated(e: &postgres::Error) -> bool {
    e.as_db_error().is_some_and(|d| {
        *d.code() == SqlState::INTERNAL_ERROR && d.message() == "tuple concurrently updated"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_names_fit_in_63_bytes() {
        let n = derived_name("app", "pre_restore", "20260107T120000Z-ab12");
        assert_eq!(n, "app_pre_restore_20260107120000ab12");
        let long = "x".repeat(80);
        assert_eq!(derived_name(&long, "restoring", "20260107T120000Z-ab12").len(), 63);
    }

    #[test]
    fn list_settings_are_quoted_element_by_element() {
        assert_eq!(guc_value("search_path", "\"$user\", public"), "'$user', 'public'");
        assert_eq!(guc_value("work_mem", "64MB"), "'64MB'");
        assert_eq!(guc_value("search_path", "\"a,b\", c"), "'a,b', 'c'");
    }

    /// Two sessions open one database at once, as the watcher of a
    /// stopped swap and the resumed run do: the second waits out the first
    /// and opens it too, where the plain statement fails ("tuple
    /// concurrently updated").
    #[test]
    fn opening_a_database_another_session_is_opening_too_succeeds() {
        let cluster = crate::pg::cluster::Cluster::start().unwrap();
        cluster.create_database("racer", None).unwrap();
        let mut holder = cluster.connect("postgres").unwrap();
        let mut first = holder.transaction().unwrap();
        first.batch_execute("ALTER DATABASE racer WITH ALLOW_CONNECTIONS true").unwrap();
        let mut second = cluster.connect("postgres").unwrap();
        let opener = std::thread::spawn(move || allow_connections(&mut second, "racer"));
        let mut look = cluster.connect("postgres").unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !look
            .query_one(
                "select exists (select 1 from pg_stat_activity
                                 where query like 'ALTER DATABASE %racer%' and wait_event_type = 'Lock')",
                &[],
            )
            .unwrap()
            .get::<_, bool>(0)
        {
            assert!(Instant::now() < deadline, "the second session never waited on the first");
            std::thread::sleep(Duration::from_millis(5));
        }
        first.commit().unwrap();
        opener.join().unwrap().expect("opened once the first change committed");
    }
}
